//! The transactional outbox: nothing decided is lost when publishing fails.

use aeronode_inventory::handler::{Handled, HandlerError};
use aeronode_inventory::outbound::RecordingBus;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{TestApp, order_created, sample};

async fn pending_ids(app: &TestApp) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT event_id FROM outbox WHERE published_at IS NULL ORDER BY created_at")
        .fetch_all(&app.db)
        .await
        .expect("the outbox is readable")
}

/// Past the relay's grace period (one second in the tests).
async fn wait_out_the_grace_period() {
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
}

async fn relay(app: &TestApp) -> Result<Handled, HandlerError> {
    app.handle(sample("scheduled.json")).await
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn when_putevents_fails_after_commit_the_retry_publishes_the_pending_event_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    let event = order_created(order, &["2A", "2B"]);
    app.app.bus().refuse_everything(true);

    let failed = app.handle(event.clone()).await;

    assert!(
        matches!(&failed, Err(error) if error.is_retryable() && error.kind() == "PublishFailed"),
        "{failed:?}"
    );
    assert_eq!(
        app.active_holds(order).await,
        vec!["2A", "2B"],
        "the commit stands"
    );
    let pending = pending_ids(&app).await;
    assert_eq!(pending.len(), 1);

    app.app.bus().refuse_everything(false);
    let retried = app.handle(event).await;

    assert!(matches!(retried, Ok(Handled::Answered(_))), "{retried:?}");
    let published = app.published();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].event_id, pending[0],
        "the pending event, not a new one"
    );
    assert!(
        pending_ids(&app).await.is_empty(),
        "marked published as soon as the bus accepted it"
    );
    assert_eq!(
        app.seat("2A").await,
        ("LOCKED".into(), 2),
        "not taken twice"
    );
    assert_eq!(app.active_holds(order).await, vec!["2A", "2B"]);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_relay_publishes_a_straggler_once(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    app.app.bus().refuse_everything(true);
    let _ = app.handle(order_created(Uuid::new_v4(), &["3A"])).await;
    let pending = pending_ids(&app).await;
    app.app.bus().refuse_everything(false);

    let too_early = relay(&app).await;
    wait_out_the_grace_period().await;
    let first = relay(&app).await;
    let second = relay(&app).await;

    assert!(
        matches!(too_early, Ok(Handled::Housekeeping(ref r)) if r.relay.published == 0),
        "{too_early:?}"
    );
    assert!(
        matches!(first, Ok(Handled::Housekeeping(ref r)) if r.relay.published == 1),
        "{first:?}"
    );
    assert!(
        matches!(second, Ok(Handled::Housekeeping(ref r)) if r.relay.published == 0),
        "{second:?}"
    );
    let published: Vec<Uuid> = app.published().iter().map(|e| e.event_id).collect();
    assert_eq!(published, pending);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_partial_putevents_failure_resends_only_the_rejected_entry(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    app.app.bus().refuse_everything(true);
    for seat in ["1A", "1B", "1C"] {
        let _ = app.handle(order_created(Uuid::new_v4(), &[seat])).await;
    }
    let pending = pending_ids(&app).await;
    assert_eq!(pending.len(), 3);
    app.app.bus().refuse_everything(false);
    app.app.bus().refuse_once([pending[1]]);
    wait_out_the_grace_period().await;

    let partial = relay(&app).await;
    let after_partial: Vec<Uuid> = app.published().iter().map(|e| e.event_id).collect();
    let rerun = relay(&app).await;

    assert!(
        matches!(&partial, Err(e) if e.is_retryable()),
        "{partial:?}"
    );
    assert_eq!(after_partial, vec![pending[0], pending[2]]);
    assert!(
        matches!(rerun, Ok(Handled::Housekeeping(ref r)) if r.relay.published == 1),
        "{rerun:?}"
    );
    let all: Vec<Uuid> = app.published().iter().map(|e| e.event_id).collect();
    assert_eq!(
        all,
        vec![pending[0], pending[2], pending[1]],
        "each entry sent once"
    );
    let attempts: i32 =
        sqlx::query_scalar("SELECT publish_attempts FROM outbox WHERE event_id = $1")
            .bind(pending[1])
            .fetch_one(&app.db)
            .await
            .expect("the entry exists");
    assert_eq!(
        attempts, 3,
        "the original try, the rejected one and the resend"
    );
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn two_relays_at_once_publish_each_entry_once(_: PgPoolOptions, options: PgConnectOptions) {
    let writer = TestApp::spawn(options.clone()).await;
    writer.app.bus().refuse_everything(true);
    for row in 1..=20 {
        let _ = writer
            .handle(order_created(Uuid::new_v4(), &[&format!("{row}E")]))
            .await;
    }
    wait_out_the_grace_period().await;
    let left = TestApp::spawn_with(options.clone(), RecordingBus::new()).await;
    let right = TestApp::spawn_with(options, RecordingBus::new()).await;

    let (a, b) = tokio::join!(relay(&left), relay(&right));

    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    let mut sent: Vec<Uuid> = left
        .published()
        .iter()
        .chain(right.published().iter())
        .map(|e| e.event_id)
        .collect();
    sent.sort();
    let before = sent.len();
    sent.dedup();
    assert_eq!(before, sent.len(), "no entry published by both relays");
    assert_eq!(sent.len(), 20);
    assert!(pending_ids(&left).await.is_empty());
    writer.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_relay_prunes_published_entries_past_retention_only(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    for seat in ["5A", "5B"] {
        app.answer(order_created(Uuid::new_v4(), &[seat])).await;
    }
    sqlx::query(
        "UPDATE outbox SET published_at = now() - interval '8 days'
         WHERE event_id = (SELECT event_id FROM outbox ORDER BY created_at LIMIT 1)",
    )
    .execute(&app.db)
    .await
    .expect("backdating works");

    let report = relay(&app).await;

    assert!(
        matches!(report, Ok(Handled::Housekeeping(ref r)) if r.pruned == 1),
        "{report:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 1);
    let stays: Value = serde_json::json!(app.count("SELECT count(*) FROM reservations").await);
    assert_eq!(stays, 2, "the orders' outcomes are kept beyond the outbox");
    app.assert_consistent().await;
}
