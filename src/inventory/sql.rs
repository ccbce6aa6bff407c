//! The calls of the inventory, in one place: which server-side function each is (their SQL
//! is in `database/migrations/0006_server_side_calls.sql`), what it is given and what it
//! answers, as typed values. Field names follow the functions' JSON (camelCase).
//!
//! Reads take no lock. Writes apply a decision only if what was read is unchanged, all of
//! it or none of it, and lock orders before their seats and seats in `seat_id` order, so
//! two writes never wait on each other in a cycle.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::Function;
use crate::domain::{
    BlockReason, Cabin, FailureReason, FlightStatus, HeldSeat, HoldStatus, OrderCloser,
    OutgoingEvent, SeatNumber, SeatStatus,
};

/// The optimistic read of an `OrderCreated`.
pub const READ_REQUEST: Function = Function::named("inventory_read_request");
/// The decision of an `OrderCreated`, all or nothing, with its answer.
pub const DECIDE_ORDER: Function = Function::named("inventory_decide_order");
/// The decisions of a batch of `OrderCreated`, in one call and one commit.
pub const DECIDE_ORDERS: Function = Function::named("inventory_decide_orders");
/// The optimistic read of one order, for a transition.
pub const READ_ORDER: Function = Function::named("inventory_read_order");
/// Orders with lapsed holds, read as [`READ_ORDER`] reads one.
pub const READ_LAPSED: Function = Function::named("inventory_read_lapsed");
/// One transition of one order, applied only if the order is as read.
pub const TRANSITION: Function = Function::named("inventory_transition");
/// Setting one order aside, listing those set aside, and taking them out of quarantine.
pub const QUARANTINE: Function = Function::named("inventory_quarantine");
pub const QUARANTINED: Function = Function::named("inventory_quarantined");
pub const RELEASE_QUARANTINE: Function = Function::named("inventory_release_quarantine");
/// Cancelled flights that only quarantined orders hold open.
pub const CANCELLATIONS_HELD: Function = Function::named("inventory_cancellations_held");

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadRequest<'a> {
    pub order_id: Uuid,
    /// `None` for a request whose flight id could not be read.
    pub flight_id: Option<Uuid>,
    /// The seats named, for an explicit order.
    pub seats: Vec<&'a str>,
    pub any_seat: bool,
    pub cabin: Option<Cabin>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRead {
    /// The decision time: holds last the TTL from it.
    pub read_at: DateTime<Utc>,
    /// `None`: no such flight. Only a scheduled flight accepts holds
    /// (`inventory_flight_status`).
    pub flight: Option<FlightStatus>,
    /// The order was seen before.
    pub earlier: Option<Earlier>,
    pub seats: Vec<ReadSeat>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Earlier {
    /// What the first `OrderCreated` asked for (none if a payment or cancellation came first).
    pub fingerprint: Option<String>,
    pub closed_by: Option<OrderCloser>,
    pub outcome: Option<OutgoingEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadSeat {
    pub seat_id: Uuid,
    pub seat_number: SeatNumber,
    pub standing: Standing,
    pub version: i32,
    /// The order holding it by a hold past its expiry, which may be expired to take it.
    pub lapsed_holder: Option<Uuid>,
}

/// Whether a reservation can take a seat, as `inventory_seat_standing` defines it once for
/// every path (the seat map shows the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Standing {
    /// Available and nobody's: taken at its version.
    Free,
    /// Held by a lapsed hold of an order that is not quarantined: free once that order's
    /// holds are expired.
    Lapsed,
    /// Anything else.
    Taken,
}

/// An `OrderCreated` to decide ([`DECIDE_ORDER`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecideOrder<'a> {
    pub order_id: Uuid,
    /// `None` for a request whose flight id could not be read.
    pub flight_id: Option<Uuid>,
    pub fingerprint: String,
    /// The answer's event id.
    pub event_id: Uuid,
    pub causation_id: &'a str,
    /// The seats as requested, echoed in a refusal; the seats to take when there is
    /// neither `take` nor `refusal`.
    pub seats: Vec<String>,
    /// How long a hold lasts, from the decision.
    pub ttl_ms: i64,
    /// An any-seat order's pick, each seat at the version read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take: Option<Vec<SeatAt>>,
    /// Skip picked seats another transaction is taking instead of waiting for them.
    pub skip_locked: bool,
    /// A refusal decided before the call (an invalid request, too few free seats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
}

/// Orders to decide together ([`DECIDE_ORDERS`]), in order id order; each answers as
/// [`DECIDE_ORDER`] would, in the same order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecideOrders<'a> {
    pub ttl_ms: i64,
    pub orders: &'a [DecideOrder<'a>],
}

