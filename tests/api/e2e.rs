//! The compiled binary, end to end: run by a local Lambda Runtime API, on a fresh
//! database, publishing through moto's EventBridge to an SQS queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aeronode_testkit::runtime_api::{Invocation, Pending};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::aws_emulator::{Moto, Queue, REGION, own_bus};
use crate::binary::{Binary, SOON, direct_database_url, eventually};
use crate::helpers::{TestApp, order_created, sample, uuid};

/// The order of `events/order-created.json`, for seats 12A and 12B.
const SAMPLE_ORDER: &str = "b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d";

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_real_binary_reserves_seats_and_its_event_arrives_in_sqs_through_the_rule(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let moto = Moto::shared();
    let queue = moto.route_inventory_events_to_queue().await;
    let mut binary = Binary::start(
        &options,
        &moto.endpoint(),
        &[("EVENT_BUS_NAME", queue.bus())],
    )
    .await;
    let order = sample("order-created.json");

    let logged_before = binary.log_lines().len();
    let pending = binary.runtime.submit(order.clone());
    let sent = Sent::of(&pending);
    let outcome = binary.outcome(pending).await;
    let logged = binary.log_lines().split_off(logged_before);

    assert!(matches!(outcome, Invocation::Response(_)), "{outcome:?}");
    let arrived = one_event(&queue).await;
    assert_eq!(arrived["source"], "skyledger.inventory");
    assert_eq!(arrived["detail-type"], "SeatReserved");
    assert_eq!(arrived["detail"]["orderId"], SAMPLE_ORDER);
    assert_eq!(arrived["detail"]["causationId"], order["id"]);
    assert_eq!(seat_numbers(&arrived["detail"]["seats"]), ["12A", "12B"]);
    let stored = outbox(&db.db).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(arrived["detail"]["eventId"], stored[0].event_id.to_string());
    assert!(
        stored[0].published,
        "marked published as soon as the bus accepted it"
    );
    assert_eq!(db.seat("12A").await.0, "LOCKED");
    assert_eq!(db.seat("12B").await.0, "LOCKED");
    assert_logged_in_invocation_span(&logged, &sent, SAMPLE_ORDER, &order["id"]);

    let rival = order_created(Uuid::new_v4(), &["12A", "12B"]);
    let outcome = binary.invoke(rival.clone()).await;

    assert!(matches!(outcome, Invocation::Response(_)), "{outcome:?}");
    let arrived = one_event(&queue).await;
    assert_eq!(arrived["detail-type"], "SeatReservationFailed");
    assert_eq!(arrived["detail"]["orderId"], rival["detail"]["orderId"]);
    assert_eq!(arrived["detail"]["reason"], "SEAT_UNAVAILABLE");
    assert_eq!(arrived["detail"]["unavailableSeats"], json!(["12A", "12B"]));
    let stored = outbox(&db.db).await;
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|entry| entry.published),
        "each answer marked published once the bus took it"
    );
    db.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_unreadable_event_fails_the_invocation_and_holds_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let moto = Moto::shared();
    let queue = moto.route_inventory_events_to_queue().await;
    let mut binary = Binary::start(
        &options,
        &moto.endpoint(),
        &[("EVENT_BUS_NAME", queue.bus())],
    )
    .await;

    let outcome = binary
        .invoke(json!({"orderId": SAMPLE_ORDER, "seats": ["12A"]}))
        .await;

    let Invocation::Error { error_type, .. } = outcome else {
        panic!("expected the invocation to fail, got {outcome:?}");
    };
    assert!(error_type.starts_with("Rejected."), "{error_type}");
    assert_eq!(db.count("SELECT count(*) FROM reservations").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM inventory_locks").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM flight_seats WHERE status <> 'AVAILABLE'")
            .await,
        0
    );
    assert_eq!(queue.receive(0, SOON).await, Vec::<Value>::new());
    db.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_crash_between_commit_and_publish_loses_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let order = sample("order-created.json");
    crash_after_commit(&options, &db, &order).await;

    assert_eq!(db.seat("12A").await.0, "LOCKED");
    assert_eq!(db.seat("12B").await.0, "LOCKED");
    let pending = outbox(&db.db).await;
    assert_eq!(pending.len(), 1);
    assert!(!pending[0].published, "the crash left the event pending");

    // Lambda retries the same event on a fresh instance.
    let moto = Moto::shared();
    let queue = moto.route_inventory_events_to_queue().await;
    let mut binary = Binary::start(
        &options,
        &moto.endpoint(),
        &[("EVENT_BUS_NAME", queue.bus())],
    )
    .await;
    let outcome = binary.invoke(order).await;

    assert!(matches!(outcome, Invocation::Response(_)), "{outcome:?}");
    let arrived = one_event(&queue).await;
    assert_eq!(arrived["detail-type"], "SeatReserved");
    assert_eq!(
        arrived["detail"]["eventId"],
        pending[0].event_id.to_string()
    );
    let outcome = binary.invoke(sample("scheduled.json")).await;
    assert!(matches!(outcome, Invocation::Response(_)), "{outcome:?}");
    let stored = outbox(&db.db).await;
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].published,
        "the next write marked the row published"
    );
    assert_eq!(
        queue.receive(0, SOON).await,
        Vec::<Value>::new(),
        "sent once"
    );
    assert_eq!(db.active_holds(uuid(SAMPLE_ORDER)).await, ["12A", "12B"]);
    assert_eq!(
        db.count("SELECT count(*) FROM inventory_locks").await,
        2,
        "held once"
    );
    db.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_crash_between_commit_and_publish_is_repaired_by_the_outbox_relay(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    crash_after_commit(&options, &db, &sample("order-created.json")).await;
    let pending = outbox(&db.db).await;
    assert_eq!(pending.len(), 1);
    assert!(!pending[0].published, "the crash left the event pending");
    let moto = Moto::shared();
    let queue = moto.route_inventory_events_to_queue().await;
    let grace = [
        ("OUTBOX_GRACE_SECONDS", "1"),
        ("EVENT_BUS_NAME", queue.bus()),
    ];
    let mut binary = Binary::start(&options, &moto.endpoint(), &grace).await;
    eventually("the pending row is past the grace period", async || {
        db.count(
            "SELECT count(*) FROM outbox
             WHERE published_at IS NULL AND created_at < now() - interval '1.1 seconds'",
        )
        .await
            == 1
    })
    .await;

    let outcome = binary.invoke(sample("scheduled.json")).await;

    assert!(matches!(outcome, Invocation::Response(_)), "{outcome:?}");
    let arrived = one_event(&queue).await;
    assert_eq!(
        arrived["detail"]["eventId"],
        pending[0].event_id.to_string()
    );
    assert!(outbox(&db.db).await[0].published);

    let outcome = binary.invoke(sample("scheduled.json")).await;

    assert!(matches!(outcome, Invocation::Response(_)), "{outcome:?}");
    assert_eq!(
        queue.receive(0, SOON).await,
        Vec::<Value>::new(),
        "published once"
    );
    db.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn putevents_failing_makes_the_invocation_fail_and_a_retry_publishes_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let mut moto = Moto::start().await;
    moto.stop().await;
    let bus = own_bus();
    let mut binary = Binary::start(&options, &moto.endpoint(), &[("EVENT_BUS_NAME", &bus)]).await;
    let order = sample("order-created.json");

    let outcome = binary.invoke(order.clone()).await;

    let Invocation::Error { error_type, .. } = outcome else {
        panic!("expected the invocation to fail, got {outcome:?}");
    };
    assert_eq!(error_type, "Retryable.PublishFailed");
    assert_eq!(db.active_holds(uuid(SAMPLE_ORDER)).await, ["12A", "12B"]);
    let pending = outbox(&db.db).await;
    assert_eq!(pending.len(), 1);
    assert!(!pending[0].published);

    moto.restart().await;
    let queue = moto.route_inventory_events_on(&bus).await;
    let outcome = binary.invoke(order).await;

    assert!(matches!(outcome, Invocation::Response(_)), "{outcome:?}");
    let arrived = one_event(&queue).await;
    assert_eq!(
        arrived["detail"]["eventId"],
        pending[0].event_id.to_string()
    );
    let outcome = binary.invoke(sample("scheduled.json")).await;
    assert!(matches!(outcome, Invocation::Response(_)), "{outcome:?}");
    let stored = outbox(&db.db).await;
    assert!(
        stored[0].published,
        "the next write marked the row published"
    );
    assert_eq!(stored[0].publish_attempts, 2);
    assert_eq!(
        db.count("SELECT count(*) FROM inventory_locks").await,
        2,
        "held once"
    );
    db.assert_consistent().await;
}

