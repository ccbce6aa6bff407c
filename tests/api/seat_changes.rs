//! Seat changes: an order's held or sold seats move to others, every move or none, and a
//! payment, cancellation, expiry or other change racing one ends in one consistent state.

use std::time::Duration;

use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::{Handled, HandlerError};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::flights::flight_cancelled;
use crate::helpers::{
    DEPARTED_FLIGHT, FLIGHT, TestApp, at_once, block_requested, detail_of, operation_with,
    order_cancelled, order_created, payment_succeeded, scheduled, seat_change, uuid,
};
use crate::schemas::assert_all_match_their_schemas;

fn numbers(seats: &Value) -> Vec<String> {
    seats
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|seat| seat["seatNumber"].as_str().map(str::to_owned))
        .collect()
}

/// The order's holds by seat number, with their status, sorted.
async fn holds_of(app: &TestApp, order: Uuid) -> Vec<(String, String)> {
    app.holds(order).await
}

async fn expiry_of(app: &TestApp, order: Uuid) -> Vec<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar(
        "SELECT expires_at FROM inventory_locks WHERE order_id = $1 ORDER BY lock_id",
    )
    .bind(order)
    .fetch_all(&app.db)
    .await
    .expect("holds can be read")
}

async fn lapse(app: &TestApp, order: Uuid) {
    sqlx::query(
        "UPDATE inventory_locks SET created_at = now() - interval '2 hours',
                                    expires_at = now() - interval '1 hour'
         WHERE order_id = $1 AND status = 'ACTIVE'",
    )
    .bind(order)
    .execute(&app.db)
    .await
    .expect("the holds lapse");
}

