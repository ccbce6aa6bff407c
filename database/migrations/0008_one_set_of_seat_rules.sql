-- One set of seat rules, each defined once, here, and used by every path that reads or
-- writes the seat state: reservation, any-seat picking, confirmation, release, expiry,
-- cancellation, retention and the seat map.
--
--   inventory_hold_lapsed      a hold has lapsed (ACTIVE and past its expiry)
--   inventory_flight_status    a flight is SCHEDULED (accepts holds), CANCELLED or DEPARTED
--   inventory_hold_may_become  an order's hold may move from one state to another
--   inventory_seat_standing    a seat is FREE, LAPSED (free once its holder is expired) or
--                              TAKEN; the seat map shows what a reservation would get
--
-- Every write re-checks the rules it depends on under the locks it takes, and a refused
-- write is read and decided again, like a lost race. The headline invariants are also
-- guarded by the database itself, whatever the code does: a hold's order and seat belong
-- to its flight (foreign keys), and no hold is taken or sold on a cancelled flight (a
-- trigger). A cancellation and a reservation of one flight serialize on the flight's seat
-- rows: a reservation locks its seats, then reads the flight; a cancellation marks the
-- flight, then locks every seat of it, so whichever commits second sees the other.

------------------------------------------------------------------------------------------
-- The rules.

CREATE FUNCTION inventory_hold_lapsed(status hold_status, expires_at timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT status = 'ACTIVE' AND expires_at <= now()
$$;

CREATE FUNCTION inventory_flight_status(state flight_state, departure_utc timestamptz)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN state = 'CANCELLED' THEN 'CANCELLED'
                WHEN departure_utc <= now() THEN 'DEPARTED'
                ELSE 'SCHEDULED' END
$$;

-- ACTIVE becomes CONFIRMED (sold), RELEASED or EXPIRED; a sale can only be RELEASED (a
-- cancellation). Nothing else moves: a closed hold stays closed.
CREATE FUNCTION inventory_hold_may_become(from_status hold_status, to_status hold_status)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT (from_status, to_status) IN (('ACTIVE', 'CONFIRMED'), ('ACTIVE', 'RELEASED'),
                                        ('ACTIVE', 'EXPIRED'), ('CONFIRMED', 'RELEASED'))
$$;

-- Every seat with its live claim (an active hold or a sale), if any, and its standing:
--   FREE    AVAILABLE and nobody's: a reservation takes it at its version;
--   LAPSED  held by a lapsed hold of an order that is not quarantined, at the version the
--           hold took it: a reservation expires that order first, then takes it;
--   TAKEN   anything else, including a seat set free behind a hold's back (the hold still
--           claims it) and a lapsed hold that cannot be closed consistently.
-- shownStatus is what the seat map shows: AVAILABLE for FREE and LAPSED, otherwise what
-- the claim says (LOCKED, BOOKED), or the seat's own status.
CREATE VIEW inventory_seat_standing AS
SELECT seat.seat_id,
       seat.flight_id,
       seat.seat_number,
       seat.cabin,
       seat.status,
       seat.version,
       claim.order_id AS holder,
       CASE
           WHEN claim.lock_id IS NULL AND seat.status = 'AVAILABLE' THEN 'FREE'
           WHEN seat.status = 'LOCKED'
                AND inventory_hold_lapsed(claim.status, claim.expires_at)
                AND claim.seat_version = seat.version
                AND holder.quarantined_at IS NULL THEN 'LAPSED'
           ELSE 'TAKEN'
       END AS standing,
       CASE
           WHEN claim.lock_id IS NULL AND seat.status = 'AVAILABLE' THEN 'AVAILABLE'
           WHEN seat.status = 'LOCKED'
                AND inventory_hold_lapsed(claim.status, claim.expires_at)
                AND claim.seat_version = seat.version
                AND holder.quarantined_at IS NULL THEN 'AVAILABLE'
           WHEN claim.status = 'CONFIRMED' THEN 'BOOKED'
           WHEN claim.status = 'ACTIVE' THEN 'LOCKED'
           ELSE seat.status::text
       END AS shown_status
FROM flight_seats AS seat
LEFT JOIN inventory_locks AS claim
       ON claim.seat_id = seat.seat_id AND claim.status IN ('ACTIVE', 'CONFIRMED')
LEFT JOIN reservations AS holder
       ON holder.order_id = claim.order_id;

------------------------------------------------------------------------------------------
-- The guards.

-- A hold's seat and order belong to its flight. The referenced unique indexes replace
-- two that served lookups by flight, and serve them still.
ALTER TABLE flight_seats
    ADD CONSTRAINT flight_seats_flight_id_seat_id_key UNIQUE (flight_id, seat_id);
ALTER TABLE reservations
    ADD CONSTRAINT reservations_flight_id_order_id_key UNIQUE (flight_id, order_id);
DROP INDEX reservations_by_flight;

