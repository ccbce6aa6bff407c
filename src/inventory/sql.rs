//! Every statement of the reservation path, in one place. Enums cross the wire as text
//! and ids as uuid arrays, so no custom type is looked up and nothing is left prepared
//! on the session (RDS Proxy would pin it).

/// Claims the order id and reads the flight and the requested seats with their versions,
/// in one round trip. No row back: the order was claimed before (a redelivery).
/// One row with `departed` NULL: no such flight. `seat_id` NULL: none of the seats exist.
pub const CLAIM_AND_READ: &str = "
WITH claim AS (
    INSERT INTO reservations (order_id, flight_id, request_fingerprint)
    VALUES ($1, $2, $3)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING created_at
)
SELECT claim.created_at                      AS decided_at,
       flight.departure_utc <= claim.created_at AS departed,
       seat.seat_id,
       seat.seat_number,
       seat.status::text                     AS status,
       seat.version
FROM claim
LEFT JOIN flights AS flight
       ON flight.flight_id = $2
LEFT JOIN flight_seats AS seat
       ON seat.flight_id = flight.flight_id
      AND seat.seat_number = ANY ($4::text[])
";

/// Takes the seats at the versions read, holds them for the order, queues the outcome
/// event and records it as the order's outcome: all of it, or (a lost race: some seat
/// changed since it was read) none of it, and `all_taken` is false.
/// The seat rows are locked in seat_id order so that two orders never deadlock.
/// With no seats, it records a failure outcome and nothing else.
pub const TAKE_AND_RECORD: &str = "
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
        FOR UPDATE OF locked
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
SELECT all_taken FROM complete
";

/// The outcome an order got the first time, and what it asked for.
pub const EARLIER_OUTCOME: &str = "
SELECT request_fingerprint, outcome_event_id, outcome_detail_type, outcome_detail
FROM reservations
WHERE order_id = $1
";