#[sqlx::test(migrations = false)]
async fn migrate_applies_the_schema_and_is_safe_to_run_again(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = PgPoolOptions::new()
        .connect_with(options.clone())
        .await
        .expect("connects");
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/database/migrations"))
        .expect("the migrations folder")
        .count() as i64;

    for run in 1..=2 {
        let output = Command::new(env!("CARGO_BIN_EXE_aeronode-inventory"))
            .arg("migrate")
            .env_clear()
            .env("DATABASE_URL", direct_database_url(&options))
            .env("AWS_REGION", REGION)
            .envs(std::env::var_os("PGPASSWORD").map(|p| ("PGPASSWORD", p)))
            .output()
            .await
            .expect("the binary runs");
        assert!(
            output.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db)
        .await
        .expect("the migrations are recorded");
    assert_eq!(applied, migrations, "each migration applied once");
    let seats: i64 = sqlx::query_scalar("SELECT count(*) FROM flight_seats")
        .fetch_one(&db)
        .await
        .expect("the schema exists");
    assert_eq!(seats, 0);
}

#[sqlx::test(migrations = false)]
async fn a_cold_start_never_migrates(_: PgPoolOptions, options: PgConnectOptions) {
    let db = PgPoolOptions::new()
        .connect_with(options.clone())
        .await
        .expect("connects");
    let mut binary = Binary::start(&options, "http://127.0.0.1:1", &[]).await;

    let outcome = binary.invoke(sample("order-created.json")).await;

    // Deployed before migrating: the service's functions are missing (42883), which no
    // retry mends until the migrations are applied.
    assert!(
        matches!(&outcome, Invocation::Error { error_type, .. } if error_type == "Rejected.DatabaseRefused.42883"),
        "{outcome:?}"
    );
    let untouched: bool = sqlx::query_scalar(
        "SELECT to_regclass('_sqlx_migrations') IS NULL AND to_regclass('flights') IS NULL",
    )
    .fetch_one(&db)
    .await
    .expect("the catalog is readable");
    assert!(untouched, "the function created no schema");
}

/// Runs the binary against an endpoint that accepts and never answers, delivers the
/// order, and kills it (-9) once the order is committed and PutEvents is under way.
async fn crash_after_commit(options: &PgConnectOptions, db: &TestApp, order: &Value) {
    let black_hole = BlackHole::start().await;
    let binary = Binary::start(options, &black_hole.endpoint(), &[]).await;

    let _unanswered = binary.runtime.submit(order.clone());
    eventually(
        "the order is committed and PutEvents is under way",
        async || {
            black_hole.connections() > 0
                && db
                    .count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .await
                    == 1
        },
    )
    .await;

    binary.crash().await;
}

/// A loopback endpoint that accepts connections and never answers: a request to it hangs.
struct BlackHole {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl BlackHole {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        Self {
            port,
            connections,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    event_id: Uuid,
    published: bool,
    publish_attempts: i32,
}

async fn outbox(db: &PgPool) -> Vec<OutboxRow> {
    sqlx::query_as(
        "SELECT event_id, published_at IS NOT NULL AS published, publish_attempts
         FROM outbox ORDER BY created_at",
    )
    .fetch_all(db)
    .await
    .expect("the outbox can be read")
}

/// The invocation flushed one CloudWatch EMF document: the cold start, the reservation,
/// and how long the handler took, in the service's namespace.
fn assert_one_metrics_document_of_a_reservation(lines: &[Value]) {
    let documents: Vec<&Value> = lines
        .iter()
        .filter(|line| line.get("_aws").is_some())
        .collect();
    assert_eq!(
        documents.len(),
        1,
        "one EMF document per invocation: {documents:?}"
    );
    let document = documents[0];
    let directive = &document["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "SkyLedger/Inventory", "{document}");
    assert_eq!(
        directive["Dimensions"],
        serde_json::json!([["Service"]]),
        "{document}"
    );
    assert_eq!(document["Service"], "aeronode-inventory");
    assert_eq!(document["ColdStart"], 1, "{document}");
    assert_eq!(document["Reservations"], 1, "{document}");
    assert_eq!(document["SeatsReserved"], 2, "{document}");
    assert!(
        document["HandlerDuration"][0]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "{document}"
    );
}

/// What the Runtime API sent with an invocation, for finding it in the binary's log.
struct Sent {
    request_id: String,
    trace_id: String,
}

impl Sent {
    fn of(pending: &Pending) -> Self {
        Self {
            request_id: pending.request_id().to_owned(),
            trace_id: pending.trace_id().to_owned(),
        }
    }
}

/// Every line is JSON. Each log line was logged inside the invocation's span, and that
/// span names the invocation's request id and X-Ray trace id, the order and the incoming
/// event. Metric records (CloudWatch embedded metric format, an `_aws` key) are not log
/// lines and carry no span.
fn assert_logged_in_invocation_span(
    lines: &[String],
    sent: &Sent,
    order_id: &str,
    event_id: &Value,
) {
    let lines: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let logs: Vec<&Value> = lines
        .iter()
        .filter(|line| line.get("_aws").is_none())
        .collect();
    assert!(!logs.is_empty(), "the invocation logged nothing");
    assert_one_metrics_document_of_a_reservation(&lines);
    for line in logs {
        let span = &line["span"];
        assert_eq!(span["name"], "invocation", "{line}");
        assert_eq!(span["requestId"], sent.request_id.as_str(), "{line}");
        assert_eq!(span["xrayTraceId"], sent.trace_id.as_str(), "{line}");
        assert_eq!(span["orderId"], order_id, "{line}");
        assert_eq!(&span["eventId"], event_id, "{line}");
    }
}

/// The one event that arrived in the queue; fails if none or more than one did.
async fn one_event(queue: &Queue) -> Value {
    let mut arrived = queue.receive(1, SOON).await;
    assert_eq!(arrived.len(), 1, "expected exactly one event: {arrived:#?}");
    arrived.remove(0)
}

fn seat_numbers(seats: &Value) -> Vec<&str> {
    let seats = seats.as_array().map(Vec::as_slice).unwrap_or_default();
    seats
        .iter()
        .filter_map(|seat| seat["seatNumber"].as_str())
        .collect()
}

#[tokio::test]
async fn the_binary_says_what_it_is_anywhere_and_never_panics_outside_lambda() {
    let run = |args: &'static [&'static str]| async move {
        Command::new(env!("CARGO_BIN_EXE_aeronode-inventory"))
            .args(args)
            .env_clear()
            .output()
            .await
            .expect("the binary runs")
    };

    let help = run(&["--help"]).await;
    let version = run(&["--version"]).await;
    let migrate_help = run(&["migrate", "--help"]).await;
    let outside_lambda = run(&[]).await;

    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for command in ["migrate", "outbox", "quarantine", "seatmap"] {
        assert!(help.contains(command), "--help names {command}: {help}");
    }
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("aeronode-inventory "));
    assert!(migrate_help.status.success());
    assert_eq!(
        outside_lambda.status.code(),
        Some(2),
        "non-zero, and not a panic (101)"
    );
    let said = String::from_utf8_lossy(&outside_lambda.stderr).into_owned();
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    assert!(
        said.contains("AWS_LAMBDA_RUNTIME_API") && said.contains("run-local.sh"),
        "{said}"
    );
}
