//! The real binary when things press on it: four invocations at once (Lambda Managed
//! Instances), a seat row locked elsewhere past the invocation's deadline, entries the bus
//! keeps rejecting, an order id reused with other content.

use std::time::{Duration, Instant};

use aeronode_testkit::put_events::PutEvents;
use aeronode_testkit::runtime_api::Invocation;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Command;
use uuid::Uuid;

use crate::aws_emulator::REGION;
use crate::binary::{Binary, database_url, eventually};
use crate::helpers::{FLIGHT, TestApp, order_created, order_created_with, sample};

async fn put_events() -> PutEvents {
    PutEvents::start().await.expect("the PutEvents stub starts")
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn with_four_invocations_at_once_no_seat_is_held_twice_and_every_order_is_answered_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let bus = put_events().await;
    let binary = Binary::start(
        &options,
        &bus.endpoint(),
        &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")],
    )
    .await;
    eventually(
        "the binary polls for four invocations at once",
        async || binary.runtime.waiting_polls() == 4,
    )
    .await;
    // 40 orders of two neighbouring seats each, over 8 seats: every seat is fought over.
    let seats = ["27A", "27B", "27C", "27D", "28A", "28B", "28C", "28D"];
    let orders: Vec<(Uuid, [&str; 2])> = (0..40)
        .map(|n| (Uuid::new_v4(), [seats[n % 8], seats[(n + 1) % 8]]))
        .collect();

    let pending: Vec<_> = orders
        .iter()
        .map(|(order, seats)| binary.runtime.submit(order_created(*order, seats)))
        .collect();
    let mut outcomes = Vec::new();
    for invocation in pending {
        outcomes.push(invocation.outcome().await.expect("every order is answered"));
    }

    assert!(
        outcomes
            .iter()
            .all(|outcome| matches!(outcome, Invocation::Response(_))),
        "{outcomes:?}"
    );
    let answered = bus.accepted_event_ids();
    let mut distinct = answered.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        (answered.len(), distinct.len()),
        (40, 40),
        "one answer per order"
    );
    let reserved = bus.published("SeatReserved") as i64;
    assert!(
        reserved > 0 && reserved <= 4,
        "{reserved} orders hold seats"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM inventory_locks WHERE status = 'ACTIVE'")
            .await,
        2 * reserved,
        "each reserved order holds its two seats, and no seat is held twice"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM reservations").await,
        40,
        "every order has one outcome"
    );
    db.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_seat_row_locked_past_the_deadline_is_answered_in_time_and_reserved_on_the_retry(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let bus = put_events().await;
    let mut binary = Binary::start(&options, &bus.endpoint(), &[]).await;
    let mut holder = db.db.begin().await.expect("a transaction");
    sqlx::query("SELECT 1 FROM flight_seats WHERE seat_number = '29C' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("the seat row is locked");
    let order = order_created(Uuid::new_v4(), &["29C"]);

    let started = Instant::now();
    let pending = binary
        .runtime
        .submit_with_deadline(order.clone(), Duration::from_secs(4));
    let outcome = binary.outcome(pending).await;
    let took = started.elapsed();

    assert!(took < Duration::from_secs(4), "answered after {took:?}");
    assert!(
        matches!(&outcome, Invocation::Error { error_type, .. } if error_type.starts_with("Retryable.")),
        "{outcome:?}"
    );
    assert_eq!(db.count("SELECT count(*) FROM reservations").await, 0);
    assert_eq!(bus.entries(), 0);

    holder.rollback().await.expect("the lock is let go");
    let retried = binary.invoke(order).await;

    assert!(matches!(retried, Invocation::Response(_)), "{retried:?}");
    assert_eq!(bus.published("SeatReserved"), 1);
    db.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn entries_the_bus_keeps_rejecting_are_parked_behind_no_one_then_listed_and_redriven(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // 121 answers in the outbox, each rejected once: 120 of one-seat orders over rows 1-20,
    // then a newer one.
    let writer = TestApp::spawn(options.clone()).await;
    writer.app.bus().refuse_everything(true);
    for row in 1..=20 {
        for letter in ["A", "B", "C", "D", "E", "F"] {
            let _ = writer
                .handle(order_created(Uuid::new_v4(), &[&format!("{row}{letter}")]))
                .await;
        }
    }
    let always_rejected: Vec<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM outbox ORDER BY created_at")
            .fetch_all(&writer.db)
            .await
            .expect("the outbox is readable");
    let _ = writer.handle(order_created(Uuid::new_v4(), &["21A"])).await;
    let newer: Uuid = sqlx::query_scalar("SELECT event_id FROM outbox ORDER BY created_at DESC")
        .fetch_one(&writer.db)
        .await
        .expect("the newer entry exists");
    let bus = put_events().await;
    bus.reject(always_rejected.iter().copied());
    let settings = [
        ("OUTBOX_GRACE_SECONDS", "1"),
        ("OUTBOX_PARK_AFTER", "1s"),
        ("OUTBOX_BACKOFF_SECONDS", "0"),
    ];
    let mut binary = Binary::start(&options, &bus.endpoint(), &settings).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let mut runs = 0;
    while !bus.accepted_event_ids().contains(&newer.to_string()) {
        runs += 1;
        assert!(runs <= 2, "the newer entry waited behind the rejected ones");
        binary.invoke(sample("scheduled.json")).await;
    }
    // Still refused a second later, past OUTBOX_PARK_AFTER: parked.
    for _ in 0..2 {
        binary.invoke(sample("scheduled.json")).await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    binary.invoke(sample("scheduled.json")).await;
    let dead = operator(&options, &["outbox", "dead"]).await;

    assert_eq!(always_rejected.len(), 120);
    assert_eq!(dead.len(), 120, "parked once failing for 1 s: {dead:?}");
    assert!(dead.iter().all(|entry| {
        entry["attempts"]
            .as_i64()
            .is_some_and(|attempts| attempts >= 2)
            && entry["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("InternalFailure"))
    }));
    let rejected_before = bus.rejected();
    binary.invoke(sample("scheduled.json")).await;
    assert_eq!(
        bus.rejected(),
        rejected_before,
        "parked entries are left alone"
    );

    bus.stop_rejecting();
    let redriven = operator(&options, &["outbox", "redrive"]).await;
    binary.invoke(sample("scheduled.json")).await;
    binary.invoke(sample("scheduled.json")).await;

    assert_eq!(redriven, vec![json!({"redriven": 120})]);
    let accepted = bus.accepted_event_ids();
    assert!(
        always_rejected
            .iter()
            .all(|id| accepted.contains(&id.to_string())),
        "every redriven entry is published"
    );
    assert!(operator(&options, &["outbox", "dead"]).await.is_empty());
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_order_id_with_other_content_fails_to_the_on_failure_queue_and_gets_no_second_answer(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let bus = put_events().await;
    let mut binary = Binary::start(&options, &bus.endpoint(), &[]).await;
    let order = Uuid::new_v4();
    let invalid = Uuid::new_v4();

    let first = binary.invoke(order_created(order, &["30A"])).await;
    let other_seats = binary.invoke(order_created(order, &["30B"])).await;
    let refused = binary
        .invoke(order_created_with(
            json!({"orderId": invalid, "flightId": FLIGHT, "seats": ["30c"]}),
        ))
        .await;
    let corrected = binary.invoke(order_created(invalid, &["30C"])).await;

    assert!(matches!(first, Invocation::Response(_)), "{first:?}");
    assert!(matches!(refused, Invocation::Response(_)), "{refused:?}");
    for conflict in [&other_seats, &corrected] {
        assert!(
            matches!(conflict, Invocation::Error { error_type, .. } if error_type == "Rejected.ConflictingOrder"),
            "{conflict:?}"
        );
    }
    assert_eq!(bus.published("SeatReserved"), 1);
    assert_eq!(
        bus.published("SeatReservationFailed"),
        1,
        "the INVALID_REQUEST, once"
    );
    assert_eq!(db.active_holds(order).await, ["30A"]);
    assert!(db.active_holds(invalid).await.is_empty());
    assert_eq!(db.seat("30C").await.0, "AVAILABLE");
    db.assert_consistent().await;
}

/// Runs an operator command of the binary against the test database; its stdout lines.
async fn operator(options: &PgConnectOptions, args: &[&str]) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_aeronode-inventory"))
        .args(args)
        .env_clear()
        .env("DATABASE_URL", database_url(options))
        .env("AWS_REGION", REGION)
        .envs(std::env::var_os("PGPASSWORD").map(|p| ("PGPASSWORD", p)))
        .output()
        .await
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}
