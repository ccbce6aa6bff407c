//! The JSON Schemas under events/schemas hold for the samples and for what the code emits.

use aeronode_inventory::domain::DetailType;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{DEPARTED_FLIGHT, FLIGHT, TestApp, order_created, order_created_with, sample};

/// The schema `events/schemas/{name}.schema.json`.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = format!(
        "{}/events/schemas/{name}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{path} is not a valid schema: {e}"))
}

pub fn schema_for(detail_type: DetailType) -> jsonschema::Validator {
    schema(match detail_type {
        DetailType::SeatReserved => "seat-reserved",
        DetailType::SeatReservationFailed => "seat-reservation-failed",
        DetailType::SeatBooked => "seat-booked",
        DetailType::SeatBookingFailed => "seat-booking-failed",
        DetailType::SeatReleased => "seat-released",
        DetailType::FlightInventoryOpened => "flight-inventory-opened",
        DetailType::FlightScheduleRejected => "flight-schedule-rejected",
        DetailType::FlightInventoryClosed => "flight-inventory-closed",
        DetailType::SeatsBlocked => "seats-blocked",
        DetailType::SeatBlockFailed => "seat-block-failed",
        DetailType::SeatsUnblocked => "seats-unblocked",
        DetailType::SeatUnblockFailed => "seat-unblock-failed",
        DetailType::SeatsChanged => "seats-changed",
        DetailType::SeatChangeFailed => "seat-change-failed",
        DetailType::SeatsReassigned => "seats-reassigned",
        DetailType::FlightLayoutChanged => "flight-layout-changed",
        DetailType::AircraftChangeRejected => "aircraft-change-rejected",
    })
}

/// Every event the service published matches the schema of its detail-type.
pub fn assert_all_match_their_schemas(events: &[aeronode_inventory::domain::OutgoingEvent]) {
    for event in events {
        assert_valid(
            &schema_for(event.detail_type),
            &crate::helpers::detail_of(event),
        );
    }
}

fn assert_valid(validator: &jsonschema::Validator, detail: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(detail)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{detail} breaks its schema: {errors:?}");
}

#[test]
fn every_sample_detail_matches_its_schema() {
    for (sample_name, schema_name) in [
        ("order-created.json", "order-created"),
        ("order-created-any-seat.json", "order-created"),
        ("payment-succeeded.json", "payment-succeeded"),
        ("payment-failed.json", "payment-failed"),
        ("order-cancelled.json", "order-cancelled"),
        ("seat-reserved.json", "seat-reserved"),
        ("seat-reservation-failed.json", "seat-reservation-failed"),
        ("seat-booked.json", "seat-booked"),
        ("seat-booking-failed.json", "seat-booking-failed"),
        ("seat-released.json", "seat-released"),
        ("flight-scheduled.json", "flight-scheduled"),
        ("flight-cancelled.json", "flight-cancelled"),
        ("flight-inventory-opened.json", "flight-inventory-opened"),
        ("flight-schedule-rejected.json", "flight-schedule-rejected"),
        ("flight-inventory-closed.json", "flight-inventory-closed"),
        ("seat-block-requested.json", "seat-block-requested"),
        ("seat-unblock-requested.json", "seat-unblock-requested"),
        ("seats-blocked.json", "seats-blocked"),
        ("seat-block-failed.json", "seat-block-failed"),
        ("seats-unblocked.json", "seats-unblocked"),
        ("seat-unblock-failed.json", "seat-unblock-failed"),
        ("seat-change-requested.json", "seat-change-requested"),
        ("seats-changed.json", "seats-changed"),
        ("seat-change-failed.json", "seat-change-failed"),
        ("aircraft-changed.json", "aircraft-changed"),
        ("seats-reassigned.json", "seats-reassigned"),
        ("flight-layout-changed.json", "flight-layout-changed"),
        ("aircraft-change-rejected.json", "aircraft-change-rejected"),
    ] {
        assert_valid(&schema(schema_name), &sample(sample_name)["detail"]);
    }
}

#[test]
fn the_schemas_reject_what_the_service_would_refuse() {
    let order_created = schema("order-created");
    for detail in [
        json!({"orderId": "nope", "flightId": FLIGHT, "seats": ["1A"]}),
        json!({"orderId": Uuid::new_v4(), "flightId": FLIGHT, "seats": []}),
        json!({"orderId": Uuid::new_v4(), "flightId": FLIGHT, "seats": ["12Z"]}),
        json!({"orderId": Uuid::new_v4(), "flightId": FLIGHT, "seats": ["1A", "1A"]}),
    ] {
        assert!(
            !order_created.is_valid(&detail),
            "{detail} should be refused"
        );
    }
}

#[sqlx::test(
    migrator = "aeronode_inventory::db::MIGRATOR",
    fixtures(path = "../fixtures", scripts("flights"))
)]
async fn every_kind_of_answer_the_code_emits_matches_its_schema(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let requests = [
        order_created(Uuid::new_v4(), &["1A", "1B"]),
        order_created(Uuid::new_v4(), &["1B"]),
        order_created(Uuid::new_v4(), &["31B"]),
        order_created_with(
            json!({"orderId": Uuid::new_v4(), "flightId": Uuid::new_v4(), "seats": ["1A"]}),
        ),
        order_created_with(
            json!({"orderId": Uuid::new_v4(), "flightId": DEPARTED_FLIGHT, "seats": ["1A"]}),
        ),
        order_created_with(
            json!({"orderId": Uuid::new_v4(), "flightId": "bad", "seats": ["1A", 3]}),
        ),
        order_created_with(
            json!({"orderId": Uuid::new_v4(), "flightId": FLIGHT, "seats": ["Q".repeat(40)]}),
        ),
    ];

    for request in requests {
        let (detail_type, detail) = app.answer(request).await;
        assert_valid(&schema_for(detail_type), &detail);
    }
    let reasons: Vec<Value> = app
        .published()
        .iter()
        .map(|e| crate::helpers::detail_of(e)["reason"].clone())
        .collect();
    assert_eq!(
        reasons,
        vec![
            Value::Null,
            json!("SEAT_UNAVAILABLE"),
            json!("SEAT_NOT_FOUND"),
            json!("FLIGHT_NOT_FOUND"),
            json!("FLIGHT_DEPARTED"),
            json!("INVALID_REQUEST"),
            json!("INVALID_REQUEST"),
        ]
    );
    app.assert_consistent().await;
}
