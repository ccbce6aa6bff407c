//! After a hold: selling it (confirm), giving it back (release), and expiring it when
//! nobody paid. Each locks the order's `reservations` row first, so one order's transitions
//! never interleave, and a confirmation racing an expiry ends one way or the other.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{CLOSED_BEFORE_RESERVED, InventoryError, queue, sql, stored_event};
use crate::db::statement;
use crate::domain::{
    BookingFailureReason, FlightId, HeldSeat, OrderId, OutgoingEvent, ReleaseReason, SeatBooked,
    SeatBookingFailed, SeatReleased,
};
use crate::inbound::{ConfirmOrder, ReleaseOrder};

/// The answer to a payment: `SeatBooked` or `SeatBookingFailed`, and the `SeatReleased`
/// of holds found expired on the way.
#[derive(Debug, PartialEq, Eq)]
pub struct Confirmation {
    pub answer: OutgoingEvent,
    pub released: Vec<OutgoingEvent>,
}

/// What a release did: the `SeatReleased` events it queued, or nothing to release.
#[derive(Debug, PartialEq, Eq)]
pub enum Release {
    Released(Vec<OutgoingEvent>),
    NothingHeld,
}

/// How often a transition starts over when its order was being created at that moment.
const ORDER_ATTEMPTS: usize = 3;

/// Locks the order's row within `tx`. An order not seen yet is first claimed as closed
/// `by` this event, so that its late OrderCreated holds nothing. `None`: the order was
/// being created at that very moment; start over.
async fn lock_order(
    tx: &mut PgConnection,
    order_id: Uuid,
    by: &str,
) -> Result<Option<PgRow>, sqlx::Error> {
    let lock = || statement(sql::LOCK_ORDER).bind(order_id);
    if let Some(order) = lock().fetch_optional(&mut *tx).await? {
        return Ok(Some(order));
    }
    let claimed = statement(sql::CLOSE_UNKNOWN_ORDER)
        .bind(order_id)
        .bind(format!("{CLOSED_BEFORE_RESERVED}{by}"))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if claimed == 0 {
        return Ok(None);
    }
    lock().fetch_optional(&mut *tx).await
}

/// `PaymentSucceeded`: every active hold of the order becomes a sale, or none does.
pub async fn confirm(
    pool: &PgPool,
    request: &ConfirmOrder,
) -> Result<Confirmation, InventoryError> {
    let order_id = request.order_id.as_uuid();
    for _ in 0..ORDER_ATTEMPTS {
        let mut tx = pool.begin().await?;
        match lock_order(&mut tx, order_id, "PaymentSucceeded").await? {
            Some(order) => return confirm_locked(tx, request, order).await,
            None => tx.rollback().await?,
        }
    }
    Err(InventoryError::OrderContention(order_id))
}

async fn confirm_locked(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    request: &ConfirmOrder,
    order: PgRow,
) -> Result<Confirmation, InventoryError> {
    let order_id = request.order_id.as_uuid();
    let earlier = stored_event(
        order_id,
        order.try_get("booking_event_id")?,
        order.try_get("booking_detail_type")?,
        order.try_get("booking_detail")?,
    )?;
    if let Some(answer) = earlier {
        tx.rollback().await?;
        return Ok(Confirmation {
            answer,
            released: Vec::new(),
        });
    }
    let flight_id: Option<Uuid> = order.try_get("flight_id")?;
    let holds = statement(sql::ORDER_HOLDS)
        .bind(order_id)
        .try_map(|row: PgRow| Hold::from_row(&row))
        .fetch_all(&mut *tx)
        .await?;

    let mut released = Vec::new();
    let answer = if holds.is_empty() {
        booking_failed(request, Uuid::new_v4(), BookingFailureReason::HoldNotFound)?
    } else if let (Some(flight_id), true) = (flight_id, holds.iter().all(Hold::still_ours)) {
        let sold = statement(sql::BOOK)
            .bind(order_id)
            .try_map(|row: PgRow| held_seat(&row))
            .fetch_all(&mut *tx)
            .await?;
        if sold.len() != holds.len() {
            return Err(InventoryError::Inconsistent(
                order_id,
                "a held seat changed while the order was locked",
            ));
        }
        SeatBooked {
            event_id: Uuid::new_v4(),
            order_id: request.order_id,
            flight_id: FlightId::from(flight_id),
            seats: sold,
            causation_id: request.causation_id.clone(),
        }
        .to_event()?
    } else {
        // Past expiry or released: never sell. Lapsed holds are released right away.
        let freed = free_holds(
            &mut tx,
            &[order_id],
            ReleaseReason::HoldExpired,
            &request.causation_id,
        )
        .await?;
        released = freed.events;
        booking_failed(request, Uuid::new_v4(), BookingFailureReason::HoldExpired)?
    };
    statement(sql::RECORD_BOOKING_ANSWER)
        .bind(order_id)
        .bind(answer.event_id)
        .bind(answer.detail_type.as_str())
        .bind(&answer.detail)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Confirmation { answer, released })
}

