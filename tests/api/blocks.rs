//! Blocked seats: operations takes seats out of sale, all of them or none, and gives them
//! back; a blocked seat is never held or sold, and the seat map shows it.

use std::time::Duration;

use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::Handled;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::flights::flight_cancelled;
use crate::helpers::{
    FLIGHT, TestApp, at_once, block_requested, detail_of, operation_with, order_created,
    order_created_with, unblock_requested, uuid,
};
use crate::schemas::assert_all_match_their_schemas;

fn seat_numbers(detail: &Value) -> Vec<String> {
    detail["seats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|seat| seat["seatNumber"].as_str().map(str::to_owned))
        .collect()
}

async fn block_reason(app: &TestApp, seat: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT block_reason::text FROM flight_seats WHERE flight_id = $1 AND seat_number = $2",
    )
    .bind(uuid(FLIGHT))
    .bind(seat)
    .fetch_one(&app.db)
    .await
    .expect("the seat exists")
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_block_takes_every_seat_out_of_sale_and_no_order_gets_one(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;

    let (detail_type, blocked) = app
        .answer(block_requested(Uuid::new_v4(), &["1A", "1B"], "CREW_REST"))
        .await;
    let (refused_type, refused) = app
        .answer(order_created(Uuid::new_v4(), &["1B", "1C"]))
        .await;

    assert_eq!(detail_type, DetailType::SeatsBlocked, "{blocked}");
    assert_eq!(seat_numbers(&blocked), ["1A", "1B"], "{blocked}");
    assert_eq!(blocked["seats"][0]["version"], 2, "{blocked}");
    assert_eq!(app.seat("1A").await, ("BLOCKED".into(), 2));
    assert_eq!(block_reason(&app, "1B").await.as_deref(), Some("CREW_REST"));
    assert_eq!(refused_type, DetailType::SeatReservationFailed);
    assert_eq!(refused["reason"], "SEAT_UNAVAILABLE");
    assert_eq!(refused["unavailableSeats"], json!(["1B"]));
    assert_eq!(app.seat("1C").await, ("AVAILABLE".into(), 1));
    app.assert_consistent().await;
    assert_all_match_their_schemas(&app.published());
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn any_seat_orders_skip_blocked_seats(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    // 50 of the 180 seats blocked: rows 1 to 8 and 9A, 9B.
    let blocked: Vec<String> = (1..=8)
        .flat_map(|row| ["A", "B", "C", "D", "E", "F"].map(|letter| format!("{row}{letter}")))
        .chain(["9A".into(), "9B".into()])
        .collect();
    let names: Vec<&str> = blocked.iter().map(String::as_str).collect();
    let (detail_type, _) = app
        .answer(block_requested(
            Uuid::new_v4(),
            &names,
            "WEIGHT_AND_BALANCE",
        ))
        .await;
    assert_eq!(detail_type, DetailType::SeatsBlocked);

    // The other 130 seats go to any-seat orders of 9 (14 of them hold 126), then 4.
    let mut answers = Vec::new();
    for count in std::iter::repeat_n(9, 14).chain([4, 1]) {
        let order = json!({"orderId": Uuid::new_v4(), "flightId": FLIGHT, "seatCount": count});
        answers.push(app.answer(order_created_with(order)).await);
    }

    let held: Vec<String> = answers
        .iter()
        .filter(|(kind, _)| *kind == DetailType::SeatReserved)
        .flat_map(|(_, detail)| seat_numbers(detail))
        .collect();
    assert_eq!(held.len(), 130, "every free seat, and only those");
    assert!(
        held.iter().all(|seat| !blocked.contains(seat)),
        "no blocked seat was held: {held:?}"
    );
    let (last, refused) = &answers[answers.len() - 1];
    assert_eq!(*last, DetailType::SeatReservationFailed);
    assert_eq!(refused["reason"], "INSUFFICIENT_SEATS");
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_block_is_all_or_nothing_and_names_what_stands_in_the_way(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["2B"])).await;
    let first = Uuid::new_v4();
    app.answer(block_requested(first, &["3A"], "INOPERATIVE"))
        .await;

    let (held_type, held) = app
        .answer(block_requested(Uuid::new_v4(), &["2A", "2B"], "OPERATOR"))
        .await;
    let (again_type, again) = app
        .answer(block_requested(Uuid::new_v4(), &["3A", "3B"], "OPERATOR"))
        .await;
    let (missing_type, missing) = app
        .answer(block_requested(Uuid::new_v4(), &["2C", "31A"], "OPERATOR"))
        .await;

    for kind in [held_type, again_type, missing_type] {
        assert_eq!(kind, DetailType::SeatBlockFailed);
    }
    assert_eq!(held["reason"], "SEAT_UNAVAILABLE");
    assert_eq!(held["unavailableSeats"], json!(["2B"]));
    assert_eq!(again["reason"], "SEAT_UNAVAILABLE", "blocked already");
    assert_eq!(again["unavailableSeats"], json!(["3A"]));
    assert_eq!(missing["reason"], "SEAT_NOT_FOUND");
    assert_eq!(missing["unavailableSeats"], json!(["31A"]));
    for seat in ["2A", "3B", "2C"] {
        assert_eq!(app.seat(seat).await, ("AVAILABLE".into(), 1), "{seat}");
    }
    assert_eq!(app.active_holds(order).await, ["2B"]);
    app.assert_consistent().await;
    assert_all_match_their_schemas(&app.published());
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_block_of_an_unknown_or_cancelled_flight_or_a_bad_request_is_refused(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let unknown = operation_with(
        "seat-block-requested.json",
        json!({"requestId": Uuid::new_v4(), "flightId": Uuid::new_v4(), "seats": ["1A"],
               "reason": "OPERATOR"}),
    );
    let invalid = operation_with(
        "seat-block-requested.json",
        json!({"requestId": Uuid::new_v4(), "flightId": FLIGHT, "seats": ["1A"],
               "reason": "BROKEN"}),
    );
    let (_, not_found) = app.answer(unknown).await;
    let (_, bad) = app.answer(invalid).await;
    let (bad_unblock_kind, bad_unblock) = app
        .answer(unblock_requested(Uuid::new_v4(), &["1A", "1A"]))
        .await;
    let cancelled = app.handle(flight_cancelled(uuid(FLIGHT))).await;
    assert!(
        matches!(cancelled, Ok(Handled::FlightCancelled { .. })),
        "{cancelled:?}"
    );
    let (_, on_cancelled) = app
        .answer(block_requested(Uuid::new_v4(), &["1A"], "OPERATOR"))
        .await;

    assert_eq!(not_found["reason"], "FLIGHT_NOT_FOUND");
    assert_eq!(bad["reason"], "INVALID_REQUEST");
    assert!(
        bad["message"]
            .as_str()
            .is_some_and(|m| m.contains("reason")),
        "{bad}"
    );
    assert_eq!(on_cancelled["reason"], "FLIGHT_CANCELLED");
    assert_eq!(bad_unblock_kind, DetailType::SeatUnblockFailed);
    assert_eq!(bad_unblock["reason"], "INVALID_REQUEST");
    assert_eq!(app.seat("1A").await, ("AVAILABLE".into(), 1));
    assert_eq!(
        app.count("SELECT count(*) FROM flight_seats WHERE status = 'BLOCKED'")
            .await,
        0
    );
    assert_all_match_their_schemas(&app.published());
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_request_id_gets_one_answer_and_other_content_under_it_is_a_conflict(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let request = Uuid::new_v4();

    let (_, first) = app
        .answer(block_requested(request, &["4A"], "OPERATOR"))
        .await;
    let (_, again) = app
        .answer(block_requested(request, &["4A"], "OPERATOR"))
        .await;
    let other = app
        .handle(block_requested(request, &["4B"], "OPERATOR"))
        .await;
    let unblock_under_it = app.handle(unblock_requested(request, &["4A"])).await;

    assert_eq!(first, again, "the same answer, the same eventId");
    for conflict in [&other, &unblock_under_it] {
        let kind = conflict.as_ref().err().map(|error| error.kind());
        assert_eq!(kind.as_deref(), Some("ConflictingRequest"), "{conflict:?}");
    }
    assert_eq!(app.seat("4A").await, ("BLOCKED".into(), 2));
    assert_eq!(app.seat("4B").await, ("AVAILABLE".into(), 1));
    assert_eq!(app.published().len(), 2, "the one answer, sent twice");
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_unblock_frees_the_blocked_seats_among_those_named(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    app.answer(block_requested(Uuid::new_v4(), &["5A", "5B"], "CREW_REST"))
        .await;
    let request = Uuid::new_v4();

    let (kind, unblocked) = app.answer(unblock_requested(request, &["5B", "5C"])).await;
    let (_, again) = app.answer(unblock_requested(request, &["5B", "5C"])).await;
    let (reserved, _) = app.answer(order_created(Uuid::new_v4(), &["5B"])).await;
    let unknown = operation_with(
        "seat-unblock-requested.json",
        json!({"requestId": Uuid::new_v4(), "flightId": Uuid::new_v4(), "seats": ["5A"]}),
    );
    let (failed, not_found) = app.answer(unknown).await;

    assert_eq!(kind, DetailType::SeatsUnblocked);
    assert_eq!(seat_numbers(&unblocked), ["5B"]);
    assert_eq!(unblocked["seats"][0]["version"], 3);
    assert_eq!(unblocked["notBlocked"], json!(["5C"]));
    assert_eq!(again, unblocked);
    assert_eq!(reserved, DetailType::SeatReserved, "free again at once");
    assert_eq!(app.seat("5A").await, ("BLOCKED".into(), 2));
    assert_eq!(block_reason(&app, "5B").await, None);
    assert_eq!(failed, DetailType::SeatUnblockFailed);
    assert_eq!(not_found["reason"], "FLIGHT_NOT_FOUND");
    app.assert_consistent().await;
    assert_all_match_their_schemas(&app.published());
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_block_expires_a_lapsed_hold_in_its_way(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["6A"])).await;
    sqlx::query(
        "UPDATE inventory_locks SET created_at = now() - interval '2 hours',
                                    expires_at = now() - interval '1 hour'
         WHERE order_id = $1",
    )
    .bind(order)
    .execute(&app.db)
    .await
    .expect("the hold lapses");

    let (kind, _) = app
        .answer(block_requested(
            Uuid::new_v4(),
            &["6A"],
            "RESERVED_FOR_ASSISTANCE",
        ))
        .await;

    assert_eq!(kind, DetailType::SeatsBlocked);
    assert_eq!(app.holds(order).await, [("6A".into(), "EXPIRED".into())]);
    let released = app.published_for(order, DetailType::SeatReleased);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["reason"], "HOLD_EXPIRED");
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_seat_map_shows_blocked_seats_with_their_reason_and_counts_them(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    app.answer(block_requested(
        Uuid::new_v4(),
        &["7A", "7B"],
        "INOPERATIVE",
    ))
    .await;

    let get = crate::availability::request("GET", &crate::availability::seats_of(FLIGHT), None);
    let map = match app.handle(get).await {
        Ok(Handled::Http(response)) => response,
        other => panic!("expected a seat map, got {other:?}"),
    };
    let body: Value =
        serde_json::from_str(map.body.as_deref().unwrap_or("null")).expect("the seat map is JSON");

    let seven_a = body["seats"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|seat| seat["seatNumber"] == "7A")
        .cloned();
    assert_eq!(
        seven_a,
        Some(
            json!({"seatNumber": "7A", "cabin": "ECONOMY", "status": "BLOCKED",
                    "blockReason": "INOPERATIVE"})
        )
    );
    assert_eq!(body["cabins"][0]["blocked"], 2);
    assert_eq!(body["cabins"][0]["available"], 178);
    let errors: Vec<String> = crate::schemas::schema("flight-seats")
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// A block and a reservation of the same seats, at once, on two connections, many times:
/// exactly one of them gets the seats each time, and the other is told so.
#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_block_racing_a_reservation_leaves_each_seat_to_one_of_them(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let operations = TestApp::spawn(options.clone()).await;
    let orders = TestApp::spawn(options).await;
    let mut blocks_won = 0;
    for row in 10..=29 {
        let seats = [format!("{row}C"), format!("{row}D")];
        let names: Vec<&str> = seats.iter().map(String::as_str).collect();
        let block = block_requested(Uuid::new_v4(), &names, "OPERATOR");
        let order = order_created(Uuid::new_v4(), &names);
        let (blocked, reserved) =
            at_once((&operations, block), (&orders, order), Duration::ZERO).await;
        let kind = |outcome: Result<Handled, _>| match outcome {
            Ok(Handled::Answered(event)) => (event.detail_type, detail_of(&event)),
            other => panic!("expected an answer, got {other:?}"),
        };
        let ((block_kind, block_detail), (order_kind, order_detail)) =
            (kind(blocked), kind(reserved));
        match (block_kind, order_kind) {
            (DetailType::SeatsBlocked, DetailType::SeatReservationFailed) => {
                blocks_won += 1;
                assert_eq!(order_detail["reason"], "SEAT_UNAVAILABLE");
            }
            (DetailType::SeatBlockFailed, DetailType::SeatReserved) => {
                assert_eq!(block_detail["reason"], "SEAT_UNAVAILABLE");
            }
            other => panic!("row {row}: exactly one must win, got {other:?}"),
        }
        operations.assert_consistent().await;
    }
    let statuses: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT status::text FROM flight_seats
         WHERE flight_id = $1 AND seat_number ~ '^(1[0-9]|2[0-9])[CD]$'",
    )
    .bind(uuid(FLIGHT))
    .fetch_all(&operations.db)
    .await
    .expect("the seats can be read");
    assert!(
        statuses
            .iter()
            .all(|status| status == "BLOCKED" || status == "LOCKED"),
        "{statuses:?}"
    );
    println!("block won {blocks_won} of 20 races");
}
