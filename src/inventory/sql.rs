//! Every statement of the inventory, in one place. Enums cross the wire as text and ids as
//! uuid arrays, so no custom type is looked up and nothing is left prepared on the session
//! (RDS Proxy would pin it).
//!
//! Per-order transitions (confirm, release, expire) first lock the order's `reservations`
//! row, then its holds and seats: one order's transitions are serialized, and nobody waits
//! for an order row while holding seat rows. Every statement that changes seats locks them
//! in `seat_id` order first, so two of them never wait on each other in a cycle.

/// The optimistic read, outside any transaction: the order's earlier outcome if it has one
/// (a redelivery), the flight, and the seats `$filter` selects with their versions, in one
/// round trip. Always at least one row. `departed` NULL: no such flight. `seat_id` NULL: no
/// seat matched. `lapsed`: the seat's active hold is past expiry and its holder may be
/// expired. `read_at` is the decision time: holds last the TTL from it.
macro_rules! read {
    ($filter:literal) => {
        concat!(
            "
SELECT now()                           AS read_at,
       flight.departure_utc <= now()   AS departed,
       earlier.request_fingerprint, earlier.outcome_event_id,
       earlier.outcome_detail_type, earlier.outcome_detail,
       seat.seat_id, seat.seat_number, seat.status, seat.version, seat.holder, seat.lapsed
FROM (VALUES (1)) AS always (one)
LEFT JOIN reservations AS earlier
       ON earlier.order_id = $1
LEFT JOIN flights AS flight
       ON flight.flight_id = $2
LEFT JOIN LATERAL (
    SELECT seat.seat_id, seat.seat_number, seat.status::text AS status, seat.version,
           hold.order_id AS holder, hold.expires_at <= now() AS lapsed
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

/// The requested seats ($3), whatever their state.
pub const READ_SEATS: &str = read!("seat.seat_number = ANY ($3::text[])");

/// For an any-seat order: every seat of the cabin ($3; any cabin when NULL) that is free,
/// or held by a hold past its expiry.
pub const READ_FREE_SEATS: &str = read!(
    "($3::text IS NULL OR seat.cabin = CAST($3::text AS cabin_class))
      AND (seat.status = 'AVAILABLE'
           OR (seat.status = 'LOCKED' AND hold.expires_at <= now()))"
);

/// The decision, written in one autocommit statement, all of it or none of it. It locks
/// the seats in seat_id order (two orders never deadlock), checks every one is still
/// AVAILABLE at the version read, and only then claims the order id (recording its
/// outcome), takes the seats, holds them and queues the outcome event. Row locks last only
/// as long as this statement; no transaction stays open across round trips.
/// `all_free` false: a seat changed since it was read (`lost` lists them), nothing written.
/// `claimed` false with `all_free`: another delivery of the order decided first.
/// With no seats it records a refusal. `$lock` waits for a row another order is taking
/// (explicit seats) or skips it (any-seat orders, which then pick other seats).
macro_rules! decide {
    ($lock:literal) => {
        concat!(
            "
WITH expected AS (
    SELECT seat_id, version
    FROM unnest($3::uuid[], $4::int[]) AS expected (seat_id, version)
),
locked AS (
    SELECT seat.seat_id, seat.version, seat.status
    FROM flight_seats AS seat
    JOIN expected USING (seat_id)
    ORDER BY seat.seat_id
    ",
            $lock,
            "
),
lost AS (
    SELECT expected.seat_id
    FROM expected
    LEFT JOIN locked USING (seat_id)
    WHERE locked.seat_id IS NULL
       OR locked.status <> 'AVAILABLE'
       OR locked.version <> expected.version
),
claim AS (
    INSERT INTO reservations (order_id, flight_id, request_fingerprint,
                              outcome_event_id, outcome_detail_type, outcome_detail)
    SELECT $1, $2, $10, $7, $8, $9
    WHERE NOT EXISTS (SELECT 1 FROM lost)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id
),
taken AS (
    UPDATE flight_seats AS seat
    SET status = 'LOCKED', version = seat.version + 1, updated_at = now()
    FROM expected
    WHERE seat.seat_id = expected.seat_id
      AND seat.version = expected.version
      AND seat.status = 'AVAILABLE'
      AND EXISTS (SELECT 1 FROM claim)
    RETURNING seat.seat_id, seat.version
),
held AS (
    INSERT INTO inventory_locks (order_id, seat_id, flight_id, seat_version, created_at, expires_at)
    SELECT $1, taken.seat_id, $2, taken.version, $5, $6
    FROM taken
),
queued AS (
    INSERT INTO outbox (event_id, order_id, detail_type, detail)
    SELECT $7, $1, $8, $9
    FROM claim
)
SELECT NOT EXISTS (SELECT 1 FROM lost)   AS all_free,
       EXISTS (SELECT 1 FROM claim)      AS claimed,
       (SELECT count(*) FROM taken)      AS taken,
       ARRAY(SELECT seat_id FROM lost)   AS lost
"
        )
    };
}

pub const DECIDE_WAITING: &str = decide!("FOR UPDATE OF seat");
pub const DECIDE_SKIPPING: &str = decide!("FOR UPDATE OF seat SKIP LOCKED");

/// Locks one order for a transition, with the answer its payment already got, if any.
pub const LOCK_ORDER: &str = "
SELECT flight_id, booking_event_id, booking_detail_type, booking_detail
FROM reservations
WHERE order_id = $1
FOR UPDATE
";

/// Claims the id of an order not seen yet for the payment or cancellation that came first:
/// no flight, and a fingerprint no OrderCreated can match. Nothing when the order exists.
pub const CLOSE_UNKNOWN_ORDER: &str = "
INSERT INTO reservations (order_id, flight_id, request_fingerprint)
VALUES ($1, NULL, $2)
ON CONFLICT (order_id) DO NOTHING
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
locked AS (
    SELECT seat.seat_id
    FROM flight_seats AS seat
    JOIN held USING (seat_id)
    ORDER BY seat.seat_id
    FOR UPDATE OF seat
),
sold AS (
    UPDATE flight_seats AS seat
    SET status = 'BOOKED', version = seat.version + 1, updated_at = now()
    FROM held
    JOIN locked USING (seat_id)
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
locked AS (
    SELECT seat.seat_id
    FROM flight_seats AS seat
    JOIN closing USING (seat_id)
    ORDER BY seat.seat_id
    FOR UPDATE OF seat
),
freed AS (
    UPDATE flight_seats AS seat
    SET status = 'AVAILABLE', version = seat.version + 1, updated_at = now()
    FROM closing
    JOIN locked USING (seat_id)
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
