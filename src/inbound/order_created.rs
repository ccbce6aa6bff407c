//! The `OrderCreated` detail: `{ "orderId", "flightId", "seats": ["12A", ...] }`, or
//! `{ "orderId", "flightId", "seatCount": N, "cabin"? }` for any free seats.

use serde_json::Value;

use super::UnreadableEvent;
use crate::domain::text;
use crate::domain::{Cabin, FlightId, MAX_SEATS_PER_ORDER, OrderId, SeatRequest};

/// Which seats an order asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeatSelection {
    /// These seats, all or none.
    Explicit(SeatRequest),
    /// Any `count` free seats (1-9), of one cabin if named, side by side where possible.
    Any { count: u8, cabin: Option<Cabin> },
}

impl SeatSelection {
    pub fn len(&self) -> usize {
        match self {
            Self::Explicit(seats) => seats.len(),
            Self::Any { count, .. } => usize::from(*count),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The seat numbers named in the request (none for an any-seat order).
    pub fn named(&self) -> Vec<String> {
        match self {
            Self::Explicit(seats) => seats.seats().iter().map(ToString::to_string).collect(),
            Self::Any { .. } => Vec::new(),
        }
    }
}

/// A valid request to hold seats for an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReserveSeats {
    pub order_id: OrderId,
    pub flight_id: FlightId,
    pub seats: SeatSelection,
    /// The id of the EventBridge event that asked.
    pub causation_id: String,
}

impl ReserveSeats {
    /// What was asked, in a canonical form: a reused order id must ask for exactly this.
    pub fn fingerprint(&self) -> String {
        match &self.seats {
            SeatSelection::Explicit(seats) => format!("{}|{}", self.flight_id, seats.canonical()),
            SeatSelection::Any { count, cabin } => format!(
                "{}|any {count} {}",
                self.flight_id,
                cabin.map_or("ANY", Cabin::as_str)
            ),
        }
    }
}

/// A request that names its order but cannot be served as sent: it is answered with
/// `SeatReservationFailed` / `INVALID_REQUEST`, holds nothing, and that answer is the
/// order's outcome for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOrder {
    pub order_id: OrderId,
    pub flight_id: Option<FlightId>,
    /// What could be read of the requested seats, to echo back.
    pub seats: Vec<String>,
    pub problem: String,
    pub causation_id: String,
    /// What was sent, in a canonical form: the same detail again gets the same answer,
    /// another one under the same order id is a conflict.
    pub fingerprint: String,
}

/// Names the fingerprints of invalid requests (a v5 UUID of the detail's canonical JSON).
const INVALID_FINGERPRINT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x9c1d_4e2f_6a3b_4c5d_8e7f_0a1b_2c3d_4e5f);

