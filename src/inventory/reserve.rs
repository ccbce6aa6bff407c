//! Holding seats for an order: all or none, with an optimistic, version-checked lock.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
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
/// An optimistic read, then one all-or-nothing statement; a lost race reads again.
pub async fn reserve(
    pool: &PgPool,
    request: &ReserveSeats,
    ttl: LockTtl,
) -> Result<Reservation, InventoryError> {
    let fingerprint = request.fingerprint();
    // Seats an any-seat order failed to take because another order had them: not again.
    let mut lost_to_others: Vec<Uuid> = Vec::new();
    let mut released = Vec::new();
    let mut lost_races = 0;
    for attempt in 0..MAX_ATTEMPTS {
        let read = read(pool, request).await?;
        if let Some(earlier) = read.earlier {
            return replay(request, &fingerprint, earlier);
        }
        let holders = read.lapsed_holders(&request.seats);
        if !holders.is_empty() {
            released.extend(expire_lapsed_holders(pool, &holders, &request.causation_id).await?);
            continue;
        }
        let decided_at = read.read_at;
        let expires_at = decided_at + ttl.0;
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
        // Any-seat orders skip rows another order is taking, until the last attempts, which
        // wait for them: the answer then rests on what those orders actually did.
        let skip_locked =
            matches!(request.seats, SeatSelection::Any { .. }) && attempt < MAX_ATTEMPTS / 2;
        let written = write(
            pool,
            request,
            &fingerprint,
            &event,
            &seats,
            (decided_at, expires_at),
            skip_locked,
        )
        .await?;
        if written.claimed {
            if written.taken != seats.len() {
                return Err(InventoryError::Inconsistent(
                    request.order_id.as_uuid(),
                    "claimed, but not every locked seat was taken",
                ));
            }
            match refused {
                Some(reason) => metrics::reservation_refused(reason),
                None => metrics::seats_reserved(seats.len()),
            }
            metrics::optimistic_lock_retries(lost_races);
            return Ok(Reservation::Decided {
                event,
                released,
                lost_races,
            });
        }
        if written.all_free {
            // Another delivery of this order decided first: the next read replays it.
            continue;
        }
        lost_races += 1;
        tracing::info!(attempt, "a seat changed since it was read; reading again");
        if matches!(request.seats, SeatSelection::Any { .. }) {
            lost_to_others.extend(written.lost);
        }
    }
    Err(InventoryError::Contention(MAX_ATTEMPTS))
}

/// What the optimistic read saw.
struct Read {
    read_at: DateTime<Utc>,
    /// `None`: no such flight.
    departed: Option<bool>,
    /// The order was decided before: what it asked for, and its outcome.
    earlier: Option<(String, Option<OutgoingEvent>)>,
    seats: Vec<ReadSeat>,
}

impl Read {
    /// Orders holding seats past their expiry that this order needs: every requested one,
    /// or for an any-seat order only as many as the free seats fall short by (the sweeper
    /// releases the rest of the cabin, not this invocation).
    fn lapsed_holders(&self, selection: &SeatSelection) -> Vec<Uuid> {
        let lapsed = self.seats.iter().filter_map(|s| s.lapsed_holder);
        let mut holders: Vec<Uuid> = match selection {
            SeatSelection::Explicit(_) => lapsed.collect(),
            SeatSelection::Any { count, .. } => {
                let free = self
                    .seats
                    .iter()
                    .filter(|s| s.status == SeatStatus::Available)
                    .count();
                lapsed
                    .take(usize::from(*count).saturating_sub(free))
                    .collect()
            }
        };
        holders.sort_unstable();
        holders.dedup();
        holders
    }
}

/// A seat as read, with the version the update will be conditioned on.
struct ReadSeat {
    seat: HeldSeat,
    status: SeatStatus,
    /// The order holding it, when its hold is past expiry and it may be taken.
    lapsed_holder: Option<Uuid>,
}