#[derive(Serialize)]
pub struct Refusal {
    pub reason: FailureReason,
    pub message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatAt {
    pub seat_id: Uuid,
    pub version: i32,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "outcome"
)]
pub enum OrderDecision {
    /// Committed: the claim, the holds and the answer in the outbox.
    Decided {
        event: OutgoingEvent,
        /// `None`: the seats are held.
        reason: Option<FailureReason>,
        /// How many seats are held.
        seats: usize,
        lost_races: u32,
    },
    /// The order was decided before (or closed before it was reserved); nothing written.
    Earlier { earlier: Earlier },
    /// Named seats are held by lapsed holds of these orders; nothing written.
    Lapsed { holders: Vec<Uuid> },
    /// The seats picked changed since they were read (or every race was lost); nothing
    /// written.
    Lost { lost: Vec<Uuid>, lost_races: u32 },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderKey {
    pub order_id: Uuid,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRead {
    /// `None`: the order was never seen.
    pub order: Option<Order>,
    /// Its events still waiting for the bus.
    pub pending: Vec<OutgoingEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: Uuid,
    /// `None` for an order claimed by a payment or cancellation that came first.
    pub flight_id: Option<Uuid>,
    /// The schedule cancelled the order's flight.
    #[serde(default)]
    pub flight_cancelled: bool,
    pub closed_by: Option<OrderCloser>,
    pub quarantined: bool,
    /// The answer its payment got.
    pub booking: Option<OutgoingEvent>,
    pub holds: Vec<Hold>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub lock_id: i64,
    pub seat_id: Uuid,
    pub seat_number: SeatNumber,
    pub flight_id: Uuid,
    pub status: HoldStatus,
    /// The seat's version when the hold took (or sold) it.
    pub seat_version: i32,
    pub lapsed: bool,
    pub seat: SeatState,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatState {
    pub status: SeatStatus,
    pub version: i32,
}

impl Hold {
    /// Active, within its time, and the seat still at the version this hold took it at:
    /// the proof that selling it cannot sell another order's seat.
    pub fn still_ours(&self) -> bool {
        self.status == HoldStatus::Active
            && !self.lapsed
            && self.seat.status == SeatStatus::Locked
            && self.seat.version == self.seat_version
    }

    /// The seat as it will be once this hold's transition bumps its version.
    pub fn seat_after_transition(&self) -> HeldSeat {
        HeldSeat {
            seat_id: self.seat_id,
            seat_number: self.seat_number.clone(),
            version: self.seat_version + 1,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadLapsed {
    /// The oldest this many orders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Or these orders (lazy expiry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_ids: Option<Vec<Uuid>>,
}

/// A transition decided from an [`OrderRead`]: see `inventory_transition`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub order_id: Uuid,
    /// Wait for the order's row lock (events), or answer busy (the sweeper).
    pub wait: bool,
    /// The order was not seen: claim it as closed by this event.
    pub claim_closed_by: Option<OrderCloser>,
    /// Every hold of the order, as read.
    pub seen: Vec<Seen>,
    pub close: Option<Close>,
    /// Holds to sell.
    pub book: Vec<i64>,
    /// The payment's answer, kept with the order.
    pub booking: Option<OutgoingEvent>,
    pub events: Vec<OutgoingEvent>,
    /// A release for this aircraft change: counted with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aircraft_change_id: Option<Uuid>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seen {
    pub lock_id: i64,
    pub status: HoldStatus,
    /// Where the hold was, at which version: a seat change in between makes the
    /// transition read again, so its answer names the seats held now.
    pub seat_id: Uuid,
    pub seat_version: i32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Close {
    pub lock_ids: Vec<i64>,
    #[serde(rename = "as")]
    pub closing_as: HoldStatus,
}

impl Transition {
    /// A transition of the order as it was read.
    pub fn of(order: &Order) -> Self {
        Self {
            order_id: order.order_id,
            wait: true,
            seen: order
                .holds
                .iter()
                .map(|hold| Seen {
                    lock_id: hold.lock_id,
                    status: hold.status,
                    seat_id: hold.seat_id,
                    seat_version: hold.seat_version,
                })
                .collect(),
            ..Self::default()
        }
    }
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Transitioned {
    Applied,
    /// The order changed since it was read: read again.
    Changed,
    /// Another transaction has the order (only when not waiting).
    Busy,
    /// The order is set aside: a seat it holds is not at its hold's version.
    Quarantined {
        reason: String,
    },
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuarantinedOrder {
    pub order_id: Uuid,
    pub flight_id: Option<Uuid>,
    pub reason: String,
    pub quarantined_at: DateTime<Utc>,
}

/// A cancelled flight that only quarantined orders hold open: every other order of it was
/// released and answered; it closes once an operator repairs these.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldCancellation {
    pub flight_id: Uuid,
    pub cancelled_at: DateTime<Utc>,
    pub quarantined_orders: u64,
}

/// `SeatBlockRequested`, decided, written and answered in one call.
pub const BLOCK_SEATS: Function = Function::named("inventory_block_seats");
/// `SeatUnblockRequested`, likewise.
pub const UNBLOCK_SEATS: Function = Function::named("inventory_unblock_seats");

/// `SeatChangeRequested`, decided, written and answered in one call.
pub const CHANGE_SEATS: Function = Function::named("inventory_change_seats");

/// A seat change, as its call takes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeCall<'a> {
    pub change_id: Uuid,
    /// `None` when unreadable (then `refusal` says why).
    pub order_id: Option<Uuid>,
    pub flight_id: Option<Uuid>,
    pub fingerprint: &'a str,
    pub event_id: Uuid,
    pub causation_id: &'a str,
    /// As sent (echoed in the answer).
    pub moves: Vec<MoveCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<InvalidRefusal<'a>>,
}

#[derive(Serialize)]
pub struct MoveCall<'a> {
    pub from: &'a str,
    pub to: &'a str,
}

/// A request of operations, as its call takes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatRequestCall<'a> {
    pub request_id: Uuid,
    /// `None` when the request's flight id could not be read.
    pub flight_id: Option<Uuid>,
    pub fingerprint: &'a str,
    pub event_id: Uuid,
    pub causation_id: &'a str,
    /// As named (echoed in a refusal).
    pub seats: Vec<&'a str>,
    pub reason: Option<BlockReason>,
    pub note: Option<&'a str>,
    /// Decided at the edge: the request itself is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<InvalidRefusal<'a>>,
}

#[derive(Serialize)]
pub struct InvalidRefusal<'a> {
    /// Always `INVALID_REQUEST`.
    pub reason: FailureReason,
    pub message: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum RequestDecision {
    /// Committed: the request's answer, in the outbox.
    Decided { event: OutgoingEvent },
    /// The request id was answered before; nothing written.
    Earlier { earlier: EarlierRequest },
    /// Named seats are held by lapsed holds of these orders; nothing written.
    Lapsed { holders: Vec<Uuid> },
    /// The order of a seat change is set aside (now or before); nothing else written.
    Quarantined { reason: String },
    /// Every race was lost; nothing written.
    Lost,
}

#[derive(Debug, Deserialize)]
pub struct EarlierRequest {
    pub fingerprint: String,
    pub event: OutgoingEvent,
}

/// `AircraftChanged`: the flight's new layout, applied in one call.
pub const CHANGE_AIRCRAFT: Function = Function::named("inventory_change_aircraft");
/// The orders an open aircraft change still has to move, and the free seats.
pub const READ_DISPLACED: Function = Function::named("inventory_read_displaced");
/// One order's holds moved off seats out of the layout.
pub const REASSIGN_ORDER: Function = Function::named("inventory_reassign_order");
/// An open aircraft change finished, once nothing is left to move.
pub const FINISH_AIRCRAFT_CHANGE: Function = Function::named("inventory_finish_aircraft_change");
/// Flights with an open aircraft change, for the schedule.
pub const OPEN_AIRCRAFT_CHANGES: Function = Function::named("inventory_open_aircraft_changes");

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeAircraftCall<'a> {
    pub change_id: Uuid,
    pub flight_id: Uuid,
    pub fingerprint: &'a str,
    pub causation_id: &'a str,
    /// The `FlightLayoutChanged`'s id, if the change finishes at once.
    pub event_id: Uuid,
    pub seats: Vec<LayoutSeat<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutSeat<'a> {
    pub seat_number: &'a str,
    pub cabin: Cabin,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum AircraftChanged {
    /// The layout is the new one; `finished` if nothing was on a seat it lost.
    Applied {
        finished: Option<OutgoingEvent>,
    },
    /// This change id was applied before.
    Earlier {
        fingerprint: String,
        finished: Option<OutgoingEvent>,
    },
    /// Another change of the flight is still open.
    Busy,
    Missing,
    Cancelled,
    Departed,
}

/// What an open change still has to move (`None`: no open change of the flight).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Displacement {
    pub change_id: Uuid,
    pub causation_id: String,
    pub orders: Vec<DisplacedOrder>,
    pub free: Vec<FreeSeat>,
}

#[derive(Debug, Deserialize)]
pub struct DisplacedOrder {
    pub order: Order,
    /// Its live holds on seats out of the layout.
    pub displaced: Vec<DisplacedHold>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisplacedHold {
    pub lock_id: i64,
    pub seat_id: Uuid,
    pub seat_number: SeatNumber,
    pub cabin: Cabin,
    pub version: i32,
    pub status: HoldStatus,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FreeSeat {
    pub seat_id: Uuid,
    pub seat_number: SeatNumber,
    pub cabin: Cabin,
    pub version: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReassignCall {
    pub change_id: Uuid,
    pub order_id: Uuid,
    pub flight_id: Uuid,
    pub event_id: Uuid,
    pub moves: Vec<Reassignment>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reassignment {
    pub lock_id: i64,
    pub from_id: Uuid,
    pub from_version: i32,
    pub to_id: Uuid,
    pub to_version: i32,
    pub status: HoldStatus,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Reassigned {
    Moved {
        event: OutgoingEvent,
    },
    /// Something read has changed: read again.
    Changed,
    /// The flight was cancelled: its cancellation releases the order.
    Cancelled,
}

#[derive(Debug, Deserialize)]
pub struct Finished {
    pub finished: Option<OutgoingEvent>,
}
