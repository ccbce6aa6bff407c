//! The schedule's events (source `skyledger.schedule`): `FlightScheduled` opens a flight's
//! inventory, `FlightCancelled` closes it, `AircraftChanged` gives it another cabin layout.

use serde_json::Value;

use super::UnreadableEvent;
use crate::domain::text::FreeText;
use crate::domain::{
    AircraftLayout, FlightId, FlightSchedule, RawCabin, RequestId, ScheduleParts, ScheduleRefusal,
};

/// Open this flight and all its seats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFlight {
    pub schedule: FlightSchedule,
    pub causation_id: String,
}

/// A schedule that names its flight but cannot be applied: answered
/// `FlightScheduleRejected`, nothing written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedSchedule {
    pub flight_id: FlightId,
    pub refusal: ScheduleRefusal,
    pub causation_id: String,
}

/// Cancel this flight: release every hold and sale on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelFlight {
    pub flight_id: FlightId,
    /// Free text from the schedule, kept with the flight: cleaned, never refused, so an
    /// odd character cannot keep a flight from being cancelled.
    pub reason: Option<FreeText>,
    pub causation_id: String,
}

/// Give the flight this layout: seats added, kept, or moved off and taken out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeAircraft {
    pub change_id: RequestId,
    pub flight_id: FlightId,
    pub layout: AircraftLayout,
    pub causation_id: String,
}

impl ChangeAircraft {
    /// What was asked, in a canonical form: a reused change id must ask for exactly this.
    pub fn fingerprint(&self) -> String {
        format!("aircraft|{}|{}", self.flight_id, self.layout.canonical())
    }
}

/// An aircraft change whose layout is invalid: answered `AircraftChangeRejected`
/// (`INVALID_REQUEST`), nothing written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedAircraft {
    pub change_id: RequestId,
    pub flight_id: FlightId,
    pub refusal: ScheduleRefusal,
    pub causation_id: String,
}

/// The most of a cancellation's reason that is kept, in characters.
const MAX_REASON_LEN: usize = 200;

fn flight_id(detail: &Value, detail_type: &'static str) -> Result<FlightId, UnreadableEvent> {
    detail
        .get("flightId")
        .and_then(Value::as_str)
        .and_then(FlightId::parse)
        .ok_or(UnreadableEvent::NoFlightId { detail_type })
}

pub(super) fn scheduled(
    detail: &Value,
    causation_id: String,
) -> Result<Result<OpenFlight, RejectedSchedule>, UnreadableEvent> {
    let flight_id = flight_id(detail, "FlightScheduled")?;
    let text = |key: &str| detail.get(key).and_then(Value::as_str);
    let cabins = raw_cabins(detail);
    let parts = ScheduleParts {
        flight_code: text("flightCode"),
        origin: text("originIata"),
        destination: text("destinationIata"),
        departure: text("departureUtc"),
        arrival: text("arrivalUtc"),
        cabins,
    };
    Ok(match FlightSchedule::parse(flight_id, &parts) {
        Ok(schedule) => Ok(OpenFlight {
            schedule,
            causation_id,
        }),
        Err(refusal) => Err(RejectedSchedule {
            flight_id,
            refusal,
            causation_id,
        }),
    })
}

/// Each cabin's `cabin`, `rows` and `letters`, as sent.
fn raw_cabins(detail: &Value) -> Option<Vec<RawCabin<'_>>> {
    detail
        .get("cabins")
        .and_then(Value::as_array)
        .map(|cabins| {
            cabins
                .iter()
                .map(|cabin| {
                    let field = |key: &str| cabin.get(key).and_then(Value::as_str);
                    (field("cabin"), field("rows"), field("letters"))
                })
                .collect()
        })
}

