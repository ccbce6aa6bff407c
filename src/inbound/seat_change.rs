//! `SeatChangeRequested` (source `skyledger.orders`): `{ "changeId", "orderId", "flightId",
//! "moves": [{ "from": "12B", "to": "14C" }, ...] }` moves an order's held or sold seats,
//! answered once by its `changeId`.

use serde_json::Value;

use super::UnreadableEvent;
use super::order_created::invalid_fingerprint;
use crate::domain::text;
use crate::domain::{FlightId, OrderId, RequestId, SeatMoves};

const DETAIL_TYPE: &str = "SeatChangeRequested";

/// Move the order's seats, every move or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeSeats {
    pub change_id: RequestId,
    pub order_id: OrderId,
    pub flight_id: FlightId,
    pub moves: SeatMoves,
    pub causation_id: String,
}

impl ChangeSeats {
    /// What was asked, in a canonical form: a reused change id must ask for exactly this.
    pub fn fingerprint(&self) -> String {
        format!(
            "change|{}|{}|{}",
            self.order_id,
            self.flight_id,
            self.moves.canonical()
        )
    }
}

/// A change that names its id but cannot be served as sent: answered `SeatChangeFailed` /
/// `INVALID_REQUEST`, nothing moved, and that answer is the change's for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidChange {
    pub change_id: RequestId,
    pub order_id: Option<OrderId>,
    pub flight_id: Option<FlightId>,
    /// What could be read of the moves, to echo back.
    pub moves: Vec<(String, String)>,
    pub problem: String,
    pub causation_id: String,
    pub fingerprint: String,
}

/// Bad input is echoed back only within these bounds, and only as sent.
const ECHO_MAX_MOVES: usize = 16;
const ECHO_MAX_SEAT_LEN: usize = 16;

pub(super) fn parse(
    detail: &Value,
    causation_id: String,
) -> Result<Result<ChangeSeats, InvalidChange>, UnreadableEvent> {
    let change_id = detail
        .get("changeId")
        .and_then(Value::as_str)
        .and_then(RequestId::parse)
        .ok_or(UnreadableEvent::InvalidDetail {
            detail_type: DETAIL_TYPE,
            problem: "changeId must be a UUID",
        })?;
    let order_id = detail
        .get("orderId")
        .and_then(Value::as_str)
        .and_then(OrderId::parse);
    let flight_id = detail
        .get("flightId")
        .and_then(Value::as_str)
        .and_then(FlightId::parse);
    let raw_moves = detail.get("moves").and_then(Value::as_array);
    let invalid = |problem: String| {
        Ok(Err(InvalidChange {
            change_id,
            order_id,
            flight_id,
            moves: echo(raw_moves),
            problem,
            causation_id: causation_id.clone(),
            fingerprint: format!("{DETAIL_TYPE}|{}", invalid_fingerprint(detail)),
        }))
    };
    let Some(order_id) = order_id else {
        return invalid("orderId must be a UUID".into());
    };
    let Some(flight_id) = flight_id else {
        return invalid("flightId must be a UUID".into());
    };
    let Some(raw_moves) = raw_moves else {
        return invalid("moves must be a list of {\"from\", \"to\"} pairs".into());
    };
    let pairs = raw_moves.iter().map(|pair| {
        let seat = |key: &str| pair.get(key).and_then(Value::as_str);
        Some((seat("from")?, seat("to")?))
    });
    match SeatMoves::parse(pairs) {
        Ok(moves) => Ok(Ok(ChangeSeats {
            change_id,
            order_id,
            flight_id,
            moves,
            causation_id,
        })),
        Err(problem) => invalid(problem.to_string()),
    }
}

/// The moves that can be echoed exactly: both seats short, safe text.
fn echo(raw_moves: Option<&Vec<Value>>) -> Vec<(String, String)> {
    raw_moves
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            let seat = |key: &str| {
                pair.get(key)
                    .and_then(Value::as_str)
                    .and_then(|seat| text::identifier(seat, ECHO_MAX_SEAT_LEN))
            };
            Some((seat("from")?.to_owned(), seat("to")?.to_owned()))
        })
        .take(ECHO_MAX_MOVES)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CHANGE: &str = "e7f8a9b0-c1d2-4e3f-8a4b-5c6d7e8f9a0b";
    const ORDER: &str = "b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
    const FLIGHT: &str = "3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10";

    fn detail(moves: Value) -> Value {
        json!({"changeId": CHANGE, "orderId": ORDER, "flightId": FLIGHT, "moves": moves})
    }

    #[test]
    fn a_change_names_its_moves_and_its_fingerprint_ignores_their_order() {
        let one = parse(
            &detail(json!([{"from": "12B", "to": "14C"}, {"from": "12A", "to": "14D"}])),
            "e".into(),
        );
        let other = parse(
            &detail(json!([{"from": "12A", "to": "14D"}, {"from": "12B", "to": "14C"}])),
            "e".into(),
        );
        let (Ok(Ok(one)), Ok(Ok(other))) = (one, other) else {
            panic!("both parse");
        };
        assert_eq!(one.moves.moves().len(), 2);
        assert_eq!(one.fingerprint(), other.fingerprint());
        assert_eq!(
            one.fingerprint(),
            format!("change|{ORDER}|{FLIGHT}|12A>14D,12B>14C")
        );
    }

    #[test]
    fn repeated_seats_a_move_to_itself_and_bad_moves_are_invalid_requests() {
        let ten: Vec<Value> = (10..20)
            .map(|row| json!({"from": format!("{row}A"), "to": format!("{row}B")}))
            .collect();
        for (moves, says) in [
            (json!([]), "no moves"),
            (json!(ten), "at most 9"),
            (json!([{"from": "12A", "to": "12A"}]), "to itself"),
            (
                json!([{"from": "12A", "to": "14C"}, {"from": "12A", "to": "14D"}]),
                "twice",
            ),
            (
                json!([{"from": "12A", "to": "14C"}, {"from": "14C", "to": "15A"}]),
                "twice",
            ),
            (json!([{"from": "12A"}]), "every move"),
            (json!([{"from": "12A", "to": "99Z"}]), "every move"),
            (json!("12A>14C"), "list"),
        ] {
            match parse(&detail(moves), "e".into()) {
                Ok(Err(invalid)) => {
                    assert!(
                        invalid.problem.contains(says),
                        "{:?} vs {says}",
                        invalid.problem
                    )
                }
                other => panic!("expected an invalid change, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_change_without_a_change_id_is_unreadable_and_without_an_order_id_invalid() {
        let mut no_change = detail(json!([{"from": "12A", "to": "14C"}]));
        no_change["changeId"] = json!(null);
        let mut no_order = detail(json!([{"from": "12A", "to": "14C"}]));
        no_order["orderId"] = json!("nope");

        assert!(matches!(
            parse(&no_change, "e".into()),
            Err(UnreadableEvent::InvalidDetail { .. })
        ));
        assert!(matches!(
            parse(&no_order, "e".into()),
            Ok(Err(InvalidChange { order_id: None, .. }))
        ));
    }
}
