//! What must hold after every step, whatever the interleaving: each check is a named
//! function returning its violations, from the tables (SQL) and from everything the
//! service published (the model).

use std::collections::{BTreeMap, HashMap, HashSet};

use aeronode_inventory::domain::{DetailType, OutgoingEvent};
use aeronode_inventory::handler::Handled;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::Instance;
use super::world::{World, get_seats};

/// A broken invariant: its name and what breaks it.
#[derive(Debug, Clone)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

fn violations(invariant: &'static str, details: Vec<String>) -> Vec<Violation> {
    details
        .into_iter()
        .map(|detail| Violation { invariant, detail })
        .collect()
}

/// What the checks remember between steps: everything published, by order and flight,
/// and every undelivered entry and quarantined order ever seen.
#[derive(Default)]
pub struct Memory {
    cursor: usize,
    published: HashSet<Uuid>,
    reservation_answers: HashMap<Uuid, BTreeMap<Uuid, String>>,
    booking_answers: HashMap<Uuid, BTreeMap<Uuid, String>>,
    releases: HashMap<Uuid, HashSet<Uuid>>,
    closings: HashMap<Uuid, HashSet<Uuid>>,
    /// Requests of operations: requestId → the answers published for it (event ids).
    request_answers: HashMap<Uuid, BTreeMap<Uuid, String>>,
    /// (seatId, version) → the order a SeatReserved gave it to.
    taken_at: HashMap<(String, i64), Uuid>,
    /// Two orders told they reserved one seat at one version.
    double_reservations: Vec<String>,
    /// SeatReserved answers for orders first sent after their flight's cancellation.
    reserved_after_cancellation: Vec<String>,
    /// Outbox entries seen PENDING or PARKED and not published, with the state seen.
    undelivered: HashMap<Uuid, String>,
    quarantined: HashSet<Uuid>,
}

impl Memory {
    /// Takes in what the bus accepted since the last call.
    pub fn absorb(&mut self, log: &[OutgoingEvent], world: &World) {
        for event in &log[self.cursor.min(log.len())..] {
            self.published.insert(event.event_id);
            self.undelivered.remove(&event.event_id);
            let detail: Value = serde_json::from_str(&event.detail).unwrap_or(Value::Null);
            let id_of = |field: &str| {
                detail[field]
                    .as_str()
                    .and_then(|raw| Uuid::parse_str(raw).ok())
            };
            let answer = format!("{} {}", event.detail_type.as_str(), detail["reason"]);
            match event.detail_type {
                DetailType::SeatReserved | DetailType::SeatReservationFailed => {
                    let Some(order) = id_of("orderId") else {
                        continue;
                    };
                    self.reservation_answers
                        .entry(order)
                        .or_default()
                        .insert(event.event_id, answer);
                    if event.detail_type == DetailType::SeatReserved {
                        self.note_reserved(order, &detail, id_of("flightId"), world);
                    }
                }
                DetailType::SeatBooked | DetailType::SeatBookingFailed => {
                    if let Some(order) = id_of("orderId") {
                        self.booking_answers
                            .entry(order)
                            .or_default()
                            .insert(event.event_id, answer);
                    }
                }
                DetailType::SeatReleased => {
                    if let Some(order) = id_of("orderId") {
                        self.releases
                            .entry(order)
                            .or_default()
                            .insert(event.event_id);
                    }
                }
                DetailType::FlightInventoryClosed => {
                    if let Some(flight) = id_of("flightId") {
                        self.closings
                            .entry(flight)
                            .or_default()
                            .insert(event.event_id);
                    }
                }
                DetailType::SeatsChanged | DetailType::SeatChangeFailed => {
                    if let Some(change) = id_of("changeId") {
                        self.request_answers
                            .entry(change)
                            .or_default()
                            .insert(event.event_id, answer);
                    }
                    if let (DetailType::SeatsChanged, Some(order)) =
                        (event.detail_type, id_of("orderId"))
                    {
                        self.note_taken(order, &detail);
                    }
                }
                DetailType::SeatsBlocked
                | DetailType::SeatBlockFailed
                | DetailType::SeatsUnblocked
                | DetailType::SeatUnblockFailed => {
                    if let Some(request) = id_of("requestId") {
                        self.request_answers
                            .entry(request)
                            .or_default()
                            .insert(event.event_id, answer);
                    }
                }
                DetailType::SeatsReassigned => {
                    if let Some(order) = id_of("orderId") {
                        self.note_taken(order, &serde_json::json!({"seats": detail["moves"]}));
                    }
                }
                DetailType::FlightLayoutChanged => {
                    if let Some(change) = id_of("changeId") {
                        self.request_answers
                            .entry(change)
                            .or_default()
                            .insert(event.event_id, answer);
                    }
                }
                DetailType::FlightInventoryOpened
                | DetailType::FlightScheduleRejected
                | DetailType::AircraftChangeRejected => {}
            }
        }
        self.cursor = log.len();
    }

