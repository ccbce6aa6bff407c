//! Flights from the schedule: opened with every seat in one transaction, cancelled with
//! every hold and sale given back (in bounded batches, finished by the schedule if the
//! invocation runs out of time), and deleted once long departed.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::InventoryError;
use super::lifecycle::release_order;
use super::sql::Order;
use crate::db::{Function, Session};
use crate::domain::{
    CabinSeats, FlightId, FlightInventoryClosed, FlightInventoryOpened, OutgoingEvent,
    ReleaseReason,
};
use crate::inbound::{CancelFlight, OpenFlight};

const OPEN_FLIGHT: Function = Function::named("inventory_open_flight");
const CANCEL_FLIGHT: Function = Function::named("inventory_cancel_flight");
const READ_FLIGHT_ORDERS: Function = Function::named("inventory_read_flight_orders");
const CLOSE_FLIGHT: Function = Function::named("inventory_close_flight");
const CANCELLED_OPEN_FLIGHTS: Function = Function::named("inventory_cancelled_open_flights");
const RETIRE: Function = Function::named("inventory_retire");

/// Orders read per batch of a cancellation.
const CANCELLATION_BATCH: i64 = 50;
/// A cancellation stops taking batches when the invocation has less than this left, to
/// publish what it released; the schedule goes on from there.
const KEEP_FOR_PUBLISHING: Duration = Duration::from_millis(1_500);
/// Cancelled flights the schedule reads per run (each one that can make progress).
const OPEN_CANCELLATIONS_PER_RUN: i64 = 100;
/// Rows deleted per retention call, and calls per run.
const RETIRE_PER_CALL: i64 = 1_000;
const RETIRE_CALLS_PER_RUN: usize = 20;

