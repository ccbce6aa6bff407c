//! A seeded random interleaving of the whole seat lifecycle against the real PostgreSQL, in
//! the spirit of TigerBeetle's VOPR: several instances, one connection each, take random
//! events at once (orders that collide, redeliveries, payments and cancellations early and
//! late, flights opened and cancelled, the schedule, time passing, a seat changed behind
//! its hold, flights retired, the seat map read, seats blocked and unblocked by operations,
//! seat changes, aircraft swaps, and batches of order and payment events from the queued intake), and every invariant is
//! checked after every step.
//!
//! `INTERLEAVE_SEED=<n>` replays a seed (the events sent are the same; the interleaving of
//! the instances is the scheduler's), `INTERLEAVE_STEPS=<n>` sets the number of steps
//! (events; default 5,000, use 1000000 for a long run), `INTERLEAVE_KEEP_GOING=1` records
//! every broken invariant and goes on instead of stopping at the first.

mod invariants;
mod world;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aeronode_inventory::db::Database;
use aeronode_inventory::domain::OutgoingEvent;
use aeronode_inventory::handler::{App, Handled, HandlerError, Settings};
use aeronode_inventory::inventory::LockTtl;
use aeronode_inventory::outbound::outbox::RelayPolicy;
use aeronode_inventory::outbound::{EventBus, PublishReport, Rejection};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{scheduled, test_relay};
use invariants::{Maps, Memory, Violation, check_end, check_step};
use world::{Rng, World, describe, get_seats};

/// Instances taking events at once.
const INSTANCES: usize = 4;
/// How often in a thousand an instance takes a batch from the queued intake instead of
/// one event, and the most events a batch holds.
const BATCH_PER_MILLE: u64 = 100;
const MAX_BATCH: usize = 10;
/// Steps shown when an invariant breaks.
const SHOWN_STEPS: usize = 60;
const DEFAULT_STEPS: usize = 5_000;

/// The long mode runs segments of this many steps, each on the fixtures afresh, so that
/// every check stays as cheap at the millionth step as at the first.
const SEGMENT_STEPS: usize = 10_000;

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn random_interleavings_of_the_whole_lifecycle_keep_every_invariant(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let steps = env_number("INTERLEAVE_STEPS").map_or(DEFAULT_STEPS, |n| n as usize);
    run(options, seed(), steps).await;
}

/// The long mode: `INTERLEAVE_STEPS` (a million by default) in segments of
/// [`SEGMENT_STEPS`], each with its own seed, printed, which `INTERLEAVE_SEED` replays in
/// the test above. `cargo test --test api long_random -- --ignored --nocapture`.
#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
#[ignore = "the long mode: minutes to hours"]
async fn long_random_interleavings_of_the_whole_lifecycle_keep_every_invariant(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let steps = env_number("INTERLEAVE_STEPS").map_or(1_000_000, |n| n as usize);
    let mut seeds = Rng::new(seed());
    let started = Instant::now();
    let mut done = 0;
    while done < steps {
        if done > 0 {
            reset(&options).await;
        }
        let segment = SEGMENT_STEPS.min(steps - done);
        run(options.clone(), seeds.next_u64(), segment).await;
        done += segment;
        println!(
            "interleave: {done} of {steps} steps, {:.0} s, no finding",
            started.elapsed().as_secs_f64()
        );
    }
}

fn seed() -> u64 {
    env_number("INTERLEAVE_SEED").unwrap_or_else(|| Rng::new(clock_seed()).next_u64())
}

async fn run(options: PgConnectOptions, seed: u64, steps: usize) {
    let keep_going = std::env::var_os("INTERLEAVE_KEEP_GOING").is_some();
    println!("interleave: seed {seed}, {steps} steps (replay: INTERLEAVE_SEED={seed})");

    let mut sim = Simulation::start(options, seed, keep_going).await;
    let started = Instant::now();
    while sim.step < steps {
        sim.round().await;
    }
    sim.finish().await;
    println!(
        "interleave: seed {seed}: {} steps in {:.1} s; outcomes {:?}",
        sim.step,
        started.elapsed().as_secs_f64(),
        sim.outcomes
    );
    sim.report_found();
}

