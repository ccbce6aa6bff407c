//! Holding seats for an order: all or none, with an optimistic, version-checked lock.

use uuid::Uuid;

use super::sql::{self, ReadSeat, RequestRead, Reserved, SeatAt, Standing};
use super::{InventoryError, LockTtl, Reservation, lifecycle, pick};
use crate::db::Session;
use crate::domain::{
    Cabin, FailureReason, FlightStatus, HeldSeat, OrderId, SeatNumber, SeatRequest,
    SeatReservationFailed, SeatReserved,
};
use crate::inbound::{InvalidOrder, ReserveSeats, SeatSelection};
use crate::metrics;

/// A lost race is re-read and retried at most this many times in all.
const MAX_ATTEMPTS: u32 = 8;

/// Holds every requested seat for the order, or none, and records the outcome once.
/// An optimistic read, then one all-or-nothing write; a lost race reads again. In steady
/// state that is two round trips and one commit.
pub async fn reserve(
    session: &mut Session<'_>,
    request: &ReserveSeats,
    ttl: LockTtl,
) -> Result<Reservation, InventoryError> {
    let fingerprint = request.fingerprint();
    // Seats an any-seat order failed to take because another order had them: not again.
    let mut lost_to_others: Vec<Uuid> = Vec::new();
    let mut released = Vec::new();
    let mut lost_races = 0;
    for attempt in 0..MAX_ATTEMPTS {
        let mut read: RequestRead = session.read(sql::READ_REQUEST, &read_args(request)).await?;
        if let Some(earlier) = read.earlier.take() {
            return replay(request.order_id, &fingerprint, earlier);
        }
        let holders = lapsed_holders(&read.seats, &request.seats);
        if !holders.is_empty() {
            released
                .extend(lifecycle::expire_orders(session, &holders, &request.causation_id).await?);
            continue;
        }
        let expires_at = read.read_at + ttl.0;
        let (event, seats, refused) = match decide(request, &read, &lost_to_others, attempt) {
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
                (failed.to_event()?, Vec::new(), Some(reason))
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
                (reserved.to_event()?, seats, None)
            }
        };
        // Any-seat orders skip rows another order is taking, until the last attempts, which
        // wait for them: the answer then rests on what those orders actually did.
        let skip_locked =
            matches!(request.seats, SeatSelection::Any { .. }) && attempt < MAX_ATTEMPTS / 2;
        let write = sql::Reserve {
            order_id: request.order_id.as_uuid(),
            flight_id: Some(request.flight_id.as_uuid()),
            fingerprint: &fingerprint,
            seats: seats
                .iter()
                .map(|seat| SeatAt {
                    seat_id: seat.seat_id,
                    version: seat.version,
                })
                .collect(),
            created_at: read.read_at,
            expires_at,
            skip_locked,
            event: &event,
        };
        match session.write(sql::RESERVE, &write).await? {
            Reserved::Decided => {
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
            // Another delivery of this order decided first: the next read replays it.
            Reserved::DecidedElsewhere => continue,
            Reserved::Lost { lost } => {
                lost_races += 1;
                tracing::info!(attempt, "a seat changed since it was read; reading again");
                if matches!(request.seats, SeatSelection::Any { .. }) {
                    lost_to_others.extend(lost);
                }
            }
        }
    }
    Err(InventoryError::Contention(MAX_ATTEMPTS))
}

