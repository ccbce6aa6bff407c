//! Holding seats for an order: all or none, with an optimistic, version-checked lock.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{InventoryError, LockTtl, Reservation, lifecycle, pick, sql};
use crate::db::statement;
use crate::domain::{
    Cabin, FailureReason, HeldSeat, OutgoingEvent, SeatNumber, SeatRequest, SeatReservationFailed,
    SeatReserved, SeatStatus,
};
use crate::inbound::{ReserveSeats, SeatSelection};
use crate::metrics;

/// A lost race is re-read and retried at most this many times in all.
const MAX_ATTEMPTS: u32 = 8;

/// Holds every requested seat for the order, or none, and records the outcome once.
pub async fn reserve(
    pool: &PgPool,
    request: &ReserveSeats,
    ttl: LockTtl,
) -> Result<Reservation, InventoryError> {
    let fingerprint = request.fingerprint();
    // Seats an any-seat order failed to take because another order had them: not again.
    let mut lost_to_others: Vec<Uuid> = Vec::new();
    for attempt in 0..MAX_ATTEMPTS {
        let mut tx = pool.begin().await?;
        let Some(mut read) = claim_and_read(&mut tx, request, &fingerprint).await? else {
            tx.rollback().await?;
            return replay(pool, request).await;
        };
        let released = expire_lapsed_holders(&mut tx, &mut read, &request.causation_id).await?;
        let expires_at = read.decided_at + ttl.0;
        let decision = decide(request, &read, &lost_to_others, attempt);
        let refused = match &decision {
            Decision::Refuse { reason, .. } => Some(*reason),
            Decision::Take(_) => None,
        };
        let (event, seats) = match decision {
            Decision::Refuse {
                reason,
                seats,
                message,
            } => {
                let failed = SeatReservationFailed {
                    event_id: Uuid::new_v4(),
                    order_id: request.order_id,
                    flight_id: Some(request.flight_id),
                    seats: request.seats.named(),
                    reason,
                    unavailable_seats: seats,
                    message,
                    causation_id: request.causation_id.clone(),
                };
                (failed.to_event()?, Vec::new())
            }
            Decision::Take(seats) => {
                let reserved = SeatReserved {
                    event_id: Uuid::new_v4(),
                    order_id: request.order_id,
                    flight_id: request.flight_id,
                    seats: seats
                        .iter()
                        .map(|seat| HeldSeat {
                            version: seat.version + 1,
                            ..seat.clone()
                        })
                        .collect(),
                    locked_until: expires_at,
                    causation_id: request.causation_id.clone(),
                };
                (reserved.to_event()?, seats)
            }
        };
        let taken = take_and_record(&mut tx, request, &event, &seats, expires_at).await?;
        if taken.len() == seats.len() {
            tx.commit().await?;
            match refused {
                Some(reason) => metrics::reservation_refused(reason),
                None => metrics::seats_reserved(seats.len()),
            }
            metrics::optimistic_lock_retries(attempt);
            return Ok(Reservation::Decided {
                event,
                released,
                lost_races: attempt,
            });
        }
        tracing::info!(attempt, "a seat changed since it was read; reading again");
        tx.rollback().await?;
        if matches!(request.seats, SeatSelection::Any { .. }) {
            lost_to_others.extend(
                seats
                    .iter()
                    .map(|seat| seat.seat_id)
                    .filter(|seat_id| !taken.contains(seat_id)),
            );
        }
    }
    Err(InventoryError::Contention(MAX_ATTEMPTS))
}

/// What the optimistic read saw, in the transaction that claimed the order.
struct Read {
    decided_at: DateTime<Utc>,
    /// `None`: no such flight.
    departed: Option<bool>,
    seats: Vec<ReadSeat>,
}

/// A seat as read, with the version the update will be conditioned on.
struct ReadSeat {
    seat: HeldSeat,
    status: SeatStatus,
    /// The order holding it, when its hold is past expiry and it may be taken.
    lapsed_holder: Option<Uuid>,
}

