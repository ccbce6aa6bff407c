//! The seat inventory: holding seats with an optimistic, version-checked lock, selling and
//! releasing them, and expiring holds that were never paid.

mod lifecycle;
mod pick;
mod reserve;
mod sql;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::db::statement;
use crate::domain::{DetailType, OutgoingEvent};

pub use lifecycle::{Confirmation, Release, confirm, expire_lapsed_holds, release};
pub use reserve::reserve;

/// How long a hold lasts before it may be released (`LOCK_TTL_SECONDS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTtl(chrono::Duration);

impl LockTtl {
    pub fn from_seconds(seconds: u32) -> Self {
        Self(chrono::Duration::seconds(i64::from(seconds)))
    }
}

/// How an order's reservation ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Decided now: the outcome event is committed to the outbox, still to be published,
    /// with `released`, the `SeatReleased` of orders whose lapsed holds it expired on the way.
    Decided {
        event: OutgoingEvent,
        released: Vec<OutgoingEvent>,
        /// Optimistic-lock races lost on the way (each one re-read and retried).
        lost_races: u32,
    },
    /// Decided by an earlier delivery of the same order: the same event again.
    Replayed(OutgoingEvent),
    /// The order id was used before for another flight or other seats.
    ConflictsWithEarlierRequest,
    /// A payment or cancellation of this order came first (named here); nothing is held.
    ClosedBeforeReserved(String),
}

/// The fingerprint of an order whose payment or cancellation arrived before it.
const CLOSED_BEFORE_RESERVED: &str = "closed before reserved by ";

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Seats kept changing between read and update; retrying later can help.
    #[error("the seats changed under every one of {0} attempts")]
    Contention(u32),
    #[error("order {0} is claimed but has no recorded outcome")]
    UndecidedOrder(Uuid),
    #[error("stored event of order {0} has unknown detail-type {1:?}")]
    UnknownStoredDetailType(Uuid, String),
    #[error("order {0}: {1}")]
    Inconsistent(Uuid, &'static str),
    /// The order appeared and vanished under a transition, every time it was tried.
    #[error("order {0} kept changing under a transition")]
    OrderContention(Uuid),
    #[error("cannot serialize an event: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Reads an event kept in the database (an order's outcome or payment answer).
fn stored_event(
    order_id: Uuid,
    event_id: Option<Uuid>,
    detail_type: Option<String>,
    detail: Option<String>,
) -> Result<Option<OutgoingEvent>, InventoryError> {
    let (Some(event_id), Some(detail_type), Some(detail)) = (event_id, detail_type, detail) else {
        return Ok(None);
    };
    let detail_type = DetailType::parse(&detail_type).ok_or(
        InventoryError::UnknownStoredDetailType(order_id, detail_type),
    )?;
    Ok(Some(OutgoingEvent {
        event_id,
        detail_type,
        detail,
    }))
}

/// Queues events in the outbox within the caller's transaction.
async fn queue(tx: &mut PgConnection, events: &[(Uuid, OutgoingEvent)]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let event_ids: Vec<Uuid> = events.iter().map(|(_, e)| e.event_id).collect();
    let order_ids: Vec<Uuid> = events.iter().map(|(order_id, _)| *order_id).collect();
    let detail_types: Vec<&str> = events.iter().map(|(_, e)| e.detail_type.as_str()).collect();
    let details: Vec<&str> = events.iter().map(|(_, e)| e.detail.as_str()).collect();
    statement(sql::QUEUE_EVENTS)
        .bind(&event_ids)
        .bind(&order_ids)
        .bind(&detail_types)
        .bind(&details)
        .execute(tx)
        .await?;
    Ok(())
}

fn decode_error(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("unexpected value {value:?}").into(),
    }
}

fn seat_number(row: &PgRow, column: &str) -> Result<crate::domain::SeatNumber, sqlx::Error> {
    let raw: String = row.try_get(column)?;
    crate::domain::SeatNumber::parse(&raw).ok_or_else(|| decode_error(column, &raw))
}
