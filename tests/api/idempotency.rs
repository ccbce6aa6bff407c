//! At-least-once in, exactly-once effects: redelivered orders are answered the same way.

use aeronode_inventory::domain::{DetailType, OutgoingEvent};
use aeronode_inventory::handler::{Handled, HandlerError};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{FLIGHT, TestApp, detail_of, order_created, order_created_with};

fn answered(result: Result<Handled, impl std::fmt::Debug>) -> OutgoingEvent {
    match result {
        Ok(Handled::Answered(event)) => event,
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_same_event_three_times_in_a_row_holds_once_and_answers_identically(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    let event = order_created(order, &["9A", "9B"]);

    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(answered(app.handle(event.clone()).await));
    }

    assert_eq!(answers[0].detail_type, DetailType::SeatReserved);
    assert_eq!(answers[1], answers[0]);
    assert_eq!(answers[2], answers[0]);
    assert_eq!(
        app.published(),
        answers,
        "each delivery is answered, always the same event"
    );
    assert_eq!(app.active_holds(order).await, vec!["9A", "9B"]);
    assert_eq!(app.seat("9A").await, ("LOCKED".into(), 2), "taken once");
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 1);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_same_event_three_times_at_once_on_three_instances_resolves_to_one_outcome(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let instances = [
        TestApp::spawn(options.clone()).await,
        TestApp::spawn(options.clone()).await,
        TestApp::spawn(options).await,
    ];
    let order = Uuid::new_v4();
    let event = order_created(order, &["10C", "10D", "10E"]);

    let (a, b, c) = tokio::join!(
        instances[0].handle(event.clone()),
        instances[1].handle(event.clone()),
        instances[2].handle(event.clone()),
    );

    let (a, b, c) = (answered(a), answered(b), answered(c));
    assert_eq!(a.detail_type, DetailType::SeatReserved);
    assert_eq!(b, a);
    assert_eq!(c, a);
    assert_eq!(
        instances[0].active_holds(order).await,
        vec!["10C", "10D", "10E"]
    );
    assert_eq!(instances[0].seat("10C").await, ("LOCKED".into(), 2));
    assert_eq!(instances[0].count("SELECT count(*) FROM outbox").await, 1);
    instances[0].assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_order_resent_under_a_new_event_id_gets_the_first_answer(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    let first = order_created(order, &["8F"]);
    let resent = order_created(order, &["8F"]);
    assert_ne!(first["id"], resent["id"]);

    let original = answered(app.handle(first.clone()).await);
    let again = answered(app.handle(resent).await);

    assert_eq!(again, original);
    assert_eq!(
        detail_of(&again)["causationId"],
        first["id"],
        "the first cause is kept"
    );
    assert_eq!(app.active_holds(order).await, vec!["8F"]);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_refused_order_is_refused_the_same_way_when_redelivered(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    app.answer(order_created(Uuid::new_v4(), &["6A"])).await;
    let order = Uuid::new_v4();
    let event = order_created(order, &["6A", "6B"]);

    let first = answered(app.handle(event.clone()).await);
    let second = answered(app.handle(event).await);

    assert_eq!(first.detail_type, DetailType::SeatReservationFailed);
    assert_eq!(second, first);
    assert_eq!(app.seat("6B").await, ("AVAILABLE".into(), 1));
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_order_id_reused_for_other_seats_is_a_conflict_and_the_first_outcome_stands(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    let original = answered(app.handle(order_created(order, &["4A"])).await);
    let other_seats = order_created(order, &["4B"]);
    let other_flight =
        order_created_with(json!({"orderId": order, "flightId": Uuid::new_v4(), "seats": ["4A"]}));

    let conflicts = [
        app.handle(other_seats.clone()).await,
        app.handle(other_flight).await,
        app.handle(other_seats).await,
    ];

    for conflict in &conflicts {
        assert_conflict(conflict);
    }
    assert_eq!(
        app.published(),
        vec![original.clone()],
        "no second answer for the order on the bus"
    );
    assert_eq!(
        app.active_holds(order).await,
        vec!["4A"],
        "the first hold stands"
    );
    assert_eq!(app.seat("4B").await, ("AVAILABLE".into(), 1));
    let again = answered(app.handle(order_created(order, &["4A"])).await);
    assert_eq!(again, original, "the order's outcome did not change");
    assert_eq!(FLIGHT, detail_of(&original)["flightId"]);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_invalid_request_is_the_orders_outcome_and_a_corrected_resend_is_a_conflict(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    let invalid =
        order_created_with(json!({"orderId": order, "flightId": FLIGHT, "seats": ["4a"]}));

    let refusal = answered(app.handle(invalid.clone()).await);
    let corrected = app.handle(order_created(order, &["4A"])).await;
    let redelivered = answered(app.handle(invalid).await);

    assert_eq!(refusal.detail_type, DetailType::SeatReservationFailed);
    assert_eq!(detail_of(&refusal)["reason"], "INVALID_REQUEST");
    assert_conflict(&corrected);
    assert_eq!(redelivered, refusal, "the same eventId, the same answer");
    assert!(app.active_holds(order).await.is_empty());
    assert_eq!(app.seat("4A").await, ("AVAILABLE".into(), 1));
    assert_eq!(
        app.published(),
        vec![refusal.clone(), refusal],
        "one outcome on the bus, sent once per delivery"
    );
    app.assert_consistent().await;
}

fn assert_conflict(result: &Result<Handled, HandlerError>) {
    assert!(
        matches!(result, Err(error) if error.kind() == "ConflictingOrder" && !error.is_retryable()),
        "expected a conflict, got {result:?}"
    );
}
