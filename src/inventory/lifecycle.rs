//! After a hold: selling it (confirm), giving it back (release), and expiring it when
//! nobody paid. Each reads the order, decides here, and writes the decision in one call
//! that locks the order's row before its holds and seats, and applies it only if the
//! order is still as read: one order's transitions never interleave, and a confirmation
//! racing an expiry ends one way or the other.

use uuid::Uuid;

use super::InventoryError;
use super::sql::{
    self, Close, HeldCancellation, Hold, Order, OrderKey, OrderRead, QuarantinedOrder, ReadLapsed,
    Transition, Transitioned,
};
use crate::db::{DbError, Session};
use crate::domain::{
    BookingFailureReason, FlightId, HoldStatus, OrderCloser, OrderId, OutgoingEvent, ReleaseReason,
    SeatBooked, SeatBookingFailed, SeatReleased,
};
use crate::inbound::{ConfirmOrder, ReleaseOrder};
use crate::metrics;

/// The answer to a payment: `SeatBooked` or `SeatBookingFailed`, and the `SeatReleased`
/// of holds found expired on the way.
#[derive(Debug, PartialEq, Eq)]
pub struct Confirmation {
    pub answer: OutgoingEvent,
    pub released: Vec<OutgoingEvent>,
}

/// What a release did: the `SeatReleased` it queued, or nothing to release (with the
/// order's events still waiting for the bus, which a retry after a failed publish sends).
#[derive(Debug, PartialEq, Eq)]
pub enum Release {
    Released(Vec<OutgoingEvent>),
    NothingHeld { pending: Vec<OutgoingEvent> },
}

/// What a sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expiry {
    /// One `SeatReleased` per order whose lapsed holds were released.
    pub released: Vec<OutgoingEvent>,
    /// Orders set aside because their holds could not be closed consistently.
    pub quarantined: Vec<Uuid>,
    /// Orders another transaction was working on, or that changed under the sweep: the
    /// next sweep takes them.
    pub skipped: usize,
}

/// How often a transition starts over when its order changed between read and write.
const ORDER_ATTEMPTS: usize = 4;

/// Orders per read of the sweeper, and reads per run: a run is bounded.
const EXPIRY_BATCH: i64 = 100;
const EXPIRY_BATCHES_PER_RUN: usize = 10;

/// `PaymentSucceeded`: every active hold of the order becomes a sale, or none does.
pub async fn confirm(
    session: &mut Session<'_>,
    request: &ConfirmOrder,
) -> Result<Confirmation, InventoryError> {
    let order_id = request.order_id.as_uuid();
    for _ in 0..ORDER_ATTEMPTS {
        let read: OrderRead = session
            .read(sql::READ_ORDER, &OrderKey { order_id })
            .await?;
        match decide_confirm(request, read.order.as_ref())? {
            Confirm::Answered(answer) => {
                return Ok(Confirmation {
                    answer,
                    released: Vec::new(),
                });
            }
            Confirm::Apply(transition, confirmation) => {
                if apply(session, &transition).await? {
                    metrics::expired_holds_released(confirmation.released.len());
                    return Ok(confirmation);
                }
            }
        }
    }
    Err(InventoryError::OrderContention(order_id))
}

enum Confirm {
    /// The payment was answered before: the same answer again.
    Answered(OutgoingEvent),
    /// Write this; once applied, this is the answer.
    Apply(Box<Transition>, Confirmation),
}