pub(super) fn aircraft_changed(
    detail: &Value,
    causation_id: String,
) -> Result<Result<ChangeAircraft, RejectedAircraft>, UnreadableEvent> {
    let change_id = detail
        .get("changeId")
        .and_then(Value::as_str)
        .and_then(RequestId::parse)
        .ok_or(UnreadableEvent::InvalidDetail {
            detail_type: "AircraftChanged",
            problem: "changeId must be a UUID",
        })?;
    let flight_id = flight_id(detail, "AircraftChanged")?;
    Ok(match AircraftLayout::parse(raw_cabins(detail).as_deref()) {
        Ok(layout) => Ok(ChangeAircraft {
            change_id,
            flight_id,
            layout,
            causation_id,
        }),
        Err(refusal) => Err(RejectedAircraft {
            change_id,
            flight_id,
            refusal,
            causation_id,
        }),
    })
}

pub(super) fn cancelled(
    detail: &Value,
    causation_id: String,
) -> Result<CancelFlight, UnreadableEvent> {
    Ok(CancelFlight {
        flight_id: flight_id(detail, "FlightCancelled")?,
        reason: detail
            .get("reason")
            .and_then(Value::as_str)
            .map(|reason| FreeText::clean(reason, MAX_REASON_LEN)),
        causation_id,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::ScheduleProblem;

    const FLIGHT: &str = "7a1e0c3d-5b2f-4e8a-9d6c-3f4b5a6c7d8e";

    fn detail() -> Value {
        json!({
            "flightId": FLIGHT, "flightCode": "AI102", "originIata": "LHR",
            "destinationIata": "DEL", "departureUtc": "2027-01-10T09:00:00Z",
            "arrivalUtc": "2027-01-10T18:00:00Z",
            "cabins": [{"cabin": "ECONOMY", "rows": "10-30", "letters": "ABCDEF"}]
        })
    }

    #[test]
    fn a_flight_scheduled_detail_becomes_a_flight_to_open() {
        let parsed = scheduled(&detail(), "e".into());

        assert!(
            matches!(&parsed, Ok(Ok(open)) if open.schedule.seats().len() == 126),
            "{parsed:?}"
        );
    }

    #[test]
    fn a_bad_schedule_is_rejected_with_its_reason_and_no_flight_id_is_unreadable() {
        let mut overlapping = detail();
        overlapping["cabins"] = json!([
            {"cabin": "BUSINESS", "rows": "1-10", "letters": "AB"},
            {"cabin": "ECONOMY", "rows": "10-30", "letters": "ABCDEF"}
        ]);
        let mut no_flight = detail();
        no_flight["flightId"] = json!("AI102");

        let rejected = scheduled(&overlapping, "e".into());
        let unreadable = scheduled(&no_flight, "e".into());

        assert!(
            matches!(&rejected, Ok(Err(r)) if r.refusal.problem == ScheduleProblem::OverlappingCabins),
            "{rejected:?}"
        );
        assert!(matches!(
            unreadable,
            Err(UnreadableEvent::NoFlightId { .. })
        ));
    }

    #[test]
    fn a_cancellation_needs_a_flight_and_keeps_a_short_reason() {
        let cancel = cancelled(
            &json!({"flightId": FLIGHT, "reason": "x".repeat(1_000)}),
            "e".into(),
        );

        assert!(
            matches!(&cancel, Ok(c) if c.reason.as_ref().is_some_and(|r| r.as_str().len() == 200))
        );
        assert!(cancelled(&json!({"reason": "weather"}), "e".into()).is_err());
    }

    #[test]
    fn a_cancellation_reason_the_database_cannot_store_is_cleaned_not_refused() {
        let cancel = cancelled(
            &json!({"flightId": FLIGHT, "reason": "crew\u{0}\r\nunavailable\u{202e}"}),
            "e".into(),
        );

        assert_eq!(
            cancel
                .ok()
                .and_then(|c| c.reason)
                .map(String::from)
                .as_deref(),
            Some("crew\u{fffd}  unavailable\u{fffd}")
        );
    }
}
