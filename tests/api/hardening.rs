//! No single bad row, rejected event or held lock stalls the service: a corrupted order is
//! set aside, an entry the bus keeps rejecting is parked behind no one, all-or-nothing holds
//! in the database itself, and a lock held elsewhere never outlasts an invocation.

use std::time::{Duration, Instant};

use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::{Handled, HousekeepingReport};
use aeronode_inventory::inventory;
use aeronode_inventory::outbound::outbox::{self, RelayPolicy};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{FLIGHT, TestApp, order_created, scheduled, test_relay, uuid};

/// Holds of this test last a second.
async fn let_the_holds_lapse() {
    tokio::time::sleep(Duration::from_millis(1_200)).await;
}

/// Moves a seat's version behind its hold's back, as a bad manual fix or a bug would.
async fn corrupt(app: &TestApp, seat_number: &str) {
    sqlx::query(
        "UPDATE flight_seats SET version = version + 7 WHERE flight_id = $1 AND seat_number = $2",
    )
    .bind(uuid(FLIGHT))
    .bind(seat_number)
    .execute(&app.db)
    .await
    .expect("the seat can be changed");
}

async fn sweep(app: &TestApp) -> HousekeepingReport {
    match app.handle(scheduled()).await {
        Ok(Handled::Housekeeping(report)) => report,
        other => panic!("expected the sweep to run, got {other:?}"),
    }
}