fn answer_of(outcome: Result<Handled, HandlerError>) -> (DetailType, Value) {
    match outcome {
        Ok(Handled::Answered(event)) => (event.detail_type, detail_of(&event)),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_change_moves_a_hold_which_keeps_its_expiry_and_frees_the_seat_at_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["12A", "12B"])).await;
    let expiry = expiry_of(&app, order).await;

    let (kind, changed) = app
        .answer(seat_change(Uuid::new_v4(), order, &[("12B", "14C")]))
        .await;
    let (other, _) = app.answer(order_created(Uuid::new_v4(), &["12B"])).await;
    let (paid, booked) = app.answer(payment_succeeded(order)).await;

    assert_eq!(kind, DetailType::SeatsChanged, "{changed}");
    assert_eq!(numbers(&changed["seats"]), ["14C"]);
    assert_eq!(changed["seats"][0]["version"], 2);
    assert_eq!(numbers(&changed["freedSeats"]), ["12B"]);
    assert_eq!(changed["freedSeats"][0]["version"], 3);
    assert_eq!(
        expiry_of(&app, order).await,
        expiry,
        "the hold keeps its expiry"
    );
    assert_eq!(other, DetailType::SeatReserved, "12B is takeable at once");
    assert_eq!(paid, DetailType::SeatBooked);
    let mut sold = numbers(&booked["seats"]);
    sold.sort();
    assert_eq!(sold, ["12A", "14C"], "the payment sells the seats held now");
    assert_eq!(
        holds_of(&app, order).await,
        [
            ("12A".into(), "CONFIRMED".into()),
            ("14C".into(), "CONFIRMED".into())
        ]
    );
    app.assert_consistent().await;
    assert_all_match_their_schemas(&app.published());
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_sale_moves_and_stays_sold(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["15A", "15B"])).await;
    app.answer(payment_succeeded(order)).await;

    let (kind, changed) = app
        .answer(seat_change(
            Uuid::new_v4(),
            order,
            &[("15A", "16A"), ("15B", "16B")],
        ))
        .await;
    let released = app.handle(order_cancelled(order)).await;

    assert_eq!(kind, DetailType::SeatsChanged, "{changed}");
    assert_eq!(numbers(&changed["seats"]), ["16A", "16B"]);
    let Ok(Handled::Released(events)) = released else {
        panic!("expected a release, got {released:?}");
    };
    let mut given_back = numbers(&detail_of(&events[0])["seats"]);
    given_back.sort();
    assert_eq!(given_back, ["16A", "16B"], "the sale was on the new seats");
    assert_eq!(app.seat("16A").await.0, "AVAILABLE");
    assert_eq!(app.seat("15A").await, ("AVAILABLE".into(), 4));
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_change_that_cannot_be_made_moves_nothing_and_says_why(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    sqlx::query("UPDATE flight_seats SET cabin = 'BUSINESS' WHERE seat_number ~ '^[1-3][A-F]$'")
        .execute(&app.db)
        .await
        .expect("rows 1 to 3 become BUSINESS");
    let order = Uuid::new_v4();
    let lapsed = Uuid::new_v4();
    app.answer(order_created(order, &["20A", "20B"])).await;
    app.answer(order_created(Uuid::new_v4(), &["21A"])).await;
    app.answer(order_created(lapsed, &["22A"])).await;
    lapse(&app, lapsed).await;
    app.answer(block_requested(Uuid::new_v4(), &["21B"], "INOPERATIVE"))
        .await;

    // What is tried, by whom, which moves, the reason, the seats it names.
    type Case<'a> = (
        &'a str,
        Uuid,
        Vec<(&'a str, &'a str)>,
        &'a str,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "held by another",
            order,
            vec![("20A", "21A")],
            "SEAT_UNAVAILABLE",
            vec!["21A"],
        ),
        (
            "blocked",
            order,
            vec![("20B", "21B")],
            "SEAT_UNAVAILABLE",
            vec!["21B"],
        ),
        (
            "no such seat",
            order,
            vec![("20A", "31A")],
            "SEAT_NOT_FOUND",
            vec!["31A"],
        ),
        (
            "not the order's",
            order,
            vec![("21A", "23A")],
            "NOT_HELD_BY_ORDER",
            vec!["21A"],
        ),
        (
            "lapsed",
            lapsed,
            vec![("22A", "23A")],
            "HOLD_EXPIRED",
            vec!["22A"],
        ),
        (
            "another cabin",
            order,
            vec![("20A", "2A")],
            "INVALID_REQUEST",
            vec![],
        ),
        (
            "a seat twice",
            order,
            vec![("20A", "23A"), ("20B", "23A")],
            "INVALID_REQUEST",
            vec![],
        ),
        (
            "to itself",
            order,
            vec![("20A", "20A")],
            "INVALID_REQUEST",
            vec![],
        ),
        (
            "half of it impossible",
            order,
            vec![("20A", "23A"), ("20B", "21A")],
            "SEAT_UNAVAILABLE",
            vec!["21A"],
        ),
    ];
    for (case, order, moves, reason, named) in cases {
        let (kind, failed) = app.answer(seat_change(Uuid::new_v4(), order, &moves)).await;
        assert_eq!(kind, DetailType::SeatChangeFailed, "{case}: {failed}");
        assert_eq!(failed["reason"], reason, "{case}: {failed}");
        assert_eq!(failed["unavailableSeats"], json!(named), "{case}");
    }
    let unknown_flight = operation_with(
        "seat-change-requested.json",
        json!({"changeId": Uuid::new_v4(), "orderId": order, "flightId": Uuid::new_v4(),
               "moves": [{"from": "20A", "to": "23A"}]}),
    );
    let (_, not_found) = app.answer(unknown_flight).await;
    let departed_flight = operation_with(
        "seat-change-requested.json",
        json!({"changeId": Uuid::new_v4(), "orderId": order, "flightId": DEPARTED_FLIGHT,
               "moves": [{"from": "1A", "to": "1B"}]}),
    );
    let (_, departed) = app.answer(departed_flight).await;

    assert_eq!(not_found["reason"], "FLIGHT_NOT_FOUND");
    assert_eq!(departed["reason"], "FLIGHT_DEPARTED");
    assert_eq!(
        holds_of(&app, order).await,
        [
            ("20A".into(), "ACTIVE".into()),
            ("20B".into(), "ACTIVE".into())
        ]
    );
    for seat in ["23A", "2A"] {
        assert_eq!(app.seat(seat).await, ("AVAILABLE".into(), 1), "{seat}");
    }
    assert_eq!(app.seat("20A").await, ("LOCKED".into(), 2));
    app.assert_consistent().await;
    assert_all_match_their_schemas(&app.published());
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_change_on_a_cancelled_flight_is_refused(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["24A"])).await;
    let cancelled = app.handle(flight_cancelled(uuid(FLIGHT))).await;
    assert!(
        matches!(cancelled, Ok(Handled::FlightCancelled { .. })),
        "{cancelled:?}"
    );

    let (kind, failed) = app
        .answer(seat_change(Uuid::new_v4(), order, &[("24A", "24B")]))
        .await;

    assert_eq!(kind, DetailType::SeatChangeFailed);
    assert_eq!(failed["reason"], "FLIGHT_CANCELLED");
    assert_eq!(app.seat("24B").await, ("AVAILABLE".into(), 1));
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_change_id_gets_one_answer_and_other_content_under_it_is_a_conflict(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["25A"])).await;
    let change = Uuid::new_v4();

    let (_, first) = app
        .answer(seat_change(change, order, &[("25A", "25B")]))
        .await;
    let (_, again) = app
        .answer(seat_change(change, order, &[("25A", "25B")]))
        .await;
    let other = app
        .handle(seat_change(change, order, &[("25B", "25C")]))
        .await;

    assert_eq!(first["seats"][0]["seatNumber"], "25B");
    assert_eq!(first, again, "the same answer, the same eventId");
    let kind = other.as_ref().err().map(|error| error.kind());
    assert_eq!(kind.as_deref(), Some("ConflictingRequest"), "{other:?}");
    assert_eq!(
        holds_of(&app, order).await,
        [("25B".into(), "ACTIVE".into())]
    );
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_change_expires_a_lapsed_hold_on_its_target(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    let lapsed = Uuid::new_v4();
    app.answer(order_created(order, &["26A"])).await;
    app.answer(order_created(lapsed, &["26B"])).await;
    lapse(&app, lapsed).await;

    let (kind, _) = app
        .answer(seat_change(Uuid::new_v4(), order, &[("26A", "26B")]))
        .await;

    assert_eq!(kind, DetailType::SeatsChanged);
    assert_eq!(
        holds_of(&app, lapsed).await,
        [("26B".into(), "EXPIRED".into())]
    );
    assert_eq!(app.published_for(lapsed, DetailType::SeatReleased).len(), 1);
    assert_eq!(
        holds_of(&app, order).await,
        [("26B".into(), "ACTIVE".into())]
    );
    app.assert_consistent().await;
}

