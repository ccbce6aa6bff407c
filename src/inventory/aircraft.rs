//! Aircraft swaps: a flight gets a new cabin layout (`inventory_change_aircraft`, migration
//! 0017) while orders hold and own its seats. Every hold or sale on a seat the new layout
//! lacks is moved within its cabin, the order's seats together, in one row where the
//! layout allows, else as close as can be (planned here, written per order by
//! `inventory_reassign_order` on the seat rules); an order its cabin has no room for is
//! released. This runs in bounded batches within the invocation's time, and the schedule
//! finishes what is left, as it does a cancellation.

use std::collections::BTreeMap;
use std::time::Duration;

use uuid::Uuid;

use super::InventoryError;
use super::lifecycle::release_order_for;
use super::sql::{
    self, AircraftChanged, ChangeAircraftCall, DisplacedHold, DisplacedOrder, Displacement,
    Finished, FreeSeat, LayoutSeat, ReassignCall, Reassigned, Reassignment,
};
use crate::db::Session;
use crate::domain::{AircraftChangeProblem, Cabin, FlightId, OutgoingEvent, ReleaseReason};
use crate::inbound::ChangeAircraft;

/// Orders read per batch of a change.
const BATCH: i64 = 20;
/// A change stops taking batches when the invocation has less than this left, to publish
/// what it did; the schedule goes on from there.
const KEEP_FOR_PUBLISHING: Duration = Duration::from_millis(1_500);
/// Open changes the schedule goes on with per run.
const OPEN_CHANGES_PER_RUN: i64 = 20;

/// What an `AircraftChanged` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LayoutChange {
    /// `SeatsReassigned` of the orders moved now.
    pub moved: Vec<OutgoingEvent>,
    /// `SeatReleased` (`AIRCRAFT_CHANGED`) of the orders released now.
    pub released: Vec<OutgoingEvent>,
    /// `FlightLayoutChanged`, once nothing is left to move (now or before).
    pub finished: Option<OutgoingEvent>,
}

/// How an `AircraftChanged` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum AircraftChange {
    /// Applied now or before, with what was moved so far.
    Applied(LayoutChange),
    /// Not applied, for this reason.
    Rejected(AircraftChangeProblem),
    /// Another change of the flight is still being applied.
    Busy,
    /// The change id was used before for another change.
    Conflict,
}

/// `AircraftChanged`: the new layout, then as many orders moved as time allows.
pub async fn change_aircraft(
    session: &mut Session<'_>,
    request: &ChangeAircraft,
) -> Result<AircraftChange, InventoryError> {
    let fingerprint = request.fingerprint();
    let seats = request.layout.seats();
    let call = ChangeAircraftCall {
        change_id: request.change_id.as_uuid(),
        flight_id: request.flight_id.as_uuid(),
        fingerprint: &fingerprint,
        causation_id: &request.causation_id,
        event_id: Uuid::new_v4(),
        seats: seats
            .iter()
            .map(|(seat, cabin)| LayoutSeat {
                seat_number: seat.as_str(),
                cabin: *cabin,
            })
            .collect(),
    };
    let finished = match session.write(sql::CHANGE_AIRCRAFT, &call).await? {
        AircraftChanged::Applied { finished } => finished,
        AircraftChanged::Earlier {
            fingerprint: earlier,
            finished,
        } => {
            if earlier != fingerprint {
                return Ok(AircraftChange::Conflict);
            }
            finished
        }
        AircraftChanged::Busy => return Ok(AircraftChange::Busy),
        AircraftChanged::Missing => {
            return Ok(AircraftChange::Rejected(
                AircraftChangeProblem::FlightNotFound,
            ));
        }
        AircraftChanged::Cancelled => {
            return Ok(AircraftChange::Rejected(
                AircraftChangeProblem::FlightCancelled,
            ));
        }
        AircraftChanged::Departed => {
            return Ok(AircraftChange::Rejected(
                AircraftChangeProblem::FlightDeparted,
            ));
        }
    };
    if finished.is_some() {
        return Ok(AircraftChange::Applied(LayoutChange {
            finished,
            ..LayoutChange::default()
        }));
    }
    Ok(AircraftChange::Applied(
        move_displaced(session, request.flight_id).await?,
    ))
}

/// The schedule's part: every open change goes on where it stopped.
pub async fn finish_aircraft_changes(
    session: &mut Session<'_>,
) -> Result<Vec<OutgoingEvent>, InventoryError> {
    let flights: Vec<Uuid> = session
        .read(
            sql::OPEN_AIRCRAFT_CHANGES,
            &serde_json::json!({"limit": OPEN_CHANGES_PER_RUN}),
        )
        .await?;
    let mut events = Vec::new();
    for flight in flights {
        if session.deadline().remaining() < KEEP_FOR_PUBLISHING {
            break;
        }
        let change = move_displaced(session, FlightId::from(flight)).await?;
        events.extend(change.moved);
        events.extend(change.released);
        events.extend(change.finished);
    }
    Ok(events)
}