/// Claims the order and reads what it asks for; `None` if the order was claimed before.
async fn claim_and_read(
    tx: &mut PgConnection,
    request: &ReserveSeats,
    fingerprint: &str,
) -> Result<Option<Read>, sqlx::Error> {
    let query = match &request.seats {
        SeatSelection::Explicit(seats) => {
            let numbers: Vec<&str> = seats.seats().iter().map(|s| s.as_str()).collect();
            statement(sql::CLAIM_AND_READ_SEATS)
                .bind(request.order_id.as_uuid())
                .bind(request.flight_id.as_uuid())
                .bind(fingerprint.to_owned())
                .bind(numbers)
        }
        SeatSelection::Any { cabin, .. } => statement(sql::CLAIM_AND_READ_FREE_SEATS)
            .bind(request.order_id.as_uuid())
            .bind(request.flight_id.as_uuid())
            .bind(fingerprint.to_owned())
            .bind(cabin.map(Cabin::as_str)),
    };
    let rows = query.fetch_all(&mut *tx).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut read = Read {
        decided_at: first.try_get("decided_at")?,
        departed: first.try_get("departed")?,
        seats: Vec::with_capacity(rows.len()),
    };
    for row in &rows {
        if let Some(seat) = read_seat(row)? {
            read.seats.push(seat);
        }
    }
    Ok(Some(read))
}

fn read_seat(row: &PgRow) -> Result<Option<ReadSeat>, sqlx::Error> {
    let Some(seat_id) = row.try_get::<Option<Uuid>, _>("seat_id")? else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    let status =
        SeatStatus::parse(&status).ok_or_else(|| super::decode_error("status", &status))?;
    let lapsed: Option<bool> = row.try_get("lapsed")?;
    let holder: Option<Uuid> = row.try_get("holder")?;
    Ok(Some(ReadSeat {
        seat: HeldSeat {
            seat_id,
            seat_number: super::seat_number(row, "seat_number")?,
            version: row.try_get("version")?,
        },
        status,
        lapsed_holder: holder.filter(|_| status == SeatStatus::Locked && lapsed == Some(true)),
    }))
}

/// Lazy expiry: seats whose holds are past expiry are released from their orders first
/// (with `SeatReleased` for those orders), so a late sweeper never keeps a seat from sale.
async fn expire_lapsed_holders(
    tx: &mut PgConnection,
    read: &mut Read,
    causation_id: &str,
) -> Result<Vec<OutgoingEvent>, InventoryError> {
    let mut holders: Vec<Uuid> = read.seats.iter().filter_map(|s| s.lapsed_holder).collect();
    if holders.is_empty() {
        return Ok(Vec::new());
    }
    holders.sort_unstable();
    holders.dedup();
    let freed = lifecycle::expire_orders(tx, &holders, causation_id).await?;
    for read_seat in &mut read.seats {
        if let Some(seat) = freed
            .seats
            .iter()
            .find(|s| s.seat_id == read_seat.seat.seat_id)
        {
            read_seat.status = SeatStatus::Available;
            read_seat.seat.version = seat.version;
            read_seat.lapsed_holder = None;
        }
    }
    Ok(freed.events)
}

/// What the optimistic read allows, before anything is written.
enum Decision {
    /// Take these seats, at the versions read.
    Take(Vec<HeldSeat>),
    Refuse {
        reason: FailureReason,
        /// The seats that are the reason (missing or taken), in the order requested.
        seats: Vec<String>,
        message: String,
    },
}

fn refuse(reason: FailureReason, seats: Vec<String>, message: String) -> Decision {
    Decision::Refuse {
        reason,
        seats,
        message,
    }
}