/// The fingerprint of an invalid detail: keys sorted at every level, so the same content
/// in another key order is the same request.
pub(super) fn invalid_fingerprint(detail: &Value) -> String {
    fn canonical(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    canonical(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(detail, &mut text);
    format!(
        "invalid {}",
        uuid::Uuid::new_v5(&INVALID_FINGERPRINT_NAMESPACE, text.as_bytes())
    )
}

/// Bad input is echoed back only within these bounds, and only as sent (see
/// [`text::identifier`]): a seat that cannot be echoed exactly is left out.
const ECHO_MAX_SEATS: usize = 32;
const ECHO_MAX_SEAT_LEN: usize = 16;

pub(super) fn parse(
    detail: &Value,
    causation_id: String,
) -> Result<Result<ReserveSeats, InvalidOrder>, UnreadableEvent> {
    let order_id = detail
        .get("orderId")
        .and_then(Value::as_str)
        .and_then(OrderId::parse)
        .ok_or(UnreadableEvent::NoOrderId {
            detail_type: "OrderCreated",
        })?;
    let flight_id = detail
        .get("flightId")
        .and_then(Value::as_str)
        .and_then(FlightId::parse);
    let raw_seats = detail.get("seats").and_then(Value::as_array);

    let invalid = |problem: String| InvalidOrder {
        order_id,
        flight_id,
        seats: echo(raw_seats),
        problem,
        causation_id: causation_id.clone(),
        fingerprint: invalid_fingerprint(detail),
    };

    let Some(flight_id) = flight_id else {
        return Ok(Err(invalid("flightId must be a UUID".into())));
    };
    let seat_count = detail.get("seatCount");
    let cabin = detail.get("cabin");
    if seat_count.is_some() || cabin.is_some() {
        if raw_seats.is_some() || detail.get("seats").is_some() {
            return Ok(Err(invalid(
                "ask for either seats or seatCount, not both".into(),
            )));
        }
        let count = seat_count
            .and_then(Value::as_u64)
            .filter(|count| (1..=MAX_SEATS_PER_ORDER as u64).contains(count));
        let Some(count) = count.and_then(|count| u8::try_from(count).ok()) else {
            return Ok(Err(invalid(format!(
                "seatCount must be a whole number from 1 to {MAX_SEATS_PER_ORDER}"
            ))));
        };
        let cabin = match cabin {
            None => None,
            Some(raw) => match raw.as_str().and_then(Cabin::parse) {
                Some(cabin) => Some(cabin),
                None => {
                    return Ok(Err(invalid(
                        "cabin must be FIRST, BUSINESS, PREMIUM_ECONOMY or ECONOMY".into(),
                    )));
                }
            },
        };
        return Ok(Ok(ReserveSeats {
            order_id,
            flight_id,
            seats: SeatSelection::Any { count, cabin },
            causation_id,
        }));
    }
    let Some(raw_seats) = raw_seats else {
        return Ok(Err(invalid("seats must be a list of seat numbers".into())));
    };
    let Some(seat_strings) = raw_seats
        .iter()
        .map(Value::as_str)
        .collect::<Option<Vec<&str>>>()
    else {
        return Ok(Err(invalid(
            "every seat must be a string such as \"12A\"".into(),
        )));
    };
    let seats = match SeatRequest::parse(seat_strings.into_iter()) {
        Ok(seats) => seats,
        Err(problem) => return Ok(Err(invalid(problem.to_string()))),
    };
    Ok(Ok(ReserveSeats {
        order_id,
        flight_id,
        seats: SeatSelection::Explicit(seats),
        causation_id,
    }))
}

pub(super) fn echo(raw_seats: Option<&Vec<Value>>) -> Vec<String> {
    raw_seats
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|seat| text::identifier(seat, ECHO_MAX_SEAT_LEN))
        .take(ECHO_MAX_SEATS)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ORDER: &str = "b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
    const FLIGHT: &str = "3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10";

    fn parsed(detail: Value) -> Result<Result<ReserveSeats, InvalidOrder>, UnreadableEvent> {
        parse(&detail, "event-1".into())
    }

    fn invalid(detail: Value) -> InvalidOrder {
        match parsed(detail) {
            Ok(Err(invalid)) => invalid,
            other => panic!("expected an invalid order, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_detail_becomes_a_reservation_request() {
        let request =
            parsed(json!({"orderId": ORDER, "flightId": FLIGHT, "seats": ["12B", "12A"]}));
        let Ok(Ok(request)) = request else {
            panic!("expected a request, got {request:?}");
        };
        assert_eq!(request.order_id.to_string(), ORDER);
        assert_eq!(request.fingerprint(), format!("{FLIGHT}|12A,12B"));
        assert_eq!(request.causation_id, "event-1");
    }

    #[test]
    fn an_any_seat_order_asks_for_a_count_and_maybe_a_cabin() {
        let request = parsed(
            json!({"orderId": ORDER, "flightId": FLIGHT, "seatCount": 2, "cabin": "BUSINESS"}),
        );
        let Ok(Ok(request)) = request else {
            panic!("expected a request, got {request:?}");
        };
        assert_eq!(
            request.seats,
            SeatSelection::Any {
                count: 2,
                cabin: Some(Cabin::Business)
            }
        );
        assert_eq!(request.fingerprint(), format!("{FLIGHT}|any 2 BUSINESS"));
    }

    #[test]
    fn bad_any_seat_orders_are_invalid_requests() {
        for (detail, says) in [
            (json!({"seatCount": 0}), "seatCount"),
            (json!({"seatCount": 10}), "seatCount"),
            (json!({"seatCount": 1.5}), "seatCount"),
            (json!({"seatCount": "2"}), "seatCount"),
            (json!({"seatCount": 2, "cabin": "LOUNGE"}), "cabin"),
            (json!({"seatCount": 2, "seats": ["1A", "1B"]}), "not both"),
            (json!({"cabin": "FIRST"}), "seatCount"),
        ] {
            let mut detail = detail;
            detail["orderId"] = json!(ORDER);
            detail["flightId"] = json!(FLIGHT);
            let answer = invalid(detail);
            assert!(
                answer.problem.contains(says),
                "{} should say {says}",
                answer.problem
            );
        }
    }

    #[test]
    fn without_a_readable_order_id_the_event_is_unreadable() {
        for detail in [
            json!({"flightId": FLIGHT, "seats": ["1A"]}),
            json!({"orderId": 42, "flightId": FLIGHT, "seats": ["1A"]}),
            json!({"orderId": "x".repeat(100_000), "flightId": FLIGHT, "seats": ["1A"]}),
            json!("{\"orderId\": \"b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d\"}"),
            json!(null),
        ] {
            assert!(matches!(
                parsed(detail),
                Err(UnreadableEvent::NoOrderId { .. })
            ));
        }
    }

    #[test]
    fn a_bad_flight_id_is_an_invalid_request_with_no_flight_echoed() {
        let answer = invalid(json!({"orderId": ORDER, "flightId": "AI101", "seats": ["1A"]}));
        assert_eq!(answer.flight_id, None);
        assert_eq!(answer.seats, vec!["1A".to_string()]);
        assert!(answer.problem.contains("flightId"));
    }

    #[test]
    fn bad_seat_lists_are_invalid_requests() {
        let ten: Vec<String> = (1..=10).map(|row| format!("{row}A")).collect();
        for (seats, says) in [
            (json!([]), "no seats"),
            (json!(ten), "at most 9"),
            (json!(["1A", "1A"]), "twice"),
            (json!(["1A", 7]), "string"),
            (json!("1A"), "list"),
            (json!(["Z9"]), "not a seat number"),
        ] {
            let answer = invalid(json!({"orderId": ORDER, "flightId": FLIGHT, "seats": seats}));
            assert!(
                answer.problem.contains(says),
                "{} should say {says}",
                answer.problem
            );
        }
    }

    #[test]
    fn the_same_invalid_detail_in_any_key_order_has_one_fingerprint() {
        let one = invalid(json!({"orderId": ORDER, "flightId": "AI101", "seats": ["1A", 7]}));
        let reordered = invalid(json!({"seats": ["1A", 7], "flightId": "AI101", "orderId": ORDER}));
        let other = invalid(json!({"orderId": ORDER, "flightId": "AI102", "seats": ["1A", 7]}));

        assert_eq!(one.fingerprint, reordered.fingerprint);
        assert_ne!(one.fingerprint, other.fingerprint);
        assert!(one.fingerprint.starts_with("invalid "));
    }

    #[test]
    fn absurd_seat_strings_are_not_echoed_back() {
        let answer = invalid(json!({
            "orderId": ORDER, "flightId": FLIGHT, "seats": ["1A", "B".repeat(1_000_000)]
        }));
        assert_eq!(answer.seats, vec!["1A".to_string()]);
        assert!(answer.problem.len() < 200);
    }

    #[test]
    fn seats_with_unstorable_characters_are_refused_and_not_echoed_back() {
        for seat in ["12A\u{0}", "\u{0}", "12\u{202e}A", "12A\r\n", "12A\u{7}"] {
            let answer =
                invalid(json!({"orderId": ORDER, "flightId": FLIGHT, "seats": ["1A", seat]}));

            assert_eq!(answer.seats, vec!["1A".to_string()], "{seat:?}");
            assert!(
                !answer.problem.chars().any(text::is_unsafe),
                "{:?} quotes {seat:?} as sent",
                answer.problem
            );
        }
    }
}
