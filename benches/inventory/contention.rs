//! Contention throughput: K simulated Lambda instances (each its own held connection,
//! one invocation at a time) race for a hot set of seats, through the real handler and
//! through the smallest transaction that takes a seat, side by side.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aeronode_inventory::db::Database;
use aeronode_inventory::deadline::{self, Deadline};
use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::{App, Handled, HandlerError, Settings};
use aeronode_inventory::outbound::RecordingBus;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Barrier;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use uuid::Uuid;

use crate::database::{BenchDb, Consistency};
use crate::events::{Events, seat_number};
use crate::report::Latencies;
use crate::{Plan, Result};

/// Rows 1-4: 24 seats that every order of a phase competes for.
pub const HOT_SEATS: usize = 24;

/// The ceiling: one conditional `UPDATE` in its own (autocommit) transaction, in one round
/// trip on a held connection, as the service sends its calls (simple query protocol,
/// nothing prepared).
const TAKE_ONE_SEAT: &str = "
UPDATE flight_seats
SET status = 'LOCKED', version = version + 1, updated_at = now()
WHERE seat_id = '{seat}' AND status = 'AVAILABLE'
";

/// Gives a seat the ceiling took back; not timed.
const GIVE_IT_BACK: &str = "
UPDATE flight_seats
SET status = 'AVAILABLE', version = version + 1, updated_at = now()
WHERE seat_id = '{seat}' AND status = 'LOCKED'
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `OrderCreated` through `App::handle`, answers to a `RecordingBus`.
    Handler,
    /// [`TAKE_ONE_SEAT`].
    Ceiling,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Handler => "handler",
            Self::Ceiling => "ceiling",
        }
    }
}

/// One phase: K instances, one mode, one fresh flight.
pub struct Phase {
    pub mode: Mode,
    pub instances: usize,
    pub wall: Duration,
    /// Time spent inside the timed calls, summed over instances.
    pub busy: Duration,
    pub reserved: u64,
    /// Refused with `SEAT_UNAVAILABLE` (ceiling: the `UPDATE` matched no row).
    pub taken: u64,
    /// Refused for another reason (none expected).
    pub other_failures: u64,
    /// Invocations that failed, by error kind (`SeatContention` after 8 lost races).
    pub errors: BTreeMap<String, u64>,
    /// Releases (not timed) that failed with a retryable error and were retried, by kind.
    pub release_errors: BTreeMap<String, u64>,
    /// Optimistic-lock races lost and retried, from the handler's `lost_races` log field.
    pub retries: u64,
    /// Per second of instance time in the timed call, summed over instances.
    pub decided_per_second: f64,
    pub reserved_per_second: f64,
    pub taken_per_second: f64,
    pub latencies: Latencies,
    pub consistency: Consistency,
}

