//! What a reservation costs the shared database, in steady state: round trips counted on
//! the wire (a counting proxy between the app and PostgreSQL, pings included) and commits
//! counted in the rows it wrote (every row a commit touches carries its transaction id).
//! Counts are deterministic, so these are budgets, not timings.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::Handled;
use aeronode_testkit::wire::{Proxy, Traffic};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgSslMode};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use uuid::Uuid;

use serde_json::json;

use crate::helpers::{FLIGHT, TestApp, order_created, order_created_with, payment_failed};

/// An order that names its seats, reserved or refused: the decision (read, decided and
/// written in one call), then the mark of what the bus accepted; each one simple query
/// (one round trip), nothing else.
const DECIDED_IN_ONE_CALL: u64 = 2;
/// An any-seat order (its picker reads first) and a release (read, then the transition),
/// then the mark.
const READ_THEN_DECIDED: u64 = 3;

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_reservation_a_refusal_an_any_seat_order_and_a_release_stay_within_their_round_trips_and_commit_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let (app, proxy) = app_behind_a_counting_proxy(options).await;
    // Steady state: the connection is open.
    for seat in ["25A", "25B", "25C"] {
        let order = Uuid::new_v4();
        app.answer(order_created(order, &[seat])).await;
        released(app.handle(payment_failed(order)).await);
    }

    let order = Uuid::new_v4();
    let (reservation, (answer, _)) =
        counted(&proxy, app.answer(order_created(order, &["26A"]))).await;
    let reserved = event_of(&app, order, "SeatReserved").await;
    let reserved_in = commits(
        &app,
        &[Row::Claim(order), Row::Holds(order), Row::Seat("26A")],
    )
    .await;
    let reserved_marked_in = commits(&app, &[Row::Entry(reserved)]).await;
    let rival = Uuid::new_v4();
    let (refusal, (refused, _)) = counted(&proxy, app.answer(order_created(rival, &["26A"]))).await;
    let refused_in = commits(&app, &[Row::Claim(rival)]).await;
    let refusal_marked_in = commits(
        &app,
        &[Row::Entry(
            event_of(&app, rival, "SeatReservationFailed").await,
        )],
    )
    .await;
    let picker = Uuid::new_v4();
    let (any_seat, (picked, _)) = counted(
        &proxy,
        app.answer(order_created_with(json!({
            "orderId": picker, "flightId": FLIGHT, "seatCount": 2, "cabin": "ECONOMY"
        }))),
    )
    .await;
    let picked_in = commits(&app, &[Row::Claim(picker), Row::Holds(picker)]).await;
    let picked_marked_in = commits(
        &app,
        &[Row::Entry(event_of(&app, picker, "SeatReserved").await)],
    )
    .await;
    let (release, outcome) = counted(&proxy, app.handle(payment_failed(order))).await;
    let release_entry = released(outcome);
    let released_in = commits(&app, &[Row::Holds(order), Row::Seat("26A")]).await;
    let release_marked_in = commits(&app, &[Row::Entry(release_entry)]).await;

    assert_eq!(answer, DetailType::SeatReserved);
    assert_eq!(refused, DetailType::SeatReservationFailed);
    assert_eq!(picked, DetailType::SeatReserved);
    for (work, traffic, budget) in [
        ("reservation", &reservation, DECIDED_IN_ONE_CALL),
        ("refusal", &refusal, DECIDED_IN_ONE_CALL),
        ("any-seat order", &any_seat, READ_THEN_DECIDED),
        ("release", &release, READ_THEN_DECIDED),
    ] {
        assert_eq!(
            traffic.round_trips, budget,
            "a {work} took {} round trips (budget {budget}): {:?}",
            traffic.round_trips, traffic.turns
        );
        assert_eq!(
            (traffic.count('Q'), traffic.parses()),
            (budget, 0),
            "a {work} is {budget} simple queries, the mark included: {:?}",
            traffic.sql
        );
    }
    for (work, decided, marked) in [
        ("reservation", &reserved_in, &reserved_marked_in),
        ("refusal", &refused_in, &refusal_marked_in),
        ("any-seat order", &picked_in, &picked_marked_in),
        ("release", &released_in, &release_marked_in),
    ] {
        assert_eq!(
            decided.len(),
            1,
            "every row a {work} decided, in one commit: {decided:?}"
        );
        assert!(
            marked.len() == 1 && marked.is_disjoint(decided),
            "its answer marked published by a commit of its own: {marked:?} {decided:?}"
        );
    }
    app.assert_consistent().await;
}

