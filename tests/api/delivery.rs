//! What the bus is told, and when: one publication per answer at low traffic, outages
//! waited out instead of parked, a timeout that is not a refusal, and a deadline the
//! server keeps.

use std::collections::HashMap;
use std::time::Duration;

use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::outbound::RecordingBus;
use aeronode_inventory::outbound::outbox::RelayPolicy;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{FLIGHT, TestApp, order_created, scheduled, test_relay, uuid};
use crate::rules::{hold_row_lock, until_waiting_for_locks};

/// How often each event id reached the bus, for the ids that reached it more than once.
fn duplicates(bus: &RecordingBus) -> HashMap<Uuid, usize> {
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    for event in bus.published() {
        *seen.entry(event.event_id).or_default() += 1;
    }
    seen.retain(|_, count| *count > 1);
    seen
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn at_low_traffic_an_answer_reaches_the_bus_once_though_another_instance_relays(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // One instance answers an order now and then; another runs the schedule's relay after
    // each, once the grace period (1 s here) has passed: a quiet route at night.
    let answering = TestApp::spawn(options.clone()).await;
    let relaying = TestApp::spawn(options).await;
    let orders = 8;
    for row in 1..=orders {
        answering
            .answer(order_created(Uuid::new_v4(), &[&format!("{row}A")]))
            .await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        relaying.handle(scheduled()).await.expect("the relay runs");
    }

    let answered = answering.published().len();
    let relayed = relaying.published().len();

    assert_eq!(answered, orders);
    assert_eq!(relayed, 0, "the relay found nothing to send again");
    assert_eq!(
        answering
            .count("SELECT count(*) FROM outbox WHERE state <> 'PUBLISHED'")
            .await,
        0
    );
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_three_hour_outage_in_compressed_time_parks_nothing_and_publishes_everything_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // The production settings scaled down 3,600 times: parked after 24 "hours" (24 s),
    // the backoff from 30 "seconds" to at most an "hour" (8 ms to 1 s), the outage 3
    // "hours" (3 s), the schedule every "minute" (17 ms).
    let relay = RelayPolicy {
        park_after: Duration::from_secs(24),
        backoff: Duration::from_millis(8),
        max_backoff: Duration::from_secs(1),
        ..test_relay()
    };
    let app = TestApp::spawn_with_relay(options, relay).await;
    app.app.bus().refuse_everything(true);
    let mut orders = Vec::new();
    for row in 1..=10 {
        let order = Uuid::new_v4();
        let failed = app
            .handle(order_created(order, &[&format!("{row}A")]))
            .await;
        assert!(
            matches!(failed, Err(ref error) if error.is_retryable()),
            "{failed:?}"
        );
        orders.push(order);
    }
    let outage = tokio::time::Instant::now();
    let mut runs = 0;
    while outage.elapsed() < Duration::from_secs(3) || runs < 60 {
        let _ = app.handle(scheduled()).await;
        runs += 1;
        tokio::time::sleep(Duration::from_millis(17)).await;
    }
    let attempts = app
        .count("SELECT COALESCE(max(publish_attempts), 0)::bigint FROM outbox")
        .await;
    let parked_during = app
        .count("SELECT count(*) FROM outbox WHERE state = 'PARKED'")
        .await;

    app.app.bus().refuse_everything(false);
    for _ in 0..40 {
        let _ = app.handle(scheduled()).await;
        if app.published().len() >= orders.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(
        attempts >= 5,
        "the entries were offered again and again ({attempts})"
    );
    assert_eq!(parked_during, 0, "a passing outage parks nothing");
    assert_eq!(
        app.published().len(),
        orders.len(),
        "everything is published"
    );
    assert!(
        duplicates(app.app.bus()).is_empty(),
        "{:?}",
        duplicates(app.app.bus())
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE state <> 'PUBLISHED'")
            .await,
        0
    );
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_putevents_timeout_is_no_refusal_and_the_entry_goes_again_with_the_same_event_id(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.app.bus().refuse_everything(true);
    let _ = app.handle(order_created(order, &["3A"])).await;
    let entry: Uuid = sqlx::query_scalar("SELECT event_id FROM outbox WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.db)
        .await
        .expect("the answer is in the outbox");
    sqlx::query("UPDATE outbox SET publish_attempts = 0, last_error = NULL, failing_since = NULL")
        .execute(&app.db)
        .await
        .expect("a fresh entry");
    app.app.bus().refuse_everything(false);
    // The bus takes the answer but answers too late: nobody can know it was accepted.
    app.app.bus().time_out_once([entry]);

    let timed_out = app.handle(order_created(order, &["3A"])).await;
    let (attempts, error): (i32, Option<String>) = sqlx::query_as(
        "SELECT publish_attempts, last_error FROM outbox WHERE event_id = $1 AND state = 'PENDING'",
    )
    .bind(entry)
    .fetch_one(&app.db)
    .await
    .expect("still pending");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.handle(scheduled()).await.expect("the relay runs");

    assert!(
        matches!(&timed_out, Err(error) if error.is_retryable()),
        "{timed_out:?}"
    );
    assert_eq!((attempts, error), (0, None), "not counted as a refusal");
    let sent: Vec<Uuid> = app.published().iter().map(|e| e.event_id).collect();
    assert_eq!(
        sent,
        [entry, entry],
        "offered again, with the same event id"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE state <> 'PUBLISHED'")
            .await,
        0
    );
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn when_the_invocation_runs_out_of_time_the_server_has_given_up_what_it_started(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options.clone()).await;
    let flight = uuid(FLIGHT);
    // Two slow writers, one after the other: each lock wait is short, both together
    // outlast the invocation.
    let first = hold_row_lock(&options, flight, "16A").await;
    let second = hold_row_lock(&options, flight, "16B").await;
    let order = Uuid::new_v4();
    let reserving = {
        let app = app.app.clone();
        tokio::spawn(async move {
            app.handle_until(
                order_created(order, &["16A", "16B"]),
                Deadline::after(Duration::from_millis(1_000)),
            )
            .await
        })
    };
    until_waiting_for_locks(&app, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(second);

    let outcome = reserving.await.expect("the invocation ran");
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    assert!(
        matches!(&outcome, Err(error) if error.is_retryable() && error.kind() == "OutOfTime"),
        "{outcome:?}"
    );
    for (what, sql) in [
        ("claim", "SELECT count(*) FROM reservations"),
        ("hold", "SELECT count(*) FROM inventory_locks"),
        ("outbox entry", "SELECT count(*) FROM outbox"),
    ] {
        assert_eq!(
            app.count(sql).await,
            0,
            "no {what} committed after the deadline"
        );
    }
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn parked_entries_of_every_kind_are_listed_and_redriven_flight_events_included(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    use aeronode_inventory::outbound::outbox;

    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["4A"])).await;
    let opened = match app
        .handle(crate::helpers::sample("flight-scheduled.json"))
        .await
    {
        Ok(aeronode_inventory::handler::Handled::Scheduled(event)) => event.event_id,
        other => panic!("expected the flight to open, got {other:?}"),
    };
    sqlx::query(
        "UPDATE outbox SET state = 'PARKED', published_at = NULL, parked_at = now(),
                           failing_since = now(), last_error = 'MalformedDetail: test'",
    )
    .execute(&app.db)
    .await
    .expect("the entries can be parked");
    let session = || async {
        app.app
            .database()
            .session(Deadline::after(Duration::from_secs(10)))
            .await
            .expect("a session")
    };

    let parked = outbox::parked(&mut session().await)
        .await
        .expect("parked entries can be listed");
    let redriven = outbox::redrive(&mut session().await, None)
        .await
        .expect("parked entries can be redriven");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.handle(scheduled()).await.expect("the relay runs");

    let listed: Vec<(String, Option<Uuid>, Option<Uuid>)> = parked
        .iter()
        .map(|entry| (entry.detail_type.clone(), entry.order_id, entry.flight_id))
        .collect();
    assert!(
        listed.contains(&("SeatReserved".into(), Some(order), None)),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|(kind, order, flight)| kind == "FlightInventoryOpened"
                && order.is_none()
                && flight.is_some()),
        "{listed:?}"
    );
    assert_eq!(redriven, 2);
    assert!(app.published().iter().any(|event| event.event_id == opened));
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE state <> 'PUBLISHED'")
            .await,
        0
    );
}
