//! The transactional outbox: events are committed with the state change that causes them
//! (see `inventory`), published after commit, and marked published only once the bus
//! accepted them. What a failed invocation leaves pending, its retry or the relay sends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{EventBus, PublishError};
use crate::db::statement;
use crate::domain::{DetailType, OrderId, OutgoingEvent};

/// Marks the accepted entries published, and counts an attempt on every entry tried.
const RECORD_ATTEMPT: &str = "
UPDATE outbox
SET published_at     = CASE WHEN event_id = ANY ($1::uuid[]) THEN now() END,
    publish_attempts = publish_attempts + 1,
    claimed_until    = NULL
WHERE event_id = ANY ($1::uuid[] || $2::uuid[])
  AND published_at IS NULL
";

/// Leases the oldest pending entries past the grace period. SKIP LOCKED and the lease
/// keep two concurrent relays off the same rows, within one autocommit statement that
/// leaves nothing on the session.
const CLAIM_PENDING: &str = "
UPDATE outbox
SET claimed_until = now() + make_interval(secs => $3)
WHERE event_id IN (
    SELECT event_id
    FROM outbox
    WHERE published_at IS NULL
      AND created_at <= now() - make_interval(secs => $1)
      AND (claimed_until IS NULL OR claimed_until <= now())
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING event_id, detail_type, detail, created_at
";

const PRUNE_PUBLISHED: &str = "
DELETE FROM outbox
WHERE event_id IN (
    SELECT event_id
    FROM outbox
    WHERE published_at < now() - make_interval(days => $1)
    LIMIT $2
)
";

const PENDING_FOR_ORDER: &str = "
SELECT event_id, detail_type, detail
FROM outbox
WHERE order_id = $1 AND published_at IS NULL
ORDER BY created_at
";

const OLDEST_PENDING_AGE: &str = "
SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS age_seconds
FROM outbox
WHERE published_at IS NULL
";

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("outbox entry {0} has unknown detail-type {1:?}")]
    UnknownDetailType(Uuid, String),
}

/// Publishes the events and records the result; an error if any was not accepted.
pub async fn publish(
    pool: &PgPool,
    bus: &impl EventBus,
    events: &[OutgoingEvent],
) -> Result<(), OutboxError> {
    if events.is_empty() {
        return Ok(());
    }
    let report = bus.publish(events).await;
    let rejected: Vec<Uuid> = report.rejected.iter().map(|r| r.event_id).collect();
    statement(RECORD_ATTEMPT)
        .bind(&report.accepted)
        .bind(&rejected)
        .execute(pool)
        .await?;
    if !rejected.is_empty() {
        crate::metrics::outbox_publish_failures(rejected.len());
    }
    match report.rejected.first() {
        None => Ok(()),
        Some(first) => Err(PublishError {
            attempted: events.len(),
            first_reason: first.reason.clone(),
            rejected,
        }
        .into()),
    }
}

/// The order's events still waiting to be published (a retry sends them).
pub async fn pending_for_order(
    pool: &PgPool,
    order_id: OrderId,
) -> Result<Vec<OutgoingEvent>, OutboxError> {
    statement(PENDING_FOR_ORDER)
        .bind(order_id.as_uuid())
        .try_map(|row: PgRow| Ok(stored_event(&row)))
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect()
}

/// How the relay finds and holds stragglers.
#[derive(Clone, Copy, Debug)]
pub struct RelayPolicy {
    /// Entries younger than this are left to the invocation that wrote them.
    pub grace: Duration,
    /// How long a relay run holds the rows it is publishing.
    pub lease: Duration,
    /// At most this many entries per run.
    pub batch: i64,
    /// Published entries older than this many days are deleted.
    pub retention_days: i32,
}

impl Default for RelayPolicy {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            lease: Duration::from_secs(60),
            batch: 100,
            retention_days: 7,
        }
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct RelayReport {
    pub published: usize,
    pub pruned: u64,
    /// Age of the oldest entry still pending after the run, in seconds.
    pub oldest_pending_seconds: f64,
}

/// Publishes pending entries older than the grace period, oldest first, then prunes.
pub async fn relay(
    pool: &PgPool,
    bus: &impl EventBus,
    policy: RelayPolicy,
) -> Result<RelayReport, OutboxError> {
    let mut claimed: Vec<(DateTime<Utc>, OutgoingEvent)> = statement(CLAIM_PENDING)
        .bind(policy.grace.as_secs_f64())
        .bind(policy.batch)
        .bind(policy.lease.as_secs_f64())
        .try_map(|row: PgRow| Ok((row.try_get("created_at")?, stored_event(&row))))
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(created_at, event)| event.map(|event| (created_at, event)))
        .collect::<Result<_, _>>()?;
    claimed.sort_by_key(|(created_at, _)| *created_at);
    let events: Vec<OutgoingEvent> = claimed.into_iter().map(|(_, event)| event).collect();
    // Pruning and the age reading happen even when publishing failed: a bus outage must
    // not also stop the clean-up, nor hide how old the backlog is.
    let published = publish(pool, bus, &events).await;
    let pruned = prune(pool, policy.retention_days).await?;
    let oldest_pending_seconds: f64 = statement(OLDEST_PENDING_AGE)
        .try_map(|row: PgRow| row.try_get("age_seconds"))
        .fetch_one(pool)
        .await?;
    crate::metrics::outbox_pending_age(oldest_pending_seconds);
    published?;
    Ok(RelayReport {
        published: events.len(),
        pruned,
        oldest_pending_seconds,
    })
}

/// Deletes published entries past retention, a bounded number of rows per run.
async fn prune(pool: &PgPool, retention_days: i32) -> Result<u64, sqlx::Error> {
    const PER_STATEMENT: i64 = 1_000;
    const STATEMENTS_PER_RUN: usize = 10;
    let mut pruned = 0;
    for _ in 0..STATEMENTS_PER_RUN {
        let deleted = statement(PRUNE_PUBLISHED)
            .bind(retention_days)
            .bind(PER_STATEMENT)
            .execute(pool)
            .await?
            .rows_affected();
        pruned += deleted;
        if deleted < PER_STATEMENT as u64 {
            break;
        }
    }
    Ok(pruned)
}

fn stored_event(row: &PgRow) -> Result<OutgoingEvent, OutboxError> {
    let event_id: Uuid = row.try_get("event_id")?;
    let detail_type: String = row.try_get("detail_type")?;
    Ok(OutgoingEvent {
        event_id,
        detail_type: DetailType::parse(&detail_type)
            .ok_or(OutboxError::UnknownDetailType(event_id, detail_type))?,
        detail: row.try_get("detail")?,
    })
}
