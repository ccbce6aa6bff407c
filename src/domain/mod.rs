//! Domain values, parsed at the edge so the core never sees invalid data.

mod events;
mod flight;
mod ids;
mod reason;
mod seat;
pub mod text;

pub use events::{
    AircraftChangeProblem, AircraftChangeRejected, CabinSeats, FlightInventoryClosed,
    FlightInventoryOpened, FlightScheduleRejected,
};
pub use events::{
    BookingFailureReason, DetailType, EVENT_SOURCE, HeldSeat, OrderCloser, OutgoingEvent,
    ReleaseReason, SeatBooked, SeatBookingFailed, SeatReleased,
};
pub use flight::{
    AircraftLayout, Airport, CabinLayout, FlightCode, FlightSchedule, FlightStatus,
    MAX_SEATS_PER_FLIGHT, RawCabin, ScheduleParts, ScheduleProblem, ScheduleRefusal,
};
pub use ids::{FlightId, OrderId, RequestId};
pub use reason::FailureReason;
pub use seat::{
    BlockReason, Cabin, HoldStatus, MAX_SEATS_PER_ORDER, SeatMove, SeatMoves, SeatMovesError,
    SeatNumber, SeatRequest, SeatRequestError, SeatStatus,
};