    fn note_reserved(&mut self, order: Uuid, detail: &Value, flight: Option<Uuid>, world: &World) {
        self.note_taken(order, detail);
        let flight = flight.and_then(|id| world.flight_index(id));
        let cancelled = flight.and_then(|i| world.flights[i].cancelled_at_step);
        let first = world.first_ordered_at.get(&order);
        if let (Some(cancelled), Some(first)) = (cancelled, first)
            && *first > cancelled
        {
            self.reserved_after_cancellation.push(format!(
                "order {order} (first sent at step {first}) got SeatReserved on {} cancelled at step {cancelled}",
                world.flights[flight.unwrap_or_default()].label
            ));
        }
    }

    /// The seats an answer (SeatReserved, SeatsChanged) gives an order, each at a version:
    /// no other order may ever be given one of them at the same version.
    fn note_taken(&mut self, order: Uuid, detail: &Value) {
        for seat in detail["seats"].as_array().into_iter().flatten() {
            let key = (
                seat["seatId"].as_str().unwrap_or_default().to_owned(),
                seat["version"].as_i64().unwrap_or_default(),
            );
            let holder = *self.taken_at.entry(key.clone()).or_insert(order);
            if holder != order {
                self.double_reservations.push(format!(
                    "seat {} at version {} given to orders {holder} and {order}",
                    key.0, key.1
                ));
            }
        }
    }
}

/// Every check of a step, in order.
pub async fn check_step(
    db: &PgPool,
    memory: &mut Memory,
    world: &mut World,
    reader: &Instance,
    maps: Maps,
) -> Vec<Violation> {
    let mut found = Vec::new();
    found.extend(seats_match_their_holds(db).await);
    found.extend(one_claim_per_seat_at_a_time(db, memory).await);
    found.extend(one_answer_of_each_kind_per_order(memory, world));
    found.extend(one_answer_per_request(memory));
    found.extend(blocks_are_all_or_nothing(db).await);
    found.extend(nothing_is_left_out_of_a_finished_layout(db).await);
    found.extend(closed_flights_hold_nothing(db, memory).await);
    found.extend(nothing_undelivered_or_quarantined_is_deleted(db, memory).await);
    found.extend(seat_maps_match_what_a_reservation_would_get(db, world, reader, maps).await);
    found
}

/// The checks that hold once every hold is past expiry and housekeeping has run to quiet.
pub async fn check_end(db: &PgPool, memory: &Memory, world: &World) -> Vec<Violation> {
    let mut found = Vec::new();
    found.extend(every_reserved_order_ends_in_one_story(db, memory, world).await);
    found.extend(every_cancelled_flight_closes(db, world).await);
    found.extend(every_aircraft_change_finishes(db).await);
    found
}

/// Which seat maps a step reads: every flight's, or (to keep a step cheap) one flight's
/// in turn.
#[derive(Clone, Copy)]
pub enum Maps {
    All,
    InTurn(usize),
}

