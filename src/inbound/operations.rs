//! Requests of operations (source `skyledger.operations`): `SeatBlockRequested`
//! (`{ "requestId", "flightId", "seats": [...], "reason", "note"? }`) takes seats out of
//! sale, `SeatUnblockRequested` (`{ "requestId", "flightId", "seats": [...] }`) gives them
//! back. Each is answered once by its `requestId`.

use serde_json::Value;

use super::UnreadableEvent;
use super::order_created::{echo, invalid_fingerprint};
use crate::domain::text::FreeText;
use crate::domain::{BlockReason, FlightId, RequestId, SeatRequest};

/// The most seats one request of operations names.
pub const MAX_SEATS_PER_BLOCK: usize = 50;
/// The most characters of a block's note.
pub const MAX_NOTE_CHARS: usize = 200;

/// Take these seats out of sale, all or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSeats {
    pub request_id: RequestId,
    pub flight_id: FlightId,
    pub seats: SeatRequest,
    pub reason: BlockReason,
    /// Cleaned, never refused for a character: it is only kept and echoed.
    pub note: Option<FreeText>,
    pub causation_id: String,
}

impl BlockSeats {
    /// What was asked, in a canonical form: a reused request id must ask for exactly this.
    pub fn fingerprint(&self) -> String {
        format!(
            "block|{}|{}|{}|{}",
            self.flight_id,
            self.seats.canonical(),
            self.reason.as_str(),
            self.note.as_ref().map_or("", FreeText::as_str)
        )
    }
}

/// Put these seats back on sale (those of them that are blocked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnblockSeats {
    pub request_id: RequestId,
    pub flight_id: FlightId,
    pub seats: SeatRequest,
    pub causation_id: String,
}

impl UnblockSeats {
    pub fn fingerprint(&self) -> String {
        format!("unblock|{}|{}", self.flight_id, self.seats.canonical())
    }
}

/// Which request of operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    Block,
    Unblock,
}

impl OperationKind {
    pub fn detail_type(self) -> &'static str {
        match self {
            Self::Block => "SeatBlockRequested",
            Self::Unblock => "SeatUnblockRequested",
        }
    }
}

/// A request that names its id but cannot be served as sent: answered `INVALID_REQUEST`
/// (`SeatBlockFailed` or `SeatUnblockFailed`), nothing changed, and that answer is the
/// request's for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOperation {
    pub kind: OperationKind,
    pub request_id: RequestId,
    pub flight_id: Option<FlightId>,
    /// What could be read of the seats, to echo back.
    pub seats: Vec<String>,
    pub problem: String,
    pub causation_id: String,
    pub fingerprint: String,
}

/// The parts both requests share, or what makes them invalid.
struct Common {
    request_id: RequestId,
    flight_id: FlightId,
    seats: SeatRequest,
}

fn common(
    kind: OperationKind,
    detail: &Value,
    causation_id: &str,
) -> Result<Result<Common, InvalidOperation>, UnreadableEvent> {
    let request_id = detail
        .get("requestId")
        .and_then(Value::as_str)
        .and_then(RequestId::parse)
        .ok_or(UnreadableEvent::InvalidDetail {
            detail_type: kind.detail_type(),
            problem: "requestId must be a UUID",
        })?;
    let flight_id = detail
        .get("flightId")
        .and_then(Value::as_str)
        .and_then(FlightId::parse);
    let raw_seats = detail.get("seats").and_then(Value::as_array);
    let invalid = |problem: String| {
        Ok(Err(invalid(
            kind,
            detail,
            request_id,
            flight_id,
            problem,
            causation_id,
        )))
    };
    let Some(flight_id) = flight_id else {
        return invalid("flightId must be a UUID".into());
    };
    let Some(strings) = raw_seats.and_then(|seats| {
        seats
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<&str>>>()
    }) else {
        return invalid("seats must be a list of seat numbers such as \"12A\"".into());
    };
    match SeatRequest::parse_at_most(strings.into_iter(), MAX_SEATS_PER_BLOCK) {
        Ok(seats) => Ok(Ok(Common {
            request_id,
            flight_id,
            seats,
        })),
        Err(problem) => invalid(problem.to_string()),
    }
}

fn invalid(
    kind: OperationKind,
    detail: &Value,
    request_id: RequestId,
    flight_id: Option<FlightId>,
    problem: String,
    causation_id: &str,
) -> InvalidOperation {
    InvalidOperation {
        kind,
        request_id,
        flight_id,
        seats: echo(detail.get("seats").and_then(Value::as_array)),
        problem,
        causation_id: causation_id.to_owned(),
        fingerprint: format!("{}|{}", kind.detail_type(), invalid_fingerprint(detail)),
    }
}

