-- Every statement the service sends is one call of a function below, sent in one round
-- trip (the simple query protocol) with one jsonb argument and one json result. PL/pgSQL
-- keeps each function's plans in the backend, so nothing is prepared on the client's
-- session and RDS Proxy never pins it; a lock timeout is set with set_config(..., true),
-- which ends with the transaction.
--
-- Each transition is an optimistic read, a decision in the service, then one write that
-- applies it only if nothing it read has changed (all of it or none of it). A write never
-- waits for the client between statements: its row locks last as long as its one call.
--
-- Also here: typed state for an order closed before its OrderCreated, a quarantine for
-- orders whose holds cannot be closed consistently, and the outbox's attempt, backoff and
-- parking state. Apply before deploying the code that calls these functions.

-- An order whose payment or cancellation was handled before its OrderCreated is claimed
-- as closed by that event, instead of a fingerprint no request can match.
CREATE TYPE order_closer AS ENUM ('PaymentSucceeded', 'PaymentFailed', 'OrderCancelled');

ALTER TABLE reservations
    ADD COLUMN closed_before_reserved_by order_closer,
    -- Set with its reason when the order's holds could not be closed consistently: the
    -- sweeper and lazy expiry leave it alone until an operator clears it.
    ADD COLUMN quarantined_at TIMESTAMPTZ,
    ADD COLUMN quarantine_reason TEXT,
    ALTER COLUMN request_fingerprint DROP NOT NULL;

UPDATE reservations
SET closed_before_reserved_by = substr(request_fingerprint, 27)::order_closer,
    request_fingerprint = NULL
WHERE request_fingerprint LIKE 'closed before reserved by %';

ALTER TABLE reservations
    ADD CONSTRAINT reservations_origin_check
        CHECK ((closed_before_reserved_by IS NULL) <> (request_fingerprint IS NULL)),
    ADD CONSTRAINT reservations_quarantine_check
        CHECK ((quarantined_at IS NULL) = (quarantine_reason IS NULL));

CREATE INDEX reservations_quarantined ON reservations (quarantined_at)
    WHERE quarantined_at IS NOT NULL;

-- The outbox, River-style: an explicit state, the attempts, when an entry is next due,
-- its last error, and a dead end.
CREATE TYPE outbox_state AS ENUM ('PENDING', 'PUBLISHED', 'PARKED');

ALTER TABLE outbox
    ADD COLUMN state           outbox_state NOT NULL DEFAULT 'PENDING',
    -- Due for the relay from then on (after the grace period); a claim moves it by the
    -- lease, a rejection by the backoff.
    ADD COLUMN next_attempt_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    ADD COLUMN last_error      TEXT,
    ADD COLUMN parked_at       TIMESTAMPTZ;

UPDATE outbox SET state = 'PUBLISHED' WHERE published_at IS NOT NULL;

ALTER TABLE outbox
    ADD CONSTRAINT outbox_state_check CHECK (
        (state = 'PUBLISHED') = (published_at IS NOT NULL)
        AND (state = 'PARKED') = (parked_at IS NOT NULL));

COMMENT ON COLUMN outbox.claimed_until IS 'unused since 0006 (next_attempt_at holds the lease)';

CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'PENDING';
CREATE INDEX outbox_pending_by_order ON outbox (order_id) WHERE state = 'PENDING';
CREATE INDEX outbox_parked ON outbox (parked_at) WHERE state = 'PARKED';

------------------------------------------------------------------------------------------
-- Shared by the writes.

