//! Every statement of the inventory, in one place. Enums cross the wire as text and ids as
//! uuid arrays, so no custom type is looked up and nothing is left prepared on the session
//! (RDS Proxy would pin it).
//!
//! Per-order transitions (confirm, release, expire) first lock the order's `reservations`
//! row, then its holds and seats: one order's transitions are serialized, and nobody waits
//! for an order row while holding seat rows, so they cannot deadlock.

/// Claims the order id and reads the flight and the seats `$filter` selects, with their
/// versions, in one round trip. No row back: the order was claimed before (a redelivery).
/// One row with `departed` NULL: no such flight. `seat_id` NULL: no seat matched.
/// `lapsed`: the seat's active hold is past its expiry, and may be taken once its holder
/// is expired.
macro_rules! claim_and_read {
    ($filter:literal) => {
        concat!(
            "
WITH claim AS (
    INSERT INTO reservations (order_id, flight_id, request_fingerprint)
    VALUES ($1, $2, $3)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING created_at
)
SELECT claim.created_at                         AS decided_at,
       flight.departure_utc <= claim.created_at AS departed,
       seat.seat_id, seat.seat_number, seat.status, seat.version, seat.holder, seat.lapsed
FROM claim
LEFT JOIN flights AS flight
       ON flight.flight_id = $2
LEFT JOIN LATERAL (
    SELECT seat.seat_id, seat.seat_number, seat.status::text AS status, seat.version,
           hold.order_id AS holder, hold.expires_at <= claim.created_at AS lapsed
    FROM flight_seats AS seat
    LEFT JOIN inventory_locks AS hold
           ON hold.seat_id = seat.seat_id AND hold.status = 'ACTIVE'
    WHERE seat.flight_id = flight.flight_id
      AND ",
            $filter,
            "
) AS seat ON true
"
        )
    };
}

/// The requested seats ($4), whatever their state.
pub const CLAIM_AND_READ_SEATS: &str = claim_and_read!("seat.seat_number = ANY ($4::text[])");

/// For an any-seat order: every seat of the cabin ($4; any cabin when NULL) that is free,
/// or held by a hold past its expiry.
pub const CLAIM_AND_READ_FREE_SEATS: &str = claim_and_read!(
    "($4::text IS NULL OR seat.cabin = CAST($4::text AS cabin_class))
      AND (seat.status = 'AVAILABLE'
           OR (seat.status = 'LOCKED' AND hold.expires_at <= claim.created_at))"
);

/// Takes the seats at the versions read, holds them for the order, queues the outcome event
/// and records it as the order's outcome: all of it, or (a lost race: some seat changed
/// since it was read) none of it, and `all_taken` is false. The seat rows are locked in
/// seat_id order so that two orders never deadlock. With no seats, it records a failure
/// outcome and nothing else. `$lock` waits for a row another order is taking (explicit seats)
/// or skips it (any-seat orders, which then pick other seats).
macro_rules! take_and_record {
    ($lock:literal) => {
        concat!(
            "
WITH expected AS (
    SELECT seat_id, version
    FROM unnest($3::uuid[], $4::int[]) AS expected (seat_id, version)
),
taken AS (
    UPDATE flight_seats AS seat
    SET status = 'LOCKED', version = seat.version + 1, updated_at = now()
    FROM (
        SELECT locked.seat_id, expected.version
        FROM flight_seats AS locked
        JOIN expected USING (seat_id)
        ORDER BY locked.seat_id
        ",
            $lock,
            "
    ) AS wanted
    WHERE seat.seat_id = wanted.seat_id
      AND seat.version = wanted.version
      AND seat.status = 'AVAILABLE'
    RETURNING seat.seat_id, seat.version
),
complete AS (
    SELECT count(*) = cardinality($3::uuid[]) AS all_taken FROM taken
),
held AS (
    INSERT INTO inventory_locks (order_id, seat_id, flight_id, seat_version, created_at, expires_at)
    SELECT $1, taken.seat_id, $2, taken.version, now(), $5
    FROM taken, complete
    WHERE complete.all_taken
),
queued AS (
    INSERT INTO outbox (event_id, order_id, detail_type, detail)
    SELECT $6, $1, $7, $8
    FROM complete
    WHERE complete.all_taken
),
decided AS (
    UPDATE reservations
    SET outcome_event_id = $6, outcome_detail_type = $7, outcome_detail = $8
    FROM complete
    WHERE reservations.order_id = $1 AND complete.all_taken
)
SELECT all_taken, ARRAY(SELECT seat_id FROM taken) AS taken_seat_ids FROM complete
"
        )
    };
}

pub const TAKE_AND_RECORD_WAITING: &str = take_and_record!("FOR UPDATE OF locked");
pub const TAKE_AND_RECORD_SKIPPING: &str = take_and_record!("FOR UPDATE OF locked SKIP LOCKED");