fn booking_failed(
    request: &ConfirmOrder,
    event_id: Uuid,
    reason: BookingFailureReason,
) -> Result<OutgoingEvent, serde_json::Error> {
    let message = match reason {
        BookingFailureReason::HoldExpired => {
            format!("the seats of order {} are no longer held", request.order_id)
        }
        BookingFailureReason::HoldNotFound => {
            format!("order {} holds no seats here", request.order_id)
        }
    };
    SeatBookingFailed {
        event_id,
        order_id: request.order_id,
        reason,
        message,
        causation_id: request.causation_id.clone(),
    }
    .to_event()
}

/// One hold of an order, as [`sql::ORDER_HOLDS`] reads it.
struct Hold {
    hold_status: String,
    lapsed: bool,
    seat_status: String,
    seat_version: i32,
    hold_version: i32,
}

impl Hold {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            hold_status: row.try_get("hold_status")?,
            lapsed: row.try_get("lapsed")?,
            seat_status: row.try_get("seat_status")?,
            seat_version: row.try_get("version")?,
            hold_version: row.try_get("seat_version")?,
        })
    }

    /// Active, within its time, and the seat still at the version this hold took it at:
    /// the proof that selling it cannot sell another order's seat.
    fn still_ours(&self) -> bool {
        self.hold_status == "ACTIVE"
            && !self.lapsed
            && self.seat_status == "LOCKED"
            && self.seat_version == self.hold_version
    }
}

fn held_seat(row: &PgRow) -> Result<HeldSeat, sqlx::Error> {
    Ok(HeldSeat {
        seat_id: row.try_get("seat_id")?,
        seat_number: super::seat_number(row, "seat_number")?,
        version: row.try_get("version")?,
    })
}

/// `PaymentFailed` / `OrderCancelled`: active holds go back on sale; a cancellation also
/// returns sold seats. Nothing held is a no-op.
pub async fn release(pool: &PgPool, request: &ReleaseOrder) -> Result<Release, InventoryError> {
    let order_id = request.order_id.as_uuid();
    let by = match request.reason {
        ReleaseReason::OrderCancelled => "OrderCancelled",
        ReleaseReason::PaymentFailed | ReleaseReason::HoldExpired => "PaymentFailed",
    };
    for _ in 0..ORDER_ATTEMPTS {
        let mut tx = pool.begin().await?;
        if lock_order(&mut tx, order_id, by).await?.is_none() {
            tx.rollback().await?;
            continue;
        }
        let freed = free_holds(&mut tx, &[order_id], request.reason, &request.causation_id).await?;
        // Committed either way: an order not seen before stays closed.
        tx.commit().await?;
        return Ok(if freed.events.is_empty() {
            Release::NothingHeld
        } else {
            Release::Released(freed.events)
        });
    }
    Err(InventoryError::OrderContention(order_id))
}

/// Orders per sweeper transaction, and transactions per run: a run is bounded.
const EXPIRY_BATCH: i64 = 100;
const EXPIRY_BATCHES_PER_RUN: usize = 10;