impl Phase {
    pub fn decided(&self) -> u64 {
        self.reserved + self.taken + self.other_failures
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn json(&self) -> Value {
        json!({
            "mode": self.mode.name(),
            "instances": self.instances,
            "wallSeconds": self.wall.as_secs_f64(),
            "busySeconds": self.busy.as_secs_f64(),
            "decided": self.decided(),
            "reserved": self.reserved,
            "failedBecauseTaken": self.taken,
            "otherFailures": self.other_failures,
            "errors": self.errors,
            "releaseErrorsRetried": self.release_errors,
            "optimisticLockRetries": self.retries,
            "decidedPerSecond": self.decided_per_second,
            "reservedPerSecond": self.reserved_per_second,
            "failedBecauseTakenPerSecond": self.taken_per_second,
            "latencyMs": self.latencies.json(),
            "consistency": self.consistency.json(),
        })
    }
}

/// Runs a handler phase and a ceiling phase for each K of the plan.
pub async fn run(db: &BenchDb, events: &Events, plan: &Plan) -> Result<Vec<Phase>> {
    let events = Arc::new(events.clone());
    let mut phases = Vec::new();
    for &instances in &plan.instances {
        for mode in [Mode::Handler, Mode::Ceiling] {
            settle(&db.admin).await?;
            let phase = run_phase(db, &events, mode, instances, plan.phase).await?;
            eprintln!(
                "bench: contention {:>7} K={:<2} {:>8.1} decided/s {:>8.1} reserved/s p50 {:.2} ms, {} retries, {} errors, consistent: {}",
                mode.name(),
                instances,
                phase.decided_per_second,
                phase.reserved_per_second,
                phase.latencies.p50_ms(),
                phase.retries,
                phase.error_count(),
                phase.consistency.is_ok(),
            );
            phases.push(phase);
        }
    }
    Ok(phases)
}

/// Between phases: statistics fresh and dead rows gone, so no phase inherits the last
/// one's debris; not timed.
async fn settle(admin: &PgPool) -> Result<()> {
    sqlx::raw_sql("VACUUM (ANALYZE) flight_seats, inventory_locks, reservations, outbox")
        .execute(admin)
        .await?;
    Ok(())
}

async fn run_phase(
    db: &BenchDb,
    events: &Arc<Events>,
    mode: Mode,
    instances: usize,
    length: Duration,
) -> Result<Phase> {
    let flight = db.flight().await?;
    let hot: Vec<String> = (0..HOT_SEATS).map(seat_number).collect();
    let hot_ids = Arc::new(db.seat_ids(flight, &hot).await?);
    let hot = Arc::new(hot);
    let barrier = Arc::new(Barrier::new(instances));
    let retries_before = LOST_RACES.load(Ordering::Relaxed);
    let mut tasks = Vec::with_capacity(instances);
    for index in 0..instances {
        let instance = Instance {
            index,
            flight,
            barrier: Arc::clone(&barrier),
            length,
            rng: Rng(0x5eed ^ ((instances as u64) << 32) ^ index as u64),
        };
        // The seat no other instance warms up on: row 5 onwards.
        let warm_up_seat = seat_number(HOT_SEATS + index);
        tasks.push(match mode {
            Mode::Handler => {
                let app = App::new(
                    Database::new(db.options.clone(), 1),
                    RecordingBus::new(),
                    settings(),
                );
                let (events, hot) = (Arc::clone(events), Arc::clone(&hot));
                tokio::spawn(instance.handler(app, events, hot, warm_up_seat))
            }
            Mode::Ceiling => {
                let database = Database::new(db.options.clone(), 1);
                let warm_up = db.seat_ids(flight, &[warm_up_seat]).await?[0];
                let hot_ids = Arc::clone(&hot_ids);
                tokio::spawn(instance.ceiling(database, hot_ids, warm_up))
            }
        });
    }
    let mut tallies = Vec::with_capacity(instances);
    for task in tasks {
        tallies.push(task.await??);
    }
    let retries = LOST_RACES.load(Ordering::Relaxed) - retries_before;

    let per_second = |count: fn(&Tally) -> u64| -> f64 {
        tallies
            .iter()
            .filter(|t| !t.busy.is_zero())
            .map(|t| count(t) as f64 / t.busy.as_secs_f64())
            .sum()
    };
    let decided_per_second = per_second(|t| t.reserved + t.taken + t.other_failures);
    let reserved_per_second = per_second(|t| t.reserved);
    let taken_per_second = per_second(|t| t.taken);
    let mut errors = BTreeMap::new();
    for tally in &tallies {
        for (kind, count) in &tally.errors {
            *errors.entry(kind.clone()).or_default() += count;
        }
    }
    let mut release_errors = BTreeMap::new();
    for tally in &tallies {
        for (kind, count) in &tally.release_errors {
            *release_errors.entry(kind.clone()).or_default() += count;
        }
    }
    let reserved = tallies.iter().map(|t| t.reserved).sum();
    let consistency = match mode {
        Mode::Handler => {
            let seats: u64 = tallies.iter().map(|t| t.seats_reserved).sum();
            db.check_holds(flight, seats).await?
        }
        Mode::Ceiling => {
            let takes: u64 = tallies.iter().map(|t| t.reserved + 1).sum();
            db.check_ceiling(flight, takes).await?
        }
    }
    .report(&format!("contention {} K={instances}", mode.name()));
    Ok(Phase {
        mode,
        instances,
        wall: tallies.iter().map(|t| t.wall).max().unwrap_or_default(),
        busy: tallies.iter().map(|t| t.busy).sum(),
        reserved,
        taken: tallies.iter().map(|t| t.taken).sum(),
        other_failures: tallies.iter().map(|t| t.other_failures).sum(),
        errors,
        release_errors,
        retries,
        decided_per_second,
        reserved_per_second,
        taken_per_second,
        latencies: Latencies::of(tallies.iter().flat_map(|t| t.latencies.iter().copied())),
        consistency,
    })
}

fn settings() -> Settings {
    Settings::default()
}

/// What one instance did in the timed part of a phase.
#[derive(Default)]
struct Tally {
    wall: Duration,
    busy: Duration,
    latencies: Vec<Duration>,
    reserved: u64,
    /// Seats held by the handler, warm-up included (each is one hold in the database).
    seats_reserved: u64,
    taken: u64,
    other_failures: u64,
    errors: BTreeMap<String, u64>,
    /// Releases (not timed) that failed and were retried, by error kind.
    release_errors: BTreeMap<String, u64>,
}

impl Tally {
    fn time(&mut self, elapsed: Duration) {
        self.busy += elapsed;
        self.latencies.push(elapsed);
    }
}

struct Instance {
    index: usize,
    flight: Uuid,
    barrier: Arc<Barrier>,
    length: Duration,
    rng: Rng,
}

impl Instance {
    /// One Lambda instance: one order at a time through the handler. A won order is
    /// released at once with `PaymentFailed` (not timed), so the hot set stays contested.
    async fn handler(
        mut self,
        app: App<RecordingBus>,
        events: Arc<Events>,
        hot: Arc<Vec<String>>,
        warm_up_seat: String,
    ) -> Result<Tally> {
        let mut tally = Tally::default();
        // Connect, and pay the first-use costs of a new server session, before the clock.
        let warm_up = [warm_up_seat];
        let order_id = Uuid::new_v4();
        expect_reserved(&app, events.order_created(order_id, self.flight, &warm_up)).await?;
        tally.seats_reserved += 1;
        release(&app, &events, order_id, &mut tally.release_errors).await?;

        self.barrier.wait().await;
        let start = Instant::now();
        let deadline = start + self.length;
        while Instant::now() < deadline {
            let order_id = Uuid::new_v4();
            let seats: Vec<String> = self
                .rng
                .order_seats()
                .into_iter()
                .map(|seat| hot[seat].clone())
                .collect();
            let event = events.order_created(order_id, self.flight, &seats);
            let started = Instant::now();
            let handled = app.handle(event).await;
            tally.time(started.elapsed());
            match handled {
                Ok(Handled::Answered(answer)) if answer.detail_type == DetailType::SeatReserved => {
                    tally.reserved += 1;
                    tally.seats_reserved += seats.len() as u64;
                    release(&app, &events, order_id, &mut tally.release_errors).await?;
                }
                Ok(Handled::Answered(answer))
                    if answer.detail_type == DetailType::SeatReservationFailed =>
                {
                    let detail: Value = serde_json::from_str(&answer.detail)?;
                    if detail["reason"] == "SEAT_UNAVAILABLE" {
                        tally.taken += 1;
                    } else {
                        tally.other_failures += 1;
                    }
                }
                Ok(other) => return Err(format!("unexpected answer: {other:?}").into()),
                Err(error) => *tally.errors.entry(error_key(&error)).or_default() += 1,
            }
        }
        tally.wall = start.elapsed();
        Ok(tally)
    }

