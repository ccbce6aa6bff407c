//! The edge: an EventBridge envelope in, a typed command out. Nothing past this module
//! sees raw JSON.

pub mod http;
mod lifecycle;
mod operations;
mod order_created;
mod payload;
mod queue;
mod schedule;
mod seat_change;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;

pub use http::{HttpRequest, Resource};
pub use lifecycle::{ConfirmOrder, ReleaseOrder};
pub use operations::{
    BlockSeats, InvalidOperation, MAX_NOTE_CHARS, MAX_SEATS_PER_BLOCK, OperationKind, UnblockSeats,
};
pub use order_created::{InvalidOrder, ReserveSeats, SeatSelection};
pub use payload::read_payload;
pub use queue::{Queued, read_batch};
pub use schedule::{CancelFlight, ChangeAircraft, OpenFlight, RejectedAircraft, RejectedSchedule};
pub use seat_change::{ChangeSeats, InvalidChange};

use crate::domain::ReleaseReason;
use crate::domain::text::{self, FreeText};

/// What an incoming event asks this service to do.
#[derive(Clone, Debug)]
pub enum Command {
    /// `OrderCreated`: hold seats, or answer why the request itself is wrong.
    Reserve(Result<ReserveSeats, InvalidOrder>),
    /// `PaymentSucceeded`: sell what the order holds.
    Confirm(ConfirmOrder),
    /// `PaymentFailed` or `OrderCancelled`: give it back.
    Release(ReleaseOrder),
    /// The every-minute schedule: release expired holds, publish outbox stragglers, prune.
    Housekeeping { causation_id: String },
    /// `FlightScheduled`: open a flight's inventory, or answer why the schedule is wrong.
    OpenFlight(Result<OpenFlight, RejectedSchedule>),
    /// `FlightCancelled`: release every hold and sale of the flight.
    CancelFlight(CancelFlight),
    /// `SeatBlockRequested`: take seats out of sale, or answer why the request is wrong.
    Block(Result<BlockSeats, InvalidOperation>),
    /// `SeatUnblockRequested`: put blocked seats back on sale.
    Unblock(Result<UnblockSeats, InvalidOperation>),
    /// `SeatChangeRequested`: move an order's seats, or answer why the request is wrong.
    ChangeSeats(Result<ChangeSeats, InvalidChange>),
    /// `AircraftChanged`: give the flight a new cabin layout, moving what is on the seats
    /// it loses; or answer why the layout is wrong.
    ChangeAircraft(Result<ChangeAircraft, RejectedAircraft>),
    /// An HTTP request: the seat map of a flight.
    Http(HttpRequest),
}

impl Command {
    /// What the command is, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Reserve(_) => "OrderCreated",
            Self::Confirm(_) => "PaymentSucceeded",
            Self::Release(request) => match request.reason {
                ReleaseReason::OrderCancelled => "OrderCancelled",
                _ => "PaymentFailed",
            },
            Self::Housekeeping { .. } => "the schedule",
            Self::OpenFlight(_) => "FlightScheduled",
            Self::CancelFlight(_) => "FlightCancelled",
            Self::Block(_) => "SeatBlockRequested",
            Self::Unblock(_) => "SeatUnblockRequested",
            Self::ChangeSeats(_) => "SeatChangeRequested",
            Self::ChangeAircraft(_) => "AircraftChanged",
            Self::Http(_) => "an HTTP request",
        }
    }
}

