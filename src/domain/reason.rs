use serde::{Deserialize, Serialize};

/// Why a reservation was refused: a business answer, never a fault to retry.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureReason {
    /// At least one seat is held or sold already.
    SeatUnavailable,
    /// At least one seat does not exist on the flight.
    SeatNotFound,
    FlightNotFound,
    FlightDeparted,
    /// The request itself is wrong: malformed, or an order id reused with other content.
    InvalidRequest,
    /// An any-seat order found fewer free seats in the cabin than it asked for.
    InsufficientSeats,
    /// The flight was cancelled by the schedule.
    FlightCancelled,
}

impl FailureReason {
    /// The reason's text, as on the wire (metrics use it as a dimension).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    #[test]
    fn a_reason_has_one_text_on_the_wire_and_in_metrics() {
        for reason in FailureReason::VARIANTS {
            assert_eq!(
                serde_json::to_value(reason).ok(),
                Some(serde_json::json!(reason.as_str()))
            );
        }
        assert_eq!(FailureReason::SeatNotFound.as_str(), "SEAT_NOT_FOUND");
    }
}