    /// The same instance running only the ceiling transaction; a won seat is given back
    /// at once (not timed).
    async fn ceiling(
        mut self,
        database: Database,
        hot: Arc<Vec<Uuid>>,
        warm_up_seat: Uuid,
    ) -> Result<Tally> {
        let mut tally = Tally::default();
        if take(&database, warm_up_seat).await? {
            give_back(&database, warm_up_seat).await?;
        } else {
            return Err(format!("instance {}: its warm-up seat was taken", self.index).into());
        }

        self.barrier.wait().await;
        let start = Instant::now();
        let deadline = start + self.length;
        while Instant::now() < deadline {
            let seat = hot[self.rng.below(hot.len())];
            let started = Instant::now();
            let taken = take(&database, seat).await;
            tally.time(started.elapsed());
            match taken {
                Ok(true) => {
                    tally.reserved += 1;
                    give_back(&database, seat).await?;
                }
                Ok(false) => tally.taken += 1,
                Err(error) => {
                    let kind = format!("Database: {error}");
                    *tally.errors.entry(kind).or_default() += 1;
                }
            }
        }
        tally.wall = start.elapsed();
        Ok(tally)
    }
}

async fn expect_reserved(app: &App<RecordingBus>, event: Value) -> Result<()> {
    match app.handle(event).await {
        Ok(Handled::Answered(answer)) if answer.detail_type == DetailType::SeatReserved => Ok(()),
        other => Err(format!("a warm-up order on a free seat was not reserved: {other:?}").into()),
    }
}

/// A failed release is retried, as Lambda retries a retryable failure.
const RELEASE_ATTEMPTS: usize = 5;

/// Gives the order's seats back with `PaymentFailed`; counts the retried failures by kind.
async fn release(
    app: &App<RecordingBus>,
    events: &Events,
    order_id: Uuid,
    retried: &mut BTreeMap<String, u64>,
) -> Result<()> {
    for attempt in 0..RELEASE_ATTEMPTS {
        match app.handle(events.payment_failed(order_id)).await {
            // A retry may find the seats released by the attempt that failed after commit.
            Ok(Handled::Released(released)) if !released.is_empty() || attempt > 0 => {
                return Ok(());
            }
            Err(error) if error.is_retryable() => {
                *retried.entry(error_key(&error)).or_default() += 1;
            }
            other => return Err(format!("releasing order {order_id}: {other:?}").into()),
        }
    }
    Err(format!("releasing order {order_id} failed {RELEASE_ATTEMPTS} times").into())
}

/// The error's kind, and whether the database broke a deadlock, as a counting key.
fn error_key(error: &HandlerError) -> String {
    if error.to_string().contains("deadlock detected") {
        format!("{} (deadlock)", error.kind())
    } else {
        error.kind().into_owned()
    }
}

/// One statement in one round trip on the instance's held connection, as the handler's
/// calls are sent: the smallest transaction that can take a seat.
async fn one_round_trip(database: &Database, sql: &str, seat: Uuid) -> Result<u64> {
    let mut session = database
        .session(Deadline::after(deadline::UNBOUNDED))
        .await?;
    let connection = session.connection().await?;
    let sql = sql.replace("{seat}", &seat.to_string());
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(connection)
        .await?;
    Ok(done.rows_affected())
}

async fn take(database: &Database, seat: Uuid) -> Result<bool> {
    Ok(one_round_trip(database, TAKE_ONE_SEAT, seat).await? == 1)
}

async fn give_back(database: &Database, seat: Uuid) -> Result<()> {
    if one_round_trip(database, GIVE_IT_BACK, seat).await? == 1 {
        Ok(())
    } else {
        Err(format!("seat {seat} was taken by the ceiling but is not LOCKED").into())
    }
}

/// splitmix64: each instance draws its own reproducible sequence of orders.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// 1 to 3 distinct seats of the hot set.
    fn order_seats(&mut self) -> Vec<usize> {
        self.order_seats_among(HOT_SEATS)
    }