/// 1. Each LOCKED seat has exactly one ACTIVE hold, each BOOKED seat exactly one CONFIRMED
///    hold, each AVAILABLE seat none.
pub async fn seats_match_their_holds(db: &PgPool) -> Vec<Violation> {
    let broken: Vec<String> = sqlx::query_scalar(
        "SELECT s.flight_id || ' ' || s.seat_number || ' ' || s.status::text
                || ' active ' || count(*) FILTER (WHERE l.status = 'ACTIVE')
                || ' confirmed ' || count(*) FILTER (WHERE l.status = 'CONFIRMED')
         FROM flight_seats s
         LEFT JOIN inventory_locks l ON l.seat_id = s.seat_id
         GROUP BY s.seat_id, s.flight_id, s.seat_number, s.status
         HAVING count(*) FILTER (WHERE l.status = 'ACTIVE')
                    <> CASE WHEN s.status = 'LOCKED' THEN 1 ELSE 0 END
             OR count(*) FILTER (WHERE l.status = 'CONFIRMED')
                    <> CASE WHEN s.status = 'BOOKED' THEN 1 ELSE 0 END",
    )
    .fetch_all(db)
    .await
    .expect("the consistency query runs");
    violations("seats_match_their_holds", broken)
}

/// 1b. A request of operations has one answer, ever: every delivery of it published the
///     same event.
pub fn one_answer_per_request(memory: &Memory) -> Vec<Violation> {
    let broken = memory
        .request_answers
        .iter()
        .filter(|(_, answers)| answers.len() > 1)
        .map(|(request, answers)| format!("request {request} answered {answers:?}"))
        .collect();
    violations("one_answer_per_request", broken)
}

/// 1c. A block is all or nothing: every BLOCKED seat was blocked by a request answered
///     SeatsBlocked, at the version that answer gave it; and every seat a SeatsBlocked
///     names is, at that version, blocked by that request (a later version means it was
///     unblocked since).
pub async fn blocks_are_all_or_nothing(db: &PgPool) -> Vec<Violation> {
    let broken: Vec<String> = sqlx::query_scalar(
        "SELECT s.flight_id || ' ' || s.seat_number || ' is BLOCKED at version ' || s.version
                || ' by ' || COALESCE(r.outcome_detail_type, 'no request')
         FROM flight_seats s
         LEFT JOIN seat_requests r ON r.request_id = s.blocked_by
         WHERE s.status = 'BLOCKED'
           AND (r.request_id IS NULL OR r.outcome_detail_type <> 'SeatsBlocked'
                OR NOT EXISTS (
                    SELECT 1 FROM json_array_elements(r.outcome_detail::json -> 'seats') AS e
                    WHERE (e ->> 'seatId')::uuid = s.seat_id
                      AND (e ->> 'version')::integer = s.version))
         UNION ALL
         SELECT 'request ' || r.request_id || ' blocked ' || s.seat_number || ' at version '
                || s.version || ', which is ' || s.status::text
         FROM seat_requests r
         CROSS JOIN LATERAL json_array_elements(r.outcome_detail::json -> 'seats') AS e
         JOIN flight_seats s ON s.seat_id = (e ->> 'seatId')::uuid
         WHERE r.outcome_detail_type = 'SeatsBlocked'
           AND s.version = (e ->> 'version')::integer
           AND (s.status <> 'BLOCKED' OR s.blocked_by IS DISTINCT FROM r.request_id)",
    )
    .fetch_all(db)
    .await
    .expect("the block query runs");
    violations("blocks_are_all_or_nothing", broken)
}

