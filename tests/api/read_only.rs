//! The availability function can only read: it serves seat-map requests and refuses
//! everything else before touching the database, and its database role cannot write.

use aeronode_inventory::db::Database;
use aeronode_inventory::handler::{App, Handled, HandlerError, Serves, Settings};
use aeronode_inventory::outbound::RecordingBus;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::availability::{request, seats_of};
use crate::helpers::{FLIGHT, order_created, sample, scheduled};

/// The seat map request of the samples, for the demo flight.
fn seat_map_request() -> Value {
    request("GET", &seats_of(FLIGHT), None)
}

/// Every event that writes, as the bus delivers it.
fn write_events() -> Vec<Value> {
    vec![
        order_created(Uuid::new_v4(), &["1A"]),
        sample("payment-succeeded.json"),
        sample("payment-failed.json"),
        sample("order-cancelled.json"),
        sample("flight-scheduled.json"),
        sample("flight-cancelled.json"),
        scheduled(),
    ]
}

/// Everything the service writes, summed up: any write changes it.
async fn state_of(db: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws('|',
             (SELECT count(*) FROM flights), (SELECT string_agg(state::text, ',') FROM flights),
             (SELECT sum(version) FROM flight_seats), (SELECT count(*) FROM reservations),
             (SELECT count(*) FROM inventory_locks), (SELECT count(*) FROM outbox))",
    )
    .fetch_one(db)
    .await
    .expect("the state is readable")
}

fn app(options: PgConnectOptions, serves: Serves) -> App<RecordingBus> {
    crate::quiet_logs();
    App::new(
        Database::new(options, 1),
        RecordingBus::new(),
        Settings {
            serves,
            ..Settings::default()
        },
    )
}

fn answered_200(outcome: Result<Handled, HandlerError>) -> bool {
    matches!(outcome, Ok(Handled::Http(ref response)) if response.status_code == 200)
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_seat_map_function_refuses_every_write_event_and_changes_nothing(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = pool.connect_with(options.clone()).await.expect("a pool");
    let seat_map = app(options, Serves::SeatMapOnly);
    let before = state_of(&db).await;

    let mut refused = Vec::new();
    for event in write_events() {
        refused.push(seat_map.handle(event).await);
    }
    let map = seat_map.handle(seat_map_request()).await;

    for outcome in &refused {
        assert!(
            matches!(outcome, Err(error) if error.kind() == "NotServedHere" && !error.is_retryable()),
            "{outcome:?}"
        );
    }
    assert_eq!(state_of(&db).await, before, "nothing changed");
    assert!(seat_map.bus().published().is_empty());
    assert!(answered_200(map));
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_reader_role_reads_the_seat_map_and_cannot_write(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = pool.connect_with(options.clone()).await.expect("a pool");
    sqlx::raw_sql(
        "DO $$ BEGIN CREATE ROLE inventory_reader LOGIN;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    )
    .execute(&db)
    .await
    .expect("the role exists");
    let grants = include_str!("../../database/roles/inventory_reader.sql");
    sqlx::raw_sql(sqlx::AssertSqlSafe(grants))
        .execute(&db)
        .await
        .expect("the README's grants apply");
    // Everything served, so only the role stands in the way.
    let reader = app(options.username("inventory_reader"), Serves::Everything);
    let before = state_of(&db).await;

    let map = reader.handle(seat_map_request()).await;
    let mut refused = Vec::new();
    for event in write_events() {
        refused.push(reader.handle(event).await);
    }

    assert!(answered_200(map));
    for outcome in &refused {
        assert!(
            matches!(outcome, Err(error) if error.kind().starts_with("DatabaseRefused.")),
            "{outcome:?}"
        );
    }
    assert_eq!(state_of(&db).await, before, "nothing changed");
}
