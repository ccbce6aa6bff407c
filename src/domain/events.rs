//! The events this service publishes: their details as typed values, and the
//! serialized form that travels through the outbox to the bus.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{FailureReason, FlightId, HoldStatus, OrderId, SeatNumber};

/// The `source` of every event this service publishes.
pub const EVENT_SOURCE: &str = "skyledger.inventory";

/// The `detail-type` of an outgoing event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DetailType {
    SeatReserved,
    SeatReservationFailed,
    SeatBooked,
    SeatBookingFailed,
    SeatReleased,
}

impl DetailType {
    pub const ALL: [Self; 5] = [
        Self::SeatReserved,
        Self::SeatReservationFailed,
        Self::SeatBooked,
        Self::SeatBookingFailed,
        Self::SeatReleased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeatReserved => "SeatReserved",
            Self::SeatReservationFailed => "SeatReservationFailed",
            Self::SeatBooked => "SeatBooked",
            Self::SeatBookingFailed => "SeatBookingFailed",
            Self::SeatReleased => "SeatReleased",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|candidate| candidate.as_str() == raw)
    }
}

/// An event ready to leave the process. `event_id` is also inside `detail` as `eventId`:
/// it stays the same however often the event is sent, so consumers can de-duplicate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingEvent {
    pub event_id: Uuid,
    pub detail_type: DetailType,
    pub detail: String,
}

impl OutgoingEvent {
    pub(crate) fn of<T: Serialize>(
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// Detail of `SeatBooked`: the order's held seats are sold.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatBooked {
    pub event_id: Uuid,
    pub order_id: OrderId,
    pub flight_id: FlightId,
    pub seats: Vec<HeldSeat>,
    pub causation_id: String,
}

impl SeatBooked {
    pub fn to_event(&self) -> Result<OutgoingEvent, serde_json::Error> {
        OutgoingEvent::of(self.event_id, DetailType::SeatBooked, self)
    }
}

/// Why a payment could not become a sale; payments refunds on either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BookingFailureReason {
    /// The order's holds expired or were released before the payment arrived.
    HoldExpired,
    /// The order never held seats here.
    HoldNotFound,
}

/// Detail of `SeatBookingFailed`: nothing was sold and nothing changed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatBookingFailed {
    pub event_id: Uuid,
    pub order_id: OrderId,
    pub reason: BookingFailureReason,
    pub message: String,
    pub causation_id: String,
}

impl SeatBookingFailed {
    pub fn to_event(&self) -> Result<OutgoingEvent, serde_json::Error> {
        OutgoingEvent::of(self.event_id, DetailType::SeatBookingFailed, self)
    }
}

/// Why seats went back on sale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReleaseReason {
    PaymentFailed,
    OrderCancelled,
    HoldExpired,
}

impl ReleaseReason {
    /// The hold status a release of this kind leaves behind.
    pub fn closing_status(self) -> HoldStatus {
        match self {
            Self::HoldExpired => HoldStatus::Expired,
            Self::PaymentFailed | Self::OrderCancelled => HoldStatus::Released,
        }
    }
}

/// An incoming event that can close an order before its `OrderCreated` was seen (EventBridge
/// does not order events): the order is then claimed as closed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCloser {
    PaymentSucceeded,
    PaymentFailed,
    OrderCancelled,
}

/// Detail of `SeatReleased`: the order's seats are free again, at these versions.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatReleased {
    pub event_id: Uuid,
    pub order_id: OrderId,
    pub flight_id: FlightId,
    pub seats: Vec<HeldSeat>,
    pub reason: ReleaseReason,
    pub causation_id: String,
}

impl SeatReleased {
    pub fn to_event(&self) -> Result<OutgoingEvent, serde_json::Error> {
        OutgoingEvent::of(self.event_id, DetailType::SeatReleased, self)
    }
}