/// The outcome an order got the first time, and what it asked for.
pub const EARLIER_OUTCOME: &str = "
SELECT request_fingerprint, outcome_event_id, outcome_detail_type, outcome_detail
FROM reservations
WHERE order_id = $1
";

/// Locks one order for a transition, with the answer its payment already got, if any.
pub const LOCK_ORDER: &str = "
SELECT flight_id, booking_event_id, booking_detail_type, booking_detail
FROM reservations
WHERE order_id = $1
FOR UPDATE
";

/// Locks orders whose holds are about to be expired by another order (lazy expiry).
pub const LOCK_ORDERS: &str = "
SELECT order_id
FROM reservations
WHERE order_id = ANY ($1::uuid[])
ORDER BY order_id
FOR UPDATE
";

/// The orders with holds past their expiry, oldest first, skipping orders another
/// transaction is working on (it will decide them).
pub const LOCK_ORDERS_WITH_LAPSED_HOLDS: &str = "
SELECT order_id
FROM reservations
WHERE order_id IN (
    SELECT order_id
    FROM inventory_locks
    WHERE status = 'ACTIVE' AND expires_at <= now()
    GROUP BY order_id
    ORDER BY min(expires_at)
    LIMIT $1
)
FOR UPDATE SKIP LOCKED
";

/// Every hold of the order, with the state of its seat.
pub const ORDER_HOLDS: &str = "
SELECT hold.seat_id, hold.seat_version, hold.status::text AS hold_status,
       hold.expires_at <= now() AS lapsed,
       seat.seat_number, seat.status::text AS seat_status, seat.version
FROM inventory_locks AS hold
JOIN flight_seats AS seat USING (seat_id)
WHERE hold.order_id = $1
ORDER BY seat.seat_number
";

/// Sells the order's active holds: each seat must still be LOCKED at the version its hold
/// took it at. The hold keeps the sold version, which a later cancellation must match.
pub const BOOK: &str = "
WITH held AS (
    SELECT lock_id, seat_id, seat_version
    FROM inventory_locks
    WHERE order_id = $1 AND status = 'ACTIVE' AND expires_at > now()
),
sold AS (
    UPDATE flight_seats AS seat
    SET status = 'BOOKED', version = seat.version + 1, updated_at = now()
    FROM held
    WHERE seat.seat_id = held.seat_id
      AND seat.version = held.seat_version
      AND seat.status = 'LOCKED'
    RETURNING held.lock_id, seat.seat_id, seat.seat_number, seat.version
),
confirmed AS (
    UPDATE inventory_locks AS hold
    SET status = 'CONFIRMED', seat_version = sold.version, closed_at = now()
    FROM sold
    WHERE hold.lock_id = sold.lock_id
)
SELECT seat_id, seat_number, version FROM sold ORDER BY seat_number
";

/// Closes the holds of the orders ($1) with status $2 (RELEASED or EXPIRED): the active
/// ones, the confirmed ones too when $3 (a cancelled sale), only those past expiry when $4.
/// Their seats go back on sale at a new version, each only if it is still at the version
/// its hold recorded. `closing` counts the holds closed: every one must free a seat.
pub const FREE_HOLDS: &str = "
WITH closing AS (
    SELECT lock_id, order_id, seat_id, seat_version
    FROM inventory_locks
    WHERE order_id = ANY ($1::uuid[])
      AND (status = 'ACTIVE' OR ($3 AND status = 'CONFIRMED'))
      AND (NOT $4 OR expires_at <= now())
    FOR UPDATE
),
closed AS (
    UPDATE inventory_locks AS hold
    SET status = CAST($2::text AS hold_status), closed_at = now()
    FROM closing
    WHERE hold.lock_id = closing.lock_id
),
freed AS (
    UPDATE flight_seats AS seat
    SET status = 'AVAILABLE', version = seat.version + 1, updated_at = now()
    FROM closing
    WHERE seat.seat_id = closing.seat_id
      AND seat.version = closing.seat_version
      AND seat.status IN ('LOCKED', 'BOOKED')
    RETURNING closing.order_id, seat.flight_id, seat.seat_id, seat.seat_number, seat.version
)
SELECT counted.closing, freed.order_id, freed.flight_id, freed.seat_id, freed.seat_number,
       freed.version
FROM (SELECT count(*) AS closing FROM closing) AS counted
LEFT JOIN freed ON true
ORDER BY freed.order_id, freed.seat_number
";

/// Queues events in the outbox, in the caller's transaction.
pub const QUEUE_EVENTS: &str = "
INSERT INTO outbox (event_id, order_id, detail_type, detail)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
";

/// Queues the answer to the order's payment and keeps it with the order.
pub const RECORD_BOOKING_ANSWER: &str = "
WITH queued AS (
    INSERT INTO outbox (event_id, order_id, detail_type, detail)
    VALUES ($2, $1, $3, $4)
)
UPDATE reservations
SET booking_event_id = $2, booking_detail_type = $3, booking_detail = $4
WHERE order_id = $1
";