/// 1d. No hold or sale is left on a seat out of its flight's layout once the flight has no
///     aircraft change in progress (unless the flight departed first: its change is then
///     finished as it stands), and no seat out of the layout is ever free.
pub async fn nothing_is_left_out_of_a_finished_layout(db: &PgPool) -> Vec<Violation> {
    let broken: Vec<String> = sqlx::query_scalar(
        "SELECT s.flight_id || ' ' || s.seat_number || ' is out of the layout, yet '
                || l.status::text || ' by ' || l.order_id
         FROM flight_seats s JOIN inventory_locks l ON l.seat_id = s.seat_id
         JOIN flights f ON f.flight_id = s.flight_id
         WHERE NOT s.in_layout AND l.status IN ('ACTIVE', 'CONFIRMED')
           AND inventory_flight_status(f.state, f.departure_utc) <> 'DEPARTED'
           AND NOT EXISTS (SELECT 1 FROM aircraft_changes c
                           WHERE c.flight_id = s.flight_id AND c.finished_at IS NULL)
         UNION ALL
         SELECT s.flight_id || ' ' || s.seat_number || ' is out of the layout, yet FREE'
         FROM inventory_seat_standing s WHERE NOT s.in_layout AND s.standing <> 'TAKEN'",
    )
    .fetch_all(db)
    .await
    .expect("the layout query runs");
    violations("nothing_is_left_out_of_a_finished_layout", broken)
}

/// At the end: every aircraft change is finished, unless a quarantined order still holds
/// a seat its flight's layout lost.
pub async fn every_aircraft_change_finishes(db: &PgPool) -> Vec<Violation> {
    let broken: Vec<String> = sqlx::query_scalar(
        "SELECT 'aircraft change ' || c.change_id || ' of flight ' || c.flight_id
                || ' never finished'
         FROM aircraft_changes c
         WHERE c.finished_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM flight_seats s
                           JOIN inventory_locks l ON l.seat_id = s.seat_id
                           JOIN reservations r ON r.order_id = l.order_id
                           WHERE s.flight_id = c.flight_id AND NOT s.in_layout
                             AND l.status IN ('ACTIVE', 'CONFIRMED')
                             AND r.quarantined_at IS NOT NULL)",
    )
    .fetch_all(db)
    .await
    .expect("the change query runs");
    violations("every_aircraft_change_finishes", broken)
}

/// 2. No seat is held by two orders at once: per seat, holds form one chain of versions
///    (no two at the same version, only the latest one live), and no two orders were ever
///    told they reserved the same seat at the same version.
pub async fn one_claim_per_seat_at_a_time(db: &PgPool, memory: &mut Memory) -> Vec<Violation> {
    let mut broken: Vec<String> = sqlx::query_scalar(
        "SELECT 'seat ' || seat_id || ' has holds ' || string_agg(lock_id::text, ',')
                || ' at the same version ' || seat_version
         FROM inventory_locks GROUP BY seat_id, seat_version HAVING count(*) > 1
         UNION ALL
         SELECT 'seat ' || seat_id || ' has ' || count(*) || ' live claims'
         FROM inventory_locks WHERE status IN ('ACTIVE', 'CONFIRMED')
         GROUP BY seat_id HAVING count(*) > 1
         UNION ALL
         SELECT 'live hold ' || lock_id || ' of order ' || order_id || ' on seat '
                || seat_id || ' at version ' || seat_version || ' is not its seat''s latest ('
                || latest || ')'
         FROM (SELECT h.*, max(seat_version) OVER (PARTITION BY seat_id) AS latest
               FROM inventory_locks h) AS h
         WHERE status IN ('ACTIVE', 'CONFIRMED') AND seat_version < latest",
    )
    .fetch_all(db)
    .await
    .expect("the chain query runs");
    broken.extend(memory.double_reservations.iter().cloned());
    violations("one_claim_per_seat_at_a_time", broken)
}

/// 3. No order has two different answers of one kind over everything published. Orders
///    of flights retention deleted are not judged: a late redelivery is answered
///    FLIGHT_NOT_FOUND, as the README says.
pub fn one_answer_of_each_kind_per_order(memory: &Memory, world: &World) -> Vec<Violation> {
    let mut broken = Vec::new();
    for (kind, answers) in [
        ("reservation", &memory.reservation_answers),
        ("booking", &memory.booking_answers),
    ] {
        for (order, events) in answers {
            let retired = world
                .order_flight
                .get(order)
                .is_some_and(|&flight| world.flights[flight].departed);
            if events.len() > 1 && !retired {
                broken.push(format!(
                    "order {order} has {} {kind} answers: {events:?}",
                    events.len()
                ));
            }
        }
    }
    broken.sort();
    violations("one_answer_of_each_kind_per_order", broken)
}