/// Moves (or releases) the orders on seats out of the flight's layout, batch after batch
/// while time allows, then finishes the change if nothing is left.
async fn move_displaced(
    session: &mut Session<'_>,
    flight_id: FlightId,
) -> Result<LayoutChange, InventoryError> {
    let mut change = LayoutChange::default();
    let flight = flight_id.as_uuid();
    loop {
        if session.deadline().remaining() < KEEP_FOR_PUBLISHING {
            return Ok(change);
        }
        let read: Option<Displacement> = session
            .read(
                sql::READ_DISPLACED,
                &serde_json::json!({"flightId": flight, "limit": BATCH}),
            )
            .await?;
        let Some(read) = read else {
            break;
        };
        if read.orders.is_empty() {
            break;
        }
        let mut free = read.free;
        let mut progress = false;
        for DisplacedOrder { order, displaced } in &read.orders {
            if session.deadline().remaining() < KEEP_FOR_PUBLISHING {
                return Ok(change);
            }
            let Some(moves) = place(displaced, &free) else {
                let released = release_order_for(
                    session,
                    order,
                    ReleaseReason::AircraftChanged,
                    &read.causation_id,
                    Some(read.change_id),
                )
                .await?;
                let freed = released.is_some();
                change.released.extend(released);
                if freed {
                    // Its seats are free now: plan the next orders on a new read.
                    progress = true;
                    break;
                }
                continue;
            };
            let call = ReassignCall {
                change_id: read.change_id,
                order_id: order.order_id,
                flight_id: flight,
                event_id: Uuid::new_v4(),
                moves: moves
                    .iter()
                    .map(|(from, to)| Reassignment {
                        lock_id: displaced[*from].lock_id,
                        from_id: displaced[*from].seat_id,
                        from_version: displaced[*from].version,
                        to_id: free[*to].seat_id,
                        to_version: free[*to].version,
                        status: displaced[*from].status,
                    })
                    .collect(),
            };
            match session.write(sql::REASSIGN_ORDER, &call).await? {
                Reassigned::Moved { event } => {
                    progress = true;
                    change.moved.push(event);
                    let mut taken: Vec<usize> = moves.iter().map(|(_, to)| *to).collect();
                    taken.sort_unstable_by(|a, b| b.cmp(a));
                    for at in taken {
                        free.swap_remove(at);
                    }
                }
                // Read again in the next batch (a seat or the order changed meanwhile);
                // a cancelled flight's orders are its cancellation's to release.
                Reassigned::Changed | Reassigned::Cancelled => {}
            }
        }
        if !progress {
            // Nothing moved this round (all lost races, or cancellation's to release):
            // the next invocation or the schedule goes on.
            break;
        }
    }
    let finished: Finished = session
        .write(
            sql::FINISH_AIRCRAFT_CHANGE,
            &serde_json::json!({"flightId": flight, "eventId": Uuid::new_v4()}),
        )
        .await?;
    change.finished = finished.finished;
    Ok(change)
}

/// Where an order's displaced seats go: for each, an index into `free`, as (displaced,
/// free) pairs; `None` when a cabin has too few free seats. The seats of one cabin go
/// together: side by side in one row, the nearest such row to where they were (and in it
/// the run nearest their letters); otherwise the nearest free seats, same row first, then
/// neighbouring rows.
fn place(displaced: &[DisplacedHold], free: &[FreeSeat]) -> Option<Vec<(usize, usize)>> {
    let mut by_cabin: BTreeMap<u8, (Cabin, Vec<usize>)> = BTreeMap::new();
    for (at, hold) in displaced.iter().enumerate() {
        by_cabin
            .entry(cabin_rank(hold.cabin))
            .or_insert((hold.cabin, Vec::new()))
            .1
            .push(at);
    }
    let mut moves = Vec::with_capacity(displaced.len());
    for (cabin, mut holds) in by_cabin.into_values() {
        holds.sort_by_key(|&at| {
            let seat = &displaced[at].seat_number;
            (seat.row(), seat.letter())
        });
        let anchor = displaced[holds[0]].seat_number.row();
        let letters: Vec<u8> = holds
            .iter()
            .map(|&at| displaced[at].seat_number.letter())
            .collect();
        let candidates: Vec<usize> = (0..free.len())
            .filter(|&at| free[at].cabin == cabin)
            .collect();
        let targets = side_by_side(free, &candidates, &letters, anchor)
            .or_else(|| nearest(free, &candidates, &letters, anchor))?;
        moves.extend(holds.into_iter().zip(targets));
    }
    Some(moves)
}

fn cabin_rank(cabin: Cabin) -> u8 {
    match cabin {
        Cabin::First => 0,
        Cabin::Business => 1,
        Cabin::PremiumEconomy => 2,
        Cabin::Economy => 3,
    }
}

