//! One incoming event, handled: parsed at the edge, decided in the inventory, answered on
//! the bus. Business outcomes are answers; only faults are errors, and each says whether
//! a retry can help.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::Value;
use tracing::field::display;

use uuid::Uuid;

mod batch;

use crate::availability::{self, HttpResponse};
use crate::db::{Database, DbError, Session};
use crate::deadline::{self, Deadline};
use crate::domain::{
    AircraftChangeProblem, AircraftChangeRejected, FlightId, FlightScheduleRejected, OrderCloser,
    OrderId, OutgoingEvent, RequestId,
};
use crate::inbound::{
    self, CancelFlight, ChangeAircraft, Command, ConfirmOrder, InvalidOrder, OpenFlight,
    RejectedSchedule, ReleaseOrder, ReserveSeats, UnreadableEvent,
};
use crate::inventory::{
    self, AircraftChange, Cancellation, Expiry, InventoryError, LayoutChange, LockTtl, Opening,
    Operation, Release, Reservation,
};
use crate::metrics;
use crate::outbound::EventBus;
use crate::outbound::outbox::{self, OutboxError, RelayPolicy, RelayReport};

/// Settings the handler needs, from [`crate::config::Config`].
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub lock_ttl: LockTtl,
    pub relay: RelayPolicy,
    /// Departed flights are deleted this many days after departure.
    pub flight_retention_days: u32,
    /// What this function serves (`FUNCTION_MODE`).
    pub serves: Serves,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lock_ttl: LockTtl::from_seconds(900),
            relay: RelayPolicy::default(),
            flight_retention_days: 30,
            serves: Serves::Everything,
        }
    }
}

/// What one deployment of the binary serves: the inventory function everything, the
/// availability function only the seat map over HTTP (it connects as a role that can only
/// read, and refuses any other payload before it touches the database).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Serves {
    #[default]
    Everything,
    SeatMapOnly,
}

/// The service: built once per cold start, borrowed by every invocation.
pub struct App<B> {
    database: Database,
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
    /// A `FlightScheduled` was answered (`FlightInventoryOpened` or `FlightScheduleRejected`).
    Scheduled(OutgoingEvent),
    /// A `FlightCancelled`: the `SeatReleased` published now, and `FlightInventoryClosed`
    /// once nothing is live on the flight.
    FlightCancelled {
        released: Vec<OutgoingEvent>,
        closed: Option<OutgoingEvent>,
    },
    /// An `AircraftChanged`: the orders moved and released now, and `FlightLayoutChanged`
    /// once nothing is left to move.
    LayoutChanged(LayoutChange),
    /// An HTTP request, answered.
    Http(HttpResponse),
}