    /// 1 to 3 distinct seats of the first `hot` seats.
    pub fn order_seats_among(&mut self, hot: usize) -> Vec<usize> {
        let count = 1 + self.below(3);
        let mut seats = Vec::with_capacity(count);
        while seats.len() < count {
            let seat = self.below(hot);
            if !seats.contains(&seat) {
                seats.push(seat);
            }
        }
        seats
    }
}

/// Optimistic-lock races lost, summed from the `lost_races` field of the handler's
/// "order decided" log line.
static LOST_RACES: AtomicU64 = AtomicU64::new(0);

/// Installs the subscriber that counts lost races. Nothing is printed; INFO and above
/// only, as the service logs, so the bench pays no debug-level logging the binary doesn't.
pub fn count_lost_races() {
    let subscriber = tracing_subscriber::registry().with(LostRaces.with_filter(LevelFilter::INFO));
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("bench: a tracing subscriber was already set; retries will read 0");
    }
}

struct LostRaces;

impl<S: Subscriber> Layer<S> for LostRaces {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().fields().field("lost_races").is_some() {
            let mut field = LostRacesField(0);
            event.record(&mut field);
            LOST_RACES.fetch_add(field.0, Ordering::Relaxed);
        }
    }
}

struct LostRacesField(u64);

impl Visit for LostRacesField {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "lost_races" {
            self.0 = value;
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "lost_races" {
            self.0 = value.unsigned_abs();
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}