/// The database as the fixtures left it, for the next segment.
async fn reset(options: &PgConnectOptions) {
    let db = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .expect("the test database accepts connections");
    sqlx::raw_sql(
        "TRUNCATE outbox, inventory_locks, reservations, seat_requests, aircraft_changes,
                  flight_seats, flights;",
    )
    .execute(&db)
    .await
    .expect("the tables empty");
    sqlx::raw_sql(include_str!("../fixtures/flights.sql"))
        .execute(&db)
        .await
        .expect("the fixtures load again");
}

/// An in-memory bus shared by the instances: one log of everything accepted, in order,
/// and faults a step can switch on (an outage of one instance's bus; entries the bus will
/// never take).
pub struct TapBus {
    log: Arc<Mutex<Vec<OutgoingEvent>>>,
    poisoned: Arc<Mutex<HashSet<Uuid>>>,
    outage: AtomicBool,
}

impl EventBus for TapBus {
    async fn publish(&self, events: &[OutgoingEvent]) -> PublishReport {
        let mut report = PublishReport::default();
        let poisoned = self.poisoned.lock().expect("the poison list").clone();
        let mut log = self.log.lock().expect("the bus log");
        for event in events {
            if self.outage.load(Ordering::SeqCst) || poisoned.contains(&event.event_id) {
                report.rejected.push(Rejection {
                    event_id: event.event_id,
                    reason: "InternalFailure: simulated".into(),
                    permanent: poisoned.contains(&event.event_id),
                });
            } else {
                log.push(event.clone());
                report.accepted.push(event.event_id);
            }
        }
        report
    }
}

/// One instance of the service, as Lambda runs it: its own single connection.
pub struct Instance {
    pub app: Arc<App<TapBus>>,
}

/// What a step does: an event for an instance, or a change the world makes behind the
/// service's back.
enum Action {
    Event(Value),
    /// Some of an order's active holds move an hour into the past.
    TimePasses(Uuid),
    /// A seat the service holds is changed by someone else.
    Tamper {
        flight: Uuid,
        seat: String,
    },
    /// A flight departs 41 days ago: retention may delete it.
    Depart(Uuid),
    /// The bus will never take the entries now pending.
    Poison,
}

/// What an instance's task came back with.
enum Done {
    One(Result<Handled, HandlerError>),
    /// A queued batch: the messages it asked to have again, or the fault that failed it.
    Batch(Result<usize, HandlerError>),
}

/// The events the queued intake carries (the order and payment rules' targets).
fn queued_kind(event: &Value) -> bool {
    matches!(
        event["detail-type"].as_str(),
        Some(
            "OrderCreated"
                | "OrderCancelled"
                | "SeatChangeRequested"
                | "PaymentSucceeded"
                | "PaymentFailed"
        )
    )
}

struct Simulation {
    db: PgPool,
    instances: Vec<Instance>,
    log: Arc<Mutex<Vec<OutgoingEvent>>>,
    poisoned: Arc<Mutex<HashSet<Uuid>>>,
    rng: Rng,
    world: World,
    memory: Memory,
    step: usize,
    history: VecDeque<String>,
    /// Events chosen while a batch was filled that the queue does not carry: sent next.
    deferred: VecDeque<Value>,
    outcomes: BTreeMap<String, usize>,
    seed: u64,
    keep_going: bool,
    /// In keep-going mode: each broken invariant, the step it first broke at, how often.
    found: BTreeMap<&'static str, (usize, String, usize)>,
}