#[sqlx::test(migrator = "aeronode_inventory::db::MIGRATOR")]
async fn the_mark_of_what_the_bus_accepted_does_not_wait_for_the_wal_flush_and_leaves_nothing_set(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let mut transaction = app.db.begin().await.expect("a transaction");

    let _: String = sqlx::query_scalar("SELECT inventory_acknowledge('{}')::text")
        .fetch_one(&mut *transaction)
        .await
        .expect("the mark runs");
    let inside: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
        .fetch_one(&mut *transaction)
        .await
        .expect("the setting is readable");
    transaction.commit().await.expect("the mark commits");
    let after: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
        .fetch_one(&app.db)
        .await
        .expect("the setting is readable");

    assert_eq!(inside, "off");
    assert_eq!(after, "on", "for its own transaction only");
}

async fn app_behind_a_counting_proxy(options: PgConnectOptions) -> (TestApp, Proxy) {
    // In front of whatever the app talks to: PostgreSQL, or PgBouncer in its pass.
    let target = crate::helpers::app_target(&options);
    let host = target.get_host().to_owned();
    assert!(
        !host.starts_with('/'),
        "the counting proxy needs a TCP DATABASE_URL, not a Unix socket"
    );
    let proxy = Proxy::start(format!("{host}:{}", target.get_port()))
        .await
        .expect("the proxy starts");
    // Plain text, so the proxy can read the messages; TLS changes no message and no turn.
    let through = options
        .clone()
        .host("127.0.0.1")
        .port(proxy.port())
        .ssl_mode(PgSslMode::Disable);
    (TestApp::spawn_through(options, through).await, proxy)
}

/// The traffic of `work`, from a quiet connection to a quiet connection again.
async fn counted<T>(proxy: &Proxy, work: impl std::future::Future<Output = T>) -> (Traffic, T) {
    let before = proxy.traffic().await;
    let outcome = work.await;
    (proxy.traffic().await.since(&before), outcome)
}

/// The id of the one `SeatReleased` a release published.
fn released(outcome: Result<Handled, impl std::fmt::Debug>) -> Uuid {
    match outcome {
        Ok(Handled::Released(events)) if events.len() == 1 => events[0].event_id,
        other => panic!("expected one SeatReleased, got {other:?}"),
    }
}

async fn event_of(app: &TestApp, order: Uuid, detail_type: &str) -> Uuid {
    sqlx::query_scalar("SELECT event_id FROM outbox WHERE order_id = $1 AND detail_type = $2")
        .bind(order)
        .bind(detail_type)
        .fetch_one(&app.db)
        .await
        .expect("the event is in the outbox")
}

/// A row a piece of work writes.
enum Row {
    /// The order's `reservations` row.
    Claim(Uuid),
    /// The order's holds.
    Holds(Uuid),
    /// A seat of the demo flight.
    Seat(&'static str),
    /// An outbox entry.
    Entry(Uuid),
}

/// The transactions that last wrote these rows: one, if a single commit wrote them all.
async fn commits(app: &TestApp, rows: &[Row]) -> BTreeSet<String> {
    let mut xids = BTreeSet::new();
    for row in rows {
        let query = match row {
            Row::Claim(id) => {
                sqlx::query_scalar("SELECT xmin::text FROM reservations WHERE order_id = $1")
                    .bind(*id)
            }
            Row::Holds(id) => {
                sqlx::query_scalar("SELECT xmin::text FROM inventory_locks WHERE order_id = $1")
                    .bind(*id)
            }
            Row::Seat(number) => sqlx::query_scalar(
                "SELECT xmin::text FROM flight_seats WHERE flight_id = $1 AND seat_number = $2",
            )
            .bind(crate::helpers::uuid(crate::helpers::FLIGHT))
            .bind(*number),
            Row::Entry(id) => {
                sqlx::query_scalar("SELECT xmin::text FROM outbox WHERE event_id = $1").bind(*id)
            }
        };
        let found: Vec<String> = query
            .fetch_all(&app.db)
            .await
            .expect("the rows' transaction ids are readable");
        assert!(!found.is_empty(), "no row for {}", row.name());
        xids.extend(found);
    }
    xids
}

impl Row {
    fn name(&self) -> String {
        match self {
            Self::Claim(id) => format!("the claim of {id}"),
            Self::Holds(id) => format!("the holds of {id}"),
            Self::Seat(number) => format!("seat {number}"),
            Self::Entry(id) => format!("outbox entry {id}"),
        }
    }
}

/// What the database runs for one decision of an order that names its seats, counted by
/// `auto_explain` (every statement the executor runs, nested ones included), the call
/// itself left out: the decision's own statements, then for each seat held the guard
/// trigger's check and the two foreign keys' (the seat of the flight, the order of the
/// flight). Migration 0011 brought a two-seat reservation down from 12 of its own in two
/// calls (3 reading, 9 deciding) plus 4 per seat, and a refusal from 9 to 3.
#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_reservation_runs_five_statements_of_its_own_and_three_per_seat_and_a_refusal_three(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut connection = PgConnection::connect_with(&options)
        .await
        .expect("a connection");
    sqlx::raw_sql(
        "LOAD 'auto_explain';
         SET auto_explain.log_min_duration = 0;
         SET auto_explain.log_nested_statements = on;
         SET auto_explain.log_level = notice;",
    )
    .execute(&mut connection)
    .await
    .expect("auto_explain is there to load");
    let (order, rival) = (Uuid::new_v4(), Uuid::new_v4());

