//! The transactional outbox: events are committed with the state change that causes them
//! (see `inventory`), published after commit, and marked published right after the bus
//! accepted them, in a commit of their own that does not wait for the WAL flush. What a
//! failed invocation leaves pending, its retry or the relay sends, with the same event id.
//! An entry the bus refuses for a reason that can pass (throttling, a 5xx, a network
//! error, an access denied during a deploy) backs off, capped, and waits the outage out;
//! it is parked only once it has kept failing for `OUTBOX_PARK_AFTER`, or at once when no
//! retry can ever succeed. A call that timed out is not a refusal: the bus may have
//! accepted it, so nothing is recorded and the entry is offered again as it is.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EventBus, PublishError, PublishReport, Rejection};
use crate::db::{DbError, Function, Session};
use crate::domain::OutgoingEvent;

const CLAIM: Function = Function::named("inventory_outbox_claim");
const REJECTED: Function = Function::named("inventory_outbox_rejected");
const PRUNE: Function = Function::named("inventory_outbox_prune");
const PARKED: Function = Function::named("inventory_outbox_parked");
const REDRIVE: Function = Function::named("inventory_outbox_redrive");

/// Kept back from the deadline when calling the bus, to record what it answered.
const RECORDING_RESERVE: Duration = Duration::from_millis(150);

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl OutboxError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Database(error) => error.is_retryable(),
            Self::Publish(_) => true,
        }
    }
}

/// How the relay finds, holds and gives up on entries.
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
    /// An entry the bus keeps refusing for reasons that can pass is parked once it has
    /// been failing this long (`OUTBOX_PARK_AFTER`).
    pub park_after: Duration,
    /// The wait after a first rejection (`OUTBOX_BACKOFF_SECONDS`), doubling with each
    /// further one, with jitter, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RelayPolicy {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            lease: Duration::from_secs(60),
            batch: 100,
            retention_days: 7,
            park_after: Duration::from_secs(24 * 3_600),
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3_600),
        }
    }
}

/// Publishes the events. What the bus accepted is marked published by the instance's next
/// write; what it rejected is recorded at once (an attempt more, its error, its backoff,
/// or parked) and makes this an error, so the invocation is retried.
pub async fn publish(
    session: &mut Session<'_>,
    bus: &impl EventBus,
    events: &[OutgoingEvent],
    policy: &RelayPolicy,
) -> Result<(), OutboxError> {
    if events.is_empty() {
        return Ok(());
    }
    let deadline = session.deadline();
    let bus_deadline = deadline.capped(deadline.remaining().saturating_sub(RECORDING_RESERVE));
    let report = match bus_deadline.run(bus.publish(events)).await {
        Ok(report) => report,
        // Cut off mid-call: the bus may have taken any of them.
        Err(_) => PublishReport {
            ambiguous: events.iter().map(|event| event.event_id).collect(),
            ..PublishReport::default()
        },
    };
    session.database().acknowledge(&report.accepted);
    if report.rejected.is_empty() && report.ambiguous.is_empty() {
        return Ok(());
    }
    crate::metrics::outbox_publish_failures(report.rejected.len() + report.ambiguous.len());
    let error = PublishError {
        attempted: events.len(),
        rejected: report
            .rejected
            .iter()
            .map(|r| r.event_id)
            .chain(report.ambiguous.iter().copied())
            .collect(),
        first_reason: report.rejected.first().map_or_else(
            || "PutEvents timed out; the entries stay pending and go again as they are".into(),
            |first| first.reason.clone(),
        ),
    };
    if report.rejected.is_empty() {
        return Err(error.into());
    }
    let recorded: Recorded = session
        .write(
            REJECTED,
            &Rejected {
                rejected: &report.rejected,
                park_after_seconds: policy.park_after.as_secs_f64(),
                backoff_seconds: policy.backoff.as_secs_f64(),
                max_backoff_seconds: policy.max_backoff.as_secs_f64(),
            },
        )
        .await?;
    if recorded.parked > 0 {
        tracing::error!(
            parked = recorded.parked,
            "outbox entries parked: the bus refused them for longer than OUTBOX_PARK_AFTER, or for good"
        );
    }
    Err(error.into())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rejected<'a> {
    rejected: &'a [Rejection],
    park_after_seconds: f64,
    backoff_seconds: f64,
    max_backoff_seconds: f64,
}

