//! Requests that change seats outside a sale: operations' blocks and unblocks, and an
//! order's seat changes. Each is decided, written and answered by the database in one call
//! (`inventory_block_seats`, `inventory_unblock_seats`, migration 0014;
//! `inventory_change_seats`, migration 0016), on the seat rules reservations follow, and
//! answered once per request id.

use uuid::Uuid;

use serde::Serialize;

use super::sql::{self, ChangeCall, InvalidRefusal, MoveCall, RequestDecision, SeatRequestCall};
use super::{InventoryError, lifecycle};
use crate::db::{Function, Session};
use crate::domain::{FailureReason, FlightId, OutgoingEvent, RequestId, SeatNumber, SeatRequest};
use crate::inbound::{
    BlockSeats, ChangeSeats, InvalidChange, InvalidOperation, OperationKind, UnblockSeats,
};

/// A lost race is decided again at most this many times in all.
const MAX_ATTEMPTS: u32 = 8;

/// How a request of operations ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Operation {
    /// Decided now: the answer is in the outbox, with `released`, the `SeatReleased` of
    /// orders whose lapsed holds were expired on the way.
    Decided {
        event: OutgoingEvent,
        released: Vec<OutgoingEvent>,
    },
    /// Answered before, for the same request: the same answer again.
    Replayed(OutgoingEvent),
    /// The request id was answered before, for another request.
    Conflict,
}

/// `SeatBlockRequested`: every seat blocked, or none.
pub async fn block(
    session: &mut Session<'_>,
    request: &BlockSeats,
) -> Result<Operation, InventoryError> {
    let fingerprint = request.fingerprint();
    let call = SeatRequestCall {
        reason: Some(request.reason),
        note: request.note.as_ref().map(|note| note.as_str()),
        ..call_for(
            request.request_id,
            request.flight_id,
            &fingerprint,
            &request.causation_id,
            &request.seats,
        )
    };
    decide(session, sql::BLOCK_SEATS, &call, Asked::of(&call)).await
}

/// `SeatUnblockRequested`: the blocked seats among those named are free again.
pub async fn unblock(
    session: &mut Session<'_>,
    request: &UnblockSeats,
) -> Result<Operation, InventoryError> {
    let fingerprint = request.fingerprint();
    let call = call_for(
        request.request_id,
        request.flight_id,
        &fingerprint,
        &request.causation_id,
        &request.seats,
    );
    decide(session, sql::UNBLOCK_SEATS, &call, Asked::of(&call)).await
}

/// The call of a valid request of operations, with a new answer id.
fn call_for<'a>(
    request_id: RequestId,
    flight_id: FlightId,
    fingerprint: &'a str,
    causation_id: &'a str,
    seats: &'a SeatRequest,
) -> SeatRequestCall<'a> {
    SeatRequestCall {
        request_id: request_id.as_uuid(),
        flight_id: Some(flight_id.as_uuid()),
        fingerprint,
        event_id: Uuid::new_v4(),
        causation_id,
        seats: seats.seats().iter().map(SeatNumber::as_str).collect(),
        reason: None,
        note: None,
        refusal: None,
    }
}

/// `INVALID_REQUEST`, recorded as the request's answer like any other.
pub async fn refuse_operation(
    session: &mut Session<'_>,
    invalid: &InvalidOperation,
) -> Result<Operation, InventoryError> {
    let call = SeatRequestCall {
        request_id: invalid.request_id.as_uuid(),
        flight_id: invalid.flight_id.map(|id| id.as_uuid()),
        fingerprint: &invalid.fingerprint,
        event_id: Uuid::new_v4(),
        causation_id: &invalid.causation_id,
        seats: invalid.seats.iter().map(String::as_str).collect(),
        reason: None,
        note: None,
        refusal: Some(InvalidRefusal {
            reason: FailureReason::InvalidRequest,
            message: &invalid.problem,
        }),
    };
    let function = match invalid.kind {
        OperationKind::Block => sql::BLOCK_SEATS,
        OperationKind::Unblock => sql::UNBLOCK_SEATS,
    };
    decide(session, function, &call, Asked::of(&call)).await
}