async fn read(pool: &PgPool, request: &ReserveSeats) -> Result<Read, InventoryError> {
    let query = match &request.seats {
        SeatSelection::Explicit(seats) => {
            let numbers: Vec<&str> = seats.seats().iter().map(|s| s.as_str()).collect();
            statement(sql::READ_SEATS)
                .bind(request.order_id.as_uuid())
                .bind(request.flight_id.as_uuid())
                .bind(numbers)
        }
        SeatSelection::Any { cabin, .. } => statement(sql::READ_FREE_SEATS)
            .bind(request.order_id.as_uuid())
            .bind(request.flight_id.as_uuid())
            .bind(cabin.map(Cabin::as_str)),
    };
    let rows = query.fetch_all(pool).await?;
    let Some(first) = rows.first() else {
        return Err(sqlx::Error::RowNotFound.into());
    };
    let earlier = match first.try_get::<Option<String>, _>("request_fingerprint")? {
        None => None,
        Some(fingerprint) => {
            let outcome = super::stored_event(
                request.order_id.as_uuid(),
                first.try_get("outcome_event_id")?,
                first.try_get("outcome_detail_type")?,
                first.try_get("outcome_detail")?,
            )?;
            Some((fingerprint, outcome))
        }
    };
    let mut read = Read {
        read_at: first.try_get("read_at")?,
        departed: first.try_get("departed")?,
        earlier,
        seats: Vec::with_capacity(rows.len()),
    };
    for row in &rows {
        if let Some(seat) = read_seat(row)? {
            read.seats.push(seat);
        }
    }
    Ok(read)
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

/// Lazy expiry: the orders holding requested seats past their expiry are released first,
/// in a transaction of their own (with `SeatReleased` for them), so a late sweeper never
/// keeps a seat from sale. The reservation then reads again.
async fn expire_lapsed_holders(
    pool: &PgPool,
    holders: &[Uuid],
    causation_id: &str,
) -> Result<Vec<OutgoingEvent>, InventoryError> {
    let mut tx = pool.begin().await?;
    let freed = lifecycle::expire_orders(&mut tx, holders, causation_id).await?;
    tx.commit().await?;
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
                .map(|s| s.seat.clone())
                .collect();
            let untried: Vec<HeldSeat> = free
                .iter()
                .filter(|seat| !lost_to_others.contains(&seat.seat_id))
                .cloned()
                .collect();
            // Per order, and moved on after a lost race, so two orders that collided once
            // do not collide again on the next choice.
            let spread = request.order_id.as_uuid().as_u64_pair().1
                ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let count = usize::from(*count);
            // Seats lost to another transaction are avoided while there is a choice, but a
            // refusal rests on committed state only: a row lock that comes to nothing must
            // never make an order INSUFFICIENT_SEATS for good.
            let picked =
                pick::pick(&untried, count, spread).or_else(|| pick::pick(&free, count, spread));
            match picked {
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

/// What [`sql::DECIDE_WAITING`] / [`sql::DECIDE_SKIPPING`] did.
struct Written {
    all_free: bool,
    claimed: bool,
    taken: usize,
    lost: Vec<Uuid>,
}

async fn write(
    pool: &PgPool,
    request: &ReserveSeats,
    fingerprint: &str,
    event: &OutgoingEvent,
    seats: &[HeldSeat],
    (decided_at, expires_at): (DateTime<Utc>, DateTime<Utc>),
    skip_locked: bool,
) -> Result<Written, InventoryError> {
    let seat_ids: Vec<Uuid> = seats.iter().map(|seat| seat.seat_id).collect();
    let read_versions: Vec<i32> = seats.iter().map(|seat| seat.version).collect();
    let decide = if skip_locked {
        sql::DECIDE_SKIPPING
    } else {
        sql::DECIDE_WAITING
    };
    let row = statement(decide)
        .bind(request.order_id.as_uuid())
        .bind(request.flight_id.as_uuid())
        .bind(&seat_ids)
        .bind(&read_versions)
        .bind(decided_at)
        .bind(expires_at)
        .bind(event.event_id)
        .bind(event.detail_type.as_str())
        .bind(&event.detail)
        .bind(fingerprint)
        .fetch_one(pool)
        .await?;
    let taken: i64 = row.try_get("taken")?;
    Ok(Written {
        all_free: row.try_get("all_free")?,
        claimed: row.try_get("claimed")?,
        taken: usize::try_from(taken).unwrap_or(usize::MAX),
        lost: row.try_get("lost")?,
    })
}

/// The answer an earlier delivery of this order got, or the refusal of a reused order id.
fn replay(
    request: &ReserveSeats,
    fingerprint: &str,
    (earlier_fingerprint, outcome): (String, Option<OutgoingEvent>),
) -> Result<Reservation, InventoryError> {
    if let Some(by) = earlier_fingerprint.strip_prefix(super::CLOSED_BEFORE_RESERVED) {
        return Ok(Reservation::ClosedBeforeReserved(by.to_owned()));
    }
    if earlier_fingerprint != fingerprint {
        return Ok(Reservation::ConflictsWithEarlierRequest);
    }
    outcome
        .map(Reservation::Replayed)
        .ok_or(InventoryError::UndecidedOrder(request.order_id.as_uuid()))
}