/// An event that cannot be answered on the bus because it cannot be tied to an order.
/// The invocation fails, so Lambda's retries and on-failure destination keep it.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableEvent {
    #[error("the payload is not an EventBridge event: {0}")]
    NotAnEnvelope(#[source] serde_json::Error),
    #[error("the EventBridge event has no usable id")]
    NoEventId,
    #[error("no handler for source {event_source:?} and detail-type {detail_type:?}")]
    UnknownEvent {
        event_source: String,
        detail_type: String,
    },
    #[error("the {detail_type} detail has no readable orderId")]
    NoOrderId { detail_type: &'static str },
    #[error("the {detail_type} detail has no readable flightId")]
    NoFlightId { detail_type: &'static str },
    #[error("the queued message has no body")]
    EmptyMessage,
    #[error("the HTTP request has no method or path")]
    MalformedHttp,
    #[error("the {detail_type} detail is invalid: {problem}")]
    InvalidDetail {
        detail_type: &'static str,
        problem: &'static str,
    },
}

/// EventBridge event ids are UUIDs; anything much longer is not one and is not echoed.
const MAX_EVENT_ID_LEN: usize = 128;

pub fn parse(payload: Value) -> Result<Command, UnreadableEvent> {
    if http::is_http(&payload) {
        return http::parse(payload)
            .map(Command::Http)
            .ok_or(UnreadableEvent::MalformedHttp);
    }
    let envelope: EventBridgeEvent<Value> =
        serde_json::from_value(payload).map_err(UnreadableEvent::NotAnEnvelope)?;
    // It is echoed as causationId and stored, so it must be kept exactly as sent.
    let causation_id = envelope
        .id
        .filter(|id| text::identifier(id, MAX_EVENT_ID_LEN).is_some())
        .ok_or(UnreadableEvent::NoEventId)?;
    match (envelope.source.as_str(), envelope.detail_type.as_str()) {
        ("skyledger.orders", "OrderCreated") => Ok(Command::Reserve(order_created::parse(
            &envelope.detail,
            causation_id,
        )?)),
        ("skyledger.payments", "PaymentSucceeded") => Ok(Command::Confirm(lifecycle::confirm(
            &envelope.detail,
            causation_id,
        )?)),
        ("skyledger.payments", "PaymentFailed") => Ok(Command::Release(lifecycle::release(
            &envelope.detail,
            ReleaseReason::PaymentFailed,
            causation_id,
        )?)),
        ("skyledger.orders", "OrderCancelled") => Ok(Command::Release(lifecycle::release(
            &envelope.detail,
            ReleaseReason::OrderCancelled,
            causation_id,
        )?)),
        ("aws.events", "Scheduled Event") => Ok(Command::Housekeeping { causation_id }),
        ("skyledger.schedule", "FlightScheduled") => Ok(Command::OpenFlight(schedule::scheduled(
            &envelope.detail,
            causation_id,
        )?)),
        ("skyledger.schedule", "FlightCancelled") => Ok(Command::CancelFlight(
            schedule::cancelled(&envelope.detail, causation_id)?,
        )),
        ("skyledger.schedule", "AircraftChanged") => Ok(Command::ChangeAircraft(
            schedule::aircraft_changed(&envelope.detail, causation_id)?,
        )),
        ("skyledger.orders", "SeatChangeRequested") => Ok(Command::ChangeSeats(
            seat_change::parse(&envelope.detail, causation_id)?,
        )),
        ("skyledger.operations", "SeatBlockRequested") => Ok(Command::Block(operations::block(
            &envelope.detail,
            causation_id,
        )?)),
        ("skyledger.operations", "SeatUnblockRequested") => Ok(Command::Unblock(
            operations::unblock(&envelope.detail, causation_id)?,
        )),
        _ => Err(UnreadableEvent::UnknownEvent {
            event_source: shorten(&envelope.source),
            detail_type: shorten(&envelope.detail_type),
        }),
    }
}

/// Quotes of unknown input stay short and clean in logs and errors.
fn shorten(raw: &str) -> String {
    FreeText::clean(raw, 64).into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(source: &str, detail_type: &str, detail: Value) -> Value {
        json!({
            "version": "0", "id": "0f0d4a8e-6a2b-4c1e-9f3a-5b7c8d9e0a1b",
            "detail-type": detail_type, "source": source, "account": "123456789012",
            "time": "2026-11-24T10:00:00Z", "region": "eu-west-1", "resources": [],
            "detail": detail
        })
    }

    #[test]
    fn a_payload_that_is_not_an_envelope_is_unreadable() {
        for payload in [
            json!(null),
            json!("OrderCreated"),
            json!([1, 2]),
            json!({"detail": {}}),
        ] {
            assert!(matches!(
                parse(payload),
                Err(UnreadableEvent::NotAnEnvelope(_))
            ));
        }
    }

    #[test]
    fn an_event_from_an_unknown_source_is_unreadable_not_ignored() {
        let result = parse(envelope("someone.else", "OrderCreated", json!({})));
        assert!(matches!(result, Err(UnreadableEvent::UnknownEvent { .. })));
    }

    #[test]
    fn an_event_without_an_id_is_unreadable() {
        for id in ["", "a\u{0}b", "line\nbreak", "\u{202e}dab"] {
            let mut payload = envelope("aws.events", "Scheduled Event", json!({}));
            payload["id"] = json!(id);
            assert!(
                matches!(parse(payload), Err(UnreadableEvent::NoEventId)),
                "{id:?}"
            );
        }
    }

    #[test]
    fn the_schedule_asks_for_housekeeping() {
        let command = parse(envelope("aws.events", "Scheduled Event", json!({})));
        assert!(matches!(command, Ok(Command::Housekeeping { .. })));
    }
}
