//! Flights from the schedule: opened with every seat, answered once, refused when invalid
//! or conflicting; cancelled with every hold and sale given back once; deleted once long
//! departed.

use std::collections::HashMap;
use std::time::Duration;

use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::domain::{DetailType, OutgoingEvent};
use aeronode_inventory::handler::Handled;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{
    DEPARTED_FLIGHT, TestApp, detail_of, order_created_with, payment_succeeded, sample, scheduled,
};

/// The flight of `events/flight-scheduled.json`: BUSINESS rows 1-3 (ACDF), ECONOMY rows
/// 10-30 (ABCDEF).
const SCHEDULED_FLIGHT: &str = "7a1e0c3d-5b2f-4e8a-9d6c-3f4b5a6c7d8e";

fn flight_scheduled() -> Value {
    sample("flight-scheduled.json")
}

/// A `FlightScheduled` for a new flight with this seat map, and a fresh envelope id.
pub fn schedule(flight: Uuid, cabins: Value) -> Value {
    let mut event = flight_scheduled();
    event["id"] = json!(Uuid::new_v4());
    event["detail"]["flightId"] = json!(flight);
    event["detail"]["cabins"] = cabins;
    event
}

pub fn flight_cancelled(flight: Uuid) -> Value {
    let mut event = sample("flight-cancelled.json");
    event["id"] = json!(Uuid::new_v4());
    event["detail"]["flightId"] = json!(flight);
    event
}

pub fn order_on(flight: Uuid, order: Uuid, seats: &[&str]) -> Value {
    order_created_with(json!({"orderId": order, "flightId": flight, "seats": seats}))
}