fn decide(request: &ReserveSeats, read: &Read, lost_to_others: &[Uuid], attempt: u32) -> Decision {
    let flight = request.flight_id;
    match read.departed {
        None => {
            let message = format!("flight {flight} does not exist");
            return refuse(FailureReason::FlightNotFound, Vec::new(), message);
        }
        Some(true) => {
            let message = format!("flight {flight} has already departed");
            return refuse(FailureReason::FlightDeparted, Vec::new(), message);
        }
        Some(false) => {}
    }
    match &request.seats {
        SeatSelection::Explicit(seats) => decide_seats(request, seats, read),
        SeatSelection::Any { count, cabin } => {
            let free: Vec<HeldSeat> = read
                .seats
                .iter()
                .filter(|s| s.status == SeatStatus::Available)
                .filter(|s| !lost_to_others.contains(&s.seat.seat_id))
                .map(|s| s.seat.clone())
                .collect();
            // Per order, and moved on after a lost race, so two orders that collided once
            // do not collide again on the next choice.
            let spread = request.order_id.as_uuid().as_u64_pair().1
                ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            match pick::pick(&free, usize::from(*count), spread) {
                Some(seats) => Decision::Take(seats),
                None => {
                    let cabin = cabin.map_or("any cabin", Cabin::as_str);
                    let message = format!(
                        "{count} seats requested but {} free in {cabin} on flight {flight}",
                        free.len()
                    );
                    refuse(FailureReason::InsufficientSeats, Vec::new(), message)
                }
            }
        }
    }
}

fn decide_seats(request: &ReserveSeats, seats: &SeatRequest, read: &Read) -> Decision {
    let found = |number: &SeatNumber| read.seats.iter().find(|s| s.seat.seat_number == *number);
    let missing: Vec<String> = seats
        .seats()
        .iter()
        .filter(|number| found(number).is_none())
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "no seat {} on flight {}",
            missing.join(", "),
            request.flight_id
        );
        return refuse(FailureReason::SeatNotFound, missing, message);
    }
    let requested: Vec<&ReadSeat> = seats.seats().iter().filter_map(found).collect();
    let taken: Vec<String> = requested
        .iter()
        .filter(|s| s.status != SeatStatus::Available)
        .map(|s| s.seat.seat_number.to_string())
        .collect();
    if !taken.is_empty() {
        let message = match taken.as_slice() {
            [one] => format!("seat {one} is no longer available"),
            many => format!("seats {} are no longer available", many.join(", ")),
        };
        return refuse(FailureReason::SeatUnavailable, taken, message);
    }
    Decision::Take(requested.into_iter().map(|s| s.seat.clone()).collect())
}

/// Writes the decision; returns the seats actually taken (all of `seats`, or the race was
/// lost and nothing was written).
async fn take_and_record(
    tx: &mut PgConnection,
    request: &ReserveSeats,
    event: &OutgoingEvent,
    seats: &[HeldSeat],
    expires_at: DateTime<Utc>,
) -> Result<Vec<Uuid>, InventoryError> {
    let seat_ids: Vec<Uuid> = seats.iter().map(|seat| seat.seat_id).collect();
    let read_versions: Vec<i32> = seats.iter().map(|seat| seat.version).collect();
    let take = match request.seats {
        SeatSelection::Explicit(_) => sql::TAKE_AND_RECORD_WAITING,
        SeatSelection::Any { .. } => sql::TAKE_AND_RECORD_SKIPPING,
    };
    let row = statement(take)
        .bind(request.order_id.as_uuid())
        .bind(request.flight_id.as_uuid())
        .bind(&seat_ids)
        .bind(&read_versions)
        .bind(expires_at)
        .bind(event.event_id)
        .bind(event.detail_type.as_str())
        .bind(&event.detail)
        .fetch_one(tx)
        .await?;
    let all_taken: bool = row.try_get("all_taken")?;
    let taken: Vec<Uuid> = row.try_get("taken_seat_ids")?;
    Ok(if all_taken { seat_ids } else { taken })
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
    let event = super::stored_event(
        order_id,
        row.try_get("outcome_event_id")?,
        row.try_get("outcome_detail_type")?,
        row.try_get("outcome_detail")?,
    )?;
    event
        .map(Reservation::Replayed)
        .ok_or(InventoryError::UndecidedOrder(order_id))
}