-- The start of every write: its lock waits are bounded by what the invocation has left
-- (p.lockTimeoutMs, this transaction only), and the entries the bus accepted since the
-- instance's last write (p.published) are marked published in this same commit.
CREATE FUNCTION inventory_begin(p jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p ? 'lockTimeoutMs' THEN
        PERFORM set_config('lock_timeout', (p->>'lockTimeoutMs')::integer || 'ms', true);
    END IF;
    IF jsonb_array_length(COALESCE(p->'published', '[]')) > 0 THEN
        UPDATE outbox
        SET state = 'PUBLISHED', published_at = now(), publish_attempts = publish_attempts + 1
        WHERE event_id IN (SELECT value::uuid FROM jsonb_array_elements_text(p->'published'))
          AND state = 'PENDING';
    END IF;
END $$;

-- Marks what the bus accepted and nothing else: for an instance with marks to write and
-- no other write to carry them.
CREATE FUNCTION inventory_acknowledge(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM inventory_begin(p);
    RETURN '{}';
END $$;

-- Queues the events p.events ([{eventId, detailType, detail}]) of order p_order.
CREATE FUNCTION inventory_queue(p_order uuid, p_events jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    queued integer;
BEGIN
    INSERT INTO outbox (event_id, order_id, detail_type, detail)
    SELECT event."eventId", p_order, event."detailType", event.detail
    FROM jsonb_to_recordset(COALESCE(p_events, '[]')) AS event ("eventId" uuid, "detailType" text, detail text);
    GET DIAGNOSTICS queued = ROW_COUNT;
    RETURN queued;
END $$;

-- The holds of an order, each with the state of its seat, as the reads return them.
CREATE FUNCTION inventory_holds_of(p_order uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(json_agg(json_build_object(
               'lockId', hold.lock_id,
               'seatId', hold.seat_id,
               'seatNumber', seat.seat_number,
               'flightId', hold.flight_id,
               'status', hold.status,
               'seatVersion', hold.seat_version,
               'lapsed', hold.expires_at <= now(),
               'seat', json_build_object('status', seat.status, 'version', seat.version))
               ORDER BY seat.seat_number), '[]')
    FROM inventory_locks AS hold
    JOIN flight_seats AS seat USING (seat_id)
    WHERE hold.order_id = p_order
$$;

------------------------------------------------------------------------------------------
-- Reservations.

-- The optimistic read of an OrderCreated, no lock taken: the order's earlier outcome, if
-- it has one; whether the flight exists and has departed; and the seats the request names
-- (p.seats), or for an any-seat order (p.anySeat) every seat of the cabin (p.cabin, any
-- when null) that is free or held by a lapsed hold. lapsedHolder: the order whose hold on
-- the seat is past expiry, which a reservation may expire (never a quarantined one).
CREATE FUNCTION inventory_read_request(p jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    order_id_  uuid        := (p->>'orderId')::uuid;
    flight_id_ uuid        := (p->>'flightId')::uuid;
    cabin_     cabin_class := (p->>'cabin')::cabin_class;
    numbers    text[]      := ARRAY(SELECT jsonb_array_elements_text(COALESCE(p->'seats', '[]')));
    seats      json;
BEGIN
    IF (p->>'anySeat')::boolean THEN
        SELECT json_agg(json_build_object(
                   'seatId', seat.seat_id, 'seatNumber', seat.seat_number,
                   'status', seat.status, 'version', seat.version,
                   'lapsedHolder', CASE WHEN hold.expires_at <= now()
                                         AND holder.quarantined_at IS NULL THEN hold.order_id END))
        INTO seats
        FROM flight_seats AS seat
        LEFT JOIN inventory_locks AS hold
               ON hold.seat_id = seat.seat_id AND hold.status = 'ACTIVE'
        LEFT JOIN reservations AS holder
               ON holder.order_id = hold.order_id
        WHERE seat.flight_id = flight_id_
          AND (cabin_ IS NULL OR seat.cabin = cabin_)
          AND (seat.status = 'AVAILABLE'
               OR (seat.status = 'LOCKED' AND hold.expires_at <= now()
                   AND holder.quarantined_at IS NULL));
    ELSE
        SELECT json_agg(json_build_object(
                   'seatId', seat.seat_id, 'seatNumber', seat.seat_number,
                   'status', seat.status, 'version', seat.version,
                   'lapsedHolder', CASE WHEN seat.status = 'LOCKED' AND hold.expires_at <= now()
                                         AND holder.quarantined_at IS NULL THEN hold.order_id END))
        INTO seats
        FROM flight_seats AS seat
        LEFT JOIN inventory_locks AS hold
               ON hold.seat_id = seat.seat_id AND hold.status = 'ACTIVE'
        LEFT JOIN reservations AS holder
               ON holder.order_id = hold.order_id
        WHERE seat.flight_id = flight_id_
          AND seat.seat_number = ANY (numbers);
    END IF;
    RETURN json_build_object(
        'readAt', now(),
        'departed', (SELECT flight.departure_utc <= now()
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
-- order is taking (p.skipLocked); checks that every one is still AVAILABLE at the version
-- read; and only then claims the order id with its outcome (p.event), takes the seats,
-- holds them from p.createdAt to p.expiresAt and queues the outcome. With no seats it
-- records a refusal. Outcomes: decided; lost (these seats changed since the read; nothing
-- written); decidedElsewhere (another delivery of the order decided first).
-- If the seats taken differ from the seats decided, it fails with IV001 and commits nothing.
CREATE FUNCTION inventory_reserve(p jsonb) RETURNS json
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
    IF (p->>'skipLocked')::boolean THEN
        locked := ARRAY(SELECT seat_id FROM flight_seats WHERE seat_id = ANY (seat_ids)
                        ORDER BY seat_id FOR UPDATE SKIP LOCKED);
    ELSE
        locked := ARRAY(SELECT seat_id FROM flight_seats WHERE seat_id = ANY (seat_ids)
                        ORDER BY seat_id FOR UPDATE);
    END IF;
    lost := ARRAY(
        SELECT expected."seatId"
        FROM jsonb_to_recordset(COALESCE(p->'seats', '[]')) AS expected ("seatId" uuid, version integer)
        LEFT JOIN flight_seats AS seat
               ON seat.seat_id = expected."seatId" AND seat.seat_id = ANY (locked)
        WHERE seat.seat_id IS NULL
           OR seat.status <> 'AVAILABLE'
           OR seat.version <> expected.version);
    IF cardinality(lost) > 0 THEN
        RETURN json_build_object('outcome', 'lost', 'lost', lost);
    END IF;

    INSERT INTO reservations (order_id, flight_id, request_fingerprint,
                              outcome_event_id, outcome_detail_type, outcome_detail)
    VALUES (order_id_, flight_id_, p->>'fingerprint',
            (p#>>'{event,eventId}')::uuid, p#>>'{event,detailType}', p#>>'{event,detail}')
    ON CONFLICT (order_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN json_build_object('outcome', 'decidedElsewhere');
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

------------------------------------------------------------------------------------------
-- After a hold: selling, releasing and expiring.

-- The optimistic read of one order, no lock taken: the order (null if not seen yet), every
-- hold of it with its seat, and its events still waiting for the bus.
CREATE FUNCTION inventory_read_order(p jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    order_id_ uuid := (p->>'orderId')::uuid;
BEGIN
    RETURN json_build_object(
        'order', (SELECT json_build_object(
                      'orderId', r.order_id,
                      'flightId', r.flight_id,
                      'closedBy', r.closed_before_reserved_by,
                      'quarantined', r.quarantined_at IS NOT NULL,
                      'booking', CASE WHEN r.booking_event_id IS NOT NULL THEN
                                     json_build_object('eventId', r.booking_event_id,
                                                       'detailType', r.booking_detail_type,
                                                       'detail', r.booking_detail) END,
                      'holds', inventory_holds_of(r.order_id))
                  FROM reservations AS r WHERE r.order_id = order_id_),
        'pending', (SELECT COALESCE(json_agg(json_build_object(
                               'eventId', entry.event_id,
                               'detailType', entry.detail_type,
                               'detail', entry.detail) ORDER BY entry.created_at), '[]')
                    FROM outbox AS entry
                    WHERE entry.order_id = order_id_ AND entry.state = 'PENDING'));
END $$;

-- The orders with holds past their expiry, oldest first, each as inventory_read_order
-- reads it: at most p.limit of them, or those of p.orderIds (lazy expiry). Never a
-- quarantined order.
CREATE FUNCTION inventory_read_lapsed(p jsonb) RETURNS json
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
            JOIN reservations AS r USING (order_id)
            WHERE hold.status = 'ACTIVE' AND hold.expires_at <= now() AND r.quarantined_at IS NULL
            GROUP BY hold.order_id
            ORDER BY first_expiry
            LIMIT (p->>'limit')::integer
        ) AS lapsed
        JOIN reservations AS r USING (order_id);
    END IF;
    RETURN result;
END $$;

-- One transition of one order, decided from inventory_read_order: applied only if the
-- order still is as read, all of it or none of it.
--   p.orderId; p.wait: wait for the order's row lock, or answer busy (the sweeper).
--   p.claimClosedBy: the read found no order; claim it closed by this event.
--   p.seen [{lockId, status}]: every hold of the order as read.
--   p.close {lockIds, as}: holds to close (RELEASED or EXPIRED); their seats go back on sale.
--   p.book [lockIds]: holds to sell. p.booking {eventId, detailType, detail}: the payment's
--   answer, kept with the order. p.events: queued to the outbox.
-- Outcomes: applied; changed (read again); busy; quarantined (a seat to free or sell is
-- not at the version its hold recorded: the order is set aside, nothing else written).
-- A close or sale that changes other rows than decided fails with IV001, commits nothing.
CREATE FUNCTION inventory_transition(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    order_id_   uuid     := (p->>'orderId')::uuid;
    close_ids   bigint[] := ARRAY(SELECT value::bigint
                                  FROM jsonb_array_elements_text(COALESCE(p#>'{close,lockIds}', '[]')));
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

    -- Nothing changed since the read: the same holds, in the same states, and the ones to
    -- sell still within their time.
    IF (SELECT count(*) FROM inventory_locks WHERE order_id = order_id_)
           <> jsonb_array_length(COALESCE(p->'seen', '[]'))
       OR EXISTS (
           SELECT 1
           FROM jsonb_to_recordset(COALESCE(p->'seen', '[]')) AS seen ("lockId" bigint, status hold_status)
           LEFT JOIN inventory_locks AS hold
                  ON hold.lock_id = seen."lockId" AND hold.order_id = order_id_
           WHERE hold.lock_id IS NULL OR hold.status <> seen.status)
       OR EXISTS (SELECT 1 FROM inventory_locks
                  WHERE lock_id = ANY (book_ids) AND expires_at <= now()) THEN
        RETURN json_build_object('outcome', 'changed');
    END IF;

    -- Seats in seat_id order, after the order's row: nobody waits for an order row while
    -- holding seat rows, and two transitions never wait on each other in a cycle.
    PERFORM 1 FROM flight_seats
    WHERE seat_id IN (SELECT seat_id FROM inventory_locks WHERE lock_id = ANY (close_ids || book_ids))
    ORDER BY seat_id
    FOR UPDATE;
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
            SET status = (p#>>'{close,as}')::hold_status, closed_at = now()
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

------------------------------------------------------------------------------------------
-- The outbox relay and its operators.

-- Marks what the bus accepted (p.published), then leases at most p.limit entries that are
-- due: pending, older than p.graceSeconds, and past any backoff or earlier lease. A leased
-- entry is due again after p.leaseSeconds, so two relays never send the same entry and a
-- relay that dies loses nothing. Also reports the backlog: the oldest pending entry's age
-- and how many entries are parked.
CREATE FUNCTION inventory_outbox_claim(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    claimed json;
BEGIN
    PERFORM inventory_begin(p);
    WITH due AS (
        SELECT event_id
        FROM outbox
        WHERE state = 'PENDING'
          AND next_attempt_at <= now()
          AND created_at <= now() - make_interval(secs => (p->>'graceSeconds')::float8)
        ORDER BY next_attempt_at
        LIMIT (p->>'limit')::integer
        FOR UPDATE SKIP LOCKED
    ), leased AS (
        UPDATE outbox
        SET next_attempt_at = now() + make_interval(secs => (p->>'leaseSeconds')::float8)
        FROM due
        WHERE outbox.event_id = due.event_id
        RETURNING outbox.event_id, outbox.detail_type, outbox.detail, outbox.created_at
    )
    SELECT COALESCE(json_agg(json_build_object(
               'eventId', event_id, 'detailType', detail_type, 'detail', detail)
               ORDER BY created_at), '[]')
    INTO claimed
    FROM leased;
    RETURN json_build_object(
        'claimed', claimed,
        'oldestPendingSeconds', (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)
                                 FROM outbox WHERE state = 'PENDING'),
        'parked', (SELECT count(*) FROM outbox WHERE state = 'PARKED'));
END $$;

-- Records the entries the bus did not accept (p.rejected [{eventId, error, permanent}]):
-- one more attempt, the error kept, and due again after an exponential backoff with
-- jitter (p.backoffSeconds doubling per attempt, at most p.maxBackoffSeconds); parked
-- after p.maxAttempts attempts, or at once when the error can never succeed.
CREATE FUNCTION inventory_outbox_rejected(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    parked integer;
BEGIN
    PERFORM inventory_begin(p);
    WITH rejected AS (
        UPDATE outbox AS entry
        SET publish_attempts = entry.publish_attempts + 1,
            last_error = left(rejection.error, 1000),
            state = CASE WHEN rejection.permanent
                           OR entry.publish_attempts + 1 >= (p->>'maxAttempts')::integer
                         THEN 'PARKED'::outbox_state ELSE 'PENDING' END,
            parked_at = CASE WHEN rejection.permanent
                               OR entry.publish_attempts + 1 >= (p->>'maxAttempts')::integer
                             THEN now() END,
            next_attempt_at = now() + make_interval(secs =>
                least((p->>'backoffSeconds')::float8 * 2 ^ least(entry.publish_attempts, 30),
                      (p->>'maxBackoffSeconds')::float8) * (0.5 + random() / 2))
        FROM jsonb_to_recordset(p->'rejected') AS rejection ("eventId" uuid, error text, permanent boolean)
        WHERE entry.event_id = rejection."eventId"
          AND entry.state = 'PENDING'
        RETURNING entry.state
    )
    SELECT count(*) FILTER (WHERE state = 'PARKED') INTO parked FROM rejected;
    RETURN json_build_object('parked', parked);
END $$;

-- Deletes at most p.limit published entries older than p.retentionDays.
CREATE FUNCTION inventory_outbox_prune(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    pruned integer;
BEGIN
    PERFORM inventory_begin(p);
    DELETE FROM outbox
    WHERE event_id IN (
        SELECT event_id FROM outbox
        WHERE state = 'PUBLISHED'
          AND published_at < now() - make_interval(days => (p->>'retentionDays')::integer)
        LIMIT (p->>'limit')::integer);
    GET DIAGNOSTICS pruned = ROW_COUNT;
    RETURN json_build_object('pruned', pruned);
END $$;

-- The parked entries, oldest first, for `aeronode-inventory outbox dead`.
CREATE FUNCTION inventory_outbox_parked(p jsonb) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(json_agg(json_build_object(
               'eventId', event_id, 'orderId', order_id, 'detailType', detail_type,
               'attempts', publish_attempts, 'lastError', last_error, 'parkedAt', parked_at)
               ORDER BY parked_at, event_id), '[]')
    FROM outbox
    WHERE state = 'PARKED'
$$;

-- Makes parked entries due again with a fresh attempt count: those of p.eventIds, or all.
CREATE FUNCTION inventory_outbox_redrive(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    redriven integer;
BEGIN
    PERFORM inventory_begin(p);
    UPDATE outbox
    SET state = 'PENDING', parked_at = NULL, publish_attempts = 0, next_attempt_at = now()
    WHERE state = 'PARKED'
      AND (NOT p ? 'eventIds'
           OR event_id IN (SELECT value::uuid FROM jsonb_array_elements_text(p->'eventIds')));
    GET DIAGNOSTICS redriven = ROW_COUNT;
    RETURN json_build_object('redriven', redriven);
END $$;

-- Sets one order aside (p.orderId) with p.reason: a transition of it failed with IV001,
-- which would fail the same way on every sweep.
CREATE FUNCTION inventory_quarantine(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM inventory_begin(p);
    UPDATE reservations
    SET quarantined_at = now(), quarantine_reason = left(p->>'reason', 1000)
    WHERE order_id = (p->>'orderId')::uuid AND quarantined_at IS NULL;
    RETURN '{}';
END $$;

-- The quarantined orders, for `aeronode-inventory quarantine list`.
CREATE FUNCTION inventory_quarantined(p jsonb) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(json_agg(json_build_object(
               'orderId', order_id, 'flightId', flight_id, 'reason', quarantine_reason,
               'quarantinedAt', quarantined_at) ORDER BY quarantined_at, order_id), '[]')
    FROM reservations
    WHERE quarantined_at IS NOT NULL
$$;

-- Takes orders out of quarantine once repaired (p.orderIds, or all): the next sweep
-- expires them again.
CREATE FUNCTION inventory_release_quarantine(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    released integer;
BEGIN
    PERFORM inventory_begin(p);
    UPDATE reservations
    SET quarantined_at = NULL, quarantine_reason = NULL
    WHERE quarantined_at IS NOT NULL
      AND (NOT p ? 'orderIds'
           OR order_id IN (SELECT value::uuid FROM jsonb_array_elements_text(p->'orderIds')));
    GET DIAGNOSTICS released = ROW_COUNT;
    RETURN json_build_object('released', released);
END $$;
