//! A flash sale: 10,000 orders of 1 to 3 seats for 300 seats, all enqueued at once, taken
//! by 8 simulated Lambda instances (one connection each) through the single-event path,
//! through the queued intake in batches of 10 and of 50, and through the ceiling (one
//! conditional `UPDATE` per order), each path run right after a ceiling run so the two are
//! compared side by side. Every path gets a fresh flight.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeronode_inventory::db::Database;
use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::{App, Settings};
use aeronode_inventory::inbound;
use aeronode_inventory::outbound::RecordingBus;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Mutex};
use uuid::Uuid;

use crate::Result;
use crate::contention::Rng;
use crate::database::{BenchDb, Consistency};
use crate::events::{Events, seat_number};
use crate::report::Latencies;

pub const ORDERS: usize = 10_000;
pub const INSTANCES: usize = 8;
/// Rows 1-50 of the sale's flight, seats A-F.
const ROWS: i32 = 50;
const SEATS: usize = 300;

/// How a phase takes the orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// One `OrderCreated` per invocation.
    Single,
    /// SQS batches of this many through the queued intake.
    Batched(usize),
    /// One conditional `UPDATE` of the order's seats per order, in autocommit.
    Ceiling,
}

impl Path {
    pub fn name(self) -> String {
        match self {
            Self::Single => "single event".into(),
            Self::Batched(size) => format!("batch of {size}"),
            Self::Ceiling => "ceiling".into(),
        }
    }
}

pub struct SalePhase {
    pub path: Path,
    /// The ceiling phase run just before, for the ratio.
    pub ceiling_per_second: f64,
    pub wall: Duration,
    pub decided: u64,
    pub reserved: u64,
    pub errors: BTreeMap<String, u64>,
    /// Decided orders per second of wall time.
    pub decided_per_second: f64,
    /// From the sale's start (every order enqueued) to the order's answer.
    pub latencies: Latencies,
    /// Transactions that wrote the orders' claims (the ceiling: its updates), per order.
    pub commits_per_order: f64,
    pub consistency: Consistency,
}

impl SalePhase {
    pub fn json(&self) -> Value {
        json!({
            "path": self.path.name(),
            "instances": INSTANCES,
            "orders": ORDERS,
            "seats": SEATS,
            "wallSeconds": self.wall.as_secs_f64(),
            "decided": self.decided,
            "reserved": self.reserved,
            "errors": self.errors,
            "decidedPerSecond": self.decided_per_second,
            "ceilingDecidedPerSecond": self.ceiling_per_second,
            "latencyMs": self.latencies.json(),
            "commitsPerOrder": self.commits_per_order,
            "consistency": self.consistency.json(),
        })
    }

    pub fn markdown_row(&self) -> String {
        let (ceiling, ratio) = if self.path == Path::Ceiling {
            ("".to_owned(), "".to_owned())
        } else {
            (
                format!("{:.0}", self.ceiling_per_second),
                format!("{:.2}", self.decided_per_second / self.ceiling_per_second),
            )
        };
        format!(
            "| {} | {:.0} | {} | {} | {:.0} | {:.0} | {:.3} | {} | {} |",
            self.path.name(),
            self.decided_per_second,
            ceiling,
            ratio,
            self.latencies.percentile_ms(50.0),
            self.latencies.percentile_ms(99.0),
            self.commits_per_order,
            self.reserved,
            if self.consistency.is_ok() {
                "no seat held twice"
            } else {
                "INCONSISTENT"
            },
        )
    }
}

/// The section as a Markdown table.
pub fn markdown(phases: &[SalePhase]) -> String {
    let mut out = String::from(
        "### Flash sale\n\n\
         10,000 orders of 1 to 3 seats for 300 seats, all enqueued at once, 8 instances.\n\n\
         | path | decided/s | ceiling run before it, decided/s | ÷ ceiling | p50 ms | p99 ms | commits/order | orders reserved | check |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for phase in phases {
        out.push_str(&phase.markdown_row());
        out.push('\n');
    }
    out
}