/// 5. No live hold on a flight that is closed, one FlightInventoryClosed per flight, and
///    no hold for an order that reached the service after its flight was cancelled.
pub async fn closed_flights_hold_nothing(db: &PgPool, memory: &Memory) -> Vec<Violation> {
    let mut broken: Vec<String> = sqlx::query_scalar(
        "SELECT 'closed flight ' || f.flight_id || ': order ' || h.order_id || ' holds '
                || s.seat_number || ' ' || h.status::text
         FROM inventory_locks h
         JOIN flights f USING (flight_id)
         JOIN flight_seats s USING (seat_id)
         WHERE f.closed_event_id IS NOT NULL AND h.status IN ('ACTIVE', 'CONFIRMED')",
    )
    .fetch_all(db)
    .await
    .expect("the closed-flight query runs");
    let closed_published: Vec<Uuid> = memory.closings.keys().copied().collect();
    let live: Vec<String> = sqlx::query_scalar(
        "SELECT 'flight ' || flight_id || ' published FlightInventoryClosed but order '
                || order_id || ' holds a seat ' || status::text
         FROM inventory_locks
         WHERE flight_id = ANY ($1) AND status IN ('ACTIVE', 'CONFIRMED')",
    )
    .bind(&closed_published)
    .fetch_all(db)
    .await
    .expect("the live-hold query runs");
    broken.extend(live);
    for (flight, events) in &memory.closings {
        if events.len() > 1 {
            broken.push(format!(
                "flight {flight} closed {} times: {events:?}",
                events.len()
            ));
        }
    }
    broken.extend(memory.reserved_after_cancellation.iter().cloned());
    broken.sort();
    broken.dedup();
    violations("closed_flights_hold_nothing", broken)
}

/// 6. An outbox entry never delivered, and a quarantined order, are never deleted.
pub async fn nothing_undelivered_or_quarantined_is_deleted(
    db: &PgPool,
    memory: &mut Memory,
) -> Vec<Violation> {
    let mut broken = Vec::new();
    let watched: Vec<Uuid> = memory.undelivered.keys().copied().collect();
    let present: HashSet<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM outbox WHERE event_id = ANY ($1)")
            .bind(&watched)
            .fetch_all(db)
            .await
            .expect("the outbox can be read")
            .into_iter()
            .collect();
    for id in watched.iter().filter(|id| !present.contains(id)) {
        broken.push(format!(
            "outbox entry {id}, seen {} and never delivered, is gone",
            memory.undelivered[id]
        ));
        memory.undelivered.remove(id);
    }
    let quarantined: Vec<Uuid> = memory.quarantined.iter().copied().collect();
    let kept: HashSet<Uuid> = sqlx::query_scalar(
        "SELECT order_id FROM reservations WHERE order_id = ANY ($1) AND quarantined_at IS NOT NULL",
    )
    .bind(&quarantined)
    .fetch_all(db)
    .await
    .expect("reservations can be read")
    .into_iter()
    .collect();
    for id in quarantined.iter().filter(|id| !kept.contains(id)) {
        broken.push(format!(
            "quarantined order {id} is gone (or out of quarantine)"
        ));
        memory.quarantined.remove(id);
    }
    // What to watch from now on.
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT event_id, state::text FROM outbox WHERE state IN ('PENDING', 'PARKED')",
    )
    .fetch_all(db)
    .await
    .expect("the outbox can be read");
    for (id, state) in rows {
        if !memory.published.contains(&id) {
            memory.undelivered.insert(id, state);
        }
    }
    let now_quarantined: Vec<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM reservations WHERE quarantined_at IS NOT NULL")
            .fetch_all(db)
            .await
            .expect("reservations can be read");
    memory.quarantined.extend(now_quarantined);
    violations("nothing_undelivered_or_quarantined_is_deleted", broken)
}

