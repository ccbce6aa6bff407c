//! Domain values, parsed at the edge so the core never sees invalid data.

mod events;
mod ids;
mod reason;
mod seat;

pub use events::{
    DetailType, HeldSeat, OutgoingEvent, SeatReservationFailed, SeatReserved,
    EVENT_SOURCE,
};
pub use ids::{FlightId, OrderId};
pub use reason::FailureReason;
pub use seat::{SeatNumber, SeatRequest, SeatRequestError, SeatStatus, MAX_SEATS_PER_ORDER};