fn read_args(request: &ReserveSeats) -> sql::ReadRequest<'_> {
    let (seats, any_seat, cabin) = match &request.seats {
        SeatSelection::Explicit(seats) => (
            seats.seats().iter().map(SeatNumber::as_str).collect(),
            false,
            None,
        ),
        SeatSelection::Any { cabin, .. } => (Vec::new(), true, *cabin),
    };
    sql::ReadRequest {
        order_id: request.order_id.as_uuid(),
        flight_id: Some(request.flight_id.as_uuid()),
        seats,
        any_seat,
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

fn decide(
    request: &ReserveSeats,
    read: &RequestRead,
    lost_to_others: &[Uuid],
    attempt: u32,
) -> Decision {
    let flight = request.flight_id;
    match read.flight {
        None => {
            let message = format!("flight {flight} does not exist");
            return refuse(FailureReason::FlightNotFound, Vec::new(), message);
        }
        Some(FlightStatus::Cancelled) => {
            let message = format!("flight {flight} was cancelled");
            return refuse(FailureReason::FlightCancelled, Vec::new(), message);
        }
        Some(FlightStatus::Departed) => {
            let message = format!("flight {flight} has already departed");
            return refuse(FailureReason::FlightDeparted, Vec::new(), message);
        }
        Some(FlightStatus::Scheduled) => {}
    }
    match &request.seats {
        SeatSelection::Explicit(seats) => decide_seats(request, seats, read),
        SeatSelection::Any { count, cabin } => {
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

fn decide_seats(request: &ReserveSeats, seats: &SeatRequest, read: &RequestRead) -> Decision {
    let found = |number: &SeatNumber| read.seats.iter().find(|s| s.seat_number == *number);
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
        .filter(|s| s.standing != Standing::Free)
        .map(|s| s.seat_number.to_string())
        .collect();
    if !taken.is_empty() {
        let message = match taken.as_slice() {
            [one] => format!("seat {one} is no longer available"),
            many => format!("seats {} are no longer available", many.join(", ")),
        };
        return refuse(FailureReason::SeatUnavailable, taken, message);
    }
    Decision::Take(requested.into_iter().map(held).collect())
}

/// Records `INVALID_REQUEST` as the order's outcome, once: a request the same as the first
/// gets the same answer again, another one under the same order id is a conflict.
pub async fn refuse_invalid(
    session: &mut Session<'_>,
    invalid: &InvalidOrder,
) -> Result<Reservation, InventoryError> {
    let read_args = sql::ReadRequest {
        order_id: invalid.order_id.as_uuid(),
        flight_id: invalid.flight_id.map(|flight| flight.as_uuid()),
        seats: Vec::new(),
        any_seat: false,
        cabin: None,
    };
    for _ in 0..MAX_ATTEMPTS {
        let mut read: RequestRead = session.read(sql::READ_REQUEST, &read_args).await?;
        if let Some(earlier) = read.earlier.take() {
            return replay(invalid.order_id, &invalid.fingerprint, earlier);
        }
        let event = SeatReservationFailed {
            event_id: Uuid::new_v4(),
            order_id: invalid.order_id,
            flight_id: invalid.flight_id,
            seats: invalid.seats.clone(),
            reason: FailureReason::InvalidRequest,
            unavailable_seats: Vec::new(),
            message: invalid.problem.clone(),
            causation_id: invalid.causation_id.clone(),
        }
        .to_event()?;
        let write = sql::Reserve {
            order_id: invalid.order_id.as_uuid(),
            flight_id: read_args.flight_id,
            fingerprint: &invalid.fingerprint,
            seats: Vec::new(),
            created_at: read.read_at,
            expires_at: read.read_at,
            skip_locked: false,
            event: &event,
        };
        // Nothing to take, so nothing can be lost: decided, or decided by another delivery.
        if let Reserved::Decided = session.write(sql::RESERVE, &write).await? {
            metrics::reservation_refused(FailureReason::InvalidRequest);
            return Ok(Reservation::Decided {
                event,
                released: Vec::new(),
                lost_races: 0,
            });
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
    use crate::domain::{FlightId, OutgoingEvent};

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

    fn taken(decision: Decision) -> Vec<String> {
        match decision {
            Decision::Take(seats) => seats.iter().map(|s| s.seat_number.to_string()).collect(),
            Decision::Refuse { reason, .. } => panic!("refused: {reason:?}"),
        }
    }

    fn refusal(decision: Decision) -> (FailureReason, Vec<String>) {
        match decision {
            Decision::Refuse { reason, seats, .. } => (reason, seats),
            Decision::Take(seats) => panic!("took {seats:?}"),
        }
    }

    #[test]
    fn free_seats_are_taken_at_the_versions_read() {
        let read = read(vec![
            seat("12A", Standing::Free),
            seat("12B", Standing::Free),
        ]);

        let decision = decide(&explicit(&["12B", "12A"]), &read, &[], 0);

        let Decision::Take(seats) = decision else {
            panic!("expected the seats to be taken");
        };
        assert_eq!(seats.len(), 2);
        assert!(seats.iter().all(|s| s.version == 3));
    }

    #[test]
    fn one_seat_gone_refuses_all_of_them_and_names_it() {
        let read = read(vec![
            seat("12A", Standing::Free),
            seat("12B", Standing::Taken),
        ]);

        let decided = refusal(decide(&explicit(&["12A", "12B"]), &read, &[], 0));

        assert_eq!(
            decided,
            (FailureReason::SeatUnavailable, vec!["12B".into()])
        );
    }

    #[test]
    fn a_missing_seat_comes_before_a_taken_one() {
        let read = read(vec![seat("12A", Standing::Taken)]);

        let decided = refusal(decide(&explicit(&["12A", "40A"]), &read, &[], 0));

        assert_eq!(decided, (FailureReason::SeatNotFound, vec!["40A".into()]));
    }

    #[test]
    fn only_a_scheduled_flight_is_decided_on_its_seats() {
        let mut cancelled = read(Vec::new());
        cancelled.flight = Some(FlightStatus::Cancelled);
        let mut missing = read(Vec::new());
        missing.flight = None;
        let mut departed = read(Vec::new());
        departed.flight = Some(FlightStatus::Departed);
        let order = explicit(&["1A"]);

        assert_eq!(
            refusal(decide(&order, &cancelled, &[], 0)).0,
            FailureReason::FlightCancelled
        );
        assert_eq!(
            refusal(decide(&order, &missing, &[], 0)).0,
            FailureReason::FlightNotFound
        );
        assert_eq!(
            refusal(decide(&order, &departed, &[], 0)).0,
            FailureReason::FlightDeparted
        );
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

        let first = taken(decide(&any(2), &read, &lost, 1));
        let everything_lost: Vec<Uuid> = read.seats.iter().map(|s| s.seat_id).collect();
        let still = taken(decide(&any(2), &read, &everything_lost, 1));

        assert_eq!(first, vec!["11A", "11B"]);
        assert_eq!(
            still.len(),
            2,
            "a lost race never makes an order INSUFFICIENT"
        );
        assert_eq!(
            refusal(decide(&any(5), &read, &[], 0)).0,
            FailureReason::InsufficientSeats
        );
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
