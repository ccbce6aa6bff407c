//! The queued intake (`OrderIntake=queue`): an SQS batch whose messages are EventBridge
//! events, its orders decided in one call and one commit, and only the messages worth
//! trying again named in `batchItemFailures`.

use std::collections::BTreeSet;

use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::domain::DetailType;
use aeronode_inventory::inbound;
use aeronode_testkit::runtime_api::Invocation;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::aws_emulator::Moto;
use crate::binary::{Binary, SOON};
use crate::helpers::{
    FLIGHT, TestApp, detail_of, order_created, order_created_with, payment_failed,
};

/// Ten messages: free seats, seats taken before the batch, a seat two of its orders want,
/// a duplicate, an invalid order, an unreadable message, an any-seat order, a payment that
/// failed and one more free seat. Order ids are fixed so the batch's order is known.
struct MixedBatch {
    payload: Value,
    /// The orders decided with the batch, by the answer each gets.
    reserved: Vec<Uuid>,
    refused: Vec<(Uuid, &'static str)>,
    any_seat: Uuid,
    holder: Uuid,
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | n)
}

/// Takes 29A for `holder` before the batch, then builds it.
async fn mixed_batch(app: &TestApp) -> MixedBatch {
    let holder = id(0x99);
    app.answer(order_created(holder, &["29A"])).await;
    let first = order_created(id(1), &["30A"]);
    let any_seat = id(7);
    let messages = [
        first.to_string(),
        order_created(id(2), &["30B", "30C"]).to_string(),
        order_created(id(3), &["29A"]).to_string(),
        first.to_string(),
        order_created_with(json!({"orderId": id(5), "flightId": FLIGHT, "seats": ["no such"]}))
            .to_string(),
        "this is not an event".to_owned(),
        order_created(id(6), &["30B"]).to_string(),
        order_created_with(
            json!({"orderId": any_seat, "flightId": FLIGHT, "seatCount": 1, "cabin": "ECONOMY"}),
        )
        .to_string(),
        payment_failed(holder).to_string(),
        order_created(id(9), &["28F"]).to_string(),
    ];
    let messages: Vec<(String, String)> = messages
        .into_iter()
        .enumerate()
        .map(|(i, body)| (format!("message-{i}"), body))
        .collect();
    MixedBatch {
        payload: aeronode_testkit::sqs::batch(&messages),
        reserved: vec![id(1), id(2), id(9)],
        refused: vec![
            (id(3), "SEAT_UNAVAILABLE"),
            (id(5), "INVALID_REQUEST"),
            (id(6), "SEAT_UNAVAILABLE"),
        ],
        any_seat,
        holder,
    }
}

