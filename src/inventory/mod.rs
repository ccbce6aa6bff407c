//! Holding seats: the optimistic, version-checked lock and the per-order outcome.

mod sql;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::db::statement;
use crate::domain::{
    DetailType, FailureReason, HeldSeat, OutgoingEvent, SeatNumber, SeatReservationFailed,
    SeatReserved, SeatStatus,
};
use crate::inbound::ReserveSeats;

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
    /// Decided now: the outcome event is committed to the outbox, still to be published.
    Decided {
        event: OutgoingEvent,
        /// Optimistic-lock races lost on the way (each one re-read and retried).
        lost_races: u32,
    },
    /// Decided by an earlier delivery of the same order: the same event again.
    Replayed(OutgoingEvent),
    /// The order id was used before for another flight or other seats.
    ConflictsWithEarlierRequest,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Seats kept changing between read and update; retrying later can help.
    #[error("the seats changed under every one of {0} attempts")]
    Contention(u32),
    #[error("order {0} is claimed but has no recorded outcome")]
    UndecidedOrder(Uuid),
    #[error("stored outcome of order {0} has unknown detail-type {1:?}")]
    UnknownStoredDetailType(Uuid, String),
    #[error("cannot serialize the outcome event: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// A lost race is re-read and retried at most this many times in all.
const MAX_ATTEMPTS: u32 = 5;

/// Holds every requested seat for the order, or none, and records the outcome once.
pub async fn reserve(
    pool: &PgPool,
    request: &ReserveSeats,
    ttl: LockTtl,
) -> Result<Reservation, InventoryError> {
    let seat_numbers: Vec<&str> = request
        .seats
        .seats()
        .iter()
        .map(SeatNumber::as_str)
        .collect();
    let fingerprint = request.fingerprint();
    for attempt in 0..MAX_ATTEMPTS {
        let mut tx = pool.begin().await?;
        let rows: Vec<SeatRow> = statement(sql::CLAIM_AND_READ)
            .bind(request.order_id.as_uuid())
            .bind(request.flight_id.as_uuid())
            .bind(&fingerprint)
            .bind(&seat_numbers)
            .try_map(SeatRow::from_row)
            .fetch_all(&mut *tx)
            .await?;
        let Some(decided_at) = rows.first().map(|row| row.decided_at) else {
            tx.rollback().await?;
            return replay(pool, request).await;
        };
        let expires_at = decided_at + ttl.0;
        let (event, seat_ids, read_versions) = match decide(request, &rows) {
            Decision::Refuse {
                reason,
                seats,
                message,
            } => {
                let failed = SeatReservationFailed {
                    event_id: Uuid::new_v4(),
                    order_id: request.order_id,
                    flight_id: Some(request.flight_id),
                    seats: seat_numbers.iter().map(|seat| (*seat).to_owned()).collect(),
                    reason,
                    unavailable_seats: seats,
                    message,
                    causation_id: request.causation_id.clone(),
                };
                (failed.to_event()?, Vec::new(), Vec::new())
            }
            Decision::Take(seats) => {
                let seat_ids = seats.iter().map(|seat| seat.seat_id).collect();
                let read_versions = seats.iter().map(|seat| seat.version).collect();
                let reserved = SeatReserved {
                    event_id: Uuid::new_v4(),
                    order_id: request.order_id,
                    flight_id: request.flight_id,
                    seats: seats
                        .into_iter()
                        .map(|seat| HeldSeat {
                            version: seat.version + 1,
                            ..seat
                        })
                        .collect(),
                    locked_until: expires_at,
                    causation_id: request.causation_id.clone(),
                };
                (reserved.to_event()?, seat_ids, read_versions)
            }
        };
        let all_taken: bool = statement(sql::TAKE_AND_RECORD)
            .bind(request.order_id.as_uuid())
            .bind(request.flight_id.as_uuid())
            .bind(&seat_ids)
            .bind(&read_versions)
            .bind(expires_at)
            .bind(event.event_id)
            .bind(event.detail_type.as_str())
            .bind(&event.detail)
            .try_map(|row: PgRow| row.try_get("all_taken"))
            .fetch_one(&mut *tx)
            .await?;
        if all_taken {
            tx.commit().await?;
            return Ok(Reservation::Decided {
                event,
                lost_races: attempt,
            });
        }
        tracing::info!(attempt, "a seat changed since it was read; reading again");
        tx.rollback().await?;
    }
    Err(InventoryError::Contention(MAX_ATTEMPTS))
}

