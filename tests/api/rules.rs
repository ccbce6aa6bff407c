//! One set of seat rules, checked where the data is written: each defect a review found
//! when the rules lived in several places, as the behaviour that now holds.

use std::time::Duration;

use aeronode_inventory::domain::DetailType;
use aeronode_inventory::handler::Handled;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::availability::{request, seats_of, status_of};
use crate::flights::{flight_cancelled, order_on, schedule};
use crate::helpers::{FLIGHT, TestApp, order_created, order_created_with, scheduled, uuid};

/// A new flight with rows 1-2, seats ABC, all ECONOMY.
async fn small_flight(app: &TestApp) -> Uuid {
    let flight = Uuid::new_v4();
    let opened = app
        .handle(schedule(
            flight,
            json!([{"cabin": "ECONOMY", "rows": "1-2", "letters": "ABC"}]),
        ))
        .await;
    assert!(matches!(opened, Ok(Handled::Scheduled(_))), "{opened:?}");
    flight
}

/// Another connection that holds a seat's row lock until dropped (its transaction is
/// rolled back), as a slow writer would.
pub async fn hold_row_lock(options: &PgConnectOptions, flight: Uuid, seat: &str) -> PgConnection {
    let mut connection = PgConnection::connect_with(options)
        .await
        .expect("a second connection");
    sqlx::query("BEGIN")
        .execute(&mut connection)
        .await
        .expect("a transaction");
    sqlx::query("SELECT 1 FROM flight_seats WHERE flight_id = $1 AND seat_number = $2 FOR UPDATE")
        .bind(flight)
        .bind(seat)
        .execute(&mut connection)
        .await
        .expect("the seat's row lock");
    connection
}

