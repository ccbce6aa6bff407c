//! Reserving seats from OrderCreated: what is held and what is answered.

use std::time::Duration;

use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::HandlerError;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{DEPARTED_FLIGHT, FLIGHT, TestApp, order_created, order_created_with, sample};

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_sample_order_holds_its_seats_and_answers_seat_reserved(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let event = sample("order-created.json");

    let (detail_type, detail) = app.answer(event.clone()).await;

    assert_eq!(detail_type, DetailType::SeatReserved);
    assert_eq!(detail["orderId"], event["detail"]["orderId"]);
    assert_eq!(detail["flightId"], FLIGHT);
    assert_eq!(detail["causationId"], event["id"]);
    let seats: Vec<(&str, i64)> = detail["seats"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|seat| {
            (
                seat["seatNumber"].as_str().unwrap_or(""),
                seat["version"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(seats, vec![("12A", 2), ("12B", 2)]);
    assert_eq!(app.seat("12A").await, ("LOCKED".into(), 2));
    assert_eq!(app.seat("12B").await, ("LOCKED".into(), 2));
    let order_id = Uuid::parse_str(event["detail"]["orderId"].as_str().unwrap_or("")).ok();
    assert_eq!(
        app.active_holds(order_id.unwrap_or_default()).await,
        vec!["12A", "12B"]
    );
    assert_eq!(app.published().len(), 1, "exactly one answer is published");
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_hold_lasts_the_lock_ttl_from_the_decision(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;

    let (_, detail) = app.answer(order_created(Uuid::new_v4(), &["3C"])).await;

    let locked_until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(detail["lockedUntil"].clone()).expect("lockedUntil is RFC 3339");
    let stored: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT expires_at FROM inventory_locks WHERE status = 'ACTIVE'")
            .fetch_one(&app.db)
            .await
            .expect("one active hold");
    let created: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT created_at FROM inventory_locks")
            .fetch_one(&app.db)
            .await
            .expect("one hold");
    assert_eq!(
        locked_until, stored,
        "the event announces the stored expiry"
    );
    assert_eq!((stored - created).num_seconds(), 900);
    assert!(
        detail["lockedUntil"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_two_seat_order_with_one_seat_gone_holds_neither_and_names_the_gone_seat(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    app.answer(order_created(Uuid::new_v4(), &["5B"])).await;
    let second = Uuid::new_v4();

    let (detail_type, detail) = app.answer(order_created(second, &["5A", "5B"])).await;

    assert_eq!(detail_type, DetailType::SeatReservationFailed);
    assert_eq!(detail["reason"], "SEAT_UNAVAILABLE");
    assert_eq!(detail["unavailableSeats"], json!(["5B"]));
    assert_eq!(detail["seats"], json!(["5A", "5B"]));
    assert_eq!(
        app.seat("5A").await,
        ("AVAILABLE".into(), 1),
        "5A is untouched"
    );
    assert_eq!(
        app.seat("5B").await,
        ("LOCKED".into(), 2),
        "5B stays with the first order"
    );
    assert!(app.active_holds(second).await.is_empty());
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn business_refusals_are_answers_that_change_no_seat(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let unknown_flight = Uuid::new_v4();
    let cases: [(Value, &str, Value); 3] = [
        (
            json!({"orderId": Uuid::new_v4(), "flightId": FLIGHT, "seats": ["1A", "31A"]}),
            "SEAT_NOT_FOUND",
            json!(["31A"]),
        ),
        (
            json!({"orderId": Uuid::new_v4(), "flightId": unknown_flight, "seats": ["1A"]}),
            "FLIGHT_NOT_FOUND",
            json!([]),
        ),
        (
            json!({"orderId": Uuid::new_v4(), "flightId": DEPARTED_FLIGHT, "seats": ["1A"]}),
            "FLIGHT_DEPARTED",
            json!([]),
        ),
    ];

    for (request, reason, unavailable) in cases {
        let (detail_type, detail) = app.answer(order_created_with(request.clone())).await;

        assert_eq!(detail_type, DetailType::SeatReservationFailed, "{request}");
        assert_eq!(detail["reason"], reason, "{request}");
        assert_eq!(detail["unavailableSeats"], unavailable, "{request}");
        assert!(detail["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(app.count("SELECT count(*) FROM inventory_locks").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM flight_seats WHERE status <> 'AVAILABLE'")
            .await,
        0
    );
    assert_eq!(app.published().len(), 3);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn malformed_orders_with_a_readable_order_id_are_refused_as_invalid_and_hold_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let ten: Vec<String> = (1..=10).map(|row| format!("{row}A")).collect();
    let details = [
        json!({"flightId": FLIGHT}),
        json!({"flightId": FLIGHT, "seats": []}),
        json!({"flightId": FLIGHT, "seats": ten}),
        json!({"flightId": FLIGHT, "seats": ["1A", "1A"]}),
        json!({"flightId": FLIGHT, "seats": ["1a"]}),
        json!({"flightId": FLIGHT, "seats": ["1A", null]}),
        json!({"flightId": FLIGHT, "seats": "1A"}),
        json!({"flightId": FLIGHT, "seats": ["X".repeat(200_000)]}),
        json!({"flightId": "not-a-uuid", "seats": ["1A"]}),
        json!({"flightId": 7, "seats": ["1A"]}),
    ];

    for mut detail in details {
        let order = Uuid::new_v4();
        detail["orderId"] = json!(order);
        let (detail_type, answer) = app.answer(order_created_with(detail.clone())).await;

        let shown: String = detail.to_string().chars().take(120).collect();
        assert_eq!(detail_type, DetailType::SeatReservationFailed, "{shown}");
        assert_eq!(answer["reason"], "INVALID_REQUEST", "{shown}");
        assert_eq!(answer["orderId"], order.to_string());
        assert!(
            answer.to_string().len() < 2_000,
            "an answer never echoes absurd input"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM inventory_locks").await, 0);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM reservations WHERE outcome_detail_type = 'SeatReservationFailed'"
        )
        .await,
        10,
        "each refusal is its order's outcome"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM flight_seats WHERE status <> 'AVAILABLE'")
            .await,
        0
    );
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn events_without_a_readable_order_fail_the_invocation_and_publish_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let mut wrong_source = sample("order-created.json");
    wrong_source["source"] = json!("skyledger.marketing");
    let payloads = [
        json!("just a string"),
        json!({"detail-type": "OrderCreated", "source": "skyledger.orders"}),
        order_created_with(json!({"flightId": FLIGHT, "seats": ["1A"]})),
        order_created_with(json!({"orderId": "12345", "flightId": FLIGHT, "seats": ["1A"]})),
        order_created_with(json!(["not", "an", "object"])),
        wrong_source,
    ];

    for payload in payloads {
        let result = app.handle(payload.clone()).await;

        assert!(
            matches!(&result, Err(error @ HandlerError::Unreadable(_)) if !error.is_retryable()),
            "{payload} gave {result:?}"
        );
    }
    assert!(app.published().is_empty());
    assert_eq!(app.count("SELECT count(*) FROM inventory_locks").await, 0);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn no_statement_is_left_prepared_on_the_session(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    app.answer(order_created(Uuid::new_v4(), &["7A", "7B"]))
        .await;
    app.answer(order_created(Uuid::new_v4(), &["7B"])).await;
    app.handle(sample("scheduled.json"))
        .await
        .expect("the relay runs");

    // The app keeps one connection: this is the session every call above ran on.
    let mut session = app
        .app
        .database()
        .session(Deadline::after(Duration::from_secs(10)))
        .await
        .expect("the app's connection");
    let connection = session.connection().await.expect("the app's connection");
    let prepared: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_prepared_statements")
        .persistent(false)
        .fetch_one(&mut *connection)
        .await
        .expect("pg_prepared_statements is readable");
    let backend_changed: bool = sqlx::query_scalar(
        "SELECT count(*) > 1 FROM pg_stat_activity
         WHERE application_name = 'aeronode-inventory' AND datname = current_database()",
    )
    .persistent(false)
    .fetch_one(&mut *connection)
    .await
    .expect("pg_stat_activity is readable");

    assert_eq!(
        prepared, 0,
        "named prepared statements would pin an RDS Proxy connection"
    );
    assert!(!backend_changed, "the app used one connection");
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn answers_name_seats_in_the_order_asked_and_a_missing_seat_before_a_taken_one(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    app.answer(order_created(Uuid::new_v4(), &["7A", "7C"]))
        .await;

    let (reserved_type, reserved) = app
        .answer(order_created(Uuid::new_v4(), &["8B", "8A"]))
        .await;
    let (_, missing) = app
        .answer(order_created(Uuid::new_v4(), &["7C", "31A", "7A"]))
        .await;
    let (_, taken) = app
        .answer(order_created(Uuid::new_v4(), &["7C", "8C", "7A"]))
        .await;

    assert_eq!(reserved_type, DetailType::SeatReserved);
    let numbers: Vec<&str> = reserved["seats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|seat| seat["seatNumber"].as_str())
        .collect();
    assert_eq!(numbers, ["8B", "8A"]);
    assert_eq!(
        (&missing["reason"], &missing["unavailableSeats"]),
        (&json!("SEAT_NOT_FOUND"), &json!(["31A"]))
    );
    assert_eq!(
        missing["message"],
        format!("no seat 31A on flight {FLIGHT}")
    );
    assert_eq!(
        (&taken["reason"], &taken["unavailableSeats"]),
        (&json!("SEAT_UNAVAILABLE"), &json!(["7C", "7A"]))
    );
    assert_eq!(taken["message"], "seats 7C, 7A are no longer available");
    assert_eq!(app.seat("8C").await, ("AVAILABLE".into(), 1));
    app.assert_consistent().await;
}