#[derive(Deserialize)]
struct Recorded {
    parked: u64,
}

#[derive(Debug, Default, PartialEq)]
pub struct RelayReport {
    /// Entries this run handed to the bus.
    pub published: usize,
    /// Age of the oldest entry still pending when the run started, in seconds.
    pub oldest_pending_seconds: f64,
    /// Entries parked, in all.
    pub parked: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Claim {
    grace_seconds: f64,
    lease_seconds: f64,
    limit: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Claimed {
    claimed: Vec<OutgoingEvent>,
    oldest_pending_seconds: f64,
    parked: u64,
}

/// Publishes the entries that are due, oldest first: pending, past the grace period and
/// past any backoff. Backing-off and parked entries never stand in front of due ones.
/// The backlog is measured (and reported as metrics) before anything is published, so a
/// bus outage does not hide it.
pub async fn relay(
    session: &mut Session<'_>,
    bus: &impl EventBus,
    policy: &RelayPolicy,
) -> Result<RelayReport, OutboxError> {
    let claim: Claimed = session
        .write(
            CLAIM,
            &Claim {
                grace_seconds: policy.grace.as_secs_f64(),
                lease_seconds: policy.lease.as_secs_f64(),
                limit: policy.batch,
            },
        )
        .await?;
    crate::metrics::outbox_pending_age(claim.oldest_pending_seconds);
    crate::metrics::outbox_parked(claim.parked);
    let report = RelayReport {
        published: claim.claimed.len(),
        oldest_pending_seconds: claim.oldest_pending_seconds,
        parked: claim.parked,
    };
    publish(session, bus, &claim.claimed, policy).await?;
    Ok(report)
}

/// Deletes published entries past retention, a bounded number of rows per run.
pub async fn prune(session: &mut Session<'_>, retention_days: i32) -> Result<u64, OutboxError> {
    const PER_CALL: i64 = 1_000;
    const CALLS_PER_RUN: usize = 10;
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Prune {
        retention_days: i32,
        limit: i64,
    }
    #[derive(Deserialize)]
    struct Pruned {
        pruned: u64,
    }
    let mut pruned = 0;
    for _ in 0..CALLS_PER_RUN {
        let answer: Pruned = session
            .write(
                PRUNE,
                &Prune {
                    retention_days,
                    limit: PER_CALL,
                },
            )
            .await?;
        pruned += answer.pruned;
        if answer.pruned < PER_CALL as u64 {
            break;
        }
    }
    Ok(pruned)
}

/// A parked entry, as `aeronode-inventory outbox dead` prints it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedEntry {
    pub event_id: Uuid,
    /// The order an answer is for; `None` for a flight's events.
    pub order_id: Option<Uuid>,
    /// The flight a flight's event is for; `None` for an order's answers.
    pub flight_id: Option<Uuid>,
    pub detail_type: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub failing_since: Option<chrono::DateTime<chrono::Utc>>,
    pub parked_at: chrono::DateTime<chrono::Utc>,
}

pub async fn parked(session: &mut Session<'_>) -> Result<Vec<ParkedEntry>, OutboxError> {
    Ok(session.read(PARKED, &serde_json::json!({})).await?)
}

/// Makes parked entries due again: these, or all of them when `None`. Returns how many.
pub async fn redrive(
    session: &mut Session<'_>,
    event_ids: Option<Vec<Uuid>>,
) -> Result<u64, OutboxError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Redrive {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_ids: Option<Vec<Uuid>>,
    }
    #[derive(Deserialize)]
    struct Redriven {
        redriven: u64,
    }
    let answer: Redriven = session.write(REDRIVE, &Redrive { event_ids }).await?;
    Ok(answer.redriven)
}
