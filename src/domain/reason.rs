use serde::Serialize;

/// Why a reservation was refused: a business answer, never a fault to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeatUnavailable => "SEAT_UNAVAILABLE",
            Self::SeatNotFound => "SEAT_NOT_FOUND",
            Self::FlightNotFound => "FLIGHT_NOT_FOUND",
            Self::FlightDeparted => "FLIGHT_DEPARTED",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::InsufficientSeats => "INSUFFICIENT_SEATS",
        }
    }
}