impl Simulation {
    async fn start(options: PgConnectOptions, seed: u64, keep_going: bool) -> Self {
        crate::quiet_logs();
        let log = Arc::new(Mutex::new(Vec::new()));
        let poisoned = Arc::new(Mutex::new(HashSet::new()));
        let relay = RelayPolicy {
            park_after: std::time::Duration::from_secs(1),
            ..test_relay()
        };
        let instances = (0..INSTANCES)
            .map(|n| {
                // Half the instances hold seats for 2 s, half for 15 minutes (time passes
                // for those by SQL).
                let ttl = if n % 2 == 0 { 2 } else { 900 };
                let settings = Settings {
                    lock_ttl: LockTtl::from_seconds(ttl),
                    relay,
                    ..Settings::default()
                };
                let bus = TapBus {
                    log: log.clone(),
                    poisoned: poisoned.clone(),
                    outage: AtomicBool::new(false),
                };
                Instance {
                    app: Arc::new(App::new(
                        Database::new(crate::helpers::app_target(&options), 1),
                        bus,
                        settings,
                    )),
                }
            })
            .collect();
        let db = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("the test database accepts connections");
        let mut sim = Self {
            db,
            instances,
            log,
            poisoned,
            rng: Rng::new(seed),
            world: World::new(),
            memory: Memory::default(),
            step: 0,
            history: VecDeque::new(),
            deferred: VecDeque::new(),
            outcomes: BTreeMap::new(),
            seed,
            keep_going,
            found: BTreeMap::new(),
        };
        for _ in 0..2 {
            let opening = sim.world.new_flight(&mut sim.rng);
            let outcome = sim.instances[0].app.handle(opening).await;
            assert!(matches!(outcome, Ok(Handled::Scheduled(_))), "{outcome:?}");
        }
        sim
    }

