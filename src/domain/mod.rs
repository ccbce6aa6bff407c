//! Domain values, parsed at the edge so the core never sees invalid data.

mod events;
mod ids;
mod reason;
mod seat;

pub use events::{
    DetailType, EVENT_SOURCE, HeldSeat, OutgoingEvent, SeatReservationFailed, SeatReserved,
};
pub use ids::{FlightId, OrderId};
pub use reason::FailureReason;
pub use seat::{MAX_SEATS_PER_ORDER, SeatNumber, SeatRequest, SeatRequestError, SeatStatus};