async fn handle_batch(app: &TestApp, payload: &Value) -> Vec<String> {
    let batch = inbound::read_batch(payload).expect("an SQS batch");
    let response = app
        .app
        .handle_batch_until(batch, Deadline::after(std::time::Duration::from_secs(10)))
        .await
        .expect("the batch is handled");
    failures(&serde_json::to_value(response).expect("the response serializes"))
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|failure| failure["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_mixed_batch_is_decided_in_one_commit_and_only_the_unreadable_message_is_retried(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let batch = mixed_batch(&app).await;
    let published_before = app.published().len();

    let failed = handle_batch(&app, &batch.payload).await;

    assert_eq!(failed, ["message-5"]);
    for order in &batch.reserved {
        let answers = app.published_for(*order, DetailType::SeatReserved);
        assert_eq!(answers.len(), 1, "order {order}: one SeatReserved");
    }
    for (order, reason) in &batch.refused {
        let answers = app.published_for(*order, DetailType::SeatReservationFailed);
        assert_eq!(answers.len(), 1, "order {order}: one refusal");
        assert_eq!(answers[0]["reason"], *reason, "order {order}");
    }
    assert_eq!(
        app.published_for(batch.any_seat, DetailType::SeatReserved)
            .len(),
        1
    );
    assert_eq!(
        app.published_for(batch.holder, DetailType::SeatReleased)
            .len(),
        1
    );
    assert_eq!(
        app.published().len() - published_before,
        8,
        "six decided together, the any-seat order, the release, and nothing twice"
    );
    assert_eq!(app.active_holds(id(2)).await, ["30B", "30C"]);
    assert!(app.active_holds(id(6)).await.is_empty());
    let together: Vec<Uuid> = [id(1), id(2), id(3), id(5), id(6), id(9)].into();
    let commits: BTreeSet<String> =
        sqlx::query_scalar("SELECT xmin::text FROM reservations WHERE order_id = ANY ($1)")
            .bind(&together)
            .fetch_all(&app.db)
            .await
            .expect("the claims are readable")
            .into_iter()
            .collect();
    assert_eq!(commits.len(), 1, "six orders, one commit: {commits:?}");
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_batch_delivered_again_whole_or_in_part_gets_the_same_answers(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let batch = mixed_batch(&app).await;
    handle_batch(&app, &batch.payload).await;
    let first: BTreeSet<(Uuid, String)> = answers(&app);
    let holds = app.count("SELECT count(*) FROM inventory_locks").await;
    let part = json!({"Records": batch.payload["Records"].as_array().map(|r| r[..4].to_vec())});

    let whole_again = handle_batch(&app, &batch.payload).await;
    let part_again = handle_batch(&app, &part).await;

    assert_eq!(whole_again, ["message-5"]);
    assert!(part_again.is_empty(), "{part_again:?}");
    assert_eq!(
        answers(&app),
        first,
        "every answer again is one given before, under its event id"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inventory_locks").await,
        holds
    );
    app.assert_consistent().await;
}

/// Every answer published so far, as (event id, detail).
fn answers(app: &TestApp) -> BTreeSet<(Uuid, String)> {
    app.published()
        .iter()
        .map(|event| (event.event_id, detail_of(event).to_string()))
        .collect()
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_real_binary_answers_a_mixed_batch_of_ten_and_names_only_the_unreadable_message(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let batch = mixed_batch(&db).await;
    let moto = Moto::shared();
    let queue = moto.route_inventory_events_to_queue().await;
    let mut binary = Binary::start(
        &options,
        &moto.endpoint(),
        &[("EVENT_BUS_NAME", queue.bus())],
    )
    .await;

    let outcome = binary.invoke(batch.payload.clone()).await;

    let Invocation::Response(response) = outcome else {
        panic!("the batch failed as a whole: {outcome:?}");
    };
    assert_eq!(failures(&response), ["message-5"]);
    let arrived = queue.receive(8, SOON).await;
    let mut kinds: Vec<(String, String)> = arrived
        .iter()
        .map(|event| {
            (
                event["detail"]["orderId"].as_str().unwrap_or("").to_owned(),
                event["detail-type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    kinds.sort();
    let mut expected: Vec<(String, String)> = batch
        .reserved
        .iter()
        .chain([&batch.any_seat])
        .map(|order| (order.to_string(), "SeatReserved".to_owned()))
        .chain(
            batch
                .refused
                .iter()
                .map(|(order, _)| (order.to_string(), "SeatReservationFailed".to_owned())),
        )
        .chain([(batch.holder.to_string(), "SeatReleased".to_owned())])
        .collect();
    expected.sort();
    assert_eq!(kinds, expected);
    assert_eq!(db.active_holds(id(1)).await, ["30A"]);
    db.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_order_the_batch_leaves_to_decide_alone_still_comes_before_the_batchs_other_events(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    // 27A is held by a hold that has lapsed: the batch's call leaves the order to be decided
    // alone (the lapsed holder is expired first), after the call.
    let lapsed = id(0x27);
    app.answer(order_created(lapsed, &["27A"])).await;
    sqlx::query(
        "UPDATE inventory_locks SET created_at = created_at - interval '1 hour',
                                    expires_at = expires_at - interval '1 hour'
         WHERE order_id = $1",
    )
    .bind(lapsed)
    .execute(&app.db)
    .await
    .expect("the hold lapses");
    let order = id(0x28);
    let payload = aeronode_testkit::sqs::batch_of_events(&[
        order_created(order, &["27A"]),
        crate::helpers::order_cancelled(order),
    ]);

    let failed = handle_batch(&app, &payload).await;

    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(app.published_for(order, DetailType::SeatReserved).len(), 1);
    assert_eq!(app.published_for(order, DetailType::SeatReleased).len(), 1);
    assert!(app.active_holds(order).await.is_empty());
    app.assert_consistent().await;
}