    /// One step per instance, all at once, then every check.
    async fn round(&mut self) {
        if self.rng.chance(5) {
            self.act(usize::MAX, Action::Poison).await;
        }
        let mut tasks = Vec::new();
        let mut labels = Vec::new();
        for n in 0..INSTANCES {
            if self.rng.chance(BATCH_PER_MILLE) {
                let batch = self.queued_batch(n).await;
                let outage = self.rng.chance(20);
                let described: Vec<String> =
                    batch.iter().map(|e| describe(e, &self.world)).collect();
                let label = format!("batch of {}: {}", batch.len(), described.join("; "));
                let app = self.instances[n].app.clone();
                app.bus().outage.store(outage, Ordering::SeqCst);
                labels.push((self.step, n, label, outage));
                tasks.push(tokio::spawn(
                    async move { handle_batch(&app, &batch).await },
                ));
                self.step += 1;
                continue;
            }
            let action = self.choose();
            let outage = self.rng.chance(20);
            match action {
                Action::Event(event) => {
                    let label = describe(&event, &self.world);
                    let app = self.instances[n].app.clone();
                    app.bus().outage.store(outage, Ordering::SeqCst);
                    labels.push((self.step, n, label, outage));
                    tasks.push(tokio::spawn(
                        async move { Done::One(app.handle(event).await) },
                    ));
                }
                other => self.act(n, other).await,
            }
            self.step += 1;
        }
        let started = Instant::now();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("an instance's task completes"));
        }
        if std::env::var_os("INTERLEAVE_SLOW").is_some() && started.elapsed().as_millis() > 300 {
            eprintln!(
                "slow round ({} ms): {labels:?}",
                started.elapsed().as_millis()
            );
        }
        let mut found = Vec::new();
        for ((step, n, label, outage), result) in labels.into_iter().zip(results) {
            self.instances[n]
                .app
                .bus()
                .outage
                .store(false, Ordering::SeqCst);
            let (outcome, error) = match result {
                Done::One(result) => (self.record(step, &label, &result), result.err()),
                Done::Batch(Ok(retried)) => {
                    *self.outcomes.entry("batch → answered".into()).or_default() += 1;
                    (format!("{retried} to try again"), None)
                }
                Done::Batch(Err(error)) => {
                    *self
                        .outcomes
                        .entry(format!("batch → error {}", error.kind()))
                        .or_default() += 1;
                    (format!("error {}", error.kind()), Some(error))
                }
            };
            let fault = if outage { " [bus down]" } else { "" };
            self.remember(format!("step {step} i{n} {label}{fault} → {outcome}"));
            if let Some(error) = &error {
                let kind = error.kind();
                if kind.starts_with("DatabaseRefused") {
                    found.push(violation(
                        "no_database_refusals",
                        format!("step {step} {label}: {kind}: {error}"),
                    ));
                } else if !expected_error(&kind) {
                    found.push(violation(
                        "no_unexpected_errors",
                        format!("step {step} {label}: {kind}: {error}"),
                    ));
                }
            }
        }
        self.absorb();
        // Every seat map every 8 rounds; one in turn otherwise.
        let round = self.step / INSTANCES;
        let maps = if round.is_multiple_of(8) {
            Maps::All
        } else {
            Maps::InTurn(round)
        };
        found.extend(
            check_step(
                &self.db,
                &mut self.memory,
                &mut self.world,
                &self.instances[0],
                maps,
            )
            .await,
        );
        self.judge(found);
    }

    /// Two to ten order and payment events for one instance's queued intake, chosen as
    /// single events are; the others chosen meanwhile are sent singly next, and changes to
    /// the world happen at once.
    async fn queued_batch(&mut self, n: usize) -> Vec<Value> {
        let size = 2 + self.rng.below(MAX_BATCH - 1);
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size {
            match self.choose_new() {
                Action::Event(event) if queued_kind(&event) => batch.push(event),
                Action::Event(event) => self.deferred.push_back(event),
                other => self.act(n, other).await,
            }
        }
        batch
    }

    /// The next event: one deferred by a batch, or a new choice.
    fn choose(&mut self) -> Action {
        match self.deferred.pop_front() {
            Some(event) => Action::Event(event),
            None => self.choose_new(),
        }
    }

    /// What the step does, from the seed alone (never from what the service answered), so
    /// a seed replays the same events.
    fn choose_new(&mut self) -> Action {
        let rng = &mut self.rng;
        let world = &mut self.world;
        let step = self.step;
        if world.open_flights() < 2 {
            let opening = world.new_flight(rng);
            return Action::Event(opening);
        }
        let roll = rng.below(1_000);
        match roll {
            0..230 => {
                let id = rng.uuid();
                Action::Event(world.new_order(rng, step, id, false))
            }
            230..260 if !world.orders.is_empty() => {
                // Mostly one of the last few orders, whose holds may still be live.
                let len = world.orders.len();
                let at = if rng.chance(800) {
                    len - 1 - rng.below(len.min(4))
                } else {
                    rng.below(len)
                };
                let order = world.orders[at].clone();
                Action::Event(world.seat_change(rng, &order))
            }
            260..270 => {
                let flight = world.some_flight(rng);
                Action::Event(world.block(rng, flight))
            }
            270..280 => {
                let flight = world.some_flight(rng);
                Action::Event(world.unblock(rng, flight))
            }
            280..380 => {
                let id = rng.uuid();
                Action::Event(world.new_order(rng, step, id, true))
            }
            380..400 if !world.early.is_empty() => {
                // The OrderCreated of an order whose payment or cancellation came first.
                let id = world.early.swap_remove(rng.below(world.early.len()));
                Action::Event(world.new_order(rng, step, id, false))
            }
            400..430 if !world.orders.is_empty() => {
                let order = world.orders[rng.below(world.orders.len())].clone();
                Action::Event(world.conflicting_order(rng, order))
            }
            430..520 if !world.recent.is_empty() => {
                // The same envelope again, as EventBridge redelivers it.
                let at = rng.below(world.recent.len());
                Action::Event(world.recent[at].clone())
            }
            520..650 => {
                let order = world.some_order_id(rng);
                Action::Event(world.for_order(rng, "payment-succeeded.json", order))
            }
            650..700 => {
                let order = world.some_order_id(rng);
                Action::Event(world.for_order(rng, "payment-failed.json", order))
            }
            700..760 => {
                let order = world.some_order_id(rng);
                Action::Event(world.for_order(rng, "order-cancelled.json", order))
            }
            760..830 => Action::Event(world.housekeeping(rng)),
            830..880 if !world.orders.is_empty() => {
                Action::TimePasses(world.orders[rng.below(world.orders.len())].id)
            }
            880..940 => {
                let flight = world.some_flight(rng);
                Action::Event(get_seats(world.flights[flight].id))
            }
            940..955 => {
                let flight = world.some_flight(rng);
                let seat = (*rng.pick(world.flights[flight].hot_seats)).to_owned();
                Action::Tamper {
                    flight: world.flights[flight].id,
                    seat,
                }
            }
            955..965 if world.open_flights() < 4 => Action::Event(world.new_flight(rng)),
            965..977 => {
                let flight = world.some_flight(rng);
                Action::Event(world.flight_cancelled(rng, flight))
            }
            990..1000 => {
                let flight = world.some_flight(rng);
                match world.aircraft_changed(rng, flight) {
                    Some(event) => Action::Event(event),
                    None => Action::Event(world.housekeeping(rng)),
                }
            }
            977..990 => {
                let flight = world.flight_to_retire(rng);
                world.flights[flight].departed = true;
                let id = world.flights[flight].id;
                // Its FlightScheduled is never delivered again: EventBridge retries for a
                // day, and this flight left 41 days ago. (Once retention deleted it, that
                // old event would open a new flight under the same id.)
                // Nor are its requests of operations and seat changes: retention deletes
                // their answers with the flight.
                world.recent.retain(|event| {
                    !matches!(
                        event["detail-type"].as_str(),
                        Some(
                            "FlightScheduled"
                                | "SeatBlockRequested"
                                | "SeatUnblockRequested"
                                | "SeatChangeRequested"
                                | "AircraftChanged"
                        )
                    ) || event["detail"]["flightId"] != json!(id)
                });
                world.requests.retain(|(_, at)| *at != flight);
                world.aircraft_changes.retain(|(_, at)| *at != flight);
                // Nor is anything of its orders sent again: retention deletes them 30 days
                // after departure, and an order id reused that late would get a new outcome
                // (the README's "late redelivery" case).
                let of_flight: Vec<Uuid> = world
                    .order_flight
                    .iter()
                    .filter(|(_, at)| **at == flight)
                    .map(|(order, _)| *order)
                    .collect();
                world.orders.retain(|order| !of_flight.contains(&order.id));
                world.recent.retain(|event| {
                    !of_flight
                        .iter()
                        .any(|order| event["detail"]["orderId"] == json!(order))
                });
                Action::Depart(id)
            }
            _ => Action::Event(world.housekeeping(rng)),
        }
    }

    /// Changes the world behind the service's back, by SQL.
    async fn act(&mut self, n: usize, action: Action) {
        let (label, changed) = match action {
            Action::Event(_) => unreachable!("events go to an instance"),
            Action::TimePasses(order) => {
                let moved = sqlx::query(
                    "UPDATE inventory_locks
                     SET created_at = created_at - interval '1 hour',
                         expires_at = expires_at - interval '1 hour'
                     WHERE order_id = $1 AND status = 'ACTIVE'",
                )
                .bind(order)
                .execute(&self.db)
                .await
                .expect("holds can be moved");
                (
                    format!("time passes for order {}", short_id(order)),
                    moved.rows_affected(),
                )
            }
            Action::Tamper { flight, seat } => {
                let changed = sqlx::query(
                    "UPDATE flight_seats SET version = version + 1
                     WHERE flight_id = $1 AND seat_number = $2 AND status = 'LOCKED'",
                )
                .bind(flight)
                .bind(&seat)
                .execute(&self.db)
                .await
                .expect("a seat can be changed");
                let label = self
                    .world
                    .flight_index(flight)
                    .map_or("?".into(), |i| self.world.flights[i].label.clone());
                (
                    format!("seat {label} {seat} changed behind its hold"),
                    changed.rows_affected(),
                )
            }
            Action::Depart(flight) => {
                let moved = sqlx::query(
                    "UPDATE flights SET departure_utc = now() - interval '41 days',
                                        arrival_utc = now() - interval '40 days 15 hours'
                     WHERE flight_id = $1",
                )
                .bind(flight)
                .execute(&self.db)
                .await
                .expect("a flight can be moved");
                let label = self
                    .world
                    .flight_index(flight)
                    .map_or("?".into(), |i| self.world.flights[i].label.clone());
                (
                    format!("flight {label} departed 41 days ago"),
                    moved.rows_affected(),
                )
            }
            Action::Poison => {
                let pending: Vec<Uuid> =
                    sqlx::query_scalar("SELECT event_id FROM outbox WHERE state = 'PENDING'")
                        .fetch_all(&self.db)
                        .await
                        .expect("the outbox can be read");
                let count = pending.len() as u64;
                self.poisoned
                    .lock()
                    .expect("the poison list")
                    .extend(pending);
                ("the bus will never take the pending entries".into(), count)
            }
        };
        *self
            .outcomes
            .entry(label.split(' ').next().unwrap_or("").to_owned() + " (sql)")
            .or_default() += 1;
        self.remember(format!("step {} i{n} {label} → {changed} rows", self.step));
    }

    /// Notes what an event got, as a short word for the log and the tally.
    fn record(
        &mut self,
        step: usize,
        label: &str,
        result: &Result<Handled, HandlerError>,
    ) -> String {
        let outcome = match result {
            Ok(Handled::Answered(event)) => {
                let detail: Value = serde_json::from_str(&event.detail).unwrap_or(Value::Null);
                match detail["reason"].as_str() {
                    Some(reason) => format!("{} {reason}", event.detail_type.as_str()),
                    None => event.detail_type.as_str().to_owned(),
                }
            }
            Ok(Handled::Released(events)) => format!("released {}", events.len()),
            Ok(Handled::Housekeeping(report)) => format!(
                "housekeeping expired {} quarantined {} relayed {} finished {} retired {}",
                report.orders_expired,
                report.orders_quarantined,
                report.relay.published,
                report.cancellation_events,
                report.retired
            ),
            Ok(Handled::Scheduled(event)) => event.detail_type.as_str().to_owned(),
            Ok(Handled::FlightCancelled { released, closed }) => {
                format!(
                    "cancelled: released {}, closed {}",
                    released.len(),
                    closed.is_some()
                )
            }
            Ok(Handled::LayoutChanged(change)) => format!(
                "layout moved {}, released {}, finished {}",
                change.moved.len(),
                change.released.len(),
                change.finished.is_some()
            ),
            Ok(Handled::Http(response)) => format!("HTTP {}", response.status_code),
            Err(error) => format!("error {}", error.kind()),
        };
        // Orders sent in later rounds reach the flight only after this cancellation.
        let round_end = step - step % INSTANCES + INSTANCES - 1;
        if let Ok(Handled::FlightCancelled { .. }) = result {
            let flight = self
                .world
                .flights
                .iter_mut()
                .find(|f| label.contains(&format!("FlightCancelled {} ", f.label)));
            if let Some(flight) = flight {
                flight.cancelled_at_step.get_or_insert(round_end);
            }
        }
        let kind = label.split(' ').next().unwrap_or("").to_owned();
        let word = outcome
            .split(' ')
            .take(if outcome.starts_with("housekeeping") {
                1
            } else {
                2
            })
            .collect::<Vec<_>>()
            .join(" ");
        *self.outcomes.entry(format!("{kind} → {word}")).or_default() += 1;
        outcome
    }

    fn remember(&mut self, line: String) {
        self.history.push_back(line);
        if self.history.len() > SHOWN_STEPS {
            self.history.pop_front();
        }
    }

    fn absorb(&mut self) {
        let log = self.log.lock().expect("the bus log").clone();
        self.memory.absorb(&log, &self.world);
    }

    /// The end: every hold past expiry, the bus healthy, housekeeping until nothing moves;
    /// then every check, and the ones that need quiet.
    async fn finish(&mut self) {
        self.poisoned.lock().expect("the poison list").clear();
        sqlx::query(
            "UPDATE inventory_locks
             SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'
             WHERE status = 'ACTIVE'",
        )
        .execute(&self.db)
        .await
        .expect("holds can be moved");
        let mut found = Vec::new();
        for run in 0..30 {
            let result = self.instances[run % INSTANCES]
                .app
                .handle(scheduled())
                .await;
            let outcome = self.record(self.step, "housekeeping (end)", &result);
            self.remember(format!("end {run} housekeeping → {outcome}"));
            match result {
                Ok(Handled::Housekeeping(report))
                    if report.orders_expired == 0
                        && report.cancellation_events == 0
                        && report.aircraft_events == 0
                        && report.relay.published == 0 =>
                {
                    break;
                }
                Ok(_) => {}
                Err(error) => {
                    let kind = error.kind();
                    if kind.starts_with("DatabaseRefused") {
                        found.push(violation(
                            "no_database_refusals",
                            format!("end housekeeping: {kind}: {error}"),
                        ));
                    }
                }
            }
        }
        self.absorb();
        found.extend(
            check_step(
                &self.db,
                &mut self.memory,
                &mut self.world,
                &self.instances[0],
                Maps::All,
            )
            .await,
        );
        found.extend(check_end(&self.db, &self.memory, &self.world).await);
        self.judge(found);
    }

    /// Stops at the first broken invariant with the seed and the last steps, or, when
    /// going on, notes it.
    fn judge(&mut self, found: Vec<Violation>) {
        if found.is_empty() {
            return;
        }
        if self.keep_going {
            for v in found {
                let entry = self
                    .found
                    .entry(v.invariant)
                    .or_insert((self.step, v.detail, 0));
                entry.2 += 1;
            }
            return;
        }
        let history: Vec<&str> = self.history.iter().map(String::as_str).collect();
        let broken: Vec<String> = found
            .iter()
            .take(20)
            .map(|v| format!("  {}: {}", v.invariant, v.detail))
            .collect();
        panic!(
            "\ninterleave: seed {} broke {} invariant(s) by step {}:\n{}\n\nthe last steps:\n  {}\n\nreplay: INTERLEAVE_SEED={} cargo test --test api interleave -- --nocapture\n",
            self.seed,
            found.len(),
            self.step,
            broken.join("\n"),
            history.join("\n  "),
            self.seed
        );
    }

    fn report_found(&self) {
        if self.found.is_empty() {
            return;
        }
        let lines: Vec<String> = self
            .found
            .iter()
            .map(|(name, (step, detail, times))| {
                format!("  {name}: first by step {step} ({times} times): {detail}")
            })
            .collect();
        panic!(
            "\ninterleave: seed {} broke these invariants:\n{}\n\nreplay: INTERLEAVE_SEED={} INTERLEAVE_KEEP_GOING=1 cargo test --test api interleave -- --nocapture\n",
            self.seed,
            lines.join("\n"),
            self.seed
        );
    }
}