/// The sweeper: releases every hold past its expiry, a bounded batch of orders per
/// transaction, skipping orders another transaction is deciding right now.
pub async fn expire_lapsed_holds(
    pool: &PgPool,
    causation_id: &str,
) -> Result<Vec<OutgoingEvent>, InventoryError> {
    let mut released = Vec::new();
    for _ in 0..EXPIRY_BATCHES_PER_RUN {
        let mut tx = pool.begin().await?;
        let orders: Vec<Uuid> = statement(sql::LOCK_ORDERS_WITH_LAPSED_HOLDS)
            .bind(EXPIRY_BATCH)
            .try_map(|row: PgRow| row.try_get("order_id"))
            .fetch_all(&mut *tx)
            .await?;
        if orders.is_empty() {
            tx.rollback().await?;
            break;
        }
        let freed = free_holds(&mut tx, &orders, ReleaseReason::HoldExpired, causation_id).await?;
        tx.commit().await?;
        released.extend(freed.events);
        if (orders.len() as i64) < EXPIRY_BATCH {
            break;
        }
    }
    Ok(released)
}

/// Lazy expiry, for a reservation that found seats held past their expiry: locks the
/// holding orders (waiting, unlike the sweeper) and releases their lapsed holds.
pub(super) async fn expire_orders(
    tx: &mut PgConnection,
    orders: &[Uuid],
    causation_id: &str,
) -> Result<Freed, InventoryError> {
    statement(sql::LOCK_ORDERS)
        .bind(orders)
        .execute(&mut *tx)
        .await?;
    free_holds(tx, orders, ReleaseReason::HoldExpired, causation_id).await
}

/// The `SeatReleased` queued for each order whose seats were given back.
pub(super) struct Freed {
    pub events: Vec<OutgoingEvent>,
}

/// Closes the orders' holds for `reason` and queues one `SeatReleased` per order. Expiry
/// closes only active holds past expiry; a cancellation also closes confirmed ones.
async fn free_holds(
    tx: &mut PgConnection,
    orders: &[Uuid],
    reason: ReleaseReason,
    causation_id: &str,
) -> Result<Freed, InventoryError> {
    let rows = statement(sql::FREE_HOLDS)
        .bind(orders)
        .bind(reason.closing_status())
        .bind(reason == ReleaseReason::OrderCancelled)
        .bind(reason == ReleaseReason::HoldExpired)
        .fetch_all(&mut *tx)
        .await?;
    let closing: i64 = match rows.first() {
        Some(row) => row.try_get("closing")?,
        None => 0,
    };
    let mut by_order: Vec<(Uuid, Uuid, Vec<HeldSeat>)> = Vec::new();
    for row in &rows {
        let Some(order_id) = row.try_get::<Option<Uuid>, _>("order_id")? else {
            continue;
        };
        let seat = held_seat(row)?;
        match by_order.last_mut() {
            Some((last, _, seats)) if *last == order_id => seats.push(seat),
            _ => by_order.push((order_id, row.try_get("flight_id")?, vec![seat])),
        }
    }
    let freed_count: usize = by_order.iter().map(|(_, _, seats)| seats.len()).sum();
    if freed_count as i64 != closing {
        let first = orders.first().copied().unwrap_or_default();
        return Err(InventoryError::Inconsistent(
            first,
            "a closed hold's seat was not at the hold's version",
        ));
    }
    let mut events = Vec::with_capacity(by_order.len());
    for (order_id, flight_id, order_seats) in by_order {
        let released = SeatReleased {
            event_id: Uuid::new_v4(),
            order_id: OrderId::from(order_id),
            flight_id: FlightId::from(flight_id),
            seats: order_seats,
            reason,
            causation_id: causation_id.to_owned(),
        };
        events.push((order_id, released.to_event()?));
    }
    queue(tx, &events).await?;
    Ok(Freed {
        events: events.into_iter().map(|(_, event)| event).collect(),
    })
}
