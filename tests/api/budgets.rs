//! What a reservation costs the shared database, in steady state: round trips counted on
//! the wire (a counting proxy between the app and PostgreSQL, pings included) and commits
//! counted in the rows it wrote (every row a commit touches carries its transaction id).
//! Counts are deterministic, so these are budgets, not timings.

use std::collections::BTreeSet;

use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::Handled;
use aeronode_testkit::wire::{Proxy, Traffic};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use uuid::Uuid;

use crate::helpers::{TestApp, order_created, payment_failed};

/// A reservation, a refusal and a release: the read, the decision, and the mark of what
/// the bus accepted, each one simple query (one round trip), nothing else.
const ROUND_TRIPS: u64 = 3;

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_reservation_a_refusal_and_a_release_stay_within_their_round_trips_and_commit_once(
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
    let (release, outcome) = counted(&proxy, app.handle(payment_failed(order))).await;
    let release_entry = released(outcome);
    let released_in = commits(&app, &[Row::Holds(order), Row::Seat("26A")]).await;
    let release_marked_in = commits(&app, &[Row::Entry(release_entry)]).await;

    assert_eq!(answer, DetailType::SeatReserved);
    assert_eq!(refused, DetailType::SeatReservationFailed);
    for (work, traffic) in [
        ("reservation", &reservation),
        ("refusal", &refusal),
        ("release", &release),
    ] {
        assert!(
            traffic.round_trips <= ROUND_TRIPS,
            "a {work} took {} round trips (budget {ROUND_TRIPS}): {:?}",
            traffic.round_trips,
            traffic.turns
        );
        assert_eq!(
            (traffic.count('Q'), traffic.parses()),
            (3, 0),
            "a {work} is a read, a decision and a mark, each one simple query: {:?}",
            traffic.sql
        );
    }
    for (work, decided, marked) in [
        ("reservation", &reserved_in, &reserved_marked_in),
        ("refusal", &refused_in, &refusal_marked_in),
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
