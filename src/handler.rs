//! One incoming event, handled: parsed at the edge, decided in the inventory, answered on
//! the bus. Business outcomes are answers; only faults that a retry can mend are errors.

use serde_json::Value;
use sqlx::PgPool;
use tracing::field::display;
use uuid::Uuid;

use crate::domain::{FailureReason, OrderId, OutgoingEvent, SeatNumber, SeatReservationFailed};
use crate::inbound::{self, Command, InvalidOrder, ReserveSeats, UnreadableEvent};
use crate::inventory::{self, InventoryError, LockTtl, Reservation};
use crate::outbound::outbox::{self, OutboxError, RelayPolicy, RelayReport};
use crate::outbound::{EventBus, PublishError};

/// Settings the handler needs, from [`crate::config::Config`].
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub lock_ttl: LockTtl,
    pub relay: RelayPolicy,
}

/// The service: built once per cold start, borrowed by every invocation.
pub struct App<B> {
    pool: PgPool,
    bus: B,
    settings: Settings,
}

/// What an invocation did.
#[derive(Debug, PartialEq)]
pub enum Handled {
    /// The order was answered with this event (decided now or before).
    Answered(OutgoingEvent),
    /// The schedule ran the outbox relay.
    Housekeeping(RelayReport),
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Unreadable(#[from] UnreadableEvent),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("cannot serialize an answer: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl HandlerError {
    /// Whether retrying the same event can succeed. An unreadable event fails too, but
    /// only so that it lands in the on-failure destination instead of vanishing.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreadable(_) | Self::Serialize(_) => false,
            Self::Inventory(InventoryError::UnknownStoredDetailType(..)) => false,
            Self::Inventory(_) | Self::Outbox(_) => true,
        }
    }

    /// A stable name for the kind of failure, reported to Lambda as the error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreadable(_) => "UnreadableEvent",
            Self::Inventory(InventoryError::Database(_)) => "DatabaseUnavailable",
            Self::Inventory(InventoryError::Contention(_)) => "SeatContention",
            Self::Inventory(_) => "InconsistentInventory",
            Self::Outbox(OutboxError::Database(_)) => "DatabaseUnavailable",
            Self::Outbox(OutboxError::Publish(_)) => "PublishFailed",
            Self::Outbox(OutboxError::UnknownDetailType(..)) => "InconsistentOutbox",
            Self::Serialize(_) => "SerializeFailed",
        }
    }
}

/// Answers that are not stored (refusals of unreadable or conflicting requests) still get
/// a stable event id: the same delivery refused twice carries the same `eventId`.
const REFUSAL_NAMESPACE: Uuid = Uuid::from_u128(0x5e0f_2a6c_7d1b_4c3e_9a8f_1b2c_3d4e_5f60);

impl<B: EventBus> App<B> {
    pub fn new(pool: PgPool, bus: B, settings: Settings) -> Self {
        Self {
            pool,
            bus,
            settings,
        }
    }

    pub fn bus(&self) -> &B {
        &self.bus
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn handle(&self, payload: Value) -> Result<Handled, HandlerError> {
        let command = inbound::parse(payload).inspect_err(|error| {
            tracing::error!(error = %error, "unreadable event; failing the invocation");
        })?;
        let result = match command {
            Command::Reserve(Ok(request)) => self.reserve(&request).await,
            Command::Reserve(Err(invalid)) => self.refuse_invalid(invalid).await,
            Command::Housekeeping { causation_id } => {
                let span = tracing::Span::current();
                span.record("eventId", display(&causation_id));
                let report = outbox::relay(&self.pool, &self.bus, self.settings.relay).await?;
                tracing::info!(
                    published = report.published,
                    pruned = report.pruned,
                    oldest_pending_seconds = report.oldest_pending_seconds,
                    "outbox relay ran"
                );
                Ok(Handled::Housekeeping(report))
            }
        };
        if let Err(error) = &result {
            tracing::error!(error = %error, kind = error.kind(), retryable = error.is_retryable(), "invocation failed");
        }
        result
    }

    async fn reserve(&self, request: &ReserveSeats) -> Result<Handled, HandlerError> {
        record_ids(request.order_id, &request.causation_id);
        let event = match inventory::reserve(&self.pool, request, self.settings.lock_ttl).await? {
            Reservation::Decided { event, lost_races } => {
                tracing::info!(
                    outcome = event.detail_type.as_str(),
                    seats = request.seats.len(),
                    lost_races,
                    "order decided"
                );
                event
            }
            Reservation::Replayed(event) => {
                tracing::info!(
                    outcome = event.detail_type.as_str(),
                    "order decided before; answering again"
                );
                event
            }
            Reservation::ConflictsWithEarlierRequest => {
                tracing::warn!("order id reused for another request; refusing");
                let refusal = InvalidOrder {
                    order_id: request.order_id,
                    flight_id: Some(request.flight_id),
                    seats: request
                        .seats
                        .seats()
                        .iter()
                        .map(SeatNumber::to_string)
                        .collect(),
                    problem: format!(
                        "order {} was already used for another flight or other seats",
                        request.order_id
                    ),
                    causation_id: request.causation_id.clone(),
                };
                return self.refuse_invalid(refusal).await;
            }
        };
        outbox::publish(&self.pool, &self.bus, std::slice::from_ref(&event)).await?;
        Ok(Handled::Answered(event))
    }

    /// `INVALID_REQUEST`: nothing is written, the answer is sent straight to the bus.
    async fn refuse_invalid(&self, invalid: InvalidOrder) -> Result<Handled, HandlerError> {
        record_ids(invalid.order_id, &invalid.causation_id);
        tracing::warn!(problem = %invalid.problem, "invalid request; refusing");
        let event = SeatReservationFailed {
            event_id: Uuid::new_v5(
                &REFUSAL_NAMESPACE,
                format!("{}/{}", invalid.causation_id, invalid.order_id).as_bytes(),
            ),
            order_id: invalid.order_id,
            flight_id: invalid.flight_id,
            seats: invalid.seats,
            reason: FailureReason::InvalidRequest,
            unavailable_seats: Vec::new(),
            message: invalid.problem,
            causation_id: invalid.causation_id,
        }
        .to_event()?;
        let report = self.bus.publish(std::slice::from_ref(&event)).await;
        if let Some(rejection) = report.rejected.first() {
            return Err(OutboxError::from(PublishError {
                attempted: 1,
                rejected: vec![rejection.event_id],
                first_reason: rejection.reason.clone(),
            })
            .into());
        }
        Ok(Handled::Answered(event))
    }
}

/// Puts the order id and the incoming event id on the invocation's span, so that every
/// log line of this invocation carries them.
fn record_ids(order_id: OrderId, causation_id: &str) {
    let span = tracing::Span::current();
    span.record("orderId", display(order_id));
    span.record("eventId", display(causation_id));
}
