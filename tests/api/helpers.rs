//! Arrange and assert helpers: the app on a fresh database, events built from the samples
//! under `events/`, and reads of the seat state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aeronode_inventory::db::Database;
use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::domain::{DetailType, OutgoingEvent};
use aeronode_inventory::handler::{App, Handled, HandlerError, Settings};
use aeronode_inventory::inventory::LockTtl;
use aeronode_inventory::outbound::RecordingBus;
use aeronode_inventory::outbound::outbox::RelayPolicy;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// The demo flight of the samples and the fixtures.
pub const FLIGHT: &str = "3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10";
/// A flight of the fixtures that left yesterday.
pub const DEPARTED_FLIGHT: &str = "0d3a7c55-2b1e-4f6a-8c9d-1e2f3a4b5c6d";

/// The service as Lambda would run it (its own one-connection pool), publishing to an
/// in-memory bus.
pub struct TestApp {
    pub app: Arc<App<RecordingBus>>,
    /// A separate pool for the test's own reads, so they never share the app's session.
    pub db: PgPool,
}

impl TestApp {
    pub async fn spawn(options: PgConnectOptions) -> Self {
        Self::spawn_with(options, RecordingBus::new()).await
    }

    pub async fn spawn_with(options: PgConnectOptions, bus: RecordingBus) -> Self {
        Self::spawn_full(options, bus, 900, test_relay()).await
    }

    /// An instance whose holds last `lock_ttl_seconds`.
    pub async fn spawn_with_ttl(options: PgConnectOptions, lock_ttl_seconds: u32) -> Self {
        Self::spawn_full(options, RecordingBus::new(), lock_ttl_seconds, test_relay()).await
    }

    /// An instance whose outbox relay follows `relay`.
    pub async fn spawn_with_relay(options: PgConnectOptions, relay: RelayPolicy) -> Self {
        Self::spawn_full(options, RecordingBus::new(), 900, relay).await
    }

    /// An instance whose connection goes to `app_options` (a proxy, say), while the test's
    /// own reads go to the database at `options`.
    pub async fn spawn_through(options: PgConnectOptions, app_options: PgConnectOptions) -> Self {
        crate::quiet_logs();
        let app = App::new(
            Database::new(app_options, 1),
            RecordingBus::new(),
            Settings {
                relay: test_relay(),
                ..Settings::default()
            },
        );
        Self::around(app, options).await
    }

    async fn spawn_full(
        options: PgConnectOptions,
        bus: RecordingBus,
        lock_ttl_seconds: u32,
        relay: RelayPolicy,
    ) -> Self {
        crate::quiet_logs();
        let settings = Settings {
            lock_ttl: LockTtl::from_seconds(lock_ttl_seconds),
            relay,
            ..Settings::default()
        };
        let app = App::new(Database::new(app_target(&options), 1), bus, settings);
        Self::around(app, options).await
    }

    async fn around(app: App<RecordingBus>, options: PgConnectOptions) -> Self {
        pooled_database_opened(&options);
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("the test database accepts connections");
        Self {
            app: Arc::new(app),
            db,
        }
    }

    pub async fn handle(&self, event: Value) -> Result<Handled, HandlerError> {
        self.app.handle(event).await
    }

