//! The events this service publishes: their details as typed values, and the
//! serialized form that travels through the outbox to the bus.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{FlightId, HoldStatus, OrderId, SeatNumber};

/// The `source` of every event this service publishes.
pub const EVENT_SOURCE: &str = "skyledger.inventory";

/// The `detail-type` of an outgoing event; its text is the variant's name.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
pub enum DetailType {
    SeatReserved,
    SeatReservationFailed,
    SeatBooked,
    SeatBookingFailed,
    SeatReleased,
    FlightInventoryOpened,
    FlightScheduleRejected,
    FlightInventoryClosed,
    SeatsBlocked,
    SeatBlockFailed,
    SeatsUnblocked,
    SeatUnblockFailed,
    SeatsChanged,
    SeatChangeFailed,
    SeatsReassigned,
    FlightLayoutChanged,
    AircraftChangeRejected,
}

impl DetailType {
    pub fn as_str(self) -> &'static str {
        self.into()
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

// `SeatReserved` and `SeatReservationFailed` are rendered by the decision that writes them
// (`inventory_decide_order`, migration 0011), and so are the answers to operations
// (`SeatsBlocked`, `SeatBlockFailed`: `inventory_block_seats`; `SeatsUnblocked`,
// `SeatUnblockFailed`: `inventory_unblock_seats`, migration 0014) and to seat changes
// (`SeatsChanged`, `SeatChangeFailed`: `inventory_change_seats`, migration 0016) and to an
// aircraft change (`SeatsReassigned`, `FlightLayoutChanged`: migration 0017);
// `events/schemas` holds their contract.

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
    /// The flight was cancelled; its holds are released.
    FlightCancelled,
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
    FlightCancelled,
    /// The flight's new aircraft has no room for the order in its cabin.
    AircraftChanged,
}

impl ReleaseReason {
    /// The hold status a release of this kind leaves behind.
    pub fn closing_status(self) -> HoldStatus {
        match self {
            Self::HoldExpired => HoldStatus::Expired,
            Self::PaymentFailed
            | Self::OrderCancelled
            | Self::FlightCancelled
            | Self::AircraftChanged => HoldStatus::Released,
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

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    #[test]
    fn a_detail_type_reads_and_writes_as_its_name_everywhere() {
        for detail_type in DetailType::VARIANTS {
            let text = detail_type.as_str();
            assert_eq!(text.parse::<DetailType>().ok(), Some(*detail_type));
            assert_eq!(
                serde_json::to_value(detail_type).ok(),
                Some(serde_json::json!(text))
            );
        }
        assert!("seatReserved".parse::<DetailType>().is_err());
    }
}

/// How many seats a cabin of an opened flight has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CabinSeats {
    pub cabin: super::Cabin,
    pub seats: usize,
}

/// Detail of `FlightInventoryOpened`: the flight and every seat of it are on sale.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlightInventoryOpened {
    pub event_id: Uuid,
    pub flight_id: FlightId,
    pub cabins: Vec<CabinSeats>,
    pub seats: usize,
    pub causation_id: String,
}

impl FlightInventoryOpened {
    pub fn to_event(&self) -> Result<OutgoingEvent, serde_json::Error> {
        OutgoingEvent::of(self.event_id, DetailType::FlightInventoryOpened, self)
    }
}

/// Detail of `FlightScheduleRejected`: nothing was written.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlightScheduleRejected {
    pub event_id: Uuid,
    pub flight_id: FlightId,
    pub reason: super::ScheduleProblem,
    pub message: String,
    pub causation_id: String,
}

impl FlightScheduleRejected {
    pub fn to_event(&self) -> Result<OutgoingEvent, serde_json::Error> {
        OutgoingEvent::of(self.event_id, DetailType::FlightScheduleRejected, self)
    }
}

/// Detail of `FlightInventoryClosed`: a cancelled flight has no hold or sale left.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlightInventoryClosed {
    pub event_id: Uuid,
    pub flight_id: FlightId,
    /// Orders whose holds or sales the cancellation gave back.
    pub orders_released: u64,
    pub causation_id: String,
}

impl FlightInventoryClosed {
    pub fn to_event(&self) -> Result<OutgoingEvent, serde_json::Error> {
        OutgoingEvent::of(self.event_id, DetailType::FlightInventoryClosed, self)
    }
}

/// Why an `AircraftChanged` was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AircraftChangeProblem {
    InvalidRequest,
    FlightNotFound,
    FlightCancelled,
    FlightDeparted,
}

/// Detail of `AircraftChangeRejected`: nothing was written.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AircraftChangeRejected {
    pub event_id: Uuid,
    pub change_id: super::RequestId,
    pub flight_id: FlightId,
    pub reason: AircraftChangeProblem,
    pub message: String,
    pub causation_id: String,
}

impl AircraftChangeRejected {
    pub fn to_event(&self) -> Result<OutgoingEvent, serde_json::Error> {
        OutgoingEvent::of(self.event_id, DetailType::AircraftChangeRejected, self)
    }
}