/// The seats an order holds live, sorted.
async fn live_seats(app: &TestApp, order: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT s.seat_number::text FROM inventory_locks l JOIN flight_seats s USING (seat_id)
         WHERE l.order_id = $1 AND l.status IN ('ACTIVE', 'CONFIRMED') ORDER BY 1",
    )
    .bind(order)
    .fetch_all(&app.db)
    .await
    .expect("holds can be read")
}

/// A change and a payment of one order, at once on two connections, many times: the
/// order ends sold on the seats it holds, the payment's answer names them unless the change
/// came after it, and no seat of the order is both freed and kept.
#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_change_racing_a_payment_ends_sold_on_the_seats_the_order_holds(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let changes = TestApp::spawn(options.clone()).await;
    let payments = TestApp::spawn(options).await;
    let mut change_first = 0;
    for row in 2..=11 {
        let (from, to) = (format!("{row}A"), format!("{row}F"));
        let order = Uuid::new_v4();
        changes.answer(order_created(order, &[&from])).await;
        let change = seat_change(Uuid::new_v4(), order, &[(&from, &to)]);
        let pay = payment_succeeded(order);
        // Every other time the change starts a little later, so both orders happen.
        let delay = Duration::from_millis(if row % 2 == 0 { 0 } else { 4 });
        let (changed, paid) = at_once((&changes, change), (&payments, pay), delay).await;
        let (changed, paid) = (answer_of(changed), answer_of(paid));

        assert_eq!(changed.0, DetailType::SeatsChanged, "a sale moves too");
        assert_eq!(paid.0, DetailType::SeatBooked, "{}", paid.1);
        assert_eq!(live_seats(&changes, order).await, std::slice::from_ref(&to));
        assert_eq!(holds_of(&changes, order).await[0].1, "CONFIRMED");
        let sold = numbers(&paid.1["seats"]);
        if sold == std::slice::from_ref(&to) {
            change_first += 1;
        } else {
            assert_eq!(
                sold,
                std::slice::from_ref(&from),
                "the payment sold what it saw"
            );
        }
        assert_eq!(changes.seat(&from).await.0, "AVAILABLE");
        changes.assert_consistent().await;
    }
    println!("the change came first {change_first} times of 10");
}