/// What the optimistic read allows, before anything is written.
enum Decision {
    /// Every seat is free at the version read: take them all, at those versions.
    Take(Vec<HeldSeat>),
    Refuse {
        reason: FailureReason,
        /// The seats that are the reason (missing or taken), in the order requested.
        seats: Vec<String>,
        message: String,
    },
}

fn decide(request: &ReserveSeats, rows: &[SeatRow]) -> Decision {
    let refuse = |reason, seats: Vec<String>, message: String| Decision::Refuse {
        reason,
        seats,
        message,
    };
    match rows.first().map(|row| row.departed) {
        Some(Some(false)) => {}
        Some(Some(true)) => {
            let message = format!("flight {} has already departed", request.flight_id);
            return refuse(FailureReason::FlightDeparted, Vec::new(), message);
        }
        _ => {
            let message = format!("flight {} does not exist", request.flight_id);
            return refuse(FailureReason::FlightNotFound, Vec::new(), message);
        }
    }
    let found = |seat: &SeatNumber| {
        rows.iter()
            .find_map(|row| row.seat.as_ref().filter(|s| s.held.seat_number == *seat))
    };
    let missing: Vec<String> = request
        .seats
        .seats()
        .iter()
        .filter(|seat| found(seat).is_none())
        .map(SeatNumber::to_string)
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "no seat {} on flight {}",
            missing.join(", "),
            request.flight_id
        );
        return refuse(FailureReason::SeatNotFound, missing, message);
    }
    let seats: Vec<&ReadSeat> = request.seats.seats().iter().filter_map(found).collect();
    let taken: Vec<String> = seats
        .iter()
        .filter(|seat| seat.status != SeatStatus::Available)
        .map(|seat| seat.held.seat_number.to_string())
        .collect();
    if !taken.is_empty() {
        let message = match taken.as_slice() {
            [one] => format!("seat {one} is no longer available"),
            many => format!("seats {} are no longer available", many.join(", ")),
        };
        return refuse(FailureReason::SeatUnavailable, taken, message);
    }
    Decision::Take(seats.into_iter().map(|seat| seat.held.clone()).collect())
}

/// One row of [`sql::CLAIM_AND_READ`].
struct SeatRow {
    decided_at: DateTime<Utc>,
    departed: Option<bool>,
    seat: Option<ReadSeat>,
}

/// A seat as read, with the version the update will be conditioned on.
struct ReadSeat {
    held: HeldSeat,
    status: SeatStatus,
}

impl SeatRow {
    fn from_row(row: PgRow) -> Result<Self, sqlx::Error> {
        let seat_id: Option<Uuid> = row.try_get("seat_id")?;
        let seat = match seat_id {
            None => None,
            Some(seat_id) => {
                let number: String = row.try_get("seat_number")?;
                let status: String = row.try_get("status")?;
                Some(ReadSeat {
                    held: HeldSeat {
                        seat_id,
                        seat_number: SeatNumber::parse(&number)
                            .ok_or_else(|| decode_error("seat_number", &number))?,
                        version: row.try_get("version")?,
                    },
                    status: SeatStatus::parse(&status)
                        .ok_or_else(|| decode_error("status", &status))?,
                })
            }
        };
        Ok(Self {
            decided_at: row.try_get("decided_at")?,
            departed: row.try_get("departed")?,
            seat,
        })
    }
}

fn decode_error(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("unexpected value {value:?}").into(),
    }
}

/// The answer an earlier delivery of this order got, or the refusal of a reused order id.
async fn replay(pool: &PgPool, request: &ReserveSeats) -> Result<Reservation, InventoryError> {
    let order_id = request.order_id.as_uuid();
    let row = statement(sql::EARLIER_OUTCOME)
        .bind(order_id)
        .fetch_one(pool)
        .await?;
    let fingerprint: String = row.try_get("request_fingerprint")?;
    if fingerprint != request.fingerprint() {
        return Ok(Reservation::ConflictsWithEarlierRequest);
    }
    let event_id: Option<Uuid> = row.try_get("outcome_event_id")?;
    let detail_type: Option<String> = row.try_get("outcome_detail_type")?;
    let detail: Option<String> = row.try_get("outcome_detail")?;
    let (Some(event_id), Some(detail_type), Some(detail)) = (event_id, detail_type, detail) else {
        return Err(InventoryError::UndecidedOrder(order_id));
    };
    let detail_type = DetailType::parse(&detail_type).ok_or(
        InventoryError::UnknownStoredDetailType(order_id, detail_type),
    )?;
    Ok(Reservation::Replayed(OutgoingEvent {
        event_id,
        detail_type,
        detail,
    }))
}
