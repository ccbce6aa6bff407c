//! Seat availability over HTTP: what a booking page sees after holds, sales, a lapsed hold
//! and a cancellation; the 304/400/404/405 answers; and the same through the real binary.

use aeronode_inventory::handler::Handled;
use aeronode_testkit::put_events::PutEvents;
use aeronode_testkit::runtime_api::Invocation;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::binary::Binary;
use crate::helpers::{FLIGHT, TestApp, order_created, payment_succeeded, sample};
use crate::schemas::schema;

/// `GET path` (or another method) as a function URL delivers it, from the sample request.
pub fn request(method: &str, path: &str, if_none_match: Option<&str>) -> Value {
    let mut event = sample("get-seats-request.json");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    if let Some(tag) = if_none_match {
        event["headers"]["if-none-match"] = json!(tag);
    }
    event
}

pub fn seats_of(flight: &str) -> String {
    format!("/flights/{flight}/seats")
}

/// Status, headers and body (parsed) of an HTTP answer.
struct Answer {
    status: u64,
    headers: Value,
    body: Value,
}

async fn get(app: &TestApp, event: Value) -> Answer {
    match app.handle(event).await {
        Ok(Handled::Http(response)) => answer(serde_json::to_value(response).unwrap_or_default()),
        other => panic!("expected an HTTP answer, got {other:?}"),
    }
}

fn answer(response: Value) -> Answer {
    Answer {
        status: response["statusCode"].as_u64().unwrap_or(0),
        headers: response["headers"].clone(),
        body: response["body"]
            .as_str()
            .map(|body| serde_json::from_str(body).expect("a JSON body"))
            .unwrap_or(Value::Null),
    }
}