async fn session_of(app: &TestApp) -> aeronode_inventory::db::Session<'_> {
    app.app
        .database()
        .session(Deadline::after(Duration::from_secs(10)))
        .await
        .expect("a session")
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_corrupted_order_is_quarantined_and_the_healthy_lapsed_ones_beside_it_are_released(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with_ttl(options, 1).await;
    let corrupted = Uuid::new_v4();
    app.answer(order_created(corrupted, &["10A"])).await;
    for seat in ["10B", "10C", "10D"] {
        app.answer(order_created(Uuid::new_v4(), &[seat])).await;
    }
    let_the_holds_lapse().await;
    corrupt(&app, "10A").await;

    let first = sweep(&app).await;
    let second = sweep(&app).await;

    assert_eq!(
        (first.orders_expired, first.orders_quarantined),
        (3, 1),
        "{first:?}"
    );
    assert_eq!(
        (second.orders_expired, second.orders_quarantined),
        (0, 0),
        "set aside, not retried in front of the others: {second:?}"
    );
    for seat in ["10B", "10C", "10D"] {
        assert_eq!(app.seat(seat).await.0, "AVAILABLE", "{seat}");
    }
    assert_eq!(app.seat("10A").await.0, "LOCKED", "not fixed silently");
    let listed = inventory::quarantined(&mut session_of(&app).await)
        .await
        .expect("the quarantine can be listed");
    assert_eq!(
        listed.iter().map(|o| o.order_id).collect::<Vec<_>>(),
        [corrupted]
    );
    assert!(listed[0].reason.contains("version"), "{:?}", listed[0]);

    // The operator repairs the seat and retries the order: the next sweep expires it.
    sqlx::query("UPDATE flight_seats SET version = version - 7 WHERE seat_number = '10A'")
        .execute(&app.db)
        .await
        .expect("the seat can be repaired");
    let retried = inventory::release_quarantine(&mut session_of(&app).await, Some(vec![corrupted]))
        .await
        .expect("the order can be retried");
    let third = sweep(&app).await;

    assert_eq!(retried, 1);
    assert_eq!(third.orders_expired, 1, "{third:?}");
    assert_eq!(app.seat("10A").await.0, "AVAILABLE");
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_reservation_wanting_a_corrupted_orders_seat_is_refused_and_the_sweep_quarantines_it(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with_ttl(options, 1).await;
    let corrupted = Uuid::new_v4();
    app.answer(order_created(corrupted, &["11A"])).await;
    let_the_holds_lapse().await;
    corrupt(&app, "11A").await;

    // A lapsed hold that cannot be closed consistently does not free its seat: the
    // reservation is refused, as the seat map shows, and the sweep sets the order aside.
    let (detail_type, detail) = app.answer(order_created(Uuid::new_v4(), &["11A"])).await;
    let swept = sweep(&app).await;

    assert_eq!(detail_type, DetailType::SeatReservationFailed);
    assert_eq!(detail["reason"], "SEAT_UNAVAILABLE");
    assert_eq!(swept.orders_quarantined, 1, "{swept:?}");
    let quarantined: Vec<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM reservations WHERE quarantined_at IS NOT NULL")
            .fetch_all(&app.db)
            .await
            .expect("reservations are readable");
    assert_eq!(quarantined, [corrupted]);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_mismatch_between_the_seats_decided_and_taken_commits_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    // Test-only: the hold of 14B silently never gets written.
    sqlx::raw_sql(
        "CREATE FUNCTION drop_one_hold() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.seat_id = (SELECT seat_id FROM flight_seats WHERE seat_number = '14B') THEN
                 RETURN NULL;
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER drop_one_hold BEFORE INSERT ON inventory_locks
             FOR EACH ROW EXECUTE FUNCTION drop_one_hold();",
    )
    .execute(&app.db)
    .await
    .expect("the trigger is created");
    let order = Uuid::new_v4();

    let result = app.handle(order_created(order, &["14A", "14B"])).await;

    assert!(
        matches!(&result, Err(error) if error.kind() == "InconsistentInventory" && !error.is_retryable()),
        "{result:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM reservations").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM inventory_locks").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(app.seat("14A").await, ("AVAILABLE".into(), 1));
    assert_eq!(app.seat("14B").await, ("AVAILABLE".into(), 1));
    assert!(app.published().is_empty());
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_entry_behind_always_rejected_ones_is_published_and_they_are_parked_then_redriven(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with_relay(
        options,
        RelayPolicy {
            park_after: Duration::from_secs(2),
            ..test_relay()
        },
    )
    .await;
    app.app.bus().refuse_everything(true);
    // 120 answers of one-seat orders over rows 1-20, each rejected on its first publish.
    for row in 1..=20 {
        for letter in ["A", "B", "C", "D", "E", "F"] {
            let _ = app
                .handle(order_created(Uuid::new_v4(), &[&format!("{row}{letter}")]))
                .await;
        }
    }
    let always_rejected: Vec<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM outbox ORDER BY created_at")
            .fetch_all(&app.db)
            .await
            .expect("the outbox is readable");
    let _ = app.handle(order_created(Uuid::new_v4(), &["21A"])).await;
    let newer: Uuid = sqlx::query_scalar("SELECT event_id FROM outbox ORDER BY created_at DESC")
        .fetch_one(&app.db)
        .await
        .expect("the newer entry exists");
    app.app.bus().refuse_everything(false);
    app.app.bus().refuse_always(always_rejected.iter().copied());
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let mut runs = 0;
    while !app.published().iter().any(|event| event.event_id == newer) {
        runs += 1;
        assert!(runs <= 2, "the newer entry waited behind the rejected ones");
        let _ = app.handle(scheduled()).await;
    }
    // Refused, and refused again once they have been failing for longer than park_after.
    for _ in 0..2 {
        let _ = app.handle(scheduled()).await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let _ = app.handle(scheduled()).await;
    let _ = app.handle(scheduled()).await;

    assert_eq!(always_rejected.len(), 120);
    let parked = outbox::parked(&mut session_of(&app).await)
        .await
        .expect("parked entries can be listed");
    assert_eq!(parked.len(), 120, "parked once failing for 2 s");
    assert!(parked.iter().all(|entry| entry.attempts >= 2
        && entry.failing_since.is_some()
        && entry.last_error.as_deref() == Some("InternalFailure: always")));
    let attempts_before = app.published().len();
    let _ = app.handle(scheduled()).await;
    assert_eq!(
        app.published().len(),
        attempts_before,
        "a parked entry is never offered again by itself"
    );

    app.app.bus().refuse_always_clear();
    let redriven = outbox::redrive(&mut session_of(&app).await, None)
        .await
        .expect("parked entries can be redriven");
    let _ = app.handle(scheduled()).await;
    let _ = app.handle(scheduled()).await;

    assert_eq!(redriven, 120);
    let sent: Vec<Uuid> = app.published().iter().map(|e| e.event_id).collect();
    assert!(always_rejected.iter().all(|id| sent.contains(id)));
    app.flush_marks().await;
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE state <> 'PUBLISHED'")
            .await,
        0
    );
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_entry_the_bus_can_never_accept_is_parked_at_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    app.app.bus().refuse_everything(true);
    let _ = app.handle(order_created(Uuid::new_v4(), &["22A"])).await;
    let entry: Uuid = sqlx::query_scalar("SELECT event_id FROM outbox")
        .fetch_one(&app.db)
        .await
        .expect("the entry exists");
    app.app.bus().refuse_everything(false);
    app.app.bus().refuse_permanently([entry]);
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let _ = app.handle(scheduled()).await;

    let state: String = sqlx::query_scalar("SELECT state::text FROM outbox")
        .fetch_one(&app.db)
        .await
        .expect("the entry exists");
    assert_eq!(
        state, "PARKED",
        "attempt 2 of 10, parked for its error code"
    );
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_seat_row_locked_elsewhere_fails_the_order_before_its_deadline_and_the_retry_reserves(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let mut holder = app.db.begin().await.expect("a transaction");
    sqlx::query("SELECT 1 FROM flight_seats WHERE seat_number = '23C' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("the seat row is locked");
    let order = order_created(Uuid::new_v4(), &["23C"]);

    let started = Instant::now();
    let result = app
        .app
        .handle_until(order.clone(), Deadline::after(Duration::from_secs(4)))
        .await;
    let took = started.elapsed();

    assert!(took < Duration::from_secs(4), "answered after {took:?}");
    assert!(
        matches!(&result, Err(error) if error.is_retryable()),
        "{result:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM reservations").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);

    holder.rollback().await.expect("the lock is let go");
    let (detail_type, _) = app.answer(order).await;

    assert_eq!(detail_type, DetailType::SeatReserved);
    app.assert_consistent().await;
}