/// As many free seats as `letters`, with consecutive letters in one row: the row nearest
/// `anchor` first (the lower one on a tie), and in it the run nearest `letters`.
fn side_by_side(
    free: &[FreeSeat],
    candidates: &[usize],
    letters: &[u8],
    anchor: u8,
) -> Option<Vec<usize>> {
    let count = letters.len();
    let mut rows: BTreeMap<(u8, u8), Vec<usize>> = BTreeMap::new();
    for &at in candidates {
        let row = free[at].seat_number.row();
        rows.entry((row.abs_diff(anchor), row))
            .or_default()
            .push(at);
    }
    rows.into_values().find_map(|mut seats| {
        seats.sort_by_key(|&at| free[at].seat_number.letter());
        seats
            .windows(count)
            .filter(|run| {
                run.windows(2).all(|pair| {
                    free[pair[1]].seat_number.letter() == free[pair[0]].seat_number.letter() + 1
                })
            })
            .min_by_key(|run| {
                run.iter()
                    .zip(letters)
                    .map(|(&at, &letter)| u32::from(free[at].seat_number.letter().abs_diff(letter)))
                    .sum::<u32>()
            })
            .map(<[usize]>::to_vec)
    })
}

/// As many free seats as `letters` nearest `anchor`'s row: same row first, then
/// neighbouring rows, and in a row the seats nearest the first letter.
fn nearest(
    free: &[FreeSeat],
    candidates: &[usize],
    letters: &[u8],
    anchor: u8,
) -> Option<Vec<usize>> {
    let count = letters.len();
    if candidates.len() < count {
        return None;
    }
    let first = letters.first().copied().unwrap_or(b'A');
    let mut sorted = candidates.to_vec();
    sorted.sort_by_key(|&at| {
        let seat = &free[at].seat_number;
        (
            seat.row().abs_diff(anchor),
            seat.row(),
            seat.letter().abs_diff(first),
            seat.letter(),
        )
    });
    sorted.truncate(count);
    Some(sorted)
}

#[cfg(test)]
mod tests {
    use crate::domain::{HoldStatus, SeatNumber};

    use super::*;

    fn seat(number: &str) -> SeatNumber {
        SeatNumber::parse(number).unwrap_or_else(|| unreachable!("{number} is a seat"))
    }

    fn held(numbers: &[&str], cabin: Cabin) -> Vec<DisplacedHold> {
        numbers
            .iter()
            .enumerate()
            .map(|(n, number)| DisplacedHold {
                lock_id: n as i64,
                seat_id: Uuid::new_v4(),
                seat_number: seat(number),
                cabin,
                version: 2,
                status: HoldStatus::Active,
            })
            .collect()
    }

    fn free(numbers: &[&str], cabin: Cabin) -> Vec<FreeSeat> {
        numbers
            .iter()
            .map(|number| FreeSeat {
                seat_id: Uuid::new_v4(),
                seat_number: seat(number),
                cabin,
                version: 1,
            })
            .collect()
    }

    fn placed(displaced: &[DisplacedHold], free: &[FreeSeat]) -> Option<Vec<String>> {
        place(displaced, free).map(|moves| {
            moves
                .iter()
                .map(|(from, to)| {
                    format!("{}>{}", displaced[*from].seat_number, free[*to].seat_number)
                })
                .collect()
        })
    }

    #[test]
    fn a_group_goes_side_by_side_in_the_nearest_row_that_has_room() {
        let displaced = held(&["30A", "30B", "30C"], Cabin::Economy);
        // Row 29 has three free seats but not together; row 27 has them together.
        let seats = free(
            &["29A", "29C", "29E", "27B", "27C", "27D", "31A", "31B"],
            Cabin::Economy,
        );

        assert_eq!(
            placed(&displaced, &seats),
            Some(vec!["30A>27B".into(), "30B>27C".into(), "30C>27D".into()])
        );
    }

    #[test]
    fn without_a_row_for_the_group_the_nearest_seats_are_taken_same_row_first() {
        let displaced = held(&["30A", "30B"], Cabin::Economy);
        let seats = free(&["30F", "25A", "29D", "31C"], Cabin::Economy);

        assert_eq!(
            placed(&displaced, &seats),
            Some(vec!["30A>30F".into(), "30B>29D".into()])
        );
    }

    #[test]
    fn a_seat_never_goes_to_another_cabin_and_no_room_is_none() {
        let displaced = held(&["3A", "3B"], Cabin::Business);
        let mut seats = free(&["3C"], Cabin::Business);
        seats.extend(free(&["10A", "10B"], Cabin::Economy));

        assert_eq!(placed(&displaced, &seats), None);
        seats.extend(free(&["2A"], Cabin::Business));
        assert_eq!(
            placed(&displaced, &seats),
            Some(vec!["3A>3C".into(), "3B>2A".into()])
        );
    }
}