fn decide_confirm(
    request: &ConfirmOrder,
    order: Option<&Order>,
) -> Result<Confirm, InventoryError> {
    let order = match order {
        None => {
            // Before its OrderCreated: the order is closed by this payment, which is
            // answered now and for good.
            let answer = booking_failed(request, BookingFailureReason::HoldNotFound)?;
            let transition = Transition {
                order_id: request.order_id.as_uuid(),
                wait: true,
                claim_closed_by: Some(OrderCloser::PaymentSucceeded),
                booking: Some(answer.clone()),
                events: vec![answer.clone()],
                ..Transition::default()
            };
            return Ok(Confirm::Apply(Box::new(transition), answered(answer)));
        }
        Some(order) => order,
    };
    refuse_quarantined(order)?;
    if let Some(answer) = &order.booking {
        return Ok(Confirm::Answered(answer.clone()));
    }
    let mut transition = Transition::of(order);
    let mut released = Vec::new();
    let answer = match (order.flight_id, order.holds.as_slice()) {
        (_, []) => booking_failed(request, BookingFailureReason::HoldNotFound)?,
        (_, holds) if order.flight_cancelled => {
            // Never sell on a cancelled flight: what is still held goes back now, so the
            // payment can be refunded.
            let active: Vec<&Hold> = holds
                .iter()
                .filter(|hold| hold.status == HoldStatus::Active)
                .collect();
            if let Some(event) = seats_released(
                order.order_id,
                &active,
                ReleaseReason::FlightCancelled,
                &request.causation_id,
            )? {
                transition.close = Some(closing(&active, HoldStatus::Released));
                released.push(event);
            }
            booking_failed(request, BookingFailureReason::FlightCancelled)?
        }
        (Some(flight_id), holds) if holds.iter().all(Hold::still_ours) => {
            transition.book = holds.iter().map(|hold| hold.lock_id).collect();
            SeatBooked {
                event_id: Uuid::new_v4(),
                order_id: request.order_id,
                flight_id: FlightId::from(flight_id),
                seats: holds.iter().map(Hold::seat_after_transition).collect(),
                causation_id: request.causation_id.clone(),
            }
            .to_event()?
        }
        (_, holds) => {
            // Past expiry or released: never sell. Lapsed holds are released right away,
            // so the payment can be refunded.
            let lapsed: Vec<&Hold> = holds
                .iter()
                .filter(|hold| hold.status == HoldStatus::Active && hold.lapsed)
                .collect();
            if let Some(event) = seats_released(
                order.order_id,
                &lapsed,
                ReleaseReason::HoldExpired,
                &request.causation_id,
            )? {
                transition.close = Some(closing(&lapsed, HoldStatus::Expired));
                released.push(event);
            }
            booking_failed(request, BookingFailureReason::HoldExpired)?
        }
    };
    transition.booking = Some(answer.clone());
    transition.events = std::iter::once(answer.clone())
        .chain(released.iter().cloned())
        .collect();
    Ok(Confirm::Apply(
        Box::new(transition),
        Confirmation { answer, released },
    ))
}

fn answered(answer: OutgoingEvent) -> Confirmation {
    Confirmation {
        answer,
        released: Vec::new(),
    }
}

fn booking_failed(
    request: &ConfirmOrder,
    reason: BookingFailureReason,
) -> Result<OutgoingEvent, serde_json::Error> {
    let message = match reason {
        BookingFailureReason::HoldExpired => {
            format!("the seats of order {} are no longer held", request.order_id)
        }
        BookingFailureReason::HoldNotFound => {
            format!("order {} holds no seats here", request.order_id)
        }
        BookingFailureReason::FlightCancelled => {
            format!("the flight of order {} was cancelled", request.order_id)
        }
    };
    SeatBookingFailed {
        event_id: Uuid::new_v4(),
        order_id: request.order_id,
        reason,
        message,
        causation_id: request.causation_id.clone(),
    }
    .to_event()
}

/// `PaymentFailed` / `OrderCancelled`: active holds go back on sale; a cancellation also
/// returns sold seats. Nothing held is a no-op.
pub async fn release(
    session: &mut Session<'_>,
    request: &ReleaseOrder,
) -> Result<Release, InventoryError> {
    let order_id = request.order_id.as_uuid();
    for _ in 0..ORDER_ATTEMPTS {
        let read: OrderRead = session
            .read(sql::READ_ORDER, &OrderKey { order_id })
            .await?;
        let (transition, release) = match decide_release(request, read)? {
            Decided::Done(release) => return Ok(release),
            Decided::Apply(transition, release) => (transition, release),
        };
        if apply(session, &transition).await? {
            return Ok(release);
        }
    }
    Err(InventoryError::OrderContention(order_id))
}

enum Decided<T> {
    Done(T),
    Apply(Transition, T),
}

