//! The whole seat lifecycle: holds expire, become sales, or go back on sale; any-seat orders.

use std::collections::HashSet;
use std::time::Duration;

use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::Handled;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{
    TestApp, order_cancelled, order_created, order_created_with, payment_failed, payment_succeeded,
    scheduled,
};
use crate::schemas::assert_all_match_their_schemas;

const ANY_SEAT_FLIGHT: &str = "c0ffee00-0000-4000-8000-000000000060";

fn seats_of(detail: &Value) -> Vec<(String, i64)> {
    detail["seats"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|seat| {
            let number = seat["seatNumber"].as_str().unwrap_or_default().to_owned();
            (number, seat["version"].as_i64().unwrap_or_default())
        })
        .collect()
}

/// Lets a one-second hold run out.
async fn let_the_hold_lapse() {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_payment_sells_the_held_seats_and_a_second_one_is_answered_the_same(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["14A", "14B"])).await;

    let (detail_type, booked) = app.answer(payment_succeeded(order)).await;
    let (_, again) = app.answer(payment_succeeded(order)).await;

    assert_eq!(detail_type, DetailType::SeatBooked);
    assert_eq!(
        seats_of(&booked),
        vec![("14A".into(), 3), ("14B".into(), 3)]
    );
    assert_eq!(again, booked, "the same SeatBooked, same eventId");
    assert_eq!(app.seat("14A").await, ("BOOKED".into(), 3));
    assert_eq!(
        app.holds(order).await,
        vec![
            ("14A".into(), "CONFIRMED".into()),
            ("14B".into(), "CONFIRMED".into())
        ]
    );
    assert!(app.inconsistent_seats().await.is_empty());
    assert_all_match_their_schemas(&app.published());
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_payment_for_an_order_that_holds_nothing_here_is_hold_not_found(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    app.answer(order_created(Uuid::new_v4(), &["15A"])).await;
    let refused = Uuid::new_v4();
    app.answer(order_created(refused, &["15A"])).await;

    let (_, unknown) = app.answer(payment_succeeded(Uuid::new_v4())).await;
    let (_, never_held) = app.answer(payment_succeeded(refused)).await;

    assert_eq!(unknown["reason"], "HOLD_NOT_FOUND");
    assert_eq!(never_held["reason"], "HOLD_NOT_FOUND");
    assert_eq!(
        app.seat("15A").await,
        ("LOCKED".into(), 2),
        "the other order's hold stands"
    );
    assert_all_match_their_schemas(&app.published());
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_late_payment_after_expiry_and_resale_fails_and_leaves_the_new_hold_alone(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let short = TestApp::spawn_with_ttl(options.clone(), 1).await;
    let app = TestApp::spawn(options).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    short.answer(order_created(a, &["1A"])).await;
    let_the_hold_lapse().await;

    let sweep = app.handle(scheduled()).await;
    let (_, b_reserved) = app.answer(order_created(b, &["1A"])).await;
    let seat_before = app.seat("1A").await;
    let (detail_type, a_paid) = app.answer(payment_succeeded(a)).await;

    assert!(
        matches!(sweep, Ok(Handled::Housekeeping(ref r)) if r.orders_expired == 1),
        "{sweep:?}"
    );
    let released = app.published_for(a, DetailType::SeatReleased);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["reason"], "HOLD_EXPIRED");
    assert_eq!(
        seats_of(&b_reserved),
        vec![("1A".into(), 4)],
        "B took it after the release"
    );
    assert_eq!(detail_type, DetailType::SeatBookingFailed);
    assert_eq!(a_paid["reason"], "HOLD_EXPIRED");
    assert_eq!(app.seat("1A").await, seat_before, "B's seat is untouched");
    assert_eq!(app.seat("1A").await, ("LOCKED".into(), 4));
    assert_eq!(app.active_holds(b).await, vec!["1A"]);
    assert_eq!(app.holds(a).await, vec![("1A".into(), "EXPIRED".into())]);
    assert!(app.inconsistent_seats().await.is_empty());
    assert_all_match_their_schemas(&app.published());
    short.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_reservation_takes_a_seat_whose_hold_lapsed_before_any_sweeper_ran(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let short = TestApp::spawn_with_ttl(options.clone(), 1).await;
    let app = TestApp::spawn(options).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    short.answer(order_created(a, &["1B", "1C"])).await;
    let_the_hold_lapse().await;

    let (detail_type, _) = app.answer(order_created(b, &["1B"])).await;

    assert_eq!(detail_type, DetailType::SeatReserved);
    let released = app.published_for(a, DetailType::SeatReleased);
    assert_eq!(released.len(), 1, "A is told its lapsed holds are gone");
    assert_eq!(
        seats_of(&released[0]),
        vec![("1B".into(), 3), ("1C".into(), 3)]
    );
    assert_eq!(app.seat("1B").await, ("LOCKED".into(), 4));
    assert_eq!(app.seat("1C").await, ("AVAILABLE".into(), 3));
    assert_eq!(
        app.holds(a).await,
        vec![
            ("1B".into(), "EXPIRED".into()),
            ("1C".into(), "EXPIRED".into())
        ]
    );
    assert!(app.inconsistent_seats().await.is_empty());
    short.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_payment_arriving_after_the_hold_lapsed_releases_it_and_fails(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with_ttl(options, 1).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["16C"])).await;
    let_the_hold_lapse().await;

    let (detail_type, detail) = app.answer(payment_succeeded(order)).await;

    assert_eq!(detail_type, DetailType::SeatBookingFailed);
    assert_eq!(detail["reason"], "HOLD_EXPIRED");
    assert_eq!(app.published_for(order, DetailType::SeatReleased).len(), 1);
    assert_eq!(app.seat("16C").await, ("AVAILABLE".into(), 3));
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_failed_payment_releases_the_holds_once(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["17A", "17B"])).await;

    let first = app.handle(payment_failed(order)).await;
    let second = app.handle(payment_failed(order)).await;

    let Ok(Handled::Released(events)) = first else {
        panic!("expected a release, got {first:?}");
    };
    assert_eq!(events.len(), 1);
    let released = app.published_for(order, DetailType::SeatReleased);
    assert_eq!(
        released.len(),
        1,
        "the second release is a no-op with no answer"
    );
    assert_eq!(released[0]["reason"], "PAYMENT_FAILED");
    assert_eq!(
        seats_of(&released[0]),
        vec![("17A".into(), 3), ("17B".into(), 3)]
    );
    assert!(
        matches!(second, Ok(Handled::Released(ref none)) if none.is_empty()),
        "{second:?}"
    );
    assert_eq!(app.seat("17A").await, ("AVAILABLE".into(), 3));
    let (detail_type, _) = app.answer(payment_succeeded(order)).await;
    assert_eq!(
        detail_type,
        DetailType::SeatBookingFailed,
        "released holds are not sold"
    );
    assert!(app.inconsistent_seats().await.is_empty());
    assert_all_match_their_schemas(&app.published());
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_cancellation_after_the_sale_returns_the_seats_but_a_failed_payment_does_not(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["18D"])).await;
    app.answer(payment_succeeded(order)).await;

    let late_failure = app.handle(payment_failed(order)).await;
    let seat_after_failure = app.seat("18D").await;
    let cancelled = app.handle(order_cancelled(order)).await;

    assert!(matches!(late_failure, Ok(Handled::Released(ref none)) if none.is_empty()));
    assert_eq!(
        seat_after_failure,
        ("BOOKED".into(), 3),
        "a sale is not undone by PaymentFailed"
    );
    assert!(matches!(cancelled, Ok(Handled::Released(ref one)) if one.len() == 1));
    let released = app.published_for(order, DetailType::SeatReleased);
    assert_eq!(released[0]["reason"], "ORDER_CANCELLED");
    assert_eq!(app.seat("18D").await, ("AVAILABLE".into(), 4));
    let (detail_type, _) = app.answer(order_created(Uuid::new_v4(), &["18D"])).await;
    assert_eq!(
        detail_type,
        DetailType::SeatReserved,
        "the seat is on sale again"
    );
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn confirmation_racing_expiry_ends_booked_or_released_never_both(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let payer = TestApp::spawn(options.clone()).await;
    let sweeper = TestApp::spawn(options).await;
    let mut outcomes = HashSet::new();
    for run in 0..24u32 {
        let order = Uuid::new_v4();
        let seat = format!(
            "{}{}",
            19 + run / 6,
            ["A", "B", "C", "D", "E", "F"][(run % 6) as usize]
        );
        payer.answer(order_created(order, &[&seat])).await;
        // The hold runs out a few milliseconds from now: payment and sweeper race its end.
        sqlx::query("UPDATE inventory_locks SET expires_at = now() + $2 * interval '1 ms' WHERE order_id = $1")
            .bind(order)
            .bind(f64::from(run % 4) * 4.0)
            .execute(&payer.db)
            .await
            .expect("the expiry can be moved");
        tokio::time::sleep(Duration::from_millis(6)).await;

        let (paid, swept) = tokio::join!(
            payer.handle(payment_succeeded(order)),
            sweeper.handle(scheduled())
        );

        assert!(paid.is_ok() && swept.is_ok(), "{paid:?} {swept:?}");
        let booked = payer.published_for(order, DetailType::SeatBooked).len();
        let released = payer.published_for(order, DetailType::SeatReleased).len()
            + sweeper.published_for(order, DetailType::SeatReleased).len();
        let (status, _) = payer.seat(&seat).await;
        match (booked, released, status.as_str()) {
            (1, 0, "BOOKED") => outcomes.insert("booked"),
            (0, 1, "AVAILABLE") => outcomes.insert("released"),
            other => panic!("run {run}: booked and released at once: {other:?}"),
        };
        assert!(payer.inconsistent_seats().await.is_empty(), "run {run}");
    }
    assert!(!outcomes.is_empty());
    payer.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights", "any_seat_flight"))
)]
async fn an_any_seat_order_gets_neighbours_in_one_row_of_its_cabin(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let request = json!({"orderId": Uuid::new_v4(), "flightId": ANY_SEAT_FLIGHT, "seatCount": 3, "cabin": "BUSINESS"});

    let (detail_type, detail) = app.answer(order_created_with(request)).await;

    assert_eq!(detail_type, DetailType::SeatReserved);
    let seats: Vec<String> = seats_of(&detail).into_iter().map(|(n, _)| n).collect();
    let rows: HashSet<&str> = seats.iter().map(|s| &s[..s.len() - 1]).collect();
    let letters: Vec<u8> = seats.iter().filter_map(|s| s.bytes().last()).collect();
    assert_eq!(rows.len(), 1, "one row: {seats:?}");
    assert!(
        rows.contains("1") || rows.contains("2"),
        "a BUSINESS row: {seats:?}"
    );
    assert!(
        letters.windows(2).all(|w| w[1] == w[0] + 1),
        "side by side: {seats:?}"
    );
    assert_all_match_their_schemas(&app.published());
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights", "any_seat_flight"))
)]
async fn fifty_concurrent_any_seat_orders_share_a_cabin_of_sixty_without_overlap(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut instances = Vec::new();
    for _ in 0..8 {
        instances.push(TestApp::spawn(options.clone()).await);
    }
    let orders: Vec<(Uuid, u64)> = (0..50u64).map(|n| (Uuid::new_v4(), 1 + n % 3)).collect();

    let mut tasks = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        let app = instance.app.clone();
        let mine: Vec<(Uuid, u64)> = orders.iter().skip(index).step_by(8).copied().collect();
        tasks.push(tokio::spawn(async move {
            for (order, count) in mine {
                let request = json!({"orderId": order, "flightId": ANY_SEAT_FLIGHT, "seatCount": count, "cabin": "ECONOMY"});
                let answer = app.handle(order_created_with(request)).await;
                assert!(matches!(answer, Ok(Handled::Answered(_))), "{answer:?}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("an instance task completes");
    }

    let db = &instances[0];
    let all: Vec<_> = instances.iter().flat_map(|i| i.published()).collect();
    assert_eq!(all.len(), 50, "every order answered once");
    let mut taken = HashSet::new();
    let mut served = 0;
    for (order, count) in &orders {
        let holds = db.active_holds(*order).await;
        let reserved = db.published_for(*order, DetailType::SeatReserved);
        let refused = db.published_for(*order, DetailType::SeatReservationFailed);
        let reserved = reserved.len()
            + instances[1..]
                .iter()
                .map(|i| i.published_for(*order, DetailType::SeatReserved).len())
                .sum::<usize>();
        let refused: Vec<Value> = refused
            .into_iter()
            .chain(
                instances[1..]
                    .iter()
                    .flat_map(|i| i.published_for(*order, DetailType::SeatReservationFailed)),
            )
            .collect();
        match (reserved, refused.as_slice()) {
            (1, []) => {
                served += 1;
                assert_eq!(holds.len() as u64, *count, "order {order} fully served");
                for seat in holds {
                    assert!(taken.insert(seat.clone()), "seat {seat} held twice");
                }
            }
            (0, [refusal]) => {
                assert_eq!(refusal["reason"], "INSUFFICIENT_SEATS");
                assert!(holds.is_empty());
            }
            other => panic!("order {order}: {other:?}"),
        }
    }
    assert!(
        taken.len() <= 60 && taken.len() > 50,
        "the cabin filled up: {}",
        taken.len()
    );
    assert!(served < 50, "demand (100 seats) exceeded the cabin");
    let business_taken = db
        .count(
            "SELECT count(*) FROM flight_seats WHERE cabin = 'BUSINESS' AND status <> 'AVAILABLE'",
        )
        .await;
    assert_eq!(business_taken, 0, "no seat from another cabin");
    assert!(db.inconsistent_seats().await.is_empty());
    assert_all_match_their_schemas(&all);
    instances[0].assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights", "any_seat_flight"))
)]
async fn a_row_lock_that_comes_to_nothing_never_makes_an_any_seat_order_insufficient(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    // Only 2E and 2F are left in BUSINESS.
    sqlx::query(
        "DELETE FROM flight_seats
         WHERE flight_id = $1 AND cabin = 'BUSINESS' AND seat_number NOT IN ('2E', '2F')",
    )
    .bind(crate::helpers::uuid(ANY_SEAT_FLIGHT))
    .execute(&app.db)
    .await
    .expect("the rest of the cabin is gone");
    // Another transaction locks 2E for a moment and then changes nothing.
    let mut other = app.db.begin().await.expect("a transaction");
    sqlx::query(
        "SELECT 1 FROM flight_seats WHERE flight_id = $1 AND seat_number = '2E' FOR UPDATE",
    )
    .bind(crate::helpers::uuid(ANY_SEAT_FLIGHT))
    .execute(&mut *other)
    .await
    .expect("2E is locked");
    let let_go = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        other.rollback().await.expect("the lock is let go");
    });
    let request = json!({"orderId": Uuid::new_v4(), "flightId": ANY_SEAT_FLIGHT, "seatCount": 2, "cabin": "BUSINESS"});

    let (detail_type, detail) = app.answer(order_created_with(request)).await;
    let_go.await.expect("the other transaction ends");

    assert_eq!(detail_type, DetailType::SeatReserved, "{detail}");
    let seats: Vec<String> = seats_of(&detail).into_iter().map(|(n, _)| n).collect();
    assert_eq!(seats, vec!["2E", "2F"]);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights", "any_seat_flight"))
)]
async fn an_any_seat_order_expires_only_the_lapsed_holds_it_needs(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let short = TestApp::spawn_with_ttl(options.clone(), 1).await;
    let app = TestApp::spawn(options).await;
    let flight = crate::helpers::uuid(ANY_SEAT_FLIGHT);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for (order, seat) in [(a, "1A"), (b, "1B")] {
        let request = json!({"orderId": order, "flightId": ANY_SEAT_FLIGHT, "seats": [seat]});
        short.answer(order_created_with(request)).await;
    }
    sqlx::query(
        "DELETE FROM flight_seats
         WHERE flight_id = $1 AND cabin = 'BUSINESS' AND seat_number NOT IN ('1A', '1B')",
    )
    .bind(flight)
    .execute(&app.db)
    .await
    .expect("the rest of the cabin is gone");
    let_the_hold_lapse().await;
    let request = json!({"orderId": Uuid::new_v4(), "flightId": ANY_SEAT_FLIGHT, "seatCount": 1, "cabin": "BUSINESS"});

    let (detail_type, _) = app.answer(order_created_with(request)).await;

    assert_eq!(detail_type, DetailType::SeatReserved);
    let released = app.published_for(a, DetailType::SeatReleased).len()
        + app.published_for(b, DetailType::SeatReleased).len();
    assert_eq!(released, 1, "one lapsed hold was enough");
    let still_active = app
        .count(
            "SELECT count(*) FROM inventory_locks WHERE status = 'ACTIVE' AND expires_at <= now()",
        )
        .await;
    assert_eq!(still_active, 1, "the other is left to the sweeper");
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_payment_before_its_order_is_answered_once_and_the_late_order_holds_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    let payment = payment_succeeded(order);

    let (_, first) = app.answer(payment.clone()).await;
    let late_order = app.handle(order_created(order, &["20A"])).await;
    let (_, again) = app.answer(payment).await;

    assert_eq!(first["reason"], "HOLD_NOT_FOUND");
    assert!(
        matches!(&late_order, Err(error) if error.kind() == "ConflictingOrder"
            && error.to_string().contains("PaymentSucceeded")),
        "the payment's answer is the order's only one: {late_order:?}"
    );
    assert!(
        app.published_for(order, DetailType::SeatReservationFailed)
            .is_empty()
    );
    assert_eq!(again, first, "one payment, one answer");
    assert_eq!(app.seat("20A").await, ("AVAILABLE".into(), 1));
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_cancellation_before_its_order_keeps_the_late_order_from_holding_seats(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();

    let cancelled = app.handle(order_cancelled(order)).await;
    let late_order = app.handle(order_created(order, &["21C"])).await;

    assert!(
        matches!(cancelled, Ok(Handled::Released(ref none)) if none.is_empty()),
        "{cancelled:?}"
    );
    assert!(
        matches!(&late_order, Err(error) if error.kind() == "ConflictingOrder"
            && error.to_string().contains("OrderCancelled")),
        "{late_order:?}"
    );
    assert!(app.published().is_empty(), "nothing answered on the bus");
    assert_eq!(app.seat("21C").await, ("AVAILABLE".into(), 1));
    assert!(app.active_holds(order).await.is_empty());
    app.assert_consistent().await;
}
