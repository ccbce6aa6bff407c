//! Holding seats for an order: all or none, with an optimistic, version-checked lock.
//!
//! The decision is the database's (`inventory_decide_order`, migration 0011): an order that
//! names its seats is read, decided, re-checked under its locks and written in one call,
//! which also renders the answer. An any-seat order is read first and its seats picked
//! here, then decided by the same call.

use uuid::Uuid;

use super::sql::{self, DecideOrder, OrderDecision, ReadSeat, RequestRead, SeatAt, Standing};
use super::{InventoryError, LockTtl, Reservation, lifecycle, pick};
use crate::db::Session;
use crate::domain::{Cabin, FailureReason, FlightStatus, HeldSeat, OrderId};
use crate::inbound::{InvalidOrder, ReserveSeats, SeatSelection};
use crate::metrics;

/// A lost race is decided again at most this many times in all.
const MAX_ATTEMPTS: u32 = 8;

/// Holds every requested seat for the order, or none, and records the outcome once. In
/// steady state that is one round trip and one commit for an order that names its seats,
/// two round trips for an any-seat order (the read its picker needs, then the decision).
pub async fn reserve(
    session: &mut Session<'_>,
    request: &ReserveSeats,
    ttl: LockTtl,
) -> Result<Reservation, InventoryError> {
    let mut call = decision_of(request, ttl);
    // Seats an any-seat order failed to take because another order had them: not again.
    let mut lost_to_others: Vec<Uuid> = Vec::new();
    let mut released = Vec::new();
    let mut lost_races = 0;
    for attempt in 0..MAX_ATTEMPTS {
        if let SeatSelection::Any { count, cabin } = &request.seats {
            let mut read: RequestRead =
                session.read(sql::READ_REQUEST, &read_args(request)).await?;
            if let Some(earlier) = read.earlier.take() {
                return replay(request.order_id, &call.fingerprint, earlier);
            }
            let holders = lapsed_holders(&read.seats, &request.seats);
            if !holders.is_empty() {
                released.extend(
                    lifecycle::expire_orders(session, &holders, &request.causation_id).await?,
                );
                continue;
            }
            let (take, refusal) =
                match pick_any(request, *count, *cabin, &read, &lost_to_others, attempt) {
                    // The call refuses on the flight's own status, as for named seats.
                    Pick::NotScheduled => (Some(Vec::new()), None),
                    Pick::Take(seats) => (Some(seats), None),
                    Pick::Insufficient(message) => (
                        None,
                        Some(sql::Refusal {
                            reason: FailureReason::InsufficientSeats,
                            message,
                        }),
                    ),
                };
            call.take = take;
            call.refusal = refusal;
            // Any-seat orders skip rows another order is taking, until the last attempts,
            // which wait for them: the answer then rests on what those orders actually did.
            call.skip_locked = attempt < MAX_ATTEMPTS / 2;
        }
        match session.write(sql::DECIDE_ORDER, &call).await? {
            OrderDecision::Decided {
                event,
                reason,
                seats,
                lost_races: lost_here,
            } => {
                lost_races += lost_here;
                match reason {
                    Some(reason) => metrics::reservation_refused(reason),
                    None => metrics::seats_reserved(seats),
                }
                metrics::optimistic_lock_retries(lost_races);
                return Ok(Reservation::Decided {
                    event,
                    released,
                    lost_races,
                });
            }
            OrderDecision::Earlier { earlier } => {
                return replay(request.order_id, &call.fingerprint, earlier);
            }
            OrderDecision::Lapsed { holders } => {
                released.extend(
                    lifecycle::expire_orders(session, &holders, &request.causation_id).await?,
                );
            }
            OrderDecision::Lost {
                lost,
                lost_races: lost_here,
            } => {
                lost_races += lost_here;
                tracing::info!(attempt, "a seat changed since it was read; deciding again");
                lost_to_others.extend(lost);
            }
        }
    }
    Err(InventoryError::Contention(MAX_ATTEMPTS))
}

fn read_args(request: &ReserveSeats) -> sql::ReadRequest<'_> {
    let cabin = match &request.seats {
        SeatSelection::Explicit(_) => None,
        SeatSelection::Any { cabin, .. } => *cabin,
    };
    sql::ReadRequest {
        order_id: request.order_id.as_uuid(),
        flight_id: Some(request.flight_id.as_uuid()),
        seats: Vec::new(),
        any_seat: true,
        cabin,
    }
}