fn decide_release(
    request: &ReleaseOrder,
    read: OrderRead,
) -> Result<Decided<Release>, InventoryError> {
    let Some(order) = read.order else {
        // Before its OrderCreated: claim the order as closed, so it never holds seats.
        // A release request is a PaymentFailed or an OrderCancelled.
        let closer = match request.reason {
            ReleaseReason::OrderCancelled => OrderCloser::OrderCancelled,
            _ => OrderCloser::PaymentFailed,
        };
        let transition = Transition {
            order_id: request.order_id.as_uuid(),
            wait: true,
            claim_closed_by: Some(closer),
            ..Transition::default()
        };
        return Ok(Decided::Apply(
            transition,
            Release::NothingHeld {
                pending: Vec::new(),
            },
        ));
    };
    refuse_quarantined(&order)?;
    let closing_holds = live_holds(&order, request.reason);
    let Some(event) = seats_released(
        order.order_id,
        &closing_holds,
        request.reason,
        &request.causation_id,
    )?
    else {
        return Ok(Decided::Done(Release::NothingHeld {
            pending: read.pending,
        }));
    };
    let mut transition = Transition::of(&order);
    transition.close = Some(closing(&closing_holds, request.reason.closing_status()));
    transition.events = vec![event.clone()];
    Ok(Decided::Apply(transition, Release::Released(vec![event])))
}

/// The sweeper: releases holds past their expiry, order by order, oldest first, in
/// bounded batches and within the invocation's time. An order another transaction is
/// working on is left to the next run; one that cannot be closed consistently is set
/// aside (quarantined) and never stands in front of the others again.
pub async fn expire_lapsed_holds(
    session: &mut Session<'_>,
    causation_id: &str,
) -> Result<Expiry, InventoryError> {
    let mut expiry = Expiry::default();
    for _ in 0..EXPIRY_BATCHES_PER_RUN {
        let orders: Vec<Order> = session
            .read(
                sql::READ_LAPSED,
                &ReadLapsed {
                    limit: Some(EXPIRY_BATCH),
                    order_ids: None,
                },
            )
            .await?;
        let read = orders.len();
        let mut progressed = false;
        for order in &orders {
            let expired = match expire_one(session, order, causation_id, false).await {
                // Committed nothing, and would fail the same way on every sweep.
                Err(InventoryError::Database(DbError::Inconsistent { message })) => {
                    quarantine(session, order.order_id, &message).await?;
                    Expired::Quarantined
                }
                other => other?,
            };
            match expired {
                Expired::Released(event) => {
                    progressed = true;
                    expiry.released.push(event);
                }
                Expired::Quarantined => {
                    progressed = true;
                    expiry.quarantined.push(order.order_id);
                }
                Expired::Skipped => expiry.skipped += 1,
            }
        }
        if (read as i64) < EXPIRY_BATCH || !progressed {
            break;
        }
    }
    metrics::expired_holds_released(expiry.released.len());
    Ok(expiry)
}

/// Lazy expiry, for a reservation that found seats held past their expiry: releases the
/// lapsed holds of these orders, waiting for them if another transaction has them.
pub(super) async fn expire_orders(
    session: &mut Session<'_>,
    orders: &[Uuid],
    causation_id: &str,
) -> Result<Vec<OutgoingEvent>, InventoryError> {
    let orders: Vec<Order> = session
        .read(
            sql::READ_LAPSED,
            &ReadLapsed {
                limit: None,
                order_ids: Some(orders.to_vec()),
            },
        )
        .await?;
    let mut released = Vec::new();
    for order in &orders {
        if let Expired::Released(event) = expire_one(session, order, causation_id, true).await? {
            released.push(event);
        }
    }
    metrics::expired_holds_released(released.len());
    Ok(released)
}

/// Releases every live hold of `order` (active ones, and sales when the reason gives sold
/// seats back: a cancelled order or flight), with one `SeatReleased`. `None` when the
/// order changed under the read, is set aside, or holds nothing.
pub(super) async fn release_order(
    session: &mut Session<'_>,
    order: &Order,
    reason: ReleaseReason,
    causation_id: &str,
) -> Result<Option<OutgoingEvent>, InventoryError> {
    release_order_for(session, order, reason, causation_id, None).await
}