    let reserved = statements(&mut connection, order, &["12A", "12B"]).await;
    let refused = statements(&mut connection, rival, &["12B"]).await;

    let own = ["begin", "read", "lock", "check", "write"];
    let per_seat = ["guard", "seat of the flight", "order of the flight"];
    let mut expected: Vec<&str> = own.to_vec();
    for _ in 0..2 {
        expected.extend(per_seat);
    }
    expected.sort_unstable();
    let mut reserved_sorted = reserved.clone();
    reserved_sorted.sort_unstable();
    assert_eq!(reserved_sorted, expected, "in the order run: {reserved:?}");
    assert_eq!(refused, ["begin", "read", "write"]);
}

/// The statements one `inventory_decide_order` call ran, by what each is.
async fn statements(
    connection: &mut PgConnection,
    order: Uuid,
    seats: &[&str],
) -> Vec<&'static str> {
    let recorder = NoticeRecorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let call = json!({
        "published": [], "orderId": order, "flightId": FLIGHT, "fingerprint": "statements",
        "eventId": Uuid::new_v4(), "causationId": "statements", "seats": seats,
        "ttlMs": 900_000, "skipLocked": false,
    });
    let answer: String = sqlx::query_scalar("SELECT inventory_decide_order($1)::text")
        .bind(call)
        .fetch_one(&mut *connection)
        .await
        .expect("the decision runs");
    assert!(answer.contains("\"decided\""), "{answer}");
    let plans = recorder.take();
    let nested = plans
        .iter()
        .filter(|plan| !plan.contains("inventory_decide_order("));
    nested.map(|plan| statement_kind(plan)).collect()
}

fn statement_kind(plan: &str) -> &'static str {
    let text = plan.split("Query Text:").nth(1).unwrap_or("").trim_start();
    let kinds = [
        ("SELECT inventory_begin(", "begin"),
        ("WITH wanted AS", "read"),
        ("locked := ARRAY(SELECT seat_id FROM flight_seats", "lock"),
        ("SELECT (SELECT inventory_flight_status", "check"),
        ("WITH claim AS", "write"),
        ("NEW.status IN ('ACTIVE', 'CONFIRMED')", "guard"),
        (
            "SELECT 1 FROM ONLY \"public\".\"flight_seats\"",
            "seat of the flight",
        ),
        (
            "SELECT 1 FROM ONLY \"public\".\"reservations\"",
            "order of the flight",
        ),
    ];
    kinds
        .iter()
        .find(|(start, _)| text.starts_with(start))
        .map_or_else(
            || panic!("a statement nobody expected: {text}"),
            |(_, kind)| *kind,
        )
}

/// The plans `auto_explain` sent as notices, as sqlx logs them.
#[derive(Clone, Default)]
struct NoticeRecorder(Arc<Mutex<Vec<String>>>);

impl NoticeRecorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<S: Subscriber> Layer<S> for NoticeRecorder {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        struct Message(Option<String>);
        impl Visit for Message {
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "message" {
                    self.0 = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        if event.metadata().target() != "sqlx::postgres::notice" {
            return;
        }
        let mut message = Message(None);
        event.record(&mut message);
        if let Some(text) = message.0.filter(|text| text.contains("Query Text:")) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(text);
        }
    }
}

/// A batch of the queued intake, orders that name their seats: one call decides them all,
/// then one mark; two round trips whatever the batch's size.
#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_batch_of_ten_orders_is_two_round_trips(_: PgPoolOptions, options: PgConnectOptions) {
    let (app, proxy) = app_behind_a_counting_proxy(options).await;
    app.answer(order_created(Uuid::new_v4(), &["24A"])).await;
    let events: Vec<serde_json::Value> = [
        "20A", "20B", "20C", "21A", "21B", "21C", "22A", "22B", "24A", "20A",
    ]
    .iter()
    .map(|seat| order_created(Uuid::new_v4(), &[seat]))
    .collect();
    let payload = aeronode_testkit::sqs::batch_of_events(&events);
    let batch = aeronode_inventory::inbound::read_batch(&payload).expect("an SQS batch");

    let (traffic, response) = counted(
        &proxy,
        app.app.handle_batch_until(
            batch,
            aeronode_inventory::deadline::Deadline::after(std::time::Duration::from_secs(10)),
        ),
    )
    .await;

    let response = response.expect("the batch is handled");
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        app.published().len(),
        11,
        "ten answers, and the first order's"
    );
    assert_eq!(
        (traffic.round_trips, traffic.count('Q'), traffic.parses()),
        (2, 2, 0),
        "one decision and one mark: {:?}",
        traffic.sql
    );
    app.assert_consistent().await;
}