#[derive(Debug, Default, PartialEq)]
pub struct HousekeepingReport {
    /// Orders whose lapsed holds were released.
    pub orders_expired: usize,
    /// Orders set aside because their holds could not be closed consistently.
    pub orders_quarantined: usize,
    pub relay: RelayReport,
    pub pruned: u64,
    /// `SeatReleased` and `FlightInventoryClosed` of cancellations finished by this run.
    pub cancellation_events: usize,
    /// `SeatsReassigned`, `SeatReleased` and `FlightLayoutChanged` of aircraft changes
    /// this run went on with.
    pub aircraft_events: usize,
    /// Rows of long-departed flights deleted.
    pub retired: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Unreadable(#[from] UnreadableEvent),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot serialize an answer: {0}")]
    Serialize(#[from] serde_json::Error),
    /// An `OrderCreated` whose order already has another outcome: the first one stands.
    #[error("order {order_id} {reason}")]
    ConflictingOrder {
        order_id: OrderId,
        reason: &'static str,
    },
    /// A `FlightScheduled` with other content for a flight that exists: not applied.
    #[error("flight {0} exists with another schedule (or was loaded without one); not applied")]
    ConflictingSchedule(FlightId),
    /// A request of operations whose id was answered before for another request: the
    /// first answer stands.
    #[error("request {0} was answered before for another request; not applied")]
    ConflictingRequest(RequestId),
    /// An `AircraftChanged` while another change of the flight is still being applied.
    #[error("flight {0} has another aircraft change in progress; try again once it finishes")]
    AircraftChangeInProgress(FlightId),
    /// The availability function was sent something other than a seat-map request.
    #[error("this function only answers GET /flights/{{flightId}}/seats; {0} is not served here")]
    NotServedHere(&'static str),
}

impl HandlerError {
    /// Whether retrying the same event can succeed. An unreadable event fails too, but
    /// only so that it lands in the on-failure destination instead of vanishing.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreadable(_)
            | Self::Serialize(_)
            | Self::ConflictingOrder { .. }
            | Self::ConflictingSchedule(_)
            | Self::ConflictingRequest(_)
            | Self::NotServedHere(_) => false,
            Self::AircraftChangeInProgress(_) => true,
            Self::Inventory(error) => error.is_retryable(),
            Self::Outbox(error) => error.is_retryable(),
            Self::Database(error) => error.is_retryable(),
        }
    }

    /// A database fault that can pass: worth retrying within the invocation.
    fn is_transient_database(&self) -> bool {
        matches!(
            self,
            Self::Inventory(InventoryError::Database(DbError::Transient { .. }))
                | Self::Outbox(OutboxError::Database(DbError::Transient { .. }))
                | Self::Database(DbError::Transient { .. })
        )
    }

    /// A stable name for the kind of failure, reported to Lambda as the error type.
    pub fn kind(&self) -> Cow<'static, str> {
        match self {
            Self::Unreadable(_) => "UnreadableEvent".into(),
            Self::Inventory(InventoryError::Database(error))
            | Self::Outbox(OutboxError::Database(error))
            | Self::Database(error) => database_kind(error),
            Self::Inventory(InventoryError::Contention(_)) => "SeatContention".into(),
            Self::Inventory(InventoryError::OrderContention(_)) => "OrderContention".into(),
            Self::Inventory(InventoryError::Quarantined { .. }) => "OrderQuarantined".into(),
            Self::Inventory(InventoryError::UndecidedOrder(_)) => "InconsistentInventory".into(),
            Self::Inventory(InventoryError::UnknownFlight(_)) => "UnknownFlight".into(),
            Self::Inventory(InventoryError::Serialize(_)) | Self::Serialize(_) => {
                "SerializeFailed".into()
            }
            Self::Outbox(OutboxError::Publish(_)) => "PublishFailed".into(),
            Self::ConflictingOrder { .. } => "ConflictingOrder".into(),
            Self::ConflictingSchedule(_) => "ConflictingSchedule".into(),
            Self::ConflictingRequest(_) => "ConflictingRequest".into(),
            Self::AircraftChangeInProgress(_) => "AircraftChangeInProgress".into(),
            Self::NotServedHere(_) => "NotServedHere".into(),
        }
    }
}

fn database_kind(error: &DbError) -> Cow<'static, str> {
    match error {
        DbError::Transient { .. } => "DatabaseUnavailable".into(),
        DbError::OutOfTime => "OutOfTime".into(),
        DbError::Permanent { sqlstate, .. } => format!("DatabaseRefused.{sqlstate}").into(),
        DbError::Inconsistent { .. } => "InconsistentInventory".into(),
        DbError::Decode { .. } => "UnreadableDatabaseAnswer".into(),
        DbError::Auth(_) => "DatabaseAuth".into(),
    }
}

impl<B: EventBus> App<B> {
    pub fn new(database: Database, bus: B, settings: Settings) -> Self {
        Self {
            database,
            bus,
            settings,
        }
    }