/// Orders holding seats past their expiry that this order needs: every requested one,
/// or for an any-seat order only as many as the free seats fall short by (the sweeper
/// releases the rest of the cabin, not this invocation).
fn lapsed_holders(seats: &[ReadSeat], selection: &SeatSelection) -> Vec<Uuid> {
    let lapsed = seats.iter().filter_map(|s| s.lapsed_holder);
    let mut holders: Vec<Uuid> = match selection {
        SeatSelection::Explicit(_) => lapsed.collect(),
        SeatSelection::Any { count, .. } => {
            let free = seats
                .iter()
                .filter(|s| s.standing == Standing::Free)
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

fn held(seat: &ReadSeat) -> HeldSeat {
    HeldSeat {
        seat_id: seat.seat_id,
        seat_number: seat.seat_number.clone(),
        version: seat.version,
    }
}

/// What an any-seat order's read allows, before the decision.
#[derive(Debug)]
enum Pick {
    /// The flight does not accept holds: the decision says why.
    NotScheduled,
    /// Take these seats, at the versions read.
    Take(Vec<SeatAt>),
    /// Fewer free seats than asked for; the message says how many.
    Insufficient(String),
}

fn pick_any(
    request: &ReserveSeats,
    count: u8,
    cabin: Option<Cabin>,
    read: &RequestRead,
    lost_to_others: &[Uuid],
    attempt: u32,
) -> Pick {
    if read.flight != Some(FlightStatus::Scheduled) {
        return Pick::NotScheduled;
    }
    let free: Vec<HeldSeat> = read
        .seats
        .iter()
        .filter(|s| s.standing == Standing::Free)
        .map(held)
        .collect();
    let untried: Vec<HeldSeat> = free
        .iter()
        .filter(|seat| !lost_to_others.contains(&seat.seat_id))
        .cloned()
        .collect();
    // Per order, and moved on after a lost race, so two orders that collided once do not
    // collide again on the next choice.
    let spread = request.order_id.as_uuid().as_u64_pair().1
        ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let count = usize::from(count);
    // Seats lost to another transaction are avoided while there is a choice, but a refusal
    // rests on committed state only: a row lock that comes to nothing must never make an
    // order INSUFFICIENT_SEATS for good.
    match pick::pick(&untried, count, spread).or_else(|| pick::pick(&free, count, spread)) {
        Some(seats) => Pick::Take(
            seats
                .iter()
                .map(|seat| SeatAt {
                    seat_id: seat.seat_id,
                    version: seat.version,
                })
                .collect(),
        ),
        None => {
            let cabin = cabin.map_or("any cabin", Cabin::as_str);
            Pick::Insufficient(format!(
                "{count} seats requested but {} free in {cabin} on flight {}",
                free.len(),
                request.flight_id
            ))
        }
    }
}

/// The decision call of a valid order, before any any-seat pick.
fn decision_of(request: &ReserveSeats, ttl: LockTtl) -> DecideOrder<'_> {
    DecideOrder {
        order_id: request.order_id.as_uuid(),
        flight_id: Some(request.flight_id.as_uuid()),
        fingerprint: request.fingerprint(),
        event_id: Uuid::new_v4(),
        causation_id: &request.causation_id,
        seats: request.seats.named(),
        ttl_ms: ttl.0.num_milliseconds(),
        take: None,
        skip_locked: false,
        refusal: None,
    }
}

/// The decision call that records an invalid request's `INVALID_REQUEST`.
fn refusal_of(invalid: &InvalidOrder) -> DecideOrder<'_> {
    DecideOrder {
        order_id: invalid.order_id.as_uuid(),
        flight_id: invalid.flight_id.map(|flight| flight.as_uuid()),
        fingerprint: invalid.fingerprint.clone(),
        event_id: Uuid::new_v4(),
        causation_id: &invalid.causation_id,
        seats: invalid.seats.clone(),
        ttl_ms: 0,
        take: None,
        skip_locked: false,
        refusal: Some(sql::Refusal {
            reason: FailureReason::InvalidRequest,
            message: invalid.problem.clone(),
        }),
    }
}

/// An order of a batch: one that names its seats, or an invalid one.
#[derive(Clone, Copy, Debug)]
pub enum BatchOrder<'a> {
    Named(&'a ReserveSeats),
    Invalid(&'a InvalidOrder),
}

impl BatchOrder<'_> {
    fn order_id(&self) -> OrderId {
        match self {
            Self::Named(request) => request.order_id,
            Self::Invalid(invalid) => invalid.order_id,
        }
    }
}

/// What a batch decided for one of its orders.
#[derive(Debug)]
pub enum Batched {
    Decided(Reservation),
    /// It needs calls of its own (its seats are held by lapsed holds): decide it alone.
    Alone,
}

/// Decides a batch of orders in one call and one commit, each all or nothing on its own and
/// idempotent by its id, and answers for each, in the order given. A fault fails the whole
/// batch and commits nothing; its orders can then be decided one at a time.
pub async fn reserve_batch(
    session: &mut Session<'_>,
    orders: &[BatchOrder<'_>],
    ttl: LockTtl,
) -> Result<Vec<Batched>, InventoryError> {
    // Claimed in order id order, as every batch claims, so two never wait in a cycle.
    let mut by_id: Vec<usize> = (0..orders.len()).collect();
    by_id.sort_by_key(|&i| orders[i].order_id().as_uuid());
    let calls: Vec<DecideOrder<'_>> = by_id
        .iter()
        .map(|&i| match orders[i] {
            BatchOrder::Named(request) => decision_of(request, ttl),
            BatchOrder::Invalid(invalid) => refusal_of(invalid),
        })
        .collect();
    let args = sql::DecideOrders {
        ttl_ms: ttl.0.num_milliseconds(),
        orders: &calls,
    };
    let decisions: Vec<OrderDecision> = session.write(sql::DECIDE_ORDERS, &args).await?;
    if decisions.len() != calls.len() {
        return Err(InventoryError::Database(crate::db::DbError::Inconsistent {
            message: format!("{} decisions for {} orders", decisions.len(), calls.len()),
        }));
    }
    let mut answers: Vec<Option<Batched>> = orders.iter().map(|_| None).collect();
    for ((&i, call), decision) in by_id.iter().zip(&calls).zip(decisions) {
        let answer = match decision {
            OrderDecision::Decided {
                event,
                reason,
                seats,
                lost_races,
            } => {
                match reason {
                    Some(reason) => metrics::reservation_refused(reason),
                    None => metrics::seats_reserved(seats),
                }
                Batched::Decided(Reservation::Decided {
                    event,
                    released: Vec::new(),
                    lost_races,
                })
            }
            // An earlier outcome that cannot be read fails this order alone, which is then
            // tried on its own; the batch's other answers stand.
            OrderDecision::Earlier { earlier } => {
                match replay(orders[i].order_id(), &call.fingerprint, earlier) {
                    Ok(reservation) => Batched::Decided(reservation),
                    Err(_) => Batched::Alone,
                }
            }
            OrderDecision::Lapsed { .. } | OrderDecision::Lost { .. } => Batched::Alone,
        };
        answers[i] = Some(answer);
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or(Batched::Alone))
        .collect())
}

/// Records `INVALID_REQUEST` as the order's outcome, once: a request the same as the first
/// gets the same answer again, another one under the same order id is a conflict.
pub async fn refuse_invalid(
    session: &mut Session<'_>,
    invalid: &InvalidOrder,
) -> Result<Reservation, InventoryError> {
    let call = refusal_of(invalid);
    // Nothing to take, so nothing can be lost: decided, or decided by another delivery.
    for _ in 0..MAX_ATTEMPTS {
        match session.write(sql::DECIDE_ORDER, &call).await? {
            OrderDecision::Decided { event, .. } => {
                metrics::reservation_refused(FailureReason::InvalidRequest);
                return Ok(Reservation::Decided {
                    event,
                    released: Vec::new(),
                    lost_races: 0,
                });
            }
            OrderDecision::Earlier { earlier } => {
                return replay(invalid.order_id, &invalid.fingerprint, earlier);
            }
            OrderDecision::Lapsed { .. } | OrderDecision::Lost { .. } => {}
        }
    }
    Err(InventoryError::Contention(MAX_ATTEMPTS))
}

/// The answer an earlier delivery of this order got, or the refusal of a reused order id.
fn replay(
    order_id: OrderId,
    fingerprint: &str,
    earlier: sql::Earlier,
) -> Result<Reservation, InventoryError> {
    if let Some(closer) = earlier.closed_by {
        return Ok(Reservation::ClosedBeforeReserved(closer));
    }
    if earlier.fingerprint.as_deref() != Some(fingerprint) {
        return Ok(Reservation::ConflictsWithEarlierRequest);
    }
    earlier
        .outcome
        .map(Reservation::Replayed)
        .ok_or(InventoryError::UndecidedOrder(order_id.as_uuid()))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::{FlightId, OutgoingEvent, SeatNumber, SeatRequest};

    const FLIGHT: &str = "3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10";

    fn flight() -> FlightId {
        FlightId::parse(FLIGHT).unwrap_or_else(|| unreachable!())
    }

    fn explicit(seats: &[&str]) -> ReserveSeats {
        ReserveSeats {
            order_id: OrderId::from(Uuid::from_u128(7)),
            flight_id: flight(),
            seats: SeatSelection::Explicit(
                SeatRequest::parse(seats.iter().copied()).unwrap_or_else(|_| unreachable!()),
            ),
            causation_id: "event".into(),
        }
    }

    fn any(count: u8) -> ReserveSeats {
        ReserveSeats {
            seats: SeatSelection::Any {
                count,
                cabin: Some(Cabin::Economy),
            },
            ..explicit(&["1A"])
        }
    }

    fn seat(number: &str, standing: Standing) -> ReadSeat {
        ReadSeat {
            seat_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, number.as_bytes()),
            seat_number: SeatNumber::parse(number).unwrap_or_else(|| unreachable!()),
            standing,
            version: 3,
            lapsed_holder: None,
        }
    }

    fn read(seats: Vec<ReadSeat>) -> RequestRead {
        RequestRead {
            read_at: Utc::now(),
            flight: Some(FlightStatus::Scheduled),
            earlier: None,
            seats,
        }
    }

    fn taken(pick: Pick, read: &RequestRead) -> Vec<String> {
        let Pick::Take(seats) = pick else {
            panic!("nothing taken: {pick:?}");
        };
        seats
            .iter()
            .map(|taken| {
                let seat = read.seats.iter().find(|s| s.seat_id == taken.seat_id);
                seat.map_or_else(String::new, |s| s.seat_number.to_string())
            })
            .collect()
    }

    #[test]
    fn an_any_seat_order_avoids_seats_lost_to_others_while_it_has_a_choice() {
        let free = vec![
            seat("10A", Standing::Free),
            seat("10B", Standing::Free),
            seat("11A", Standing::Free),
            seat("11B", Standing::Free),
        ];
        let lost: Vec<Uuid> = free[..2].iter().map(|s| s.seat_id).collect();
        let read = read(free);
        let cabin = Some(Cabin::Economy);

        let first = taken(pick_any(&any(2), 2, cabin, &read, &lost, 1), &read);
        let everything_lost: Vec<Uuid> = read.seats.iter().map(|s| s.seat_id).collect();
        let still = taken(
            pick_any(&any(2), 2, cabin, &read, &everything_lost, 1),
            &read,
        );
        let five = pick_any(&any(5), 5, cabin, &read, &[], 0);

        assert_eq!(first, vec!["11A", "11B"]);
        assert_eq!(
            still.len(),
            2,
            "a lost race never makes an order INSUFFICIENT"
        );
        assert!(
            matches!(five, Pick::Insufficient(ref message)
                if message.starts_with("5 seats requested but 4 free in ECONOMY")),
            "{five:?}"
        );
    }

    #[test]
    fn an_any_seat_order_for_a_flight_that_takes_no_holds_picks_nothing() {
        let mut cancelled = read(vec![seat("10A", Standing::Free)]);
        cancelled.flight = Some(FlightStatus::Cancelled);
        let mut missing = read(Vec::new());
        missing.flight = None;

        for read in [cancelled, missing] {
            let pick = pick_any(&any(1), 1, None, &read, &[], 0);
            assert!(matches!(pick, Pick::NotScheduled), "{pick:?}");
        }
    }

    #[test]
    fn only_the_lapsed_holders_an_order_needs_are_expired() {
        let holder = |n: u128| Some(Uuid::from_u128(n));
        let mut seats = vec![
            seat("10A", Standing::Free),
            seat("10B", Standing::Lapsed),
            seat("10C", Standing::Lapsed),
        ];
        seats[1].lapsed_holder = holder(1);
        seats[2].lapsed_holder = holder(2);

        let for_two = lapsed_holders(&seats, &any(2).seats);
        let for_one = lapsed_holders(&seats, &any(1).seats);
        let named = lapsed_holders(&seats, &explicit(&["10B", "10C"]).seats);

        assert_eq!(for_two, vec![Uuid::from_u128(1)]);
        assert!(for_one.is_empty(), "one free seat is enough");
        assert_eq!(named, vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
    }

    #[test]
    fn a_redelivery_replays_a_conflict_is_told_and_an_early_close_stands() {
        let outcome = OutgoingEvent {
            event_id: Uuid::from_u128(9),
            detail_type: crate::domain::DetailType::SeatReserved,
            detail: "{}".into(),
        };
        let earlier = |fingerprint: Option<&str>, closed_by| sql::Earlier {
            fingerprint: fingerprint.map(str::to_owned),
            closed_by,
            outcome: Some(outcome.clone()),
        };
        let order = OrderId::from(Uuid::from_u128(7));

        let same = replay(order, "f|12A", earlier(Some("f|12A"), None));
        let other = replay(order, "f|12B", earlier(Some("f|12A"), None));
        let closed = replay(
            order,
            "f|12A",
            earlier(None, Some(crate::domain::OrderCloser::PaymentSucceeded)),
        );

        assert!(matches!(same, Ok(Reservation::Replayed(ref e)) if *e == outcome));
        assert!(matches!(
            other,
            Ok(Reservation::ConflictsWithEarlierRequest)
        ));
        assert!(matches!(closed, Ok(Reservation::ClosedBeforeReserved(_))));
    }
}