pub(super) fn block(
    detail: &Value,
    causation_id: String,
) -> Result<Result<BlockSeats, InvalidOperation>, UnreadableEvent> {
    let kind = OperationKind::Block;
    let common = match common(kind, detail, &causation_id)? {
        Ok(common) => common,
        Err(invalid) => return Ok(Err(invalid)),
    };
    let refuse = |problem: &str| {
        Ok(Err(invalid(
            kind,
            detail,
            common.request_id,
            Some(common.flight_id),
            problem.to_owned(),
            &causation_id,
        )))
    };
    let Some(reason) = detail
        .get("reason")
        .and_then(Value::as_str)
        .and_then(BlockReason::parse)
    else {
        return refuse(
            "reason must be CREW_REST, INOPERATIVE, WEIGHT_AND_BALANCE, RESERVED_FOR_ASSISTANCE or OPERATOR",
        );
    };
    let note = match detail.get("note") {
        None | Some(Value::Null) => None,
        Some(Value::String(note)) if note.chars().count() <= MAX_NOTE_CHARS => {
            Some(FreeText::clean(note, MAX_NOTE_CHARS))
        }
        Some(_) => return refuse("note must be text of at most 200 characters"),
    };
    Ok(Ok(BlockSeats {
        request_id: common.request_id,
        flight_id: common.flight_id,
        seats: common.seats,
        reason,
        note,
        causation_id,
    }))
}

pub(super) fn unblock(
    detail: &Value,
    causation_id: String,
) -> Result<Result<UnblockSeats, InvalidOperation>, UnreadableEvent> {
    Ok(
        common(OperationKind::Unblock, detail, &causation_id)?.map(|common| UnblockSeats {
            request_id: common.request_id,
            flight_id: common.flight_id,
            seats: common.seats,
            causation_id,
        }),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const REQUEST: &str = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f";
    const FLIGHT: &str = "3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10";

    fn problem_of(detail: Value) -> String {
        match block(&detail, "e".into()) {
            Ok(Err(invalid)) => invalid.problem,
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    #[test]
    fn a_block_names_its_seats_reason_and_note() {
        let parsed = block(
            &json!({"requestId": REQUEST, "flightId": FLIGHT, "seats": ["1B", "1A"],
                    "reason": "CREW_REST", "note": "rest\nbunk"}),
            "e".into(),
        );
        let Ok(Ok(request)) = parsed else {
            panic!("expected a block, got {parsed:?}");
        };
        assert_eq!(request.reason, BlockReason::CrewRest);
        assert_eq!(
            request.note.as_ref().map(FreeText::as_str),
            Some("rest bunk")
        );
        assert_eq!(
            request.fingerprint(),
            format!("block|{FLIGHT}|1A,1B|CREW_REST|rest bunk")
        );
    }

    #[test]
    fn a_bad_block_is_an_invalid_request_that_names_what_is_wrong() {
        let base = json!({"requestId": REQUEST, "flightId": FLIGHT, "seats": ["1A"], "reason": "OPERATOR"});
        let with = |key: &str, value: Value| {
            let mut detail = base.clone();
            detail[key] = value;
            detail
        };
        let fifty_one: Vec<String> = (1..=51).map(|row| format!("{row}A")).collect();
        for (detail, says) in [
            (with("flightId", json!("AI102")), "flightId"),
            (with("seats", json!([])), "no seats"),
            (with("seats", json!(["1A", "1A"])), "twice"),
            (with("seats", json!(fifty_one)), "at most 50"),
            (with("seats", json!("1A")), "list"),
            (with("reason", json!("BROKEN")), "reason must be"),
            (with("note", json!("x".repeat(201))), "note"),
            (with("note", json!(7)), "note"),
        ] {
            let problem = problem_of(detail);
            assert!(problem.contains(says), "{problem:?} should say {says:?}");
        }
    }

    #[test]
    fn a_request_without_a_request_id_is_unreadable() {
        let detail = json!({"flightId": FLIGHT, "seats": ["1A"], "reason": "OPERATOR"});
        assert!(matches!(
            block(&detail, "e".into()),
            Err(UnreadableEvent::InvalidDetail { .. })
        ));
        assert!(matches!(
            unblock(&detail, "e".into()),
            Err(UnreadableEvent::InvalidDetail { .. })
        ));
    }

    #[test]
    fn a_block_and_an_unblock_of_the_same_seats_are_different_requests() {
        let detail = json!({"requestId": REQUEST, "flightId": FLIGHT, "seats": ["1A"], "reason": "OPERATOR"});
        let (Ok(Ok(blocking)), Ok(Ok(unblocking))) =
            (block(&detail, "e".into()), unblock(&detail, "e".into()))
        else {
            panic!("both parse");
        };
        assert_ne!(blocking.fingerprint(), unblocking.fingerprint());
    }
}
