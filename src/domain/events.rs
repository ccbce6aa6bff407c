//! The events this service publishes: their details as typed values, and the
//! serialized form that travels through the outbox to the bus.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{FailureReason, FlightId, OrderId, SeatNumber};

/// The `source` of every event this service publishes.
pub const EVENT_SOURCE: &str = "skyledger.inventory";

/// The `detail-type` of an outgoing event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DetailType {
    SeatReserved,
    SeatReservationFailed,
}

impl DetailType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeatReserved => "SeatReserved",
            Self::SeatReservationFailed => "SeatReservationFailed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::SeatReserved, Self::SeatReservationFailed]
            .into_iter()
            .find(|candidate| candidate.as_str() == raw)
    }
}

/// An event ready to leave the process. `event_id` is also inside `detail` as `eventId`:
/// it stays the same however often the event is sent, so consumers can de-duplicate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingEvent {
    pub event_id: Uuid,
    pub detail_type: DetailType,
    pub detail: String,
}

impl OutgoingEvent {
    fn of<T: Serialize>(
        event_id: Uuid,
        detail_type: DetailType,
        detail: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_id,
            detail_type,
            detail: serde_json::to_string(detail)?,
        })
    }
}

/// A seat as held (or sold) for an order, with the version that proves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldSeat {
    pub seat_id: Uuid,
    pub seat_number: SeatNumber,
    pub version: i32,
}

/// Detail of `SeatReserved`: every requested seat is held until `locked_until`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatReserved {
    pub event_id: Uuid,
    pub order_id: OrderId,
    pub flight_id: FlightId,
    pub seats: Vec<HeldSeat>,
    pub locked_until: DateTime<Utc>,
    pub causation_id: String,
}

impl SeatReserved {
    pub fn to_event(&self) -> Result<OutgoingEvent, serde_json::Error> {
        OutgoingEvent::of(self.event_id, DetailType::SeatReserved, self)
    }
}

/// Detail of `SeatReservationFailed`: nothing was held for the order.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatReservationFailed {
    pub event_id: Uuid,
    pub order_id: OrderId,
    /// `None` only when the request's flight id could not be read.
    pub flight_id: Option<FlightId>,
    /// The seats as requested (an unreadable request echoes what could be read).
    pub seats: Vec<String>,
    pub reason: FailureReason,
    pub unavailable_seats: Vec<String>,
    pub message: String,
    pub causation_id: String,
}

impl SeatReservationFailed {
    pub fn to_event(&self) -> Result<OutgoingEvent, serde_json::Error> {
        OutgoingEvent::of(self.event_id, DetailType::SeatReservationFailed, self)
    }
}