/// Every path, each after a ceiling run of its own.
pub async fn run(db: &BenchDb, events: &Events) -> Result<Vec<SalePhase>> {
    let mut phases = Vec::new();
    for path in [Path::Single, Path::Batched(10), Path::Batched(50)] {
        let ceiling = run_path(db, events, Path::Ceiling, 0.0).await?;
        let ceiling_per_second = ceiling.decided_per_second;
        let phase = run_path(db, events, path, ceiling_per_second).await?;
        eprintln!(
            "bench: flash sale {:>12} {:>8.1} decided/s (ceiling {:>8.1}), p50 {:.0} ms, p99 {:.0} ms, {:.3} commits/order, consistent: {}",
            path.name(),
            phase.decided_per_second,
            ceiling_per_second,
            phase.latencies.percentile_ms(50.0),
            phase.latencies.percentile_ms(99.0),
            phase.commits_per_order,
            phase.consistency.is_ok(),
        );
        phases.push(ceiling);
        phases.push(phase);
    }
    Ok(phases)
}

/// The sale's orders, from a fixed seed: the same for every path.
fn orders(events: &Events, flight: Uuid) -> VecDeque<(Uuid, Vec<String>, Value)> {
    let mut rng = Rng(0xf1a5_5a1e);
    (0..ORDERS)
        .map(|_| {
            let order_id = Uuid::new_v4();
            let seats: Vec<String> = rng
                .order_seats_among(SEATS)
                .into_iter()
                .map(seat_number)
                .collect();
            let event = events.order_created(order_id, flight, &seats);
            (order_id, seats, event)
        })
        .collect()
}

type Queue = Arc<Mutex<VecDeque<(Uuid, Vec<String>, Value)>>>;

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    decided: u64,
    reserved: u64,
    seats_reserved: u64,
    errors: BTreeMap<String, u64>,
}

