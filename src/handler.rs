//! One incoming event, handled: parsed at the edge, decided in the inventory, answered on
//! the bus. Business outcomes are answers; only faults that a retry can mend are errors.

use serde_json::Value;
use sqlx::PgPool;
use tracing::field::display;
use uuid::Uuid;

use crate::domain::{FailureReason, OrderId, OutgoingEvent, SeatReservationFailed};
use crate::inbound::{
    self, Command, ConfirmOrder, InvalidOrder, ReleaseOrder, ReserveSeats, UnreadableEvent,
};
use crate::inventory::{self, InventoryError, LockTtl, Release, Reservation};
use crate::metrics;
use crate::outbound::EventBus;
use crate::outbound::outbox::{self, OutboxError, RelayPolicy, RelayReport};

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
    /// The order (or its payment) was answered with this event, decided now or before.
    Answered(OutgoingEvent),
    /// A release: the `SeatReleased` it published, none when nothing was held.
    Released(Vec<OutgoingEvent>),
    /// The schedule ran.
    Housekeeping(HousekeepingReport),
}

#[derive(Debug, PartialEq)]
pub struct HousekeepingReport {
    /// Orders whose lapsed holds were released.
    pub orders_expired: usize,
    pub relay: RelayReport,
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
    #[error("cannot sign in to the database: {0}")]
    DatabaseAuth(#[from] crate::rds_iam::RdsIamError),
}

impl HandlerError {
    /// Whether retrying the same event can succeed. An unreadable event fails too, but
    /// only so that it lands in the on-failure destination instead of vanishing.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreadable(_) | Self::Serialize(_) => false,
            // Broken stored state or a bug: a retry would fail the same way.
            Self::Inventory(
                InventoryError::UnknownStoredDetailType(..)
                | InventoryError::Serialize(_)
                | InventoryError::Inconsistent(..)
                | InventoryError::UndecidedOrder(_),
            ) => false,
            Self::Inventory(_) | Self::Outbox(_) | Self::DatabaseAuth(_) => true,
        }
    }

    /// A stable name for the kind of failure, reported to Lambda as the error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreadable(_) => "UnreadableEvent",
            Self::Inventory(InventoryError::Database(_)) => "DatabaseUnavailable",
            Self::Inventory(InventoryError::Contention(_)) => "SeatContention",
            Self::Inventory(InventoryError::OrderContention(_)) => "OrderContention",
            Self::Inventory(_) => "InconsistentInventory",
            Self::Outbox(OutboxError::Database(_)) => "DatabaseUnavailable",
            Self::Outbox(OutboxError::Publish(_)) => "PublishFailed",
            Self::Outbox(OutboxError::UnknownDetailType(..)) => "InconsistentOutbox",
            Self::Serialize(_) => "SerializeFailed",
            Self::DatabaseAuth(_) => "DatabaseAuthUnavailable",
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
            Command::Confirm(request) => self.confirm(&request).await,
            Command::Release(request) => self.release(&request).await,
            Command::Housekeeping { causation_id } => self.housekeeping(&causation_id).await,
        };
        if let Err(error) = &result {
            tracing::error!(
                error = %error,
                kind = error.kind(),
                retryable = error.is_retryable(),
                "invocation failed"
            );
        }
        result
    }

    async fn reserve(&self, request: &ReserveSeats) -> Result<Handled, HandlerError> {
        record_ids(request.order_id, &request.causation_id);
        let (event, released) =
            match inventory::reserve(&self.pool, request, self.settings.lock_ttl).await? {
                Reservation::Decided {
                    event,
                    released,
                    lost_races,
                } => {
                    tracing::info!(
                        outcome = event.detail_type.as_str(),
                        seats = request.seats.len(),
                        lost_races,
                        expired_holders = released.len(),
                        "order decided"
                    );
                    metrics::expired_holds_released(released.len());
                    (event, released)
                }
                Reservation::Replayed(event) => {
                    tracing::info!(
                        outcome = event.detail_type.as_str(),
                        "order decided before; answering again"
                    );
                    (event, Vec::new())
                }
                refused @ (Reservation::ConflictsWithEarlierRequest
                | Reservation::ClosedBeforeReserved(_)) => {
                    let order = request.order_id;
                    let problem = match refused {
                        Reservation::ClosedBeforeReserved(by) => {
                            format!(
                                "order {order} was closed by {by} before its seats were requested"
                            )
                        }
                        _ => format!(
                            "order {order} was already used for another flight or other seats"
                        ),
                    };
                    tracing::warn!(problem = %problem, "order id cannot hold seats; refusing");
                    let refusal = InvalidOrder {
                        order_id: order,
                        flight_id: Some(request.flight_id),
                        seats: request.seats.named(),
                        problem,
                        causation_id: request.causation_id.clone(),
                    };
                    return self.refuse_invalid(refusal).await;
                }
            };
        self.publish(std::iter::once(event.clone()).chain(released).collect())
            .await?;
        Ok(Handled::Answered(event))
    }

    async fn confirm(&self, request: &ConfirmOrder) -> Result<Handled, HandlerError> {
        record_ids(request.order_id, &request.causation_id);
        let confirmation = inventory::confirm(&self.pool, request).await?;
        tracing::info!(
            outcome = confirmation.answer.detail_type.as_str(),
            payment_id = %request.payment_id,
            "payment answered"
        );
        metrics::expired_holds_released(confirmation.released.len());
        let answer = confirmation.answer.clone();
        self.publish(
            std::iter::once(confirmation.answer)
                .chain(confirmation.released)
                .collect(),
        )
        .await?;
        Ok(Handled::Answered(answer))
    }

    async fn release(&self, request: &ReleaseOrder) -> Result<Handled, HandlerError> {
        record_ids(request.order_id, &request.causation_id);
        match inventory::release(&self.pool, request).await? {
            Release::Released(events) => {
                tracing::info!(reason = ?request.reason, "seats released");
                self.publish(events.clone()).await?;
                Ok(Handled::Released(events))
            }
            Release::NothingHeld => {
                // A retry after a failed publish finds nothing left to release: send what
                // the first attempt queued instead.
                let pending = outbox::pending_for_order(&self.pool, request.order_id).await?;
                tracing::info!(pending = pending.len(), "nothing held; nothing to release");
                self.publish(pending).await?;
                Ok(Handled::Released(Vec::new()))
            }
        }
    }

    /// The schedule: expire lapsed holds, then publish stragglers and prune the outbox.
    async fn housekeeping(&self, causation_id: &str) -> Result<Handled, HandlerError> {
        tracing::Span::current().record("eventId", display(causation_id));
        let expired = inventory::expire_lapsed_holds(&self.pool, causation_id).await?;
        let orders_expired = expired.len();
        metrics::expired_holds_released(orders_expired);
        self.publish(expired).await?;
        let relay = outbox::relay(&self.pool, &self.bus, self.settings.relay).await?;
        tracing::info!(
            orders_expired,
            published = relay.published,
            pruned = relay.pruned,
            oldest_pending_seconds = relay.oldest_pending_seconds,
            "housekeeping ran"
        );
        Ok(Handled::Housekeeping(HousekeepingReport {
            orders_expired,
            relay,
        }))
    }

    async fn publish(&self, events: Vec<OutgoingEvent>) -> Result<(), HandlerError> {
        outbox::publish(&self.pool, &self.bus, &events).await?;
        Ok(())
    }

    /// `INVALID_REQUEST`: nothing is written, the answer is sent straight to the bus.
    async fn refuse_invalid(&self, invalid: InvalidOrder) -> Result<Handled, HandlerError> {
        record_ids(invalid.order_id, &invalid.causation_id);
        tracing::warn!(problem = %invalid.problem, "invalid request; refusing");
        metrics::reservation_refused(FailureReason::InvalidRequest);
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
        // Not in the outbox: recording the attempt touches no row, and a failed publish
        // fails the invocation so that Lambda retries it.
        self.publish(vec![event.clone()]).await?;
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