/// What a reservation would find, seat by seat: a seat LOCKED by a lapsed hold of an order
/// not in quarantine is free; anything else is as the table says.
/// The oracle, written apart from the service's own rule: a seat is free when nobody
/// claims it, or when its only claim is a lapsed hold of an order that is not set aside
/// and still holds it at the version it took it at (so expiring it frees it); otherwise it
/// shows as its claim says.
const WHAT_A_RESERVATION_SEES: &str = "
    SELECT s.seat_number::text,
           CASE WHEN s.status = 'AVAILABLE' AND h.lock_id IS NULL THEN 'AVAILABLE'
                WHEN s.status = 'LOCKED' AND h.status = 'ACTIVE' AND h.expires_at <= now()
                     AND r.quarantined_at IS NULL AND h.seat_version = s.version THEN 'AVAILABLE'
                WHEN h.status = 'ACTIVE' THEN 'LOCKED'
                WHEN h.status = 'CONFIRMED' THEN 'BOOKED'
                ELSE s.status::text END
    FROM flight_seats s
    LEFT JOIN inventory_locks h ON h.seat_id = s.seat_id AND h.status IN ('ACTIVE', 'CONFIRMED')
    LEFT JOIN reservations r ON r.order_id = h.order_id
    WHERE s.flight_id = $1";

/// 7. The seat map shows each seat as a reservation would find it. The table is read just
///    before and just after the map, so a hold lapsing in between is never a finding.
pub async fn seat_maps_match_what_a_reservation_would_get(
    db: &PgPool,
    world: &mut World,
    reader: &Instance,
    maps: Maps,
) -> Vec<Violation> {
    let mut broken = Vec::new();
    let kept = world
        .flights
        .iter()
        .filter(|flight| !flight.gone)
        .count()
        .max(1);
    for (n, flight) in world
        .flights
        .iter_mut()
        .filter(|flight| !flight.gone)
        .enumerate()
    {
        if let Maps::InTurn(turn) = maps
            && turn % kept != n
        {
            continue;
        }
        let read = || async {
            sqlx::query_as::<_, (String, String)>(WHAT_A_RESERVATION_SEES)
                .bind(flight.id)
                .fetch_all(db)
                .await
                .expect("the seats can be read")
                .into_iter()
                .collect::<HashMap<String, String>>()
        };
        let before = read().await;
        let answer = reader.app.handle(get_seats(flight.id)).await;
        let after = read().await;
        let response = match answer {
            Ok(Handled::Http(response)) => response,
            other => {
                broken.push(format!("{}: GET seats answered {other:?}", flight.label));
                continue;
            }
        };
        if response.status_code == 404 && before.is_empty() && after.is_empty() {
            // Deleted by retention: nothing more to look at.
            flight.gone = flight.departed;
            continue;
        }
        if response.status_code != 200 {
            broken.push(format!(
                "{}: GET seats answered {} {:?}",
                flight.label, response.status_code, response.body
            ));
            continue;
        }
        let body: Value = serde_json::from_str(response.body.as_deref().unwrap_or("null"))
            .expect("a seat map is JSON");
        for seat in body["seats"].as_array().into_iter().flatten() {
            let number = seat["seatNumber"].as_str().unwrap_or_default();
            let shown = seat["status"].as_str().unwrap_or_default();
            let was = before.get(number).map(String::as_str);
            let is = after.get(number).map(String::as_str);
            if was != Some(shown) && is != Some(shown) {
                broken.push(format!(
                    "{} {number}: the map shows {shown}, a reservation would find {}",
                    flight.label,
                    is.unwrap_or("no seat")
                ));
            }
        }
    }
    violations("seat_maps_match_what_a_reservation_would_get", broken)
}

/// A reserved order: its id, flight, the statuses of its holds, its queued SeatReleased.
type ReservedOrder = (Uuid, Option<Uuid>, Vec<String>, Vec<Uuid>);