async fn run_path(
    db: &BenchDb,
    events: &Events,
    path: Path,
    ceiling_per_second: f64,
) -> Result<SalePhase> {
    sqlx::raw_sql("VACUUM (ANALYZE) flight_seats, inventory_locks, reservations, outbox")
        .execute(&db.admin)
        .await?;
    let flight = db.flight_of_rows(ROWS).await?;
    let queue: Queue = Arc::new(Mutex::new(orders(events, flight)));
    let barrier = Arc::new(Barrier::new(INSTANCES + 1));
    let mut tasks = Vec::with_capacity(INSTANCES);
    for _ in 0..INSTANCES {
        let (queue, barrier) = (Arc::clone(&queue), Arc::clone(&barrier));
        let database = Database::new(db.options.clone(), 1);
        tasks.push(tokio::spawn(async move {
            instance(path, database, queue, barrier).await
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut tallies = Vec::with_capacity(INSTANCES);
    for task in tasks {
        tallies.push(task.await??);
    }
    let wall = start.elapsed();
    let decided: u64 = tallies.iter().map(|t| t.decided).sum();
    let mut errors = BTreeMap::new();
    for tally in &tallies {
        for (kind, count) in &tally.errors {
            *errors.entry(kind.clone()).or_default() += count;
        }
    }
    let commits: i64 = match path {
        Path::Ceiling => decided as i64,
        _ => {
            sqlx::query_scalar(
                "SELECT count(DISTINCT xmin::text) FROM reservations WHERE flight_id = $1",
            )
            .bind(flight)
            .fetch_one(&db.admin)
            .await?
        }
    };
    let seats_reserved: u64 = tallies.iter().map(|t| t.seats_reserved).sum();
    let consistency = match path {
        Path::Ceiling => db.check_sold_by_ceiling(flight, seats_reserved).await?,
        _ => db.check_holds(flight, seats_reserved).await?,
    }
    .report(&format!("flash sale {}", path.name()));
    Ok(SalePhase {
        path,
        ceiling_per_second,
        wall,
        decided,
        reserved: tallies.iter().map(|t| t.reserved).sum(),
        errors,
        decided_per_second: decided as f64 / wall.as_secs_f64(),
        latencies: Latencies::of(tallies.iter().flat_map(|t| t.latencies.iter().copied())),
        commits_per_order: commits as f64 / decided.max(1) as f64,
        consistency,
    })
}

/// One Lambda instance: takes orders from the shared queue until it is empty. Connected
/// (and its server session warmed) before the sale starts.
async fn instance(
    path: Path,
    database: Database,
    queue: Queue,
    barrier: Arc<Barrier>,
) -> Result<Tally> {
    let mut tally = Tally::default();
    let app = App::new(database, RecordingBus::new(), Settings::default());
    // A release of an order nobody has: one read and one write, on the server session the
    // sale will use, before the clock starts.
    let _ = app.handle(warm_up(&app)).await;
    barrier.wait().await;
    let start = Instant::now();
    let take = match path {
        Path::Batched(size) => size,
        Path::Single | Path::Ceiling => 1,
    };
    loop {
        let taken: Vec<(Uuid, Vec<String>, Value)> = {
            let mut queue = queue.lock().await;
            let n = take.min(queue.len());
            queue.drain(..n).collect()
        };
        if taken.is_empty() {
            count_reserved(&app, &mut tally);
            return Ok(tally);
        }
        match path {
            Path::Single => {
                let (_, _, event) = &taken[0];
                match app.handle(event.clone()).await {
                    Ok(_) => tally.decided += 1,
                    Err(error) => *tally.errors.entry(error.kind().into()).or_default() += 1,
                }
                tally.latencies.push(start.elapsed());
            }
            Path::Batched(_) => {
                let batch: Vec<Value> = taken.iter().map(|(_, _, event)| event.clone()).collect();
                let payload = aeronode_testkit::sqs::batch_of_events(&batch);
                let read = inbound::read_batch(&payload).ok_or("not an SQS batch")?;
                let deadline = Deadline::after(Duration::from_secs(30));
                match app.handle_batch_until(read, deadline).await {
                    Ok(response) => {
                        let failed = response.batch_item_failures.len();
                        tally.decided += (taken.len() - failed) as u64;
                        if failed > 0 {
                            *tally.errors.entry("batchItemFailures".into()).or_default() +=
                                failed as u64;
                        }
                    }
                    Err(error) => {
                        *tally.errors.entry(error.kind().into()).or_default() += taken.len() as u64
                    }
                }
                let answered = start.elapsed();
                tally.latencies.extend(taken.iter().map(|_| answered));
            }
            Path::Ceiling => {
                let (_, seats, _) = &taken[0];
                let taken_seats =
                    ceiling_take(app.database(), flight_of(&taken[0].2), seats).await?;
                tally.decided += 1;
                if taken_seats > 0 {
                    tally.reserved += 1;
                    tally.seats_reserved += taken_seats;
                }
                tally.latencies.push(start.elapsed());
            }
        }
    }
}

/// Counts what the instance told the bus: orders reserved and their seats.
fn count_reserved(app: &App<RecordingBus>, tally: &mut Tally) {
    for event in app.bus().published() {
        if event.detail_type != DetailType::SeatReserved {
            continue;
        }
        let detail: Value = serde_json::from_str(&event.detail).unwrap_or(Value::Null);
        tally.reserved += 1;
        tally.seats_reserved += detail["seats"].as_array().map_or(0, Vec::len) as u64;
    }
}

/// A `PaymentFailed` of an order that does not exist.
fn warm_up(_: &App<RecordingBus>) -> Value {
    json!({
        "version": "0", "id": Uuid::new_v4(), "detail-type": "PaymentFailed",
        "source": "skyledger.payments", "account": "123456789012",
        "time": "2026-12-02T00:00:00Z", "region": "eu-west-1", "resources": [],
        "detail": {"orderId": Uuid::new_v4(), "paymentId": "warm-up", "reason": "bench warm-up"}
    })
}

fn flight_of(event: &Value) -> Uuid {
    event["detail"]["flightId"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or_default()
}

/// The ceiling of one order: its free seats taken by one `UPDATE` in its own autocommit
/// transaction, one round trip, nothing prepared (as the service sends its calls).
async fn ceiling_take(database: &Database, flight: Uuid, seats: &[String]) -> Result<u64> {
    let mut session = database
        .session(Deadline::after(Duration::from_secs(30)))
        .await?;
    let connection = session.connection().await?;
    let numbers: Vec<String> = seats.iter().map(|seat| format!("'{seat}'")).collect();
    let sql = format!(
        "UPDATE flight_seats SET status = 'LOCKED', version = version + 1, updated_at = now()
         WHERE flight_id = '{flight}' AND seat_number IN ({}) AND status = 'AVAILABLE'",
        numbers.join(", ")
    );
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(connection)
        .await?;
    Ok(done.rows_affected())
}