-- A flight's holds by seat: the cascade of a seat's or a flight's deletion, and the
-- retention and cancellation of a flight, find them through it (no sequential scan). It
-- replaces the index of live holds by flight, which only cancellations read: one index
-- fewer to write on every hold taken, sold or closed.
CREATE INDEX inventory_locks_by_flight_seat ON inventory_locks (flight_id, seat_id);
DROP INDEX inventory_locks_live_by_flight;

ALTER TABLE inventory_locks
    DROP CONSTRAINT inventory_locks_seat_id_fkey,
    DROP CONSTRAINT inventory_locks_order_id_fkey,
    ADD CONSTRAINT inventory_locks_seat_of_flight_fkey
        FOREIGN KEY (flight_id, seat_id) REFERENCES flight_seats (flight_id, seat_id)
        ON DELETE CASCADE,
    ADD CONSTRAINT inventory_locks_order_of_flight_fkey
        FOREIGN KEY (order_id, flight_id) REFERENCES reservations (order_id, flight_id);

-- A new hold is ACTIVE; a hold moves only as inventory_hold_may_become says; and nothing
-- is held or sold on a cancelled flight.
CREATE FUNCTION inventory_guard_hold() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.status <> 'ACTIVE' THEN
        RAISE EXCEPTION 'a new hold must be ACTIVE, not %', NEW.status USING ERRCODE = 'IV002';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status IS DISTINCT FROM NEW.status
       AND NOT inventory_hold_may_become(OLD.status, NEW.status) THEN
        RAISE EXCEPTION 'hold % cannot move from % to %', OLD.lock_id, OLD.status, NEW.status
            USING ERRCODE = 'IV002';
    END IF;
    IF NEW.status IN ('ACTIVE', 'CONFIRMED')
       AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status)
       AND EXISTS (SELECT 1 FROM flights
                   WHERE flight_id = NEW.flight_id AND state = 'CANCELLED') THEN
        RAISE EXCEPTION 'flight % is cancelled: no hold or sale on it', NEW.flight_id
            USING ERRCODE = 'IV002';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER inventory_guard_hold
    BEFORE INSERT OR UPDATE OF status ON inventory_locks
    FOR EACH ROW EXECUTE FUNCTION inventory_guard_hold();

-- Unfinished outbox entries (pending or parked) of an order or a flight: retention must
-- find them without reading every published row.
DROP INDEX outbox_pending_by_order;
CREATE INDEX outbox_unfinished_by_order ON outbox (order_id)
    WHERE state IN ('PENDING', 'PARKED');
CREATE INDEX outbox_unfinished_by_flight ON outbox (flight_id)
    WHERE state IN ('PENDING', 'PARKED');
-- Orders that name no flight (closed before reserved, or refused for a flight that does
-- not exist), for retention.
CREATE INDEX reservations_flightless_by_age ON reservations (created_at)
    WHERE flight_id IS NULL;

-- Refusals for a flight that does not exist name no flight, so retention finds them.
UPDATE reservations AS r SET flight_id = NULL
WHERE r.flight_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM flights AS f WHERE f.flight_id = r.flight_id);

------------------------------------------------------------------------------------------
-- Reads, on the rules.