/// 4. Every order that was reserved ends in exactly one story: booked (every hold
///    confirmed, never released), or released by exactly one SeatReleased, unless it is
///    quarantined. Orders of flights retention may have deleted are not judged.
pub async fn every_reserved_order_ends_in_one_story(
    db: &PgPool,
    memory: &Memory,
    world: &World,
) -> Vec<Violation> {
    let rows: Vec<ReservedOrder> = sqlx::query_as(
        "SELECT r.order_id, r.flight_id,
                ARRAY(SELECT status::text FROM inventory_locks h WHERE h.order_id = r.order_id),
                ARRAY(SELECT event_id FROM outbox o
                      WHERE o.order_id = r.order_id AND o.detail_type = 'SeatReleased')
         FROM reservations r
         WHERE r.outcome_detail_type = 'SeatReserved' AND r.quarantined_at IS NULL",
    )
    .fetch_all(db)
    .await
    .expect("the orders can be read");
    let mut broken = Vec::new();
    let mut seen = HashSet::new();
    for (order, flight, holds, queued) in rows {
        seen.insert(order);
        let mut releases: HashSet<Uuid> = queued.into_iter().collect();
        releases.extend(memory.releases.get(&order).into_iter().flatten());
        let confirmed = holds.iter().filter(|s| *s == "CONFIRMED").count();
        let closed = holds
            .iter()
            .filter(|s| *s == "RELEASED" || *s == "EXPIRED")
            .count();
        let story = match (confirmed, closed, releases.len()) {
            (c, 0, 0) if c == holds.len() && c > 0 => "booked",
            (0, c, 1) if c == holds.len() && c > 0 => "released once",
            _ => "",
        };
        if story.is_empty() {
            broken.push(format!(
                "order {order} on {:?}: holds {holds:?}, {} SeatReleased",
                flight
                    .and_then(|id| world.flight_index(id))
                    .map(|i| &world.flights[i].label),
                releases.len()
            ));
        }
    }
    // Reserved on the bus, yet gone from the tables, on a flight retention may not touch.
    for (order, answers) in &memory.reservation_answers {
        let reserved = answers.values().any(|a| a.starts_with("SeatReserved"));
        let on_kept_flight = world
            .order_flight
            .get(order)
            .is_some_and(|&flight| !world.flights[flight].departed);
        if reserved
            && on_kept_flight
            && !seen.contains(order)
            && !memory.quarantined.contains(order)
        {
            broken.push(format!(
                "order {order} was reserved but its reservation is gone"
            ));
        }
    }
    broken.sort();
    violations("every_reserved_order_ends_in_one_story", broken)
}

/// 5 (at the end). Every cancelled flight is closed, unless a quarantined order still
/// holds a seat on it.
pub async fn every_cancelled_flight_closes(db: &PgPool, world: &World) -> Vec<Violation> {
    let open: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT f.flight_id,
                (SELECT count(*) FROM inventory_locks h
                 WHERE h.flight_id = f.flight_id AND h.status IN ('ACTIVE', 'CONFIRMED'))
         FROM flights f
         WHERE f.state = 'CANCELLED' AND f.closed_event_id IS NULL
           AND NOT EXISTS (SELECT 1 FROM inventory_locks h
                           JOIN reservations r USING (order_id)
                           WHERE h.flight_id = f.flight_id
                             AND h.status IN ('ACTIVE', 'CONFIRMED')
                             AND r.quarantined_at IS NOT NULL)",
    )
    .fetch_all(db)
    .await
    .expect("the flights can be read");
    let broken = open
        .into_iter()
        .map(|(flight, live)| {
            let label = world
                .flight_index(flight)
                .map(|i| world.flights[i].label.clone())
                .unwrap_or_default();
            format!("cancelled flight {label} {flight} never closed ({live} live holds, none quarantined)")
        })
        .collect();
    violations("every_cancelled_flight_closes", broken)
}