/// [`release_order`], counted with the aircraft change it is for, if any.
pub(super) async fn release_order_for(
    session: &mut Session<'_>,
    order: &Order,
    reason: ReleaseReason,
    causation_id: &str,
    aircraft_change_id: Option<Uuid>,
) -> Result<Option<OutgoingEvent>, InventoryError> {
    let closing_holds = live_holds(order, reason);
    let Some(event) = seats_released(order.order_id, &closing_holds, reason, causation_id)? else {
        return Ok(None);
    };
    let mut transition = Transition::of(order);
    transition.aircraft_change_id = aircraft_change_id;
    transition.close = Some(closing(&closing_holds, reason.closing_status()));
    transition.events = vec![event.clone()];
    match session.write(sql::TRANSITION, &transition).await? {
        Transitioned::Applied => Ok(Some(event)),
        Transitioned::Changed | Transitioned::Busy => Ok(None),
        Transitioned::Quarantined { reason } => {
            quarantined_now(order.order_id, &reason);
            Ok(None)
        }
    }
}

/// The holds a release for `reason` gives back: the active ones, and the sold ones too
/// when the order or its flight was cancelled.
fn live_holds(order: &Order, reason: ReleaseReason) -> Vec<&Hold> {
    let sales_too = matches!(
        reason,
        ReleaseReason::OrderCancelled
            | ReleaseReason::FlightCancelled
            | ReleaseReason::AircraftChanged
    );
    order
        .holds
        .iter()
        .filter(|hold| {
            hold.status == HoldStatus::Active || (sales_too && hold.status == HoldStatus::Confirmed)
        })
        .collect()
}

enum Expired {
    Released(OutgoingEvent),
    Quarantined,
    Skipped,
}

async fn expire_one(
    session: &mut Session<'_>,
    order: &Order,
    causation_id: &str,
    wait: bool,
) -> Result<Expired, InventoryError> {
    let lapsed: Vec<&Hold> = order
        .holds
        .iter()
        .filter(|hold| hold.status == HoldStatus::Active && hold.lapsed)
        .collect();
    let Some(event) = seats_released(
        order.order_id,
        &lapsed,
        ReleaseReason::HoldExpired,
        causation_id,
    )?
    else {
        return Ok(Expired::Skipped);
    };
    let mut transition = Transition::of(order);
    transition.wait = wait;
    transition.close = Some(closing(&lapsed, HoldStatus::Expired));
    transition.events = vec![event.clone()];
    match session.write(sql::TRANSITION, &transition).await? {
        Transitioned::Applied => Ok(Expired::Released(event)),
        Transitioned::Changed | Transitioned::Busy => Ok(Expired::Skipped),
        Transitioned::Quarantined { reason } => {
            quarantined_now(order.order_id, &reason);
            Ok(Expired::Quarantined)
        }
    }
}

/// Writes a transition: `true` once applied, `false` when the order changed and must be
/// read again.
async fn apply(session: &mut Session<'_>, transition: &Transition) -> Result<bool, InventoryError> {
    match session.write(sql::TRANSITION, transition).await? {
        Transitioned::Applied => Ok(true),
        Transitioned::Changed | Transitioned::Busy => Ok(false),
        Transitioned::Quarantined { reason } => {
            quarantined_now(transition.order_id, &reason);
            Err(InventoryError::Quarantined {
                order_id: transition.order_id,
                reason,
            })
        }
    }
}

async fn quarantine(
    session: &mut Session<'_>,
    order_id: Uuid,
    reason: &str,
) -> Result<(), InventoryError> {
    let _: serde_json::Value = session
        .write(
            sql::QUARANTINE,
            &serde_json::json!({"orderId": order_id, "reason": reason}),
        )
        .await?;
    quarantined_now(order_id, reason);
    Ok(())
}

fn quarantined_now(order_id: Uuid, reason: &str) {
    tracing::error!(
        quarantined_order = %order_id,
        reason,
        "order quarantined: its holds cannot be closed consistently"
    );
    metrics::order_quarantined();
}

fn refuse_quarantined(order: &Order) -> Result<(), InventoryError> {
    if order.quarantined {
        return Err(InventoryError::Quarantined {
            order_id: order.order_id,
            reason: "set aside by an earlier transition; see `aeronode-inventory quarantine list`"
                .into(),
        });
    }
    Ok(())
}

fn closing(holds: &[&Hold], status: HoldStatus) -> Close {
    Close {
        lock_ids: holds.iter().map(|hold| hold.lock_id).collect(),
        closing_as: status,
    }
}