/// A change of a hold that lapses, racing the sweeper: the change is refused
/// HOLD_EXPIRED and the sweeper releases the seat the hold was on.
#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_change_racing_the_expiry_of_its_hold_moves_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let changes = TestApp::spawn(options.clone()).await;
    let sweeper = TestApp::spawn(options).await;
    for row in 2..=11 {
        let (from, to) = (format!("{row}B"), format!("{row}E"));
        let order = Uuid::new_v4();
        changes.answer(order_created(order, &[&from])).await;
        lapse(&changes, order).await;
        let change = seat_change(Uuid::new_v4(), order, &[(&from, &to)]);
        let (changed, swept) =
            at_once((&changes, change), (&sweeper, scheduled()), Duration::ZERO).await;
        let (kind, failed) = answer_of(changed);
        assert!(matches!(swept, Ok(Handled::Housekeeping(_))), "{swept:?}");

        assert_eq!(kind, DetailType::SeatChangeFailed);
        assert_eq!(failed["reason"], "HOLD_EXPIRED", "{failed}");
        assert_eq!(
            holds_of(&changes, order).await,
            [(from.clone(), "EXPIRED".into())]
        );
        let released = changes.published_for(order, DetailType::SeatReleased);
        let released = released
            .iter()
            .chain(
                sweeper
                    .published_for(order, DetailType::SeatReleased)
                    .iter(),
            )
            .map(|detail| numbers(&detail["seats"]))
            .collect::<Vec<_>>();
        assert_eq!(
            released,
            [vec![from.clone()]],
            "one release, of the seat held"
        );
        assert_eq!(changes.seat(&to).await, ("AVAILABLE".into(), 1));
        changes.assert_consistent().await;
    }
}

/// Two orders changing to the same target at once: one gets it, the other is told
/// SEAT_UNAVAILABLE and keeps its seat.
#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn two_changes_to_one_target_give_it_to_one_order(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let one = TestApp::spawn(options.clone()).await;
    let two = TestApp::spawn(options).await;
    for row in 2..=11 {
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let (a_seat, b_seat, target) = (
            format!("{row}C"),
            format!("{row}D"),
            format!("{}F", row + 12),
        );
        one.answer(order_created(first, &[&a_seat])).await;
        one.answer(order_created(second, &[&b_seat])).await;
        let (x, y) = (
            seat_change(Uuid::new_v4(), first, &[(&a_seat, &target)]),
            seat_change(Uuid::new_v4(), second, &[(&b_seat, &target)]),
        );
        let (x, y) = at_once((&one, x), (&two, y), Duration::ZERO).await;
        let (x, y) = (answer_of(x), answer_of(y));

        let (winner, loser, kept) = match (x.0, y.0) {
            (DetailType::SeatsChanged, DetailType::SeatChangeFailed) => (first, y.1, &b_seat),
            (DetailType::SeatChangeFailed, DetailType::SeatsChanged) => (second, x.1, &a_seat),
            other => panic!("exactly one must win, got {other:?}"),
        };
        assert_eq!(loser["reason"], "SEAT_UNAVAILABLE");
        assert_eq!(
            live_seats(&one, winner).await,
            std::slice::from_ref(&target)
        );
        let loser_order = if winner == first { second } else { first };
        assert_eq!(
            live_seats(&one, loser_order).await,
            std::slice::from_ref(kept)
        );
        one.assert_consistent().await;
    }
}

/// A cancellation of the order racing its change: the release gives back exactly the seats
/// the order holds when it runs, and nothing of the order is left live.
#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_change_racing_a_cancellation_leaves_nothing_of_the_order(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let changes = TestApp::spawn(options.clone()).await;
    let cancels = TestApp::spawn(options).await;
    for row in 2..=11 {
        let (from, to) = (format!("{row}A"), format!("{}A", row + 12));
        let order = Uuid::new_v4();
        changes.answer(order_created(order, &[&from])).await;
        let change = seat_change(Uuid::new_v4(), order, &[(&from, &to)]);
        let cancel = order_cancelled(order);
        let (changed, cancelled) =
            at_once((&changes, change), (&cancels, cancel), Duration::ZERO).await;
        let (kind, detail) = answer_of(changed);
        let Ok(Handled::Released(events)) = cancelled else {
            panic!("expected a release, got {cancelled:?}");
        };

        assert_eq!(events.len(), 1);
        let released = numbers(&detail_of(&events[0])["seats"]);
        match kind {
            DetailType::SeatsChanged => assert_eq!(released, std::slice::from_ref(&to)),
            _ => {
                assert_eq!(detail["reason"], "NOT_HELD_BY_ORDER", "{detail}");
                assert_eq!(released, std::slice::from_ref(&from));
            }
        }
        assert!(live_seats(&changes, order).await.is_empty());
        assert_eq!(changes.seat(&from).await.0, "AVAILABLE");
        assert_eq!(changes.seat(&to).await.0, "AVAILABLE");
        changes.assert_consistent().await;
    }
}