    pub fn bus(&self) -> &B {
        &self.bus
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Handles an event with the time an unbounded caller gets ([`deadline::UNBOUNDED`]).
    pub async fn handle(&self, payload: Value) -> Result<Handled, HandlerError> {
        self.handle_until(payload, Deadline::after(deadline::UNBOUNDED))
            .await
    }

    /// Handles an event, answering before `deadline` whatever happens.
    pub async fn handle_until(
        &self,
        payload: Value,
        deadline: Deadline,
    ) -> Result<Handled, HandlerError> {
        let command = inbound::parse(payload).inspect_err(|error| {
            tracing::error!(error = %error, "unreadable event; failing the invocation");
            metrics::unreadable_event();
        })?;
        let http = matches!(command, Command::Http(_));
        if self.settings.serves == Serves::SeatMapOnly && !http {
            let error = HandlerError::NotServedHere(command.name());
            tracing::error!(error = %error, "not a seat-map request; refused");
            return Err(error);
        }
        let result = match self.database.session(deadline).await {
            Ok(mut session) => self.dispatch_with_retries(&mut session, command).await,
            Err(error) => Err(error.into()),
        };
        // An HTTP caller gets an answer, never a failed invocation (which it would see as
        // a bare 502): 503 when retrying can help, 500 otherwise.
        let result = match result {
            Err(error) if http => {
                tracing::error!(error = %error, kind = %error.kind(), "availability failed");
                let (status, message) = if error.is_retryable() {
                    (503, "the seat map is unavailable; try again")
                } else {
                    (500, "the seat map could not be read")
                };
                Ok(Handled::Http(HttpResponse::error(status, message)))
            }
            other => other,
        };
        if let Err(error) = &result {
            tracing::error!(
                error = %error,
                kind = %error.kind(),
                retryable = error.is_retryable(),
                "invocation failed"
            );
        }
        result
    }

    /// A fault that can pass (a deadlock, a lock timeout, a dropped connection) is retried
    /// here, after a jittered backoff, while the invocation has time: every operation is
    /// idempotent, and a retry in-process costs milliseconds where Lambda's costs minutes.
    async fn dispatch_with_retries(
        &self,
        session: &mut Session<'_>,
        command: Command,
    ) -> Result<Handled, HandlerError> {
        let mut retries = 0;
        loop {
            let result = self.dispatch(session, command.clone()).await;
            let backoff = match &result {
                Err(error) if error.is_transient_database() && retries < MAX_RETRIES => {
                    retry_backoff(retries)
                }
                _ => {
                    metrics::database_retries(retries);
                    return result;
                }
            };
            if session.deadline().remaining() <= backoff + MIN_TIME_FOR_A_RETRY {
                metrics::database_retries(retries);
                return result;
            }
            if let Err(error) = &result {
                tracing::warn!(error = %error, retry = retries + 1, backoff_ms = backoff.as_millis() as u64, "database fault; retrying");
            }
            tokio::time::sleep(backoff).await;
            retries += 1;
        }
    }

    async fn dispatch(
        &self,
        session: &mut Session<'_>,
        command: Command,
    ) -> Result<Handled, HandlerError> {
        match command {
            Command::Reserve(Ok(request)) => self.reserve(session, &request).await,
            Command::Reserve(Err(invalid)) => self.refuse_invalid(session, invalid).await,
            Command::Confirm(request) => self.confirm(session, &request).await,
            Command::Release(request) => self.release(session, &request).await,
            Command::Housekeeping { causation_id } => {
                self.housekeeping(session, &causation_id).await
            }
            Command::OpenFlight(Ok(request)) => self.open_flight(session, &request).await,
            Command::OpenFlight(Err(rejected)) => self.reject_schedule(session, rejected).await,
            Command::CancelFlight(request) => self.cancel_flight(session, &request).await,
            Command::Block(request) => {
                let (request_id, flight_id, causation_id) = match &request {
                    Ok(block) => (block.request_id, Some(block.flight_id), &block.causation_id),
                    Err(invalid) => (invalid.request_id, invalid.flight_id, &invalid.causation_id),
                };
                record_request(request_id, flight_id, causation_id);
                let operation = match &request {
                    Ok(block) => inventory::block(session, block).await?,
                    Err(invalid) => inventory::refuse_operation(session, invalid).await?,
                };
                self.answer_operation(session, request_id, operation).await
            }
            Command::Unblock(request) => {
                let (request_id, flight_id, causation_id) = match &request {
                    Ok(unblock) => (
                        unblock.request_id,
                        Some(unblock.flight_id),
                        &unblock.causation_id,
                    ),
                    Err(invalid) => (invalid.request_id, invalid.flight_id, &invalid.causation_id),
                };
                record_request(request_id, flight_id, causation_id);
                let operation = match &request {
                    Ok(unblock) => inventory::unblock(session, unblock).await?,
                    Err(invalid) => inventory::refuse_operation(session, invalid).await?,
                };
                self.answer_operation(session, request_id, operation).await
            }
            Command::ChangeSeats(request) => {
                let (change_id, order_id, causation_id) = match &request {
                    Ok(change) => (
                        change.change_id,
                        Some(change.order_id),
                        &change.causation_id,
                    ),
                    Err(invalid) => (invalid.change_id, invalid.order_id, &invalid.causation_id),
                };
                if let Some(order_id) = order_id {
                    record_ids(order_id, causation_id);
                }
                record_request(change_id, None, causation_id);
                let operation = match &request {
                    Ok(change) => inventory::change(session, change).await?,
                    Err(invalid) => inventory::refuse_change(session, invalid).await?,
                };
                self.answer_operation(session, change_id, operation).await
            }
            Command::ChangeAircraft(Ok(request)) => self.change_aircraft(session, &request).await,
            Command::ChangeAircraft(Err(rejected)) => {
                record_request(
                    rejected.change_id,
                    Some(rejected.flight_id),
                    &rejected.causation_id,
                );
                tracing::warn!(problem = %rejected.refusal, "invalid aircraft layout; rejecting");
                self.reject_aircraft(
                    session,
                    rejected.change_id,
                    rejected.flight_id,
                    AircraftChangeProblem::InvalidRequest,
                    rejected.refusal.message,
                    rejected.causation_id,
                )
                .await
            }
            Command::Http(request) => Ok(Handled::Http(
                availability::answer(session, &request).await?,
            )),
        }
    }

    /// Publishes a request's one answer. A request that conflicts with the answer its id
    /// got first is not answered on the bus: it fails, to the on-failure queue.
    async fn answer_operation(
        &self,
        session: &mut Session<'_>,
        request_id: RequestId,
        operation: Operation,
    ) -> Result<Handled, HandlerError> {
        let (event, released) = match operation {
            Operation::Decided { event, released } => {
                tracing::info!(outcome = event.detail_type.as_str(), "request answered");
                (event, released)
            }
            Operation::Replayed(event) => {
                tracing::info!("request answered before; answering again");
                (event, Vec::new())
            }
            Operation::Conflict => {
                tracing::warn!("the request id was answered before for another request");
                return Err(HandlerError::ConflictingRequest(request_id));
            }
        };
        self.publish(
            session,
            std::iter::once(event.clone()).chain(released).collect(),
        )
        .await?;
        Ok(Handled::Answered(event))
    }

    async fn change_aircraft(
        &self,
        session: &mut Session<'_>,
        request: &ChangeAircraft,
    ) -> Result<Handled, HandlerError> {
        record_request(
            request.change_id,
            Some(request.flight_id),
            &request.causation_id,
        );
        match inventory::change_aircraft(session, request).await? {
            AircraftChange::Applied(change) => {
                tracing::info!(
                    orders_moved = change.moved.len(),
                    orders_released = change.released.len(),
                    finished = change.finished.is_some(),
                    "aircraft changed"
                );
                let events = change
                    .moved
                    .iter()
                    .chain(&change.released)
                    .chain(&change.finished)
                    .cloned()
                    .collect();
                self.publish(session, events).await?;
                Ok(Handled::LayoutChanged(change))
            }
            AircraftChange::Rejected(problem) => {
                let message = match problem {
                    AircraftChangeProblem::FlightNotFound => "no such flight",
                    AircraftChangeProblem::FlightCancelled => "the flight was cancelled",
                    AircraftChangeProblem::FlightDeparted => "the flight has departed",
                    AircraftChangeProblem::InvalidRequest => "the layout is invalid",
                };
                self.reject_aircraft(
                    session,
                    request.change_id,
                    request.flight_id,
                    problem,
                    format!("flight {}: {message}", request.flight_id),
                    request.causation_id.clone(),
                )
                .await
            }
            AircraftChange::Busy => {
                tracing::warn!("another aircraft change of the flight is in progress");
                Err(HandlerError::AircraftChangeInProgress(request.flight_id))
            }
            AircraftChange::Conflict => {
                tracing::warn!("the change id was used before for another change");
                Err(HandlerError::ConflictingRequest(request.change_id))
            }
        }
    }

    /// `AircraftChangeRejected`: nothing is written, the answer goes straight to the bus,
    /// with an event id that is the same however often the same event is refused.
    async fn reject_aircraft(
        &self,
        session: &mut Session<'_>,
        change_id: RequestId,
        flight_id: FlightId,
        reason: AircraftChangeProblem,
        message: String,
        causation_id: String,
    ) -> Result<Handled, HandlerError> {
        let event = AircraftChangeRejected {
            event_id: Uuid::new_v5(
                &SCHEDULE_REFUSAL_NAMESPACE,
                format!("{causation_id}/{change_id}").as_bytes(),
            ),
            change_id,
            flight_id,
            reason,
            message,
            causation_id,
        }
        .to_event()?;
        self.publish(session, vec![event.clone()]).await?;
        Ok(Handled::Scheduled(event))
    }

    async fn open_flight(
        &self,
        session: &mut Session<'_>,
        request: &OpenFlight,
    ) -> Result<Handled, HandlerError> {
        record_flight(request.schedule.flight_id, &request.causation_id);
        let event = match inventory::open(session, request).await? {
            Opening::Opened(event) => {
                tracing::info!(
                    seats = request.schedule.seats().len(),
                    "flight inventory opened"
                );
                event
            }
            Opening::Replayed(event) => {
                tracing::info!("flight opened before; answering again");
                event
            }
            Opening::Conflict => {
                tracing::warn!("FlightScheduled conflicts with the flight as it exists");
                metrics::conflicting_schedule();
                return Err(HandlerError::ConflictingSchedule(
                    request.schedule.flight_id,
                ));
            }
        };
        self.publish(session, vec![event.clone()]).await?;
        Ok(Handled::Scheduled(event))
    }

    /// `FlightScheduleRejected`: nothing is written, the answer goes straight to the bus,
    /// with an event id that is the same however often the same event is refused.
    async fn reject_schedule(
        &self,
        session: &mut Session<'_>,
        rejected: RejectedSchedule,
    ) -> Result<Handled, HandlerError> {
        record_flight(rejected.flight_id, &rejected.causation_id);
        tracing::warn!(problem = %rejected.refusal, "invalid schedule; rejecting");
        let event = FlightScheduleRejected {
            event_id: Uuid::new_v5(
                &SCHEDULE_REFUSAL_NAMESPACE,
                format!("{}/{}", rejected.causation_id, rejected.flight_id).as_bytes(),
            ),
            flight_id: rejected.flight_id,
            reason: rejected.refusal.problem,
            message: rejected.refusal.message,
            causation_id: rejected.causation_id,
        }
        .to_event()?;
        self.publish(session, vec![event.clone()]).await?;
        Ok(Handled::Scheduled(event))
    }

    async fn cancel_flight(
        &self,
        session: &mut Session<'_>,
        request: &CancelFlight,
    ) -> Result<Handled, HandlerError> {
        record_flight(request.flight_id, &request.causation_id);
        let Cancellation {
            released,
            closed,
            quarantined,
        } = inventory::cancel(session, request).await?;
        tracing::info!(
            orders_released = released.len(),
            closed = closed.is_some(),
            quarantined,
            "flight cancelled"
        );
        let events = released.iter().cloned().chain(closed.clone()).collect();
        self.publish(session, events).await?;
        Ok(Handled::FlightCancelled { released, closed })
    }

    async fn reserve(
        &self,
        session: &mut Session<'_>,
        request: &ReserveSeats,
    ) -> Result<Handled, HandlerError> {
        record_ids(request.order_id, &request.causation_id);
        let reservation = inventory::reserve(session, request, self.settings.lock_ttl).await?;
        self.answer_reservation(session, request.order_id, reservation)
            .await
    }

    /// `INVALID_REQUEST`, recorded as the order's outcome like any other.
    async fn refuse_invalid(
        &self,
        session: &mut Session<'_>,
        invalid: InvalidOrder,
    ) -> Result<Handled, HandlerError> {
        record_ids(invalid.order_id, &invalid.causation_id);
        tracing::warn!(problem = %invalid.problem, "invalid request; refusing");
        let reservation = inventory::refuse_invalid(session, &invalid).await?;
        self.answer_reservation(session, invalid.order_id, reservation)
            .await
    }

    /// Publishes the order's one outcome. A request that conflicts with the outcome the
    /// order got first is not answered on the bus: it fails, to the on-failure queue.
    async fn answer_reservation(
        &self,
        session: &mut Session<'_>,
        order_id: OrderId,
        reservation: Reservation,
    ) -> Result<Handled, HandlerError> {
        let (event, released) = reservation_answer(order_id, reservation)?;
        self.publish(
            session,
            std::iter::once(event.clone()).chain(released).collect(),
        )
        .await?;
        Ok(Handled::Answered(event))
    }

    async fn confirm(
        &self,
        session: &mut Session<'_>,
        request: &ConfirmOrder,
    ) -> Result<Handled, HandlerError> {
        record_ids(request.order_id, &request.causation_id);
        let confirmation = inventory::confirm(session, request).await?;
        tracing::info!(
            outcome = confirmation.answer.detail_type.as_str(),
            payment_id = %request.payment_id,
            "payment answered"
        );
        let answer = confirmation.answer.clone();
        self.publish(
            session,
            std::iter::once(confirmation.answer)
                .chain(confirmation.released)
                .collect(),
        )
        .await?;
        Ok(Handled::Answered(answer))
    }

    async fn release(
        &self,
        session: &mut Session<'_>,
        request: &ReleaseOrder,
    ) -> Result<Handled, HandlerError> {
        record_ids(request.order_id, &request.causation_id);
        match inventory::release(session, request).await? {
            Release::Released(events) => {
                tracing::info!(reason = ?request.reason, "seats released");
                self.publish(session, events.clone()).await?;
                Ok(Handled::Released(events))
            }
            Release::NothingHeld { pending } => {
                // A retry after a failed publish finds nothing left to release: send what
                // the first attempt queued instead (not what this instance sent already
                // and has yet to mark).
                let pending: Vec<OutgoingEvent> = pending
                    .into_iter()
                    .filter(|event| !session.database().awaits_mark(event.event_id))
                    .collect();
                tracing::info!(pending = pending.len(), "nothing held; nothing to release");
                self.publish(session, pending).await?;
                Ok(Handled::Released(Vec::new()))
            }
        }
    }

    /// The schedule: expire lapsed holds, publish stragglers, prune the outbox. Each part
    /// runs and reports on its own, so one failing never stops the others; the invocation
    /// fails (to be retried) if any did.
    async fn housekeeping(
        &self,
        session: &mut Session<'_>,
        causation_id: &str,
    ) -> Result<Handled, HandlerError> {
        tracing::Span::current().record("eventId", display(causation_id));
        let mut report = HousekeepingReport::default();
        let mut failures: Vec<HandlerError> = Vec::new();

        match inventory::expire_lapsed_holds(session, causation_id).await {
            Ok(Expiry {
                released,
                quarantined,
                skipped,
            }) => {
                report.orders_expired = released.len();
                report.orders_quarantined = quarantined.len();
                tracing::info!(
                    orders_expired = released.len(),
                    orders_quarantined = quarantined.len(),
                    orders_skipped = skipped,
                    "expiry ran"
                );
                if let Err(error) = self.publish(session, released).await {
                    failures.push(error);
                }
            }
            Err(error) => failures.push(part_failed("expiry", error.into())),
        }
        match outbox::relay(session, &self.bus, &self.settings.relay).await {
            Ok(relay) => report.relay = relay,
            Err(error) => failures.push(part_failed("relay", error.into())),
        }
        match inventory::finish_cancellations(session, causation_id).await {
            Ok(events) => {
                report.cancellation_events = events.len();
                if let Err(error) = self.publish(session, events).await {
                    failures.push(error);
                }
            }
            Err(error) => failures.push(part_failed("cancellations", error.into())),
        }
        match inventory::finish_aircraft_changes(session).await {
            Ok(events) => {
                report.aircraft_events = events.len();
                if let Err(error) = self.publish(session, events).await {
                    failures.push(error);
                }
            }
            Err(error) => failures.push(part_failed("aircraft changes", error.into())),
        }
        match outbox::prune(session, self.settings.relay.retention_days).await {
            Ok(pruned) => report.pruned = pruned,
            Err(error) => failures.push(part_failed("prune", error.into())),
        }
        match inventory::retire(session, self.settings.flight_retention_days).await {
            Ok(retired) => report.retired = retired,
            Err(error) => failures.push(part_failed("retention", error.into())),
        }
        if let Err(error) = session.flush_marks(true).await {
            failures.push(part_failed("marking published entries", error.into()));
        }
        tracing::info!(
            orders_expired = report.orders_expired,
            orders_quarantined = report.orders_quarantined,
            relayed = report.relay.published,
            parked = report.relay.parked,
            pruned = report.pruned,
            cancellation_events = report.cancellation_events,
            aircraft_events = report.aircraft_events,
            retired = report.retired,
            oldest_pending_seconds = report.relay.oldest_pending_seconds,
            failed_parts = failures.len(),
            "housekeeping ran"
        );
        match failures.into_iter().next() {
            None => Ok(Handled::Housekeeping(report)),
            Some(first) => Err(first),
        }
    }

    async fn publish(
        &self,
        session: &mut Session<'_>,
        events: Vec<OutgoingEvent>,
    ) -> Result<(), HandlerError> {
        outbox::publish(session, &self.bus, &events, &self.settings.relay).await?;
        // Marked now, in a commit that does not wait for the WAL flush, so that no relay,
        // on this instance or another, sends the answer again: at low traffic the next
        // write of this instance may be minutes away.
        session.flush_marks(true).await?;
        Ok(())
    }
}

/// At most this many in-process retries of a fault that can pass, ...
const MAX_RETRIES: u32 = 4;
/// ... each only if the invocation has at least this much time left after the backoff.
const MIN_TIME_FOR_A_RETRY: Duration = Duration::from_millis(200);

/// 20 ms, 40 ms, 80 ms, ... times a random factor from 0.5 to 1, so instances that failed
/// together do not retry together.
fn retry_backoff(retries: u32) -> Duration {
    let base = Duration::from_millis(20 * (1 << retries.min(6)));
    let jitter = (uuid::Uuid::new_v4().as_u64_pair().0 % 1_000) as f64 / 2_000.0;
    base.mul_f64(0.5 + jitter)
}

fn conflicting(order_id: OrderId, reason: &'static str) -> HandlerError {
    tracing::warn!(reason, "conflicting OrderCreated; not answered on the bus");
    metrics::conflicting_order();
    HandlerError::ConflictingOrder { order_id, reason }
}

fn part_failed(part: &'static str, error: HandlerError) -> HandlerError {
    tracing::error!(part, error = %error, kind = %error.kind(), "housekeeping part failed");
    error
}

/// Names the refusals of schedules (a v5 UUID of the incoming event and the flight).
const SCHEDULE_REFUSAL_NAMESPACE: Uuid = Uuid::from_u128(0x5e0f_2a6c_7d1b_4c3e_9a8f_1b2c_3d4e_5f60);

/// Puts the flight id and the incoming event id on the invocation's span.
fn record_flight(flight_id: FlightId, causation_id: &str) {
    let span = tracing::Span::current();
    span.record("flightId", display(flight_id));
    span.record("eventId", display(causation_id));
}

/// The answer to publish for an order's reservation, with the `SeatReleased` of holders it
/// expired on the way; or the error of a request that conflicts with the order's first.
fn reservation_answer(
    order_id: OrderId,
    reservation: Reservation,
) -> Result<(OutgoingEvent, Vec<OutgoingEvent>), HandlerError> {
    let answer = match reservation {
        Reservation::Decided {
            event,
            released,
            lost_races,
        } => {
            tracing::info!(
                outcome = event.detail_type.as_str(),
                lost_races,
                expired_holders = released.len(),
                "order decided"
            );
            (event, released)
        }
        Reservation::Replayed(event) => {
            tracing::info!(
                outcome = event.detail_type.as_str(),
                "order decided before; answering again"
            );
            (event, Vec::new())
        }
        Reservation::ConflictsWithEarlierRequest => {
            return Err(conflicting(
                order_id,
                "was decided before for another request; that outcome stands",
            ));
        }
        Reservation::ClosedBeforeReserved(closer) => {
            return Err(conflicting(
                order_id,
                match closer {
                    OrderCloser::PaymentSucceeded => {
                        "was closed by its PaymentSucceeded before its seats were requested"
                    }
                    OrderCloser::PaymentFailed => {
                        "was closed by its PaymentFailed before its seats were requested"
                    }
                    OrderCloser::OrderCancelled => {
                        "was closed by its OrderCancelled before its seats were requested"
                    }
                },
            ));
        }
    };
    Ok(answer)
}

/// Puts the order id and the incoming event id on the invocation's span, so that every
/// log line of this invocation carries them.
fn record_request(request_id: RequestId, flight_id: Option<FlightId>, causation_id: &str) {
    let span = tracing::Span::current();
    span.record("operationId", display(request_id));
    if let Some(flight_id) = flight_id {
        span.record("flightId", display(flight_id));
    }
    span.record("eventId", display(causation_id));
}

fn record_ids(order_id: OrderId, causation_id: &str) {
    let span = tracing::Span::current();
    span.record("orderId", display(order_id));
    span.record("eventId", display(causation_id));
}