/// `SeatChangeRequested`: every move, or none.
pub async fn change(
    session: &mut Session<'_>,
    request: &ChangeSeats,
) -> Result<Operation, InventoryError> {
    let fingerprint = request.fingerprint();
    let call = ChangeCall {
        change_id: request.change_id.as_uuid(),
        order_id: Some(request.order_id.as_uuid()),
        flight_id: Some(request.flight_id.as_uuid()),
        fingerprint: &fingerprint,
        event_id: Uuid::new_v4(),
        causation_id: &request.causation_id,
        moves: request
            .moves
            .moves()
            .iter()
            .map(|m| MoveCall {
                from: m.from.as_str(),
                to: m.to.as_str(),
            })
            .collect(),
        refusal: None,
    };
    let asked = Asked {
        fingerprint: &fingerprint,
        causation_id: &request.causation_id,
        order_id: call.order_id,
    };
    decide(session, sql::CHANGE_SEATS, &call, asked).await
}

/// A seat change's `INVALID_REQUEST`, recorded as its answer like any other.
pub async fn refuse_change(
    session: &mut Session<'_>,
    invalid: &InvalidChange,
) -> Result<Operation, InventoryError> {
    let call = ChangeCall {
        change_id: invalid.change_id.as_uuid(),
        order_id: invalid.order_id.map(|id| id.as_uuid()),
        flight_id: invalid.flight_id.map(|id| id.as_uuid()),
        fingerprint: &invalid.fingerprint,
        event_id: Uuid::new_v4(),
        causation_id: &invalid.causation_id,
        moves: invalid
            .moves
            .iter()
            .map(|(from, to)| MoveCall { from, to })
            .collect(),
        refusal: Some(InvalidRefusal {
            reason: FailureReason::InvalidRequest,
            message: &invalid.problem,
        }),
    };
    let asked = Asked {
        fingerprint: &invalid.fingerprint,
        causation_id: &invalid.causation_id,
        order_id: call.order_id,
    };
    decide(session, sql::CHANGE_SEATS, &call, asked).await
}

/// What a request asked, to tell a redelivery from a conflict and to expire on its behalf.
struct Asked<'a> {
    fingerprint: &'a str,
    causation_id: &'a str,
    /// The order whose seats change, if any.
    order_id: Option<Uuid>,
}

impl<'a> Asked<'a> {
    fn of(call: &'a SeatRequestCall<'a>) -> Self {
        Self {
            fingerprint: call.fingerprint,
            causation_id: call.causation_id,
            order_id: None,
        }
    }
}

async fn decide(
    session: &mut Session<'_>,
    function: Function,
    call: &impl Serialize,
    asked: Asked<'_>,
) -> Result<Operation, InventoryError> {
    let mut released = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        match session.write(function, call).await? {
            RequestDecision::Decided { event } => {
                return Ok(Operation::Decided { event, released });
            }
            RequestDecision::Earlier { earlier } => {
                return Ok(if earlier.fingerprint == asked.fingerprint {
                    Operation::Replayed(earlier.event)
                } else {
                    Operation::Conflict
                });
            }
            RequestDecision::Lapsed { holders } => {
                released
                    .extend(lifecycle::expire_orders(session, &holders, asked.causation_id).await?);
            }
            RequestDecision::Quarantined { reason } => {
                return Err(InventoryError::Quarantined {
                    order_id: asked.order_id.unwrap_or_default(),
                    reason,
                });
            }
            RequestDecision::Lost => {
                tracing::info!("the seats kept changing under the request; deciding again");
            }
        }
    }
    Err(InventoryError::Contention(MAX_ATTEMPTS))
}