/// Errors the README says an event may rightly get.
/// A batch of events as the queued intake hands it to an instance: SQS messages whose
/// bodies are the EventBridge events.
async fn handle_batch(app: &App<TapBus>, events: &[Value]) -> Done {
    let payload = aeronode_testkit::sqs::batch_of_events(events);
    let batch = aeronode_inventory::inbound::read_batch(&payload).expect("an SQS batch");
    let deadline =
        aeronode_inventory::deadline::Deadline::after(std::time::Duration::from_secs(30));
    Done::Batch(
        app.handle_batch_until(batch, deadline)
            .await
            .map(|response| response.batch_item_failures.len()),
    )
}

fn expected_error(kind: &str) -> bool {
    matches!(
        kind,
        "ConflictingOrder"
            | "ConflictingRequest"
            | "AircraftChangeInProgress"
            | "ConflictingSchedule"
            | "OrderQuarantined"
            | "UnknownFlight"
            | "PublishFailed"
            | "SeatContention"
            | "OrderContention"
            | "OutOfTime"
            | "DatabaseUnavailable"
    )
}

fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}

fn short_id(id: Uuid) -> String {
    id.to_string().chars().take(8).collect()
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|raw| {
        raw.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {raw:?}"))
    })
}

fn clock_seed() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970");
    now.as_nanos() as u64 ^ u64::from(std::process::id())
}
