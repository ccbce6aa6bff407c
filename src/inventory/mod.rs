//! The seat inventory: holding seats with an optimistic, version-checked lock, selling and
//! releasing them, and expiring holds that were never paid.
//!
//! Every operation is an optimistic read (no lock), a decision here in Rust, and one write
//! that applies it only if nothing read has changed since; a lost race reads again.

mod aircraft;
mod flights;
mod lifecycle;
mod operations;
mod pick;
mod reserve;
pub mod sql;

use uuid::Uuid;

use crate::db::DbError;
use crate::domain::{OrderCloser, OutgoingEvent};

pub use aircraft::{AircraftChange, LayoutChange, change_aircraft, finish_aircraft_changes};
pub use flights::{Cancellation, Opening, cancel, finish_cancellations, open, retire};
pub use lifecycle::{
    Confirmation, Expiry, Release, cancellations_held, confirm, expire_lapsed_holds, quarantined,
    release, release_quarantine,
};
pub use operations::{Operation, block, change, refuse_change, refuse_operation, unblock};
pub use reserve::{BatchOrder, Batched, refuse_invalid, reserve, reserve_batch};

/// How long a hold lasts before it may be released (`LOCK_TTL_SECONDS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTtl(chrono::Duration);

impl LockTtl {
    pub fn from_seconds(seconds: u32) -> Self {
        Self(chrono::Duration::seconds(i64::from(seconds)))
    }
}

/// How an order's reservation ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Decided now: the outcome event is committed to the outbox, still to be published,
    /// with `released`, the `SeatReleased` of orders whose lapsed holds it expired on the way.
    Decided {
        event: OutgoingEvent,
        released: Vec<OutgoingEvent>,
        /// Optimistic-lock races lost on the way (each one re-read and retried).
        lost_races: u32,
    },
    /// Decided by an earlier delivery of the same order: the same event again.
    Replayed(OutgoingEvent),
    /// The order id was decided before, for another request.
    ConflictsWithEarlierRequest,
    /// A payment or cancellation of this order came first; nothing is held.
    ClosedBeforeReserved(OrderCloser),
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Database(#[from] DbError),
    /// Seats kept changing between read and update; retrying later can help.
    #[error("the seats changed under every one of {0} attempts")]
    Contention(u32),
    /// The order kept changing under a transition, every time it was tried.
    #[error("order {0} kept changing under a transition")]
    OrderContention(Uuid),
    #[error("order {0} is claimed but has no recorded outcome")]
    UndecidedOrder(Uuid),
    /// A cancellation for a flight this inventory does not have.
    #[error("no flight {0} in the inventory")]
    UnknownFlight(Uuid),
    /// Set aside until an operator repairs it: a seat it holds is not where its hold says.
    #[error("order {order_id} is quarantined: {reason}")]
    Quarantined { order_id: Uuid, reason: String },
    #[error("cannot serialize an event: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl InventoryError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Database(error) => error.is_retryable(),
            Self::Contention(_) | Self::OrderContention(_) => true,
            Self::UndecidedOrder(_)
            | Self::UnknownFlight(_)
            | Self::Quarantined { .. }
            | Self::Serialize(_) => false,
        }
    }
}