/// Waits until `sessions` backends wait for a lock.
pub async fn until_waiting_for_locks(app: &TestApp, sessions: i64) {
    for _ in 0..200 {
        let waiting = app
            .count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            .await;
        if waiting >= sessions {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{sessions} sessions never waited for a lock");
}

async fn live_holds_on(app: &TestApp, flight: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM inventory_locks
         WHERE flight_id = $1 AND status IN ('ACTIVE', 'CONFIRMED')",
    )
    .bind(flight)
    .fetch_one(&app.db)
    .await
    .expect("holds are readable")
}

fn published_of(app: &TestApp, order: Uuid, detail_type: DetailType) -> Vec<Value> {
    app.published_for(order, detail_type)
}

/// What the seat map shows for `seat` of `flight`.
async fn shown(app: &TestApp, flight: Uuid, seat: &str) -> String {
    let request = request("GET", &seats_of(&flight.to_string()), None);
    let body: Value = match app.handle(request).await {
        Ok(Handled::Http(response)) => {
            serde_json::from_str(response.body.as_deref().unwrap_or("null")).expect("JSON")
        }
        other => panic!("expected a seat map, got {other:?}"),
    };
    status_of(&body, seat)
}

async fn quarantine(app: &TestApp, order: Uuid) {
    sqlx::query(
        "UPDATE reservations SET quarantined_at = now(), quarantine_reason = 'set aside by the test'
         WHERE order_id = $1",
    )
    .bind(order)
    .execute(&app.db)
    .await
    .expect("the order can be set aside");
}

async fn lapse_holds_of(app: &TestApp, order: Uuid) {
    sqlx::query(
        "UPDATE inventory_locks SET created_at = now() - interval '2 hours',
                                    expires_at = now() - interval '1 hour'
         WHERE order_id = $1",
    )
    .bind(order)
    .execute(&app.db)
    .await
    .expect("the holds can be aged");
}

async fn depart_long_ago(app: &TestApp, flight: Uuid) {
    sqlx::query(
        "UPDATE flights SET departure_utc = now() - interval '40 days',
                            arrival_utc = now() - interval '39 days'
         WHERE flight_id = $1",
    )
    .bind(flight)
    .execute(&app.db)
    .await
    .expect("the flight can be moved");
}

// 1. A hold on a cancelled flight.

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_reservation_waiting_on_a_seat_while_its_flight_is_cancelled_leaves_nothing_held(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options.clone()).await;
    let canceller = TestApp::spawn(options.clone()).await;
    let flight = small_flight(&app).await;
    let order = Uuid::new_v4();
    let lock = hold_row_lock(&options, flight, "1A").await;

    let reserving = {
        let app = app.app.clone();
        tokio::spawn(async move { app.handle(order_on(flight, order, &["1A"])).await })
    };
    until_waiting_for_locks(&app, 1).await;
    let cancelling = {
        let app = canceller.app.clone();
        tokio::spawn(async move { app.handle(flight_cancelled(flight)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(lock);
    let reserved = reserving.await.expect("the reservation ran");
    let cancelled = cancelling.await.expect("the cancellation ran");
    canceller
        .handle(scheduled())
        .await
        .expect("the schedule runs");

    assert!(matches!(reserved, Ok(Handled::Answered(_))), "{reserved:?}");
    assert!(
        matches!(cancelled, Ok(Handled::FlightCancelled { .. })),
        "{cancelled:?}"
    );
    assert_eq!(
        live_holds_on(&app, flight).await,
        0,
        "nothing held on a cancelled flight"
    );
    let answer = published_of(&app, order, DetailType::SeatReserved);
    let released = published_of(&canceller, order, DetailType::SeatReleased);
    let refused = published_of(&app, order, DetailType::SeatReservationFailed);
    assert!(
        (answer.len() == 1 && released.len() == 1 && released[0]["reason"] == "FLIGHT_CANCELLED")
            || (refused.len() == 1 && refused[0]["reason"] == "FLIGHT_CANCELLED"),
        "held then released by the cancellation, or refused: {answer:?} {released:?} {refused:?}"
    );
    let closed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM flights WHERE flight_id = $1 AND closed_event_id IS NOT NULL",
    )
    .bind(flight)
    .fetch_one(&app.db)
    .await
    .expect("flights are readable");
    assert_eq!(closed, 1);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_reservation_waiting_on_a_seat_while_its_flight_departs_is_refused_as_departed(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options.clone()).await;
    let flight = small_flight(&app).await;
    let order = Uuid::new_v4();
    let lock = hold_row_lock(&options, flight, "1A").await;

    let reserving = {
        let app = app.app.clone();
        tokio::spawn(async move { app.handle(order_on(flight, order, &["1A"])).await })
    };
    until_waiting_for_locks(&app, 1).await;
    sqlx::query(
        "UPDATE flights SET departure_utc = now() - interval '1 minute',
                            arrival_utc = now() + interval '8 hours'
         WHERE flight_id = $1",
    )
    .bind(flight)
    .execute(&app.db)
    .await
    .expect("the flight departs");
    drop(lock);
    let reserved = reserving.await.expect("the reservation ran");

    assert!(matches!(reserved, Ok(Handled::Answered(_))), "{reserved:?}");
    let refused = published_of(&app, order, DetailType::SeatReservationFailed);
    assert_eq!(refused.len(), 1, "{:?}", app.published());
    assert_eq!(refused[0]["reason"], "FLIGHT_DEPARTED");
    assert_eq!(live_holds_on(&app, flight).await, 0);
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_database_itself_refuses_a_hold_on_a_cancelled_flight_or_a_seat_of_another_flight(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    app.answer(order_created(order, &["12A"])).await;
    let other_flight = small_flight(&app).await;
    let insert =
        "INSERT INTO inventory_locks (order_id, seat_id, flight_id, seat_version, expires_at)
                  SELECT $1, seat_id, $2, version, now() + interval '1 hour'
                  FROM flight_seats WHERE flight_id = $3 AND seat_number = $4";

    let foreign_seat = sqlx::query(insert)
        .bind(order)
        .bind(uuid(FLIGHT))
        .bind(other_flight)
        .bind("1A")
        .execute(&app.db)
        .await;
    let foreign_order = sqlx::query(insert)
        .bind(order)
        .bind(other_flight)
        .bind(other_flight)
        .bind("1B")
        .execute(&app.db)
        .await;
    sqlx::query(
        "UPDATE flights SET state = 'CANCELLED', cancelled_at = now() WHERE flight_id = $1",
    )
    .bind(uuid(FLIGHT))
    .execute(&app.db)
    .await
    .expect("the flight can be cancelled");
    let on_cancelled = sqlx::query(insert)
        .bind(order)
        .bind(uuid(FLIGHT))
        .bind(uuid(FLIGHT))
        .bind("13A")
        .execute(&app.db)
        .await;
    let sold_on_cancelled =
        sqlx::query("UPDATE inventory_locks SET status = 'CONFIRMED' WHERE order_id = $1")
            .bind(order)
            .execute(&app.db)
            .await;

    for (what, result) in [
        ("a seat of another flight", foreign_seat),
        ("an order of another flight", foreign_order),
        ("a hold on a cancelled flight", on_cancelled),
        ("a sale on a cancelled flight", sold_on_cancelled),
    ] {
        assert!(result.is_err(), "{what} was written");
    }
}

// 2. Quarantine never blocks anyone else.

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn cancelled_flights_held_by_quarantined_orders_never_starve_a_later_cancellation(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    // Six cancelled flights, each held open by one quarantined order.
    let mut held = Vec::new();
    for _ in 0..6 {
        let flight = small_flight(&app).await;
        let order = Uuid::new_v4();
        app.answer(order_on(flight, order, &["1A"])).await;
        quarantine(&app, order).await;
        app.handle(flight_cancelled(flight))
            .await
            .expect("the cancellation runs");
        held.push(flight);
    }
    // A later cancellation whose invocation ran out of time before releasing anything.
    let later = small_flight(&app).await;
    let orders: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for (order, seat) in orders.iter().zip(["1A", "1B", "2A"]) {
        app.answer(order_on(later, *order, &[seat])).await;
    }
    sqlx::query(
        "UPDATE flights SET state = 'CANCELLED', cancelled_at = now() WHERE flight_id = $1",
    )
    .bind(later)
    .execute(&app.db)
    .await
    .expect("the flight can be marked cancelled");

    let report = app.handle(scheduled()).await;

    assert!(matches!(report, Ok(Handled::Housekeeping(_))), "{report:?}");
    for order in &orders {
        let released = published_of(&app, *order, DetailType::SeatReleased);
        assert_eq!(released.len(), 1, "order {order} is released");
        assert_eq!(released[0]["reason"], "FLIGHT_CANCELLED");
    }
    assert_eq!(live_holds_on(&app, later).await, 0);
    let listed = aeronode_inventory::inventory::cancellations_held(
        &mut app
            .app
            .database()
            .session(aeronode_inventory::deadline::Deadline::after(
                Duration::from_secs(10),
            ))
            .await
            .expect("a session"),
    )
    .await
    .expect("the held cancellations can be listed");
    let mut listed: Vec<Uuid> = listed.iter().map(|flight| flight.flight_id).collect();
    listed.sort();
    held.sort();
    assert_eq!(listed, held, "each held flight stays open for an operator");
    app.assert_consistent().await;
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_cancellation_releases_every_order_but_its_many_quarantined_ones(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let flight = uuid(FLIGHT);
    // 60 quarantined orders (more than a batch), and the healthy ones after them in
    // order id order as well as before.
    let mut quarantined = Vec::new();
    for row in 1..=10 {
        for letter in ["A", "B", "C", "D", "E", "F"] {
            let order = Uuid::from_u128(0x5000 + quarantined.len() as u128);
            let seat = format!("{row}{letter}");
            app.answer(order_on(flight, order, &[seat.as_str()])).await;
            quarantine(&app, order).await;
            quarantined.push(order);
        }
    }
    let healthy = [Uuid::from_u128(1), Uuid::from_u128(u128::MAX)];
    app.answer(order_on(flight, healthy[0], &["20A"])).await;
    app.answer(order_on(flight, healthy[1], &["20B"])).await;

    app.handle(flight_cancelled(flight))
        .await
        .expect("the cancellation runs");
    app.handle(scheduled()).await.expect("the schedule runs");

    for order in healthy {
        assert_eq!(
            published_of(&app, order, DetailType::SeatReleased).len(),
            1,
            "order {order} is released"
        );
    }
    assert_eq!(
        live_holds_on(&app, flight).await,
        60,
        "the quarantined stay"
    );
    app.assert_consistent().await;
}

// 3. Retention deletes only what is finished.

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn retention_keeps_undelivered_answers_quarantined_orders_live_holds_and_open_cancellations(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let undelivered = small_flight(&app).await;
    let undelivered_order = Uuid::new_v4();
    app.answer(order_on(undelivered, undelivered_order, &["1A"]))
        .await;
    app.answer(crate::helpers::payment_succeeded(undelivered_order))
        .await;
    let quarantined = small_flight(&app).await;
    let quarantined_order = Uuid::new_v4();
    app.answer(order_on(quarantined, quarantined_order, &["1A"]))
        .await;
    let live = small_flight(&app).await;
    app.answer(order_on(live, Uuid::new_v4(), &["1A"])).await;
    let open_cancellation = small_flight(&app).await;
    let finished = small_flight(&app).await;
    app.handle(scheduled()).await.expect("the schedule runs");
    // What the bus was never given: a parked answer, and a pending one.
    sqlx::query(
        "UPDATE outbox SET state = 'PARKED', published_at = NULL, parked_at = now()
         WHERE order_id = $1 AND detail_type = 'SeatBooked'",
    )
    .bind(undelivered_order)
    .execute(&app.db)
    .await
    .expect("an entry can be parked");
    sqlx::query(
        "UPDATE outbox SET state = 'PENDING', published_at = NULL
         WHERE order_id = $1 AND detail_type = 'SeatReserved'",
    )
    .bind(undelivered_order)
    .execute(&app.db)
    .await
    .expect("an entry can be made pending");
    quarantine(&app, quarantined_order).await;
    // A cancellation that cannot close: a quarantined order holds it open.
    let blocker = Uuid::new_v4();
    app.answer(order_on(open_cancellation, blocker, &["2A"]))
        .await;
    quarantine(&app, blocker).await;
    app.handle(flight_cancelled(open_cancellation))
        .await
        .expect("the cancellation runs");
    for flight in [undelivered, quarantined, live, open_cancellation, finished] {
        depart_long_ago(&app, flight).await;
    }

    let report = app.handle(scheduled()).await;

    assert!(matches!(report, Ok(Handled::Housekeeping(_))), "{report:?}");
    let flights_left: Vec<Uuid> = sqlx::query_scalar("SELECT flight_id FROM flights")
        .fetch_all(&app.db)
        .await
        .expect("flights are readable");
    assert!(!flights_left.contains(&finished), "the finished one goes");
    for (what, flight) in [
        ("undelivered answers", undelivered),
        ("a quarantined order", quarantined),
        ("a live hold", live),
        ("an open cancellation", open_cancellation),
    ] {
        assert!(flights_left.contains(&flight), "a flight with {what} stays");
    }
    let unfinished_entries = app
        .count("SELECT count(*) FROM outbox WHERE state IN ('PENDING', 'PARKED')")
        .await;
    assert!(unfinished_entries >= 2, "undelivered entries stay");
    let quarantined_orders = app
        .count("SELECT count(*) FROM reservations WHERE quarantined_at IS NOT NULL")
        .await;
    assert_eq!(quarantined_orders, 2);
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn an_order_refused_for_a_flight_that_does_not_exist_is_deleted_after_retention(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let order = Uuid::new_v4();
    let (answer, detail) = app
        .answer(order_created_with(
            json!({"orderId": order, "flightId": Uuid::new_v4(), "seats": ["1A"]}),
        ))
        .await;
    assert_eq!(answer, DetailType::SeatReservationFailed);
    assert_eq!(detail["reason"], "FLIGHT_NOT_FOUND");
    app.handle(scheduled()).await.expect("the schedule runs");
    let kept_while_young = app
        .count("SELECT count(*) FROM reservations WHERE flight_id IS NULL")
        .await;
    sqlx::query(
        "UPDATE reservations SET created_at = now() - interval '40 days' WHERE order_id = $1",
    )
    .bind(order)
    .execute(&app.db)
    .await
    .expect("the order can be aged");

    app.handle(scheduled()).await.expect("the schedule runs");

    assert_eq!(kept_while_young, 1);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.db)
        .await
        .expect("reservations are readable");
    assert_eq!(left, 0, "deleted once as old as retention");
}

// 4. The seat map shows what a reservation would get.

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_lapsed_hold_of_a_quarantined_order_is_held_on_the_seat_map_and_for_a_reservation(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let flight = uuid(FLIGHT);
    let held = Uuid::new_v4();
    app.answer(order_created(held, &["12A", "12B"])).await;
    lapse_holds_of(&app, held).await;
    quarantine(&app, held).await;
    // And a seat set free behind its hold's back.
    sqlx::query(
        "UPDATE flight_seats SET status = 'AVAILABLE', version = version + 1
         WHERE flight_id = $1 AND seat_number = '12B'",
    )
    .bind(flight)
    .execute(&app.db)
    .await
    .expect("the seat can be changed");

    let shown_a = shown(&app, flight, "12A").await;
    let shown_b = shown(&app, flight, "12B").await;
    let (for_a, detail_a) = app.answer(order_created(Uuid::new_v4(), &["12A"])).await;
    let (for_b, detail_b) = app.answer(order_created(Uuid::new_v4(), &["12B"])).await;

    assert_eq!(shown_a, "LOCKED");
    assert_eq!(shown_b, "LOCKED");
    for (answer, detail) in [(for_a, detail_a), (for_b, detail_b)] {
        assert_eq!(answer, DetailType::SeatReservationFailed);
        assert_eq!(detail["reason"], "SEAT_UNAVAILABLE");
    }
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_lapsed_hold_of_a_healthy_order_is_free_on_the_seat_map_and_for_a_reservation(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let held = Uuid::new_v4();
    app.answer(order_created(held, &["12A"])).await;
    lapse_holds_of(&app, held).await;

    let shown = shown(&app, uuid(FLIGHT), "12A").await;
    let (answer, _) = app.answer(order_created(Uuid::new_v4(), &["12A"])).await;

    assert_eq!(shown, "AVAILABLE");
    assert_eq!(answer, DetailType::SeatReserved);
    let released = published_of(&app, held, DetailType::SeatReleased);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["reason"], "HOLD_EXPIRED");
    app.assert_consistent().await;
}

// 6. The database does not trust the client.

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_transition_never_closes_or_sells_a_hold_of_another_order(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let (ours, theirs) = (Uuid::new_v4(), Uuid::new_v4());
    app.answer(order_created(ours, &["12A"])).await;
    app.answer(order_created(theirs, &["12B"])).await;
    let lock_of = |order: Uuid| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT lock_id FROM inventory_locks WHERE order_id = $1")
                .bind(order)
                .fetch_one(&db)
                .await
                .expect("a hold")
        }
    };
    let (our_hold, their_hold) = (lock_of(ours).await, lock_of(theirs).await);
    let transition = |body: Value| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT inventory_transition($1::jsonb)::text")
                .bind(body)
                .fetch_one(&db)
                .await
                .expect("the call runs")
        }
    };
    let seen = json!([{"lockId": our_hold, "status": "ACTIVE"}]);

    let close = transition(json!({"orderId": ours, "wait": true, "seen": seen,
        "close": {"lockIds": [their_hold], "as": "RELEASED"}, "events": []}))
    .await;
    let book = transition(json!({"orderId": ours, "wait": true, "seen": seen,
        "book": [their_hold], "events": []}))
    .await;

    assert!(close.contains("changed"), "{close}");
    assert!(book.contains("changed"), "{book}");
    assert_eq!(
        app.holds(theirs).await,
        [("12B".to_owned(), "ACTIVE".to_owned())]
    );
    assert_eq!(app.seat("12B").await.0, "LOCKED");
    app.assert_consistent().await;
}

// Each rule once.

#[sqlx::test(migrator = "aeronode_inventory::db::MIGRATOR")]
async fn each_time_rule_is_written_once_in_the_database(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let writers = |pattern: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT proname::text FROM pg_proc
                 WHERE pronamespace = 'public'::regnamespace AND prosrc ~ $1
                 UNION ALL
                 SELECT viewname::text FROM pg_views
                 WHERE schemaname = 'public' AND definition ~ $1
                 ORDER BY 1",
            )
            .bind(pattern)
            .fetch_all(&db)
            .await
            .expect("the catalog is readable")
        }
    };

    let lapsed = writers(r"expires_at\s*(<=|<|>|>=)\s*now\(\)").await;
    let departed = writers(r"departure_utc\s*(<=|<|>|>=)\s*now\(\)").await;

    assert_eq!(lapsed, ["inventory_hold_lapsed"], "a hold has lapsed");
    assert_eq!(
        departed,
        ["inventory_flight_status"],
        "a flight accepts holds"
    );
}

// One order id, one outcome, even when two deliveries decide at once.

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn two_deliveries_of_one_order_with_other_seats_at_once_get_one_outcome_never_a_refusal(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let first = TestApp::spawn(options.clone()).await;
    let second = TestApp::spawn(options).await;
    let mut outcomes = Vec::new();
    for row in 1..=30 {
        let order = Uuid::new_v4();
        let (a, b) = tokio::join!(
            first.handle(order_created(order, &[&format!("{row}A")])),
            second.handle(order_created(order, &[&format!("{row}B")])),
        );
        outcomes.push((order, a, b));
    }

    for (order, a, b) in &outcomes {
        let kinds: Vec<String> = [a, b]
            .iter()
            .filter_map(|outcome| {
                outcome
                    .as_ref()
                    .err()
                    .map(|error| error.kind().into_owned())
            })
            .collect();
        assert!(
            kinds.iter().all(|kind| kind == "ConflictingOrder"),
            "order {order}: {kinds:?}"
        );
        let answered = [a, b].iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(
            answered, 1,
            "order {order}: one delivery decides, the other conflicts"
        );
    }
    first.assert_consistent().await;
}