    /// Handles an event that must be answered, and returns the answer's detail.
    pub async fn answer(&self, event: Value) -> (DetailType, Value) {
        match self.handle(event).await {
            Ok(Handled::Answered(event)) => (event.detail_type, detail_of(&event)),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    /// Writes the instance's marks now, as its next write would: entries the bus
    /// accepted become published in the outbox.
    pub async fn flush_marks(&self) {
        let mut session = self
            .app
            .database()
            .session(Deadline::after(Duration::from_secs(10)))
            .await
            .expect("a session");
        session
            .flush_marks(true)
            .await
            .expect("the marks are written");
    }

    pub fn published(&self) -> Vec<OutgoingEvent> {
        self.app.bus().published()
    }

    /// Details of the published events of this type for this order, in order.
    pub fn published_for(&self, order_id: Uuid, detail_type: DetailType) -> Vec<Value> {
        self.published()
            .iter()
            .filter(|event| event.detail_type == detail_type)
            .map(detail_of)
            .filter(|detail| detail["orderId"] == order_id.to_string())
            .collect()
    }

    /// Hold statuses of an order, by seat number.
    pub async fn holds(&self, order_id: Uuid) -> Vec<(String, String)> {
        sqlx::query_as(
            "SELECT s.seat_number::text, l.status::text FROM inventory_locks l
             JOIN flight_seats s USING (seat_id) WHERE l.order_id = $1 ORDER BY s.seat_number",
        )
        .bind(order_id)
        .fetch_all(&self.db)
        .await
        .expect("holds can be read")
    }

    /// Status and version of a seat of the demo flight.
    pub async fn seat(&self, seat_number: &str) -> (String, i32) {
        let row = sqlx::query(
            "SELECT status::text AS status, version FROM flight_seats
             WHERE flight_id = $1 AND seat_number = $2",
        )
        .bind(uuid(FLIGHT))
        .bind(seat_number)
        .fetch_one(&self.db)
        .await
        .expect("the seat exists");
        (row.get("status"), row.get("version"))
    }

    /// Seat numbers an order holds actively, sorted.
    pub async fn active_holds(&self, order_id: Uuid) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT s.seat_number FROM inventory_locks l JOIN flight_seats s USING (seat_id)
             WHERE l.order_id = $1 AND l.status = 'ACTIVE' ORDER BY s.seat_number",
        )
        .bind(order_id)
        .fetch_all(&self.db)
        .await
        .expect("holds can be read")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db)
            .await
            .expect("the count query runs")
    }

    /// Fails the test if any seat breaks the invariant below.
    pub async fn assert_consistent(&self) {
        let broken = self.inconsistent_seats().await;
        assert!(
            broken.is_empty(),
            "seats out of step with their holds: {broken:?}"
        );
    }

    /// The invariant every scenario must leave behind: each LOCKED seat has exactly one
    /// active hold, each BOOKED seat exactly one confirmed hold, each AVAILABLE seat none.
    /// Returns the seats that break it.
    pub async fn inconsistent_seats(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT s.seat_number || ' ' || s.status::text
             FROM flight_seats s
             LEFT JOIN inventory_locks l ON l.seat_id = s.seat_id
             GROUP BY s.seat_id, s.seat_number, s.status
             HAVING count(*) FILTER (WHERE l.status = 'ACTIVE')
                        <> CASE WHEN s.status = 'LOCKED' THEN 1 ELSE 0 END
                 OR count(*) FILTER (WHERE l.status = 'CONFIRMED')
                        <> CASE WHEN s.status = 'BOOKED' THEN 1 ELSE 0 END",
        )
        .fetch_all(&self.db)
        .await
        .expect("the consistency query runs")
    }
}

/// Set by `scripts/test.sh` for its second pass: the address of a PgBouncer in transaction
/// pooling mode (`postgres://host:port`, or a port on 127.0.0.1), the stand-in for RDS Proxy.
pub const VIA_POOLER: &str = "AERONODE_VIA_POOLER";

/// The pooler the service connects through in this run, if [`VIA_POOLER`] names one.
pub fn pooler() -> Option<(String, u16)> {
    let raw = std::env::var(VIA_POOLER)
        .ok()
        .filter(|raw| !raw.trim().is_empty())?;
    let raw = raw.trim();
    if let Ok(port) = raw.parse::<u16>() {
        return Some(("127.0.0.1".to_owned(), port));
    }
    let options: PgConnectOptions = raw
        .parse()
        .unwrap_or_else(|e| panic!("{VIA_POOLER}={raw} is neither a port nor a URL: {e}"));
    Some((options.get_host().to_owned(), options.get_port()))
}

/// Where the service's connections go for the test database at `options`: that database,
/// as that user, through the pooler when the run has one, straight to PostgreSQL otherwise.
/// `#[sqlx::test]` creates and drops the database directly either way, and the test's own
/// reads (`TestApp::db`) stay direct, so they never wait behind the service in the pool.
pub fn app_target(options: &PgConnectOptions) -> PgConnectOptions {
    match pooler() {
        Some((host, port)) => options.clone().host(&host).port(port),
        None => options.clone(),
    }
}

/// How many live `TestApp`s use each database through the pooler.
static POOLED_DATABASES: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

fn pooled_database_opened(options: &PgConnectOptions) {
    if pooler().is_some() {
        let database = options.get_database().unwrap_or_default().to_owned();
        *lock_pooled().entry(database).or_default() += 1;
    }
}

