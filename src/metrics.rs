//! The service's CloudWatch metrics, in Embedded Metric Format: JSON lines on stdout that
//! CloudWatch turns into metrics. Every name lives here; `template.yaml`'s alarms use them.
//! Without an installed recorder (tests, benchmarks) every call is a no-op.

use metrics::{Unit, counter, describe_histogram, histogram};
use metrics_cloudwatch_embedded::Collector;

use crate::domain::FailureReason;

pub const NAMESPACE: &str = "SkyLedger/Inventory";
pub const SERVICE: &str = "aeronode-inventory";

/// Installs the EMF recorder once per cold start; flush it after each invocation.
pub fn install() -> Result<&'static Collector, metrics_cloudwatch_embedded::Error> {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("Service", SERVICE)
        .init()?;
    describe_histogram!("HandlerDuration", Unit::Milliseconds, "time in the handler");
    describe_histogram!(
        "OutboxPendingAgeSeconds",
        Unit::Seconds,
        "oldest pending outbox entry"
    );
    Ok(collector)
}

pub fn cold_start() {
    counter!("ColdStart").increment(1);
}

pub fn seats_reserved(seats: usize) {
    counter!("Reservations").increment(1);
    counter!("SeatsReserved").increment(seats as u64);
}

pub fn reservation_refused(reason: FailureReason) {
    counter!("ReservationFailures", "Reason" => reason.as_str()).increment(1);
}

pub fn optimistic_lock_retries(lost_races: u32) {
    counter!("OptimisticLockRetries").increment(u64::from(lost_races));
}

pub fn outbox_publish_failures(rejected: usize) {
    counter!("OutboxPublishFailures").increment(rejected as u64);
}

/// Age of the oldest outbox entry still pending, measured by the schedule; alarmed on in
/// the template. A histogram, not a gauge: the collector writes a gauge's last value on
/// every flush, so a backlog seen once would be reported after every later invocation.
pub fn outbox_pending_age(seconds: f64) {
    histogram!("OutboxPendingAgeSeconds").record(seconds);
}

/// Orders whose expired holds were released (by the sweeper, lazily, or by a late payment).
pub fn expired_holds_released(orders: usize) {
    counter!("ExpiredHoldsReleased").increment(orders as u64);
}

pub fn handler_duration(elapsed: std::time::Duration) {
    histogram!("HandlerDuration").record(elapsed.as_secs_f64() * 1e3);
}

/// Orders set aside because their holds could not be closed consistently; alarmed on.
pub fn order_quarantined() {
    counter!("OrdersQuarantined").increment(1);
}

/// Outbox entries parked in all, measured by the schedule; alarmed on. A histogram for the
/// same reason as the pending age: only the runs that measured it report it.
pub fn outbox_parked(entries: u64) {
    histogram!("OutboxParkedEntries").record(entries as f64);
}

/// `OrderCreated` events for an order that already has another outcome: not answered,
/// sent to the on-failure queue.
pub fn conflicting_order() {
    counter!("ConflictingOrders").increment(1);
}

/// Calls retried within an invocation after a fault that can pass (a deadlock, a lock
/// timeout, a dropped connection).
pub fn database_retries(retries: u32) {
    counter!("DatabaseRetries").increment(u64::from(retries));
}

/// Events that cannot be tied to an order (not an EventBridge event, an unknown source, no
/// readable orderId): failed to the on-failure queue, alarmed on apart from other errors.
pub fn unreadable_event() {
    counter!("UnreadableEvents").increment(1);
}

/// `FlightScheduled` events with other content for a flight that exists: not applied.
pub fn conflicting_schedule() {
    counter!("ConflictingSchedules").increment(1);
}

/// Cancelled flights that only quarantined orders hold open, measured by the schedule: the
/// rest of each is released and answered; these wait for an operator.
pub fn cancellations_held_by_quarantine(flights: u64) {
    histogram!("CancellationsHeldByQuarantine").record(flights as f64);
}

/// Departed flights past retention that retention left alone because something on them is
/// not finished (an open cancellation, a quarantined order, a live hold, an undelivered
/// answer), measured by the schedule's last retention call.
pub fn retention_skipped(flights: u64) {
    histogram!("RetentionSkippedFlights").record(flights as f64);
}