fn scheduled_answer(outcome: Result<Handled, impl std::fmt::Debug>) -> OutgoingEvent {
    match outcome {
        Ok(Handled::Scheduled(event)) => event,
        other => panic!("expected a schedule answer, got {other:?}"),
    }
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_flight_opened_by_the_schedule_can_be_reserved_and_its_redelivery_changes_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let flight: Uuid = SCHEDULED_FLIGHT.parse().expect("a uuid");

    let opened = scheduled_answer(app.handle(flight_scheduled()).await);
    let again = scheduled_answer(app.handle(flight_scheduled()).await);
    let (reserved, detail) = app
        .answer(order_on(flight, Uuid::new_v4(), &["1C", "10A"]))
        .await;

    assert_eq!(opened.detail_type, DetailType::FlightInventoryOpened);
    assert_eq!(again, opened, "the same answer, the same eventId");
    let answer = detail_of(&opened);
    assert_eq!(answer["seats"], 138);
    assert_eq!(
        answer["cabins"],
        json!([{"cabin": "BUSINESS", "seats": 12}, {"cabin": "ECONOMY", "seats": 126}])
    );
    let seats: i64 = sqlx::query_scalar("SELECT count(*) FROM flight_seats WHERE flight_id = $1")
        .bind(flight)
        .fetch_one(&app.db)
        .await
        .expect("seats are readable");
    assert_eq!(seats, 138, "created once");
    assert_eq!(reserved, DetailType::SeatReserved, "{detail}");
    let no_1b = app.answer(order_on(flight, Uuid::new_v4(), &["1B"])).await;
    assert_eq!(no_1b.1["reason"], "SEAT_NOT_FOUND", "the aisle has no seat");
    crate::schemas::assert_all_match_their_schemas(&app.published());
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn other_content_under_an_existing_flight_is_not_applied(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    scheduled_answer(app.handle(flight_scheduled()).await);
    let mut moved = flight_scheduled();
    moved["id"] = json!(Uuid::new_v4());
    moved["detail"]["departureUtc"] = json!("2027-01-10T10:00:00Z");
    let mut demo = flight_scheduled();
    demo["detail"]["flightId"] = json!(crate::helpers::FLIGHT);

    for conflicting in [moved, demo] {
        let outcome = app.handle(conflicting).await;

        assert!(
            matches!(&outcome, Err(error) if error.kind() == "ConflictingSchedule" && !error.is_retryable()),
            "{outcome:?}"
        );
    }
    let departure: String = sqlx::query_scalar(
        "SELECT to_char(departure_utc AT TIME ZONE 'UTC', 'HH24:MI') FROM flights WHERE flight_id = $1",
    )
    .bind(Uuid::parse_str(SCHEDULED_FLIGHT).expect("a uuid"))
    .fetch_one(&app.db)
    .await
    .expect("the flight exists");
    assert_eq!(departure, "09:00", "the first schedule stands");
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_invalid_schedule_is_rejected_with_its_reason_and_writes_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let flights_before = app.count("SELECT count(*) FROM flights").await;
    let invalid = [
        ("flightCode", json!("AIRINDIA"), "INVALID_FLIGHT_CODE"),
        ("originIata", json!("London"), "INVALID_AIRPORT"),
        ("arrivalUtc", json!("2027-01-10T08:00:00Z"), "INVALID_TIMES"),
        (
            "cabins",
            json!([{"cabin": "BUSINESS", "rows": "1-10", "letters": "AB"},
                   {"cabin": "ECONOMY", "rows": "10-30", "letters": "ABCDEF"}]),
            "OVERLAPPING_CABINS",
        ),
        (
            "cabins",
            json!([{"cabin": "ECONOMY", "rows": "1-99", "letters": "ABCDEFGHIJK"}]),
            "TOO_MANY_SEATS",
        ),
    ];

    for (field, value, reason) in invalid {
        let mut event = flight_scheduled();
        event["id"] = json!(Uuid::new_v4());
        event["detail"][field] = value;

        let rejected = scheduled_answer(app.handle(event.clone()).await);
        let again = scheduled_answer(app.handle(event).await);

        assert_eq!(rejected.detail_type, DetailType::FlightScheduleRejected);
        assert_eq!(detail_of(&rejected)["reason"], reason, "{field}");
        assert_eq!(
            again.event_id, rejected.event_id,
            "a refusal keeps its eventId"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM flights").await,
        flights_before
    );
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
    crate::schemas::assert_all_match_their_schemas(&app.published());
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_cancellation_with_300_holds_and_50_sales_releases_every_one_exactly_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let flight = Uuid::new_v4();
    scheduled_answer(
        app.handle(schedule(
            flight,
            json!([{"cabin": "ECONOMY", "rows": "1-60", "letters": "ABCDEF"}]),
        ))
        .await,
    );
    let mut orders = Vec::new();
    for row in 1..=59 {
        for letter in ["A", "B", "C", "D", "E", "F"] {
            if orders.len() == 350 {
                break;
            }
            let order = Uuid::new_v4();
            app.answer(order_on(flight, order, &[&format!("{row}{letter}")]))
                .await;
            orders.push(order);
        }
    }
    for order in &orders[..50] {
        let (answer, _) = app.answer(payment_succeeded(*order)).await;
        assert_eq!(answer, DetailType::SeatBooked);
    }
    let cancel = flight_cancelled(flight);

    // A cancellation stops taking batches of 50 orders when less than 1.5 s is left, to
    // publish. The first invocation has 100 ms more than that: time for its first batch
    // (one call per order) but never for all seven, however fast the machine. The schedule
    // and a redelivery finish it.
    let first = app
        .app
        .handle_until(
            cancel.clone(),
            Deadline::after(Duration::from_millis(1_600)),
        )
        .await;
    let mut runs = 0;
    while app
        .count("SELECT count(*) FROM inventory_locks WHERE status IN ('ACTIVE', 'CONFIRMED')")
        .await
        > 0
    {
        runs += 1;
        assert!(runs <= 10, "the schedule finishes the cancellation");
        app.handle(scheduled()).await.expect("the schedule runs");
    }
    let redelivered = app.handle(cancel).await;

    let Ok(Handled::FlightCancelled { released, .. }) = first else {
        panic!("expected the cancellation to start, got {first:?}");
    };
    assert!(
        !released.is_empty() && released.len() < 350,
        "the first invocation released {} of 350 within its time",
        released.len()
    );
    let mut per_order: HashMap<String, usize> = HashMap::new();
    for event in app.published() {
        let detail = detail_of(&event);
        if event.detail_type == DetailType::SeatReleased {
            assert_eq!(detail["reason"], "FLIGHT_CANCELLED");
            *per_order
                .entry(detail["orderId"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(per_order.len(), 350, "every order released");
    assert!(per_order.values().all(|n| *n == 1), "each exactly once");
    let closed: Vec<OutgoingEvent> = app
        .published()
        .into_iter()
        .filter(|event| event.detail_type == DetailType::FlightInventoryClosed)
        .collect();
    assert_eq!(
        closed.len(),
        2,
        "closed once, and answered again on redelivery"
    );
    assert_eq!(closed[0].event_id, closed[1].event_id);
    assert_eq!(detail_of(&closed[0])["ordersReleased"], 350);
    assert!(matches!(
        redelivered,
        Ok(Handled::FlightCancelled { ref released, closed: Some(_) }) if released.is_empty()
    ));
    assert_eq!(
        app.count("SELECT count(*) FROM flight_seats WHERE status <> 'AVAILABLE'")
            .await,
        0
    );

    let (late_order, detail) = app.answer(order_on(flight, Uuid::new_v4(), &["60A"])).await;
    assert_eq!(late_order, DetailType::SeatReservationFailed);
    assert_eq!(detail["reason"], "FLIGHT_CANCELLED");
    let (late_payment, detail) = app.answer(payment_succeeded(orders[100])).await;
    assert_eq!(late_payment, DetailType::SeatBookingFailed);
    assert_eq!(detail["reason"], "FLIGHT_CANCELLED");
    crate::schemas::assert_all_match_their_schemas(&app.published());
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn retention_deletes_only_the_flights_departed_longer_ago_than_it(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let old = Uuid::new_v4();
    scheduled_answer(
        app.handle(schedule(
            old,
            json!([{"cabin": "ECONOMY", "rows": "1-2", "letters": "ABC"}]),
        ))
        .await,
    );
    let order = Uuid::new_v4();
    app.answer(order_on(old, order, &["1A"])).await;
    app.answer(payment_succeeded(order)).await;
    // The flight left 40 days ago (retention is 30 days), with its sale done.
    sqlx::query(
        "UPDATE flights SET departure_utc = now() - interval '40 days',
                            arrival_utc = now() - interval '39 days'
         WHERE flight_id = $1",
    )
    .bind(old)
    .execute(&app.db)
    .await
    .expect("the flight can be moved");

    let report = app.handle(scheduled()).await;

    assert!(
        matches!(&report, Ok(Handled::Housekeeping(r)) if r.retired > 0),
        "{report:?}"
    );
    for (table, sql) in [
        (
            "flights",
            "SELECT count(*) FROM flights WHERE flight_id = $1",
        ),
        (
            "seats",
            "SELECT count(*) FROM flight_seats WHERE flight_id = $1",
        ),
        (
            "holds",
            "SELECT count(*) FROM inventory_locks WHERE flight_id = $1",
        ),
        (
            "orders",
            "SELECT count(*) FROM reservations WHERE flight_id = $1",
        ),
    ] {
        let left: i64 = sqlx::query_scalar(sql)
            .bind(old)
            .fetch_one(&app.db)
            .await
            .expect("the table is readable");
        assert_eq!(left, 0, "{table} of the old flight are deleted");
    }
    // Its answers were delivered; the outbox prunes them after its own retention.
    let undelivered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE (order_id = $1 OR flight_id = $2)
                                       AND state <> 'PUBLISHED'",
    )
    .bind(order)
    .bind(old)
    .fetch_one(&app.db)
    .await
    .expect("the outbox is readable");
    assert_eq!(undelivered, 0);
    for kept in [crate::helpers::FLIGHT, DEPARTED_FLIGHT] {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM flight_seats WHERE flight_id = $1::uuid")
                .bind(kept)
                .fetch_one(&app.db)
                .await
                .expect("seats are readable");
        assert!(left > 0, "{kept} is not due and keeps its seats");
    }
    app.assert_consistent().await;
}