/// The `SeatReleased` of these holds of one order, with the versions their seats will
/// have once freed; `None` when there are no holds.
fn seats_released(
    order_id: Uuid,
    holds: &[&Hold],
    reason: ReleaseReason,
    causation_id: &str,
) -> Result<Option<OutgoingEvent>, serde_json::Error> {
    let Some(first) = holds.first() else {
        return Ok(None);
    };
    SeatReleased {
        event_id: Uuid::new_v4(),
        order_id: OrderId::from(order_id),
        flight_id: FlightId::from(first.flight_id),
        seats: holds
            .iter()
            .map(|hold| hold.seat_after_transition())
            .collect(),
        reason,
        causation_id: causation_id.to_owned(),
    }
    .to_event()
    .map(Some)
}

/// The orders set aside, for an operator.
pub async fn quarantined(
    session: &mut Session<'_>,
) -> Result<Vec<QuarantinedOrder>, InventoryError> {
    Ok(session
        .read(sql::QUARANTINED, &serde_json::json!({}))
        .await?)
}

/// The cancelled flights that only quarantined orders hold open, for an operator.
pub async fn cancellations_held(
    session: &mut Session<'_>,
) -> Result<Vec<HeldCancellation>, InventoryError> {
    Ok(session
        .read(sql::CANCELLATIONS_HELD, &serde_json::json!({}))
        .await?)
}