/// When the last `TestApp` of a database goes, has the pooler close its server connections
/// on it: `#[sqlx::test]` drops the database next, which would otherwise wait for them.
fn pooled_database_closed(options: &PgConnectOptions) {
    let Some((host, port)) = pooler() else { return };
    let database = options.get_database().unwrap_or_default();
    {
        let mut open = lock_pooled();
        let Some(count) = open.get_mut(database) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        open.remove(database);
    }
    // The admin console of PgBouncer; KILL also pauses the database, hence RESUME.
    let admin = format!(
        "postgres://{}@{host}:{port}/pgbouncer",
        options.get_username()
    );
    let _ = std::process::Command::new("psql")
        .args([admin.as_str(), "-qXw", "-c"])
        .arg(format!("KILL {database}"))
        .arg("-c")
        .arg(format!("RESUME {database}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn lock_pooled() -> std::sync::MutexGuard<'static, BTreeMap<String, usize>> {
    POOLED_DATABASES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        pooled_database_closed(self.app.database().options());
    }
}

/// The relay of the tests: entries are the relay's after a second, and a rejected one is due
/// again at once (tests of the backoff set their own).
pub fn test_relay() -> RelayPolicy {
    RelayPolicy {
        grace: Duration::from_secs(1),
        backoff: Duration::ZERO,
        ..RelayPolicy::default()
    }
}

pub fn uuid(raw: &str) -> Uuid {
    Uuid::parse_str(raw).expect("a valid uuid literal")
}

pub fn detail_of(event: &OutgoingEvent) -> Value {
    serde_json::from_str(&event.detail).expect("an outgoing detail is JSON")
}

/// A sample event from `events/`, as Lambda would deliver it.
pub fn sample(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `OrderCreated` for these seats of the demo flight, with a fresh envelope id.
pub fn order_created(order_id: Uuid, seats: &[&str]) -> Value {
    order_created_with(json!({"orderId": order_id, "flightId": FLIGHT, "seats": seats}))
}

/// `OrderCreated` with any detail at all, in the sample's envelope with a fresh id.
pub fn order_created_with(detail: Value) -> Value {
    let mut event = sample("order-created.json");
    event["id"] = json!(Uuid::new_v4());
    event["detail"] = detail;
    event
}

/// A sample event with a fresh envelope id and this order id in its detail.
fn for_order(sample_name: &str, order_id: Uuid) -> Value {
    let mut event = sample(sample_name);
    event["id"] = json!(Uuid::new_v4());
    event["detail"]["orderId"] = json!(order_id);
    event
}

pub fn payment_succeeded(order_id: Uuid) -> Value {
    for_order("payment-succeeded.json", order_id)
}

pub fn payment_failed(order_id: Uuid) -> Value {
    for_order("payment-failed.json", order_id)
}

pub fn order_cancelled(order_id: Uuid) -> Value {
    for_order("order-cancelled.json", order_id)
}

/// The every-minute schedule, with a fresh envelope id.
pub fn scheduled() -> Value {
    let mut event = sample("scheduled.json");
    event["id"] = json!(Uuid::new_v4());
    event
}

/// `SeatBlockRequested` for these seats of the demo flight, with a fresh envelope id.
pub fn block_requested(request_id: Uuid, seats: &[&str], reason: &str) -> Value {
    operation_with(
        "seat-block-requested.json",
        json!({"requestId": request_id, "flightId": FLIGHT, "seats": seats, "reason": reason}),
    )
}

/// `SeatUnblockRequested` for these seats of the demo flight, with a fresh envelope id.
pub fn unblock_requested(request_id: Uuid, seats: &[&str]) -> Value {
    operation_with(
        "seat-unblock-requested.json",
        json!({"requestId": request_id, "flightId": FLIGHT, "seats": seats}),
    )
}

/// A sample of operations with any detail at all, in its envelope with a fresh id.
pub fn operation_with(sample_name: &str, detail: Value) -> Value {
    let mut event = sample(sample_name);
    event["id"] = json!(Uuid::new_v4());
    event["detail"] = detail;
    event
}

/// `SeatChangeRequested` of these moves for an order of the demo flight, with a fresh
/// envelope id.
pub fn seat_change(change_id: Uuid, order_id: Uuid, moves: &[(&str, &str)]) -> Value {
    let moves: Vec<Value> = moves
        .iter()
        .map(|(from, to)| json!({"from": from, "to": to}))
        .collect();
    operation_with(
        "seat-change-requested.json",
        json!({"changeId": change_id, "orderId": order_id, "flightId": FLIGHT, "moves": moves}),
    )
}

/// `AircraftChanged` for the demo flight with these cabins, with a fresh envelope id.
pub fn aircraft_changed(change_id: Uuid, cabins: Value) -> Value {
    operation_with(
        "aircraft-changed.json",
        json!({"changeId": change_id, "flightId": FLIGHT, "cabins": cabins}),
    )
}

/// Two events handled at the same time, each by its own instance (its own connection), the
/// first after `delay`: a race whose order the scheduler decides.
pub async fn at_once(
    first: (&TestApp, Value),
    second: (&TestApp, Value),
    delay: Duration,
) -> (Result<Handled, HandlerError>, Result<Handled, HandlerError>) {
    let (a, x) = (first.0.app.clone(), first.1);
    let (b, y) = (second.0.app.clone(), second.1);
    let (x, y) = tokio::join!(
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            a.handle(x).await
        }),
        tokio::spawn(async move { b.handle(y).await })
    );
    (
        x.expect("the first task completes"),
        y.expect("the second task completes"),
    )
}