/// What `FlightScheduled` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    /// The flight and its seats exist now; this answer is queued.
    Opened(OutgoingEvent),
    /// The same schedule was applied before: its answer again.
    Replayed(OutgoingEvent),
    /// The flight exists with other content (or was loaded without a schedule).
    Conflict,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Open<'a> {
    flight: Flight<'a>,
    fingerprint: String,
    seats: Vec<NewSeat<'a>>,
    event: &'a OutgoingEvent,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Flight<'a> {
    flight_id: Uuid,
    flight_code: &'a str,
    origin_iata: &'a str,
    destination_iata: &'a str,
    departure_utc: chrono::DateTime<chrono::Utc>,
    arrival_utc: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewSeat<'a> {
    seat_number: &'a str,
    cabin: crate::domain::Cabin,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
enum OpenOutcome {
    Opened,
    Replayed { event: OutgoingEvent },
    Conflict,
}

/// `FlightScheduled`: the flight and every seat, in one transaction, answered once.
pub async fn open(
    session: &mut Session<'_>,
    request: &OpenFlight,
) -> Result<Opening, InventoryError> {
    let schedule = &request.schedule;
    let counts = schedule.seat_counts();
    let event = FlightInventoryOpened {
        event_id: Uuid::new_v4(),
        flight_id: schedule.flight_id,
        seats: counts.iter().map(|(_, seats)| seats).sum(),
        cabins: counts
            .iter()
            .map(|(cabin, seats)| CabinSeats {
                cabin: *cabin,
                seats: *seats,
            })
            .collect(),
        causation_id: request.causation_id.clone(),
    }
    .to_event()?;
    let seats = schedule.seats();
    let open = Open {
        flight: Flight {
            flight_id: schedule.flight_id.as_uuid(),
            flight_code: schedule.flight_code.as_str(),
            origin_iata: schedule.origin.as_str(),
            destination_iata: schedule.destination.as_str(),
            departure_utc: schedule.departure,
            arrival_utc: schedule.arrival,
        },
        fingerprint: schedule.fingerprint(),
        seats: seats
            .iter()
            .map(|(seat, cabin)| NewSeat {
                seat_number: seat.as_str(),
                cabin: *cabin,
            })
            .collect(),
        event: &event,
    };
    Ok(match session.write(OPEN_FLIGHT, &open).await? {
        OpenOutcome::Opened => Opening::Opened(event),
        OpenOutcome::Replayed { event } => Opening::Replayed(event),
        OpenOutcome::Conflict => Opening::Conflict,
    })
}

/// What a cancellation did so far.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cancellation {
    /// One `SeatReleased` per order released now.
    pub released: Vec<OutgoingEvent>,
    /// `FlightInventoryClosed`, once nothing is live on the flight (now or before).
    pub closed: Option<OutgoingEvent>,
    /// Orders set aside: the flight stays open until they are repaired.
    pub quarantined: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
enum Marked {
    Cancelled,
    Missing,
}

/// `FlightCancelled`: marks the flight cancelled, then releases what it can in the time
/// the invocation has.
pub async fn cancel(
    session: &mut Session<'_>,
    request: &CancelFlight,
) -> Result<Cancellation, InventoryError> {
    let marked: Marked = session
        .write(
            CANCEL_FLIGHT,
            &serde_json::json!({"flightId": request.flight_id.as_uuid(), "reason": request.reason}),
        )
        .await?;
    if let Marked::Missing = marked {
        return Err(InventoryError::UnknownFlight(request.flight_id.as_uuid()));
    }
    release_cancelled(session, request.flight_id, &request.causation_id).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlightOrders {
    closed: Option<OutgoingEvent>,
    orders_released: u64,
    quarantined: u64,
    orders: Vec<Order>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
enum CloseOutcome {
    Closed,
    ClosedBefore { event: OutgoingEvent },
    NotYet,
}

/// Releases the holds and sales of a cancelled flight, order by order, while the
/// invocation has time, and closes the flight once nothing is live on it.
async fn release_cancelled(
    session: &mut Session<'_>,
    flight_id: FlightId,
    causation_id: &str,
) -> Result<Cancellation, InventoryError> {
    let mut cancellation = Cancellation::default();
    loop {
        if session.deadline().remaining() < KEEP_FOR_PUBLISHING {
            tracing::info!(
                released = cancellation.released.len(),
                "the cancellation goes on in the next schedule run"
            );
            return Ok(cancellation);
        }
        let batch = release_batch(session, flight_id, causation_id).await?;
        cancellation.released.extend(batch.released);
        cancellation.quarantined = batch.quarantined;
        if batch.closed.is_some() || !batch.progressed {
            // Closed, or every order left changed under us or is set aside: the next
            // run reads again.
            cancellation.closed = batch.closed;
            return Ok(cancellation);
        }
    }
}

/// One batch of a cancellation.
struct Batch {
    released: Vec<OutgoingEvent>,
    closed: Option<OutgoingEvent>,
    quarantined: usize,
    /// Released an order: another batch may find more.
    progressed: bool,
}

/// Reads the next orders of a cancelled flight to release (never a quarantined one) and
/// releases them; with none left, closes the flight if nothing live is left on it.
async fn release_batch(
    session: &mut Session<'_>,
    flight_id: FlightId,
    causation_id: &str,
) -> Result<Batch, InventoryError> {
    let read: FlightOrders = session
        .read(
            READ_FLIGHT_ORDERS,
            &serde_json::json!({"flightId": flight_id.as_uuid(), "limit": CANCELLATION_BATCH}),
        )
        .await?;
    let mut batch = Batch {
        released: Vec::new(),
        closed: read.closed,
        quarantined: read.quarantined as usize,
        progressed: false,
    };
    if batch.closed.is_some() {
        return Ok(batch);
    }
    if read.orders.is_empty() {
        batch.closed = close(session, flight_id, read.orders_released, causation_id).await?;
        return Ok(batch);
    }
    for order in &read.orders {
        if let Some(event) =
            release_order(session, order, ReleaseReason::FlightCancelled, causation_id).await?
        {
            batch.progressed = true;
            batch.released.push(event);
        }
    }
    Ok(batch)
}

async fn close(
    session: &mut Session<'_>,
    flight_id: FlightId,
    orders_released: u64,
    causation_id: &str,
) -> Result<Option<OutgoingEvent>, InventoryError> {
    let event = FlightInventoryClosed {
        event_id: Uuid::new_v4(),
        flight_id,
        orders_released,
        causation_id: causation_id.to_owned(),
    }
    .to_event()?;
    let closed: CloseOutcome = session
        .write(
            CLOSE_FLIGHT,
            &serde_json::json!({"flightId": flight_id.as_uuid(), "event": &event}),
        )
        .await?;
    Ok(match closed {
        CloseOutcome::Closed => Some(event),
        CloseOutcome::ClosedBefore { event } => Some(event),
        CloseOutcome::NotYet => None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenCancellations {
    /// Cancelled flights that can make progress, oldest cancellation first.
    flights: Vec<Uuid>,
    /// Cancelled flights only quarantined orders hold open.
    held_by_quarantine: u64,
}

/// The schedule finishes cancellations an invocation ran out of time for: the
/// `SeatReleased` of the orders it released and the `FlightInventoryClosed` of the flights
/// it closed. Every cancelled flight that can make progress gets one batch per round, in
/// turn, while time lasts, so none waits behind another; flights that only quarantined
/// orders hold open are counted, not read.
pub async fn finish_cancellations(
    session: &mut Session<'_>,
    causation_id: &str,
) -> Result<Vec<OutgoingEvent>, InventoryError> {
    let open: OpenCancellations = session
        .read(
            CANCELLED_OPEN_FLIGHTS,
            &serde_json::json!({"limit": OPEN_CANCELLATIONS_PER_RUN}),
        )
        .await?;
    crate::metrics::cancellations_held_by_quarantine(open.held_by_quarantine);
    if open.held_by_quarantine > 0 {
        tracing::warn!(
            flights = open.held_by_quarantine,
            "cancelled flights held open by quarantined orders alone; see `quarantine list`"
        );
    }
    let mut events = Vec::new();
    let mut waiting: Vec<FlightId> = open.flights.into_iter().map(FlightId::from).collect();
    while !waiting.is_empty() && session.deadline().remaining() >= KEEP_FOR_PUBLISHING {
        let mut still_waiting = Vec::new();
        for flight in waiting {
            let done = release_batch(session, flight, causation_id).await?;
            events.extend(done.released);
            if done.closed.is_some() {
                events.extend(done.closed);
            } else if done.progressed {
                still_waiting.push(flight);
            }
        }
        waiting = still_waiting;
    }
    Ok(events)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Retired {
    deleted: u64,
    /// Departed flights past retention left alone, by what is unfinished on them.
    skipped: std::collections::BTreeMap<String, u64>,
}

/// Deletes the flights that departed more than `retention_days` ago, rows and all, oldest
/// first, in short bounded calls. Returns how many rows went.
pub async fn retire(session: &mut Session<'_>, retention_days: u32) -> Result<u64, InventoryError> {
    let mut deleted = 0;
    for _ in 0..RETIRE_CALLS_PER_RUN {
        if session.deadline().remaining() < KEEP_FOR_PUBLISHING {
            break;
        }
        let retired: Retired = session
            .write(
                RETIRE,
                &serde_json::json!({"retentionDays": retention_days, "limit": RETIRE_PER_CALL}),
            )
            .await?;
        deleted += retired.deleted;
        if retired.deleted == 0 {
            let skipped: u64 = retired.skipped.values().sum();
            crate::metrics::retention_skipped(skipped);
            if skipped > 0 {
                tracing::warn!(flights = skipped, reasons = ?retired.skipped, "retention skipped unfinished departed flights");
            }
            break;
        }
    }
    Ok(deleted)
}