/// Takes these orders (all, when `None`) out of quarantine once repaired; the next sweep
/// expires them again. Returns how many were released.
pub async fn release_quarantine(
    session: &mut Session<'_>,
    orders: Option<Vec<Uuid>>,
) -> Result<u64, InventoryError> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Args {
        #[serde(skip_serializing_if = "Option::is_none")]
        order_ids: Option<Vec<Uuid>>,
    }
    #[derive(serde::Deserialize)]
    struct Released {
        released: u64,
    }
    let answer: Released = session
        .write(sql::RELEASE_QUARANTINE, &Args { order_ids: orders })
        .await?;
    Ok(answer.released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DetailType, SeatNumber, SeatStatus};
    use crate::inventory::sql::SeatState;

    const FLIGHT: Uuid = Uuid::from_u128(0xf1);
    const ORDER: Uuid = Uuid::from_u128(0x0d);

    fn hold(lock_id: i64, number: &str, status: HoldStatus, lapsed: bool, seat: SeatState) -> Hold {
        Hold {
            lock_id,
            seat_id: Uuid::from_u128(lock_id as u128),
            seat_number: SeatNumber::parse(number).unwrap_or_else(|| unreachable!()),
            flight_id: FLIGHT,
            status,
            seat_version: 2,
            lapsed,
            seat,
        }
    }

    const LOCKED_AT_2: SeatState = SeatState {
        status: SeatStatus::Locked,
        version: 2,
    };

    fn order(holds: Vec<Hold>) -> Order {
        Order {
            order_id: ORDER,
            flight_id: Some(FLIGHT),
            flight_cancelled: false,
            closed_by: None,
            quarantined: false,
            booking: None,
            holds,
        }
    }

    fn payment() -> ConfirmOrder {
        ConfirmOrder {
            order_id: OrderId::from(ORDER),
            payment_id: "pay_1".into(),
            causation_id: "event".into(),
        }
    }

    fn release(reason: ReleaseReason) -> ReleaseOrder {
        ReleaseOrder {
            order_id: OrderId::from(ORDER),
            reason,
            causation_id: "event".into(),
        }
    }

    fn applied(decision: Result<Confirm, InventoryError>) -> (Transition, Confirmation) {
        match decision {
            Ok(Confirm::Apply(transition, confirmation)) => (*transition, confirmation),
            Ok(Confirm::Answered(answer)) => panic!("answered before: {answer:?}"),
            Err(error) => panic!("{error}"),
        }
    }

    fn reason(event: &OutgoingEvent) -> String {
        serde_json::from_str::<serde_json::Value>(&event.detail)
            .map(|detail| detail["reason"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn holds_still_ours_are_sold_at_the_next_version() {
        let order = order(vec![
            hold(1, "12A", HoldStatus::Active, false, LOCKED_AT_2),
            hold(2, "12B", HoldStatus::Active, false, LOCKED_AT_2),
        ]);

        let (transition, confirmation) = applied(decide_confirm(&payment(), Some(&order)));

        assert_eq!(confirmation.answer.detail_type, DetailType::SeatBooked);
        assert!(confirmation.answer.detail.contains("\"version\":3"));
        assert_eq!(transition.book, vec![1, 2]);
        assert_eq!(transition.booking.as_ref(), Some(&confirmation.answer));
        assert!(transition.close.is_none());
    }

    #[test]
    fn a_lapsed_hold_is_released_and_the_payment_fails() {
        let order = order(vec![
            hold(1, "12A", HoldStatus::Active, true, LOCKED_AT_2),
            hold(2, "12B", HoldStatus::Active, true, LOCKED_AT_2),
        ]);

        let (transition, confirmation) = applied(decide_confirm(&payment(), Some(&order)));

        assert_eq!(reason(&confirmation.answer), "HOLD_EXPIRED");
        assert_eq!(confirmation.released.len(), 1);
        assert_eq!(reason(&confirmation.released[0]), "HOLD_EXPIRED");
        assert_eq!(
            transition.close.as_ref().map(|c| c.lock_ids.clone()),
            Some(vec![1, 2])
        );
        assert!(transition.book.is_empty(), "never sold");
    }

    #[test]
    fn a_hold_whose_seat_moved_on_is_never_sold() {
        let moved = SeatState {
            status: SeatStatus::Locked,
            version: 4,
        };
        let order = order(vec![hold(1, "12A", HoldStatus::Active, false, moved)]);

        let (transition, confirmation) = applied(decide_confirm(&payment(), Some(&order)));

        assert_eq!(reason(&confirmation.answer), "HOLD_EXPIRED");
        assert!(transition.book.is_empty());
    }

    #[test]
    fn a_payment_before_its_order_closes_it_and_one_after_is_answered_as_before() {
        let (early, confirmation) = applied(decide_confirm(&payment(), None));
        let mut answered = order(Vec::new());
        answered.booking = Some(confirmation.answer.clone());

        let again = decide_confirm(&payment(), Some(&answered));

        assert_eq!(early.claim_closed_by, Some(OrderCloser::PaymentSucceeded));
        assert_eq!(reason(&confirmation.answer), "HOLD_NOT_FOUND");
        assert!(matches!(again, Ok(Confirm::Answered(ref a)) if *a == confirmation.answer));
    }

    #[test]
    fn a_payment_on_a_cancelled_flight_releases_what_is_held_and_fails() {
        let mut order = order(vec![hold(1, "12A", HoldStatus::Active, false, LOCKED_AT_2)]);
        order.flight_cancelled = true;

        let (transition, confirmation) = applied(decide_confirm(&payment(), Some(&order)));

        assert_eq!(reason(&confirmation.answer), "FLIGHT_CANCELLED");
        assert_eq!(reason(&confirmation.released[0]), "FLIGHT_CANCELLED");
        assert!(transition.book.is_empty());
    }

    #[test]
    fn a_failed_payment_gives_back_active_holds_but_not_sales_and_a_cancellation_both() {
        let booked = SeatState {
            status: SeatStatus::Booked,
            version: 2,
        };
        let holds = || {
            vec![
                hold(1, "12A", HoldStatus::Active, false, LOCKED_AT_2),
                hold(2, "12B", HoldStatus::Confirmed, false, booked),
                hold(3, "12C", HoldStatus::Released, false, LOCKED_AT_2),
            ]
        };
        let read = |holds| OrderRead {
            order: Some(order(holds)),
            pending: Vec::new(),
        };
        let closed = |decided: Result<Decided<Release>, InventoryError>| match decided {
            Ok(Decided::Apply(transition, _)) => transition.close.map(|c| c.lock_ids),
            _ => None,
        };

        let failed = decide_release(&release(ReleaseReason::PaymentFailed), read(holds()));
        let cancelled = decide_release(&release(ReleaseReason::OrderCancelled), read(holds()));
        let nothing = decide_release(&release(ReleaseReason::PaymentFailed), read(Vec::new()));

        assert_eq!(closed(failed), Some(vec![1]));
        assert_eq!(closed(cancelled), Some(vec![1, 2]));
        assert!(matches!(
            nothing,
            Ok(Decided::Done(Release::NothingHeld { .. }))
        ));
    }
}