CREATE OR REPLACE FUNCTION inventory_holds_of(p_order uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(json_agg(json_build_object(
               'lockId', hold.lock_id,
               'seatId', hold.seat_id,
               'seatNumber', seat.seat_number,
               'flightId', hold.flight_id,
               'status', hold.status,
               'seatVersion', hold.seat_version,
               'lapsed', inventory_hold_lapsed(hold.status, hold.expires_at),
               'seat', json_build_object('status', seat.status, 'version', seat.version))
               ORDER BY seat.seat_number), '[]')
    FROM inventory_locks AS hold
    JOIN flight_seats AS seat USING (seat_id)
    WHERE hold.order_id = p_order
$$;

-- The optimistic read of an OrderCreated, no lock taken: the order's earlier outcome, if
-- it has one; the flight's status (null: no such flight); and the seats the request names
-- (p.seats), or for an any-seat order (p.anySeat) every seat of the cabin (p.cabin, any
-- when null) that is FREE or LAPSED, each with its standing and the lapsed holder.
CREATE OR REPLACE FUNCTION inventory_read_request(p jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    order_id_  uuid        := (p->>'orderId')::uuid;
    flight_id_ uuid        := (p->>'flightId')::uuid;
    cabin_     cabin_class := (p->>'cabin')::cabin_class;
    numbers    text[]      := ARRAY(SELECT jsonb_array_elements_text(COALESCE(p->'seats', '[]')));
    any_seat   boolean     := COALESCE((p->>'anySeat')::boolean, false);
    seats      json;
BEGIN
    SELECT json_agg(json_build_object(
               'seatId', seat.seat_id, 'seatNumber', seat.seat_number,
               'standing', seat.standing, 'version', seat.version,
               'lapsedHolder', CASE WHEN seat.standing = 'LAPSED' THEN seat.holder END))
    INTO seats
    FROM inventory_seat_standing AS seat
    WHERE seat.flight_id = flight_id_
      AND CASE WHEN any_seat
               THEN (cabin_ IS NULL OR seat.cabin = cabin_)
                    AND seat.status IN ('AVAILABLE', 'LOCKED')
                    AND seat.standing IN ('FREE', 'LAPSED')
               ELSE seat.seat_number = ANY (numbers) END;
    RETURN json_build_object(
        'readAt', now(),
        'flight', (SELECT inventory_flight_status(flight.state, flight.departure_utc)
                   FROM flights AS flight WHERE flight.flight_id = flight_id_),
        'earlier', (SELECT json_build_object(
                        'fingerprint', earlier.request_fingerprint,
                        'closedBy', earlier.closed_before_reserved_by,
                        'outcome', CASE WHEN earlier.outcome_event_id IS NOT NULL THEN
                                       json_build_object('eventId', earlier.outcome_event_id,
                                                         'detailType', earlier.outcome_detail_type,
                                                         'detail', earlier.outcome_detail) END)
                    FROM reservations AS earlier WHERE earlier.order_id = order_id_),
        'seats', COALESCE(seats, '[]'));
END $$;

-- The decision of an OrderCreated, all of it or none of it. It locks the seats p.seats
-- ([{seatId, version}]) in seat_id order, waiting for them, or skipping those another
-- order is taking (p.skipLocked); then re-checks, under those locks, every rule the
-- decision rested on: the flight still accepts holds, and every seat is of that flight,
-- FREE, at the version read. Only then it claims the order id with its outcome (p.event),
-- takes the seats, holds them from p.createdAt to p.expiresAt and queues the outcome.
-- With no seats it records a refusal (naming the flight only if it exists). Outcomes:
-- decided; lost (something read has changed: the seats named, or none when it was the
-- flight; nothing written); decidedElsewhere (another delivery of the order decided first).
-- If the seats taken differ from the seats decided, it fails with IV001 and commits nothing.
CREATE OR REPLACE FUNCTION inventory_reserve(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    order_id_  uuid   := (p->>'orderId')::uuid;
    flight_id_ uuid   := (p->>'flightId')::uuid;
    seat_ids   uuid[] := ARRAY(SELECT (seat->>'seatId')::uuid
                               FROM jsonb_array_elements(COALESCE(p->'seats', '[]')) AS seat);
    locked     uuid[];
    lost       uuid[];
    taken      integer;
BEGIN
    PERFORM inventory_begin(p);
    IF cardinality(seat_ids) > 0 THEN
        IF (p->>'skipLocked')::boolean THEN
            locked := ARRAY(SELECT seat_id FROM flight_seats WHERE seat_id = ANY (seat_ids)
                            ORDER BY seat_id FOR UPDATE SKIP LOCKED);
        ELSE
            locked := ARRAY(SELECT seat_id FROM flight_seats WHERE seat_id = ANY (seat_ids)
                            ORDER BY seat_id FOR UPDATE);
        END IF;
        -- Read after the seats are locked: a cancellation committed before this sees no
        -- hold of ours, so we must see it.
        IF NOT EXISTS (SELECT 1 FROM flights AS flight
                       WHERE flight.flight_id = flight_id_
                         AND inventory_flight_status(flight.state, flight.departure_utc) = 'SCHEDULED') THEN
            RETURN json_build_object('outcome', 'lost', 'lost', '[]'::json);
        END IF;
        lost := ARRAY(
            SELECT expected."seatId"
            FROM jsonb_to_recordset(p->'seats') AS expected ("seatId" uuid, version integer)
            LEFT JOIN inventory_seat_standing AS seat
                   ON seat.seat_id = expected."seatId" AND seat.seat_id = ANY (locked)
            WHERE seat.seat_id IS NULL
               OR seat.flight_id <> flight_id_
               OR seat.standing <> 'FREE'
               OR seat.version <> expected.version);
        IF cardinality(lost) > 0 THEN
            RETURN json_build_object('outcome', 'lost', 'lost', lost);
        END IF;
    ELSE
        flight_id_ := (SELECT flight_id FROM flights WHERE flight_id = flight_id_);
    END IF;

    INSERT INTO reservations (order_id, flight_id, request_fingerprint,
                              outcome_event_id, outcome_detail_type, outcome_detail)
    VALUES (order_id_, flight_id_, p->>'fingerprint',
            (p#>>'{event,eventId}')::uuid, p#>>'{event,detailType}', p#>>'{event,detail}')
    ON CONFLICT (order_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN json_build_object('outcome', 'decidedElsewhere');
    END IF;
    IF cardinality(seat_ids) = 0 THEN
        PERFORM inventory_queue(order_id_, jsonb_build_array(p->'event'));
        RETURN json_build_object('outcome', 'decided');
    END IF;

    WITH taken_seats AS (
        UPDATE flight_seats AS seat
        SET status = 'LOCKED', version = seat.version + 1, updated_at = now()
        FROM jsonb_to_recordset(p->'seats') AS expected ("seatId" uuid, version integer)
        WHERE seat.seat_id = expected."seatId"
          AND seat.version = expected.version
          AND seat.status = 'AVAILABLE'
        RETURNING seat.seat_id, seat.version
    )
    INSERT INTO inventory_locks (order_id, seat_id, flight_id, seat_version, created_at, expires_at)
    SELECT order_id_, taken_seats.seat_id, flight_id_, taken_seats.version,
           (p->>'createdAt')::timestamptz, (p->>'expiresAt')::timestamptz
    FROM taken_seats;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF taken <> cardinality(seat_ids) THEN
        RAISE EXCEPTION 'order %: % of % decided seats were taken', order_id_, taken, cardinality(seat_ids)
            USING ERRCODE = 'IV001';
    END IF;

    PERFORM inventory_queue(order_id_, jsonb_build_array(p->'event'));
    RETURN json_build_object('outcome', 'decided');
END $$;

-- The orders with lapsed holds, oldest first, each as inventory_read_order reads it: at
-- most p.limit of them, or those of p.orderIds (lazy expiry). Never a quarantined order.
CREATE OR REPLACE FUNCTION inventory_read_lapsed(p jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    result json;
BEGIN
    IF p ? 'orderIds' THEN
        SELECT COALESCE(json_agg(json_build_object(
                   'orderId', r.order_id, 'flightId', r.flight_id, 'closedBy', r.closed_before_reserved_by,
                   'quarantined', false, 'booking', NULL,
                   'holds', inventory_holds_of(r.order_id)) ORDER BY r.order_id), '[]')
        INTO result
        FROM reservations AS r
        WHERE r.order_id IN (SELECT value::uuid FROM jsonb_array_elements_text(p->'orderIds'))
          AND r.quarantined_at IS NULL;
    ELSE
        SELECT COALESCE(json_agg(json_build_object(
                   'orderId', r.order_id, 'flightId', r.flight_id, 'closedBy', r.closed_before_reserved_by,
                   'quarantined', false, 'booking', NULL,
                   'holds', inventory_holds_of(r.order_id)) ORDER BY lapsed.first_expiry), '[]')
        INTO result
        FROM (
            SELECT hold.order_id, min(hold.expires_at) AS first_expiry
            FROM inventory_locks AS hold
            WHERE inventory_hold_lapsed(hold.status, hold.expires_at)
              -- The few quarantined orders, through their own index.
              AND NOT EXISTS (SELECT 1 FROM reservations AS set_aside
                              WHERE set_aside.order_id = hold.order_id
                                AND set_aside.quarantined_at IS NOT NULL)
            GROUP BY hold.order_id
            ORDER BY first_expiry
            LIMIT (p->>'limit')::integer
        ) AS lapsed
        JOIN reservations AS r USING (order_id);
    END IF;
    RETURN result;
END $$;

-- One transition of one order, decided from inventory_read_order: applied only if the
-- order still is as read and every rule it rests on still holds, all of it or none of it.
--   p.orderId; p.wait: wait for the order's row lock, or answer busy (the sweeper).
--   p.claimClosedBy: the read found no order; claim it closed by this event.
--   p.seen [{lockId, status}]: every hold of the order as read.
--   p.close {lockIds, as}: holds to close (RELEASED or EXPIRED); their seats go back on sale.
--   p.book [lockIds]: holds to sell. p.booking {eventId, detailType, detail}: the payment's
--   answer, kept with the order. p.events: queued to the outbox.
-- Re-checked under the order's and the seats' locks: the holds are the order's and as
-- read; each may become what it is to become; a hold expired has lapsed; a hold sold has
-- not, and its flight is not cancelled; the order is not quarantined.
-- Outcomes: applied; changed (read again); busy; quarantined (a seat to free or sell is
-- not at the version its hold recorded: the order is set aside, nothing else written).
-- A close or sale that changes other rows than decided fails with IV001, commits nothing.
CREATE OR REPLACE FUNCTION inventory_transition(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    order_id_   uuid     := (p->>'orderId')::uuid;
    close_ids   bigint[] := ARRAY(SELECT value::bigint
                                  FROM jsonb_array_elements_text(COALESCE(p#>'{close,lockIds}', '[]')));
    close_as    hold_status := (p#>>'{close,as}')::hold_status;
    book_ids    bigint[] := ARRAY(SELECT value::bigint
                                  FROM jsonb_array_elements_text(COALESCE(p->'book', '[]')));
    order_row   reservations%ROWTYPE;
    changed     integer;
BEGIN
    PERFORM inventory_begin(p);
    IF (p->>'wait')::boolean THEN
        SELECT * INTO order_row FROM reservations WHERE order_id = order_id_ FOR UPDATE;
    ELSE
        SELECT * INTO order_row FROM reservations WHERE order_id = order_id_ FOR UPDATE SKIP LOCKED;
        IF NOT FOUND AND EXISTS (SELECT 1 FROM reservations WHERE order_id = order_id_) THEN
            RETURN json_build_object('outcome', 'busy');
        END IF;
    END IF;

    IF order_row.order_id IS NULL THEN
        IF p->>'claimClosedBy' IS NULL THEN
            RETURN json_build_object('outcome', 'changed');
        END IF;
        INSERT INTO reservations (order_id, flight_id, closed_before_reserved_by)
        VALUES (order_id_, NULL, (p->>'claimClosedBy')::order_closer)
        ON CONFLICT (order_id) DO NOTHING;
        IF NOT FOUND THEN
            -- Its OrderCreated was deciding at this very moment.
            RETURN json_build_object('outcome', 'changed');
        END IF;
    ELSIF p->>'claimClosedBy' IS NOT NULL
          OR (p->'booking' IS NOT NULL AND jsonb_typeof(p->'booking') = 'object'
              AND order_row.booking_event_id IS NOT NULL) THEN
        RETURN json_build_object('outcome', 'changed');
    ELSIF order_row.quarantined_at IS NOT NULL THEN
        RETURN json_build_object('outcome', 'quarantined', 'reason', order_row.quarantine_reason);
    END IF;

    -- Nothing changed since the read: the same holds, in the same states; and what is to
    -- be closed or sold is the order's own.
    IF (SELECT count(*) FROM inventory_locks WHERE order_id = order_id_)
           <> jsonb_array_length(COALESCE(p->'seen', '[]'))
       OR EXISTS (
           SELECT 1
           FROM jsonb_to_recordset(COALESCE(p->'seen', '[]')) AS seen ("lockId" bigint, status hold_status)
           LEFT JOIN inventory_locks AS hold
                  ON hold.lock_id = seen."lockId" AND hold.order_id = order_id_
           WHERE hold.lock_id IS NULL OR hold.status <> seen.status)
       OR (SELECT count(*) FROM inventory_locks
           WHERE lock_id = ANY (close_ids || book_ids) AND order_id = order_id_)
           <> cardinality(close_ids || book_ids) THEN
        RETURN json_build_object('outcome', 'changed');
    END IF;

    -- Seats in seat_id order, after the order's row: nobody waits for an order row while
    -- holding seat rows, and two transitions never wait on each other in a cycle.
    PERFORM 1 FROM flight_seats
    WHERE seat_id IN (SELECT seat_id FROM inventory_locks WHERE lock_id = ANY (close_ids || book_ids))
    ORDER BY seat_id
    FOR UPDATE;

    -- The rules, under those locks. A cancellation committed before the seats were locked
    -- is seen here (it locks every seat of the flight after marking it).
    IF EXISTS (SELECT 1 FROM inventory_locks AS hold
               WHERE hold.lock_id = ANY (close_ids)
                 AND (NOT inventory_hold_may_become(hold.status, close_as)
                      OR (close_as = 'EXPIRED'
                          AND NOT inventory_hold_lapsed(hold.status, hold.expires_at))))
       OR EXISTS (SELECT 1 FROM inventory_locks AS hold
                  JOIN flights AS flight USING (flight_id)
                  WHERE hold.lock_id = ANY (book_ids)
                    AND (NOT inventory_hold_may_become(hold.status, 'CONFIRMED')
                         OR inventory_hold_lapsed(hold.status, hold.expires_at)
                         OR flight.state = 'CANCELLED')) THEN
        RETURN json_build_object('outcome', 'changed');
    END IF;

    IF EXISTS (
        SELECT 1
        FROM inventory_locks AS hold
        JOIN flight_seats AS seat USING (seat_id)
        WHERE hold.lock_id = ANY (close_ids || book_ids)
          AND (seat.version <> hold.seat_version
               OR seat.status <> CASE hold.status WHEN 'CONFIRMED' THEN 'BOOKED'::seat_status
                                                  ELSE 'LOCKED'::seat_status END)) THEN
        UPDATE reservations
        SET quarantined_at = now(),
            quarantine_reason = 'a seat it holds is not at the version its hold took it at'
        WHERE order_id = order_id_;
        RETURN json_build_object('outcome', 'quarantined',
                                 'reason', 'a seat it holds is not at the version its hold took it at');
    END IF;

    IF cardinality(close_ids) > 0 THEN
        WITH closed AS (
            UPDATE inventory_locks
            SET status = close_as, closed_at = now()
            WHERE lock_id = ANY (close_ids)
            RETURNING seat_id, seat_version
        )
        UPDATE flight_seats AS seat
        SET status = 'AVAILABLE', version = seat.version + 1, updated_at = now()
        FROM closed
        WHERE seat.seat_id = closed.seat_id AND seat.version = closed.seat_version;
        GET DIAGNOSTICS changed = ROW_COUNT;
        IF changed <> cardinality(close_ids) THEN
            RAISE EXCEPTION 'order %: % of % closed holds freed their seat', order_id_, changed,
                cardinality(close_ids) USING ERRCODE = 'IV001';
        END IF;
    END IF;

    IF cardinality(book_ids) > 0 THEN
        WITH sold AS (
            UPDATE flight_seats AS seat
            SET status = 'BOOKED', version = seat.version + 1, updated_at = now()
            FROM inventory_locks AS hold
            WHERE hold.lock_id = ANY (book_ids)
              AND seat.seat_id = hold.seat_id
              AND seat.version = hold.seat_version
              AND seat.status = 'LOCKED'
            RETURNING hold.lock_id, seat.version
        )
        UPDATE inventory_locks AS hold
        SET status = 'CONFIRMED', seat_version = sold.version, closed_at = now()
        FROM sold
        WHERE hold.lock_id = sold.lock_id;
        GET DIAGNOSTICS changed = ROW_COUNT;
        IF changed <> cardinality(book_ids) THEN
            RAISE EXCEPTION 'order %: % of % holds were sold', order_id_, changed,
                cardinality(book_ids) USING ERRCODE = 'IV001';
        END IF;
    END IF;

    IF jsonb_typeof(p->'booking') = 'object' THEN
        UPDATE reservations
        SET booking_event_id = (p#>>'{booking,eventId}')::uuid,
            booking_detail_type = p#>>'{booking,detailType}',
            booking_detail = p#>>'{booking,detail}'
        WHERE order_id = order_id_;
    END IF;
    PERFORM inventory_queue(order_id_, p->'events');
    RETURN json_build_object('outcome', 'applied');
END $$;

-- A flight's seat map, as anyone may see it: no order ids, nothing about passengers. Each
-- seat shows what a reservation would get (inventory_seat_standing). versionSum moves
-- whenever any seat of the flight changes (for the ETag). Null if there is no such flight.
CREATE OR REPLACE FUNCTION inventory_read_availability(p jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    flight_id_ uuid := (p->>'flightId')::uuid;
BEGIN
    RETURN (
        SELECT json_build_object(
            'flightId', flight.flight_id,
            'flightCode', flight.flight_code,
            'originIata', flight.origin_iata,
            'destinationIata', flight.destination_iata,
            'departureUtc', flight.departure_utc,
            'arrivalUtc', flight.arrival_utc,
            'status', inventory_flight_status(flight.state, flight.departure_utc),
            'versionSum', (SELECT COALESCE(sum(seat.version), 0)
                           FROM flight_seats AS seat WHERE seat.flight_id = flight.flight_id),
            'seats', (SELECT COALESCE(json_agg(json_build_object(
                                 'seatNumber', seat.seat_number,
                                 'cabin', seat.cabin,
                                 'status', seat.shown_status)
                             ORDER BY substring(seat.seat_number FROM '^[0-9]+')::integer,
                                      right(seat.seat_number, 1)), '[]')
                      FROM inventory_seat_standing AS seat
                      WHERE seat.flight_id = flight.flight_id))
        FROM flights AS flight
        WHERE flight.flight_id = flight_id_);
END $$;

------------------------------------------------------------------------------------------
-- Cancellation: serialized with reservations, never starved by quarantine.

-- FlightCancelled: marks the flight cancelled, once (the first reason stays), then locks
-- every seat of it, waiting for any reservation or sale in flight: once this commits,
-- every hold on the flight is visible to the release that follows, and no new one can be
-- taken. Outcomes: cancelled; missing (no such flight).
CREATE OR REPLACE FUNCTION inventory_cancel_flight(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    flight_id_ uuid := (p->>'flightId')::uuid;
BEGIN
    PERFORM inventory_begin(p);
    UPDATE flights
    SET state = 'CANCELLED', cancelled_at = now(), cancel_reason = left(p->>'reason', 500)
    WHERE flight_id = flight_id_ AND state = 'SCHEDULED';
    IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM flights WHERE flight_id = flight_id_) THEN
        RETURN json_build_object('outcome', 'missing');
    END IF;
    PERFORM 1 FROM flight_seats WHERE flight_id = flight_id_ ORDER BY seat_id FOR NO KEY UPDATE;
    RETURN json_build_object('outcome', 'cancelled');
END $$;

-- The next orders of a cancelled flight (p.flightId) to release: those with a live hold
-- or sale that are not quarantined, in order id order, at most p.limit, each as
-- inventory_read_order reads it; how many orders the cancellation released so far; how
-- many are quarantined; and the FlightInventoryClosed answer, if the flight is closed.
CREATE OR REPLACE FUNCTION inventory_read_flight_orders(p jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    flight_id_ uuid := (p->>'flightId')::uuid;
    flight     flights%ROWTYPE;
BEGIN
    SELECT * INTO flight FROM flights WHERE flight_id = flight_id_;
    RETURN json_build_object(
        'cancelled', flight.state = 'CANCELLED',
        'closed', CASE WHEN flight.closed_event_id IS NOT NULL THEN
                      json_build_object('eventId', flight.closed_event_id,
                                        'detailType', 'FlightInventoryClosed',
                                        'detail', flight.closed_detail) END,
        'ordersReleased', (SELECT count(*) FROM reservations AS r
                           WHERE r.flight_id = flight_id_
                             AND EXISTS (SELECT 1 FROM inventory_locks AS hold
                                         WHERE hold.order_id = r.order_id
                                           AND hold.status = 'RELEASED'
                                           AND hold.closed_at >= flight.cancelled_at)),
        'quarantined', (SELECT count(*) FROM reservations
                        WHERE flight_id = flight_id_ AND quarantined_at IS NOT NULL),
        'orders', (SELECT COALESCE(json_agg(json_build_object(
                              'orderId', r.order_id, 'flightId', r.flight_id,
                              'flightCancelled', true,
                              'closedBy', r.closed_before_reserved_by,
                              'quarantined', false, 'booking', NULL,
                              'holds', inventory_holds_of(r.order_id)) ORDER BY r.order_id), '[]')
                   FROM reservations AS r
                   WHERE r.order_id IN (
                       SELECT live.order_id
                       FROM reservations AS live
                       WHERE live.flight_id = flight_id_
                         AND live.quarantined_at IS NULL
                         AND EXISTS (SELECT 1 FROM inventory_locks AS hold
                                     WHERE hold.order_id = live.order_id
                                       AND hold.status IN ('ACTIVE', 'CONFIRMED'))
                       ORDER BY live.order_id
                       LIMIT (p->>'limit')::integer)));
END $$;

-- Cancelled flights not closed yet, oldest cancellation first, for the schedule to
-- finish: at most p.limit that can make progress (an order to release, or nothing live
-- left to close), and how many are held open by quarantined orders alone.
CREATE OR REPLACE FUNCTION inventory_cancelled_open_flights(p jsonb) RETURNS json
LANGUAGE sql STABLE AS $$
    WITH open_flight AS (
        SELECT flight.flight_id, flight.cancelled_at,
               EXISTS (SELECT 1 FROM reservations AS r
                       WHERE r.flight_id = flight.flight_id AND r.quarantined_at IS NULL
                         AND EXISTS (SELECT 1 FROM inventory_locks AS hold
                                     WHERE hold.order_id = r.order_id
                                       AND hold.status IN ('ACTIVE', 'CONFIRMED'))) AS releasable,
               EXISTS (SELECT 1 FROM inventory_locks AS hold
                       WHERE hold.flight_id = flight.flight_id
                         AND hold.status IN ('ACTIVE', 'CONFIRMED')) AS live
        FROM flights AS flight
        WHERE flight.state = 'CANCELLED' AND flight.closed_event_id IS NULL
    )
    SELECT json_build_object(
        'flights', (SELECT COALESCE(json_agg(flight_id ORDER BY cancelled_at), '[]')
                    FROM (SELECT flight_id, cancelled_at FROM open_flight
                          WHERE releasable OR NOT live
                          ORDER BY cancelled_at
                          LIMIT (p->>'limit')::integer) AS workable),
        'heldByQuarantine', (SELECT count(*) FROM open_flight WHERE live AND NOT releasable))
$$;

-- Cancelled flights that only quarantined orders hold open, for `quarantine list`.
CREATE FUNCTION inventory_cancellations_held(p jsonb) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(json_agg(json_build_object(
               'flightId', flight.flight_id, 'cancelledAt', flight.cancelled_at,
               'quarantinedOrders', (SELECT count(*) FROM reservations AS r
                                     WHERE r.flight_id = flight.flight_id
                                       AND r.quarantined_at IS NOT NULL))
               ORDER BY flight.cancelled_at), '[]')
    FROM flights AS flight
    WHERE flight.state = 'CANCELLED' AND flight.closed_event_id IS NULL
      AND EXISTS (SELECT 1 FROM inventory_locks AS hold
                  WHERE hold.flight_id = flight.flight_id
                    AND hold.status IN ('ACTIVE', 'CONFIRMED'))
      AND NOT EXISTS (SELECT 1 FROM reservations AS r
                      WHERE r.flight_id = flight.flight_id AND r.quarantined_at IS NULL
                        AND EXISTS (SELECT 1 FROM inventory_locks AS hold
                                    WHERE hold.order_id = r.order_id
                                      AND hold.status IN ('ACTIVE', 'CONFIRMED')))
$$;

------------------------------------------------------------------------------------------
-- Retention: only what is finished.

-- A departed flight is finished, and may be deleted, once nothing on it is still to
-- happen: it is not a cancellation still open, no hold on it is ACTIVE (its sales are
-- done: the flight flew), no order of it is quarantined, and no answer of it or of its
-- orders is still to be delivered (pending or parked).
CREATE FUNCTION inventory_flight_unfinished(p_flight uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM flights
                     WHERE flight_id = p_flight AND state = 'CANCELLED' AND closed_event_id IS NULL)
            THEN 'cancellation not closed'
        WHEN EXISTS (SELECT 1 FROM reservations
                     WHERE flight_id = p_flight AND quarantined_at IS NOT NULL)
            THEN 'quarantined order'
        WHEN EXISTS (SELECT 1 FROM inventory_locks
                     WHERE flight_id = p_flight AND status = 'ACTIVE')
            THEN 'live hold'
        WHEN EXISTS (SELECT 1 FROM outbox
                     WHERE flight_id = p_flight AND state IN ('PENDING', 'PARKED'))
          OR EXISTS (SELECT 1 FROM reservations AS r
                     JOIN outbox ON outbox.order_id = r.order_id
                                AND outbox.state IN ('PENDING', 'PARKED')
                     WHERE r.flight_id = p_flight)
            THEN 'undelivered answer'
    END
$$;

-- Deletes at most p.limit rows of the oldest finished flight that departed more than
-- p.retentionDays ago: its holds, reservations and seats, then the flight itself once
-- nothing else is left. Its published outbox entries are the outbox prune's. Each call is
-- a short transaction of its own; the schedule calls it until it reports nothing deleted.
-- Orders that name no flight (closed before reserved, or refused for a flight that does
-- not exist) go once that old, unless an answer of theirs is undelivered. Reports what it
-- skipped: departed flights past retention that are not finished, by reason.
CREATE OR REPLACE FUNCTION inventory_retire(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    horizon    timestamptz := now() - make_interval(days => (p->>'retentionDays')::integer);
    budget     integer     := (p->>'limit')::integer;
    flight_id_ uuid;
    done       integer;
    deleted    integer     := 0;
    flights_deleted integer := 0;
    skipped    json;
BEGIN
    PERFORM inventory_begin(p);
    SELECT flight_id INTO flight_id_ FROM flights
    WHERE departure_utc < horizon
      AND inventory_flight_unfinished(flight_id) IS NULL
    ORDER BY departure_utc
    LIMIT 1
    FOR UPDATE SKIP LOCKED;

    IF flight_id_ IS NOT NULL THEN
        DELETE FROM inventory_locks WHERE lock_id IN (
            SELECT lock_id FROM inventory_locks WHERE flight_id = flight_id_ LIMIT budget);
        GET DIAGNOSTICS done = ROW_COUNT;
        deleted := deleted + done;
        budget := budget - done;

        DELETE FROM reservations WHERE order_id IN (
            SELECT r.order_id FROM reservations AS r
            WHERE r.flight_id = flight_id_
              AND NOT EXISTS (SELECT 1 FROM inventory_locks AS hold WHERE hold.order_id = r.order_id)
            LIMIT budget);
        GET DIAGNOSTICS done = ROW_COUNT;
        deleted := deleted + done;
        budget := budget - done;

        DELETE FROM flight_seats WHERE seat_id IN (
            SELECT seat_id FROM flight_seats WHERE flight_id = flight_id_ LIMIT budget);
        GET DIAGNOSTICS done = ROW_COUNT;
        deleted := deleted + done;
        budget := budget - done;

        IF budget > 0
           AND NOT EXISTS (SELECT 1 FROM flight_seats WHERE flight_id = flight_id_)
           AND NOT EXISTS (SELECT 1 FROM reservations WHERE flight_id = flight_id_) THEN
            DELETE FROM flights WHERE flight_id = flight_id_;
            flights_deleted := 1;
            deleted := deleted + 1;
            budget := budget - 1;
        END IF;
    END IF;

    IF budget > 0 THEN
        DELETE FROM reservations WHERE order_id IN (
            SELECT r.order_id FROM reservations AS r
            WHERE r.flight_id IS NULL AND r.created_at < horizon
              AND NOT EXISTS (SELECT 1 FROM outbox
                              WHERE outbox.order_id = r.order_id
                                AND outbox.state IN ('PENDING', 'PARKED'))
            LIMIT budget);
        GET DIAGNOSTICS done = ROW_COUNT;
        deleted := deleted + done;
    END IF;

    -- Once no finished flight is left (the run's last call), what stays and why.
    IF flight_id_ IS NULL THEN
        SELECT COALESCE(json_object_agg(reason, flights), '{}') INTO skipped
        FROM (SELECT unfinished.reason, count(*) AS flights
              FROM flights,
                   LATERAL (SELECT inventory_flight_unfinished(flights.flight_id) AS reason) AS unfinished
              WHERE flights.departure_utc < horizon AND unfinished.reason IS NOT NULL
              GROUP BY unfinished.reason) AS by_reason;
    END IF;
    RETURN json_build_object('deleted', deleted, 'flightsDeleted', flights_deleted,
                             'skipped', COALESCE(skipped, '{}'));
END $$;

-- Deletes at most p.limit published entries older than p.retentionDays, oldest first,
-- found through outbox_published_by_age and deleted by their row addresses.
CREATE OR REPLACE FUNCTION inventory_outbox_prune(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    pruned integer;
BEGIN
    PERFORM inventory_begin(p);
    DELETE FROM outbox
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM outbox
        WHERE published_at IS NOT NULL
          AND published_at < now() - make_interval(days => (p->>'retentionDays')::integer)
          AND state = 'PUBLISHED'
        ORDER BY published_at
        LIMIT (p->>'limit')::integer));
    GET DIAGNOSTICS pruned = ROW_COUNT;
    RETURN json_build_object('pruned', pruned);
END $$;