pub fn status_of(body: &Value, seat: &str) -> String {
    body["seats"]
        .as_array()
        .and_then(|seats| seats.iter().find(|s| s["seatNumber"] == seat))
        .and_then(|s| s["status"].as_str())
        .unwrap_or("missing")
        .to_owned()
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_seat_map_shows_holds_and_sales_and_a_lapsed_hold_as_free(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options.clone()).await;
    let short = TestApp::spawn_with_ttl(options, 1).await;
    app.answer(order_created(Uuid::new_v4(), &["12A"])).await;
    let sold = Uuid::new_v4();
    app.answer(order_created(sold, &["12B"])).await;
    app.answer(payment_succeeded(sold)).await;
    short.answer(order_created(Uuid::new_v4(), &["12C"])).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;

    let map = get(&app, request("GET", &seats_of(FLIGHT), None)).await;

    assert_eq!(map.status, 200);
    assert_eq!(map.headers["content-type"], "application/json");
    assert_eq!(map.headers["cache-control"], "max-age=5");
    assert_eq!(status_of(&map.body, "12A"), "LOCKED");
    assert_eq!(status_of(&map.body, "12B"), "BOOKED");
    assert_eq!(
        status_of(&map.body, "12C"),
        "AVAILABLE",
        "a lapsed hold is free"
    );
    assert_eq!(map.body["status"], "SCHEDULED");
    assert_eq!(map.body["flightCode"], "AI101");
    assert_eq!(map.body["seats"].as_array().map(Vec::len), Some(180));
    assert_eq!(map.body["seats"][0]["seatNumber"], "1A");
    assert_eq!(map.body["seats"][6]["seatNumber"], "2A", "seat-map order");
    assert_eq!(
        map.body["cabins"],
        json!([{"cabin": "ECONOMY", "available": 178, "locked": 1, "booked": 1, "blocked": 0}])
    );
    let text = map.body.to_string();
    assert!(!text.contains("orderId") && !text.contains(&sold.to_string()));
    let errors: Vec<String> = schema("flight-seats")
        .iter_errors(&map.body)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn after_a_cancellation_the_flight_shows_cancelled_with_every_seat_free(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let flight = "7a1e0c3d-5b2f-4e8a-9d6c-3f4b5a6c7d8e";
    app.handle(sample("flight-scheduled.json"))
        .await
        .expect("the flight opens");
    let held = order_on(flight, &["1A"]);
    app.answer(held.1).await;
    let sold = order_on(flight, &["1C"]);
    app.answer(sold.1).await;
    app.answer(payment_succeeded(sold.0)).await;
    let before = get(&app, request("GET", &seats_of(flight), None)).await;

    app.handle(sample("flight-cancelled.json"))
        .await
        .expect("the flight is cancelled");
    let after = get(&app, request("GET", &seats_of(flight), None)).await;

    assert_eq!(
        (status_of(&before.body, "1A"), status_of(&before.body, "1C")),
        ("LOCKED".into(), "BOOKED".into())
    );
    assert_eq!(after.body["status"], "CANCELLED");
    assert_eq!(
        after.body["cabins"],
        json!([
            {"cabin": "BUSINESS", "available": 12, "locked": 0, "booked": 0, "blocked": 0},
            {"cabin": "ECONOMY", "available": 126, "locked": 0, "booked": 0, "blocked": 0}
        ])
    );
    assert_ne!(after.headers["etag"], before.headers["etag"]);
}

fn order_on(flight: &str, seats: &[&str]) -> (Uuid, Value) {
    let order = Uuid::new_v4();
    (
        order,
        crate::helpers::order_created_with(
            json!({"orderId": order, "flightId": flight, "seats": seats}),
        ),
    )
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn a_matching_etag_gets_304_until_a_seat_changes(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let first = get(&app, request("GET", &seats_of(FLIGHT), None)).await;
    let tag = first.headers["etag"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let unchanged = get(&app, request("GET", &seats_of(FLIGHT), Some(&tag))).await;
    app.answer(order_created(Uuid::new_v4(), &["5D"])).await;
    let changed = get(&app, request("GET", &seats_of(FLIGHT), Some(&tag))).await;
    let head = get(&app, request("HEAD", &seats_of(FLIGHT), None)).await;

    assert!(tag.len() > 2, "{tag}");
    assert_eq!((unchanged.status, &unchanged.body), (304, &Value::Null));
    assert_eq!(unchanged.headers["etag"], tag.as_str());
    assert_eq!(changed.status, 200);
    assert_ne!(changed.headers["etag"], tag.as_str());
    assert_eq!(status_of(&changed.body, "5D"), "LOCKED");
    assert_eq!((head.status, head.body), (200, Value::Null));
    assert_eq!(head.headers["etag"], changed.headers["etag"]);
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn unknown_flights_malformed_ids_and_other_methods_get_json_errors(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;

    for (event, status) in [
        (
            request("GET", &seats_of(&Uuid::new_v4().to_string()), None),
            404,
        ),
        (request("GET", "/flights/AI101/seats", None), 400),
        (request("GET", "/flights", None), 404),
        (request("POST", &seats_of(FLIGHT), None), 405),
        (request("DELETE", &seats_of(FLIGHT), None), 405),
    ] {
        let answer = get(&app, event).await;

        assert_eq!(answer.status, status);
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            answer.body
        );
        if status == 405 {
            assert_eq!(answer.headers["allow"], "GET, HEAD");
        }
    }
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn the_real_binary_answers_a_seat_map_request_and_opens_a_scheduled_flight(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = TestApp::spawn(options.clone()).await;
    let bus = PutEvents::start().await.expect("the PutEvents stub starts");
    let mut binary = Binary::start(&options, &bus.endpoint(), &[]).await;

    let opened = binary.invoke(sample("flight-scheduled.json")).await;
    let reserved = binary
        .invoke(crate::helpers::order_created_with(json!({
            "orderId": Uuid::new_v4(),
            "flightId": "7a1e0c3d-5b2f-4e8a-9d6c-3f4b5a6c7d8e",
            "seats": ["3F"]
        })))
        .await;
    let seats = binary
        .invoke(request(
            "GET",
            &seats_of("7a1e0c3d-5b2f-4e8a-9d6c-3f4b5a6c7d8e"),
            None,
        ))
        .await;

    assert!(matches!(opened, Invocation::Response(_)), "{opened:?}");
    assert!(matches!(reserved, Invocation::Response(_)), "{reserved:?}");
    assert_eq!(bus.published("FlightInventoryOpened"), 1);
    assert_eq!(bus.published("SeatReserved"), 1);
    let Invocation::Response(response) = seats else {
        panic!("expected an HTTP answer, got {seats:?}");
    };
    let map = answer(response);
    assert_eq!(map.status, 200);
    assert_eq!(status_of(&map.body, "3F"), "LOCKED");
    assert_eq!(map.body["cabins"][0]["cabin"], "BUSINESS");
    assert_eq!(map.body["seats"].as_array().map(Vec::len), Some(138));
    db.assert_consistent().await;
}
