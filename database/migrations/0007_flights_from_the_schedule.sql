-- Flights the schedule opens and cancels, availability anyone can read, and retention.
--
-- A flight opened by FlightScheduled keeps what was sent (a fingerprint) and the answer it
-- got, so the same event again gets the same answer. A cancelled flight releases every
-- hold and sale, in bounded batches, and is closed (FlightInventoryClosed) once nothing is
-- live on it. Departed flights past retention are deleted, rows and all.

CREATE TYPE flight_state AS ENUM ('SCHEDULED', 'CANCELLED');

ALTER TABLE flights
    ADD COLUMN state                flight_state NOT NULL DEFAULT 'SCHEDULED',
    ADD COLUMN cancelled_at         TIMESTAMPTZ,
    ADD COLUMN cancel_reason        TEXT,
    -- What FlightScheduled sent, in a canonical form; NULL for flights loaded directly.
    ADD COLUMN schedule_fingerprint TEXT,
    ADD COLUMN opened_event_id      UUID,
    ADD COLUMN opened_detail        TEXT,
    -- FlightInventoryClosed, once a cancelled flight has nothing live left.
    ADD COLUMN closed_event_id      UUID,
    ADD COLUMN closed_detail        TEXT,
    ADD CONSTRAINT flights_cancel_check
        CHECK ((state = 'CANCELLED') = (cancelled_at IS NOT NULL)),
    ADD CONSTRAINT flights_opened_check
        CHECK ((opened_event_id IS NULL) = (opened_detail IS NULL)),
    ADD CONSTRAINT flights_closed_check
        CHECK ((closed_event_id IS NULL) = (closed_detail IS NULL)
               AND (closed_event_id IS NULL OR state = 'CANCELLED'));

-- Flight events have no order.
ALTER TABLE outbox
    ALTER COLUMN order_id DROP NOT NULL,
    ADD COLUMN flight_id UUID;

-- Fewer indexes to keep on every write: an order's holds are found through the unique
-- (order_id, seat_id) index, and pending entries through outbox_due and
-- outbox_pending_by_order (0006); these two are no longer read.
DROP INDEX inventory_locks_by_order;
DROP INDEX outbox_pending_by_age;

CREATE INDEX flights_by_departure ON flights (departure_utc);
CREATE INDEX flights_cancelled_open ON flights (cancelled_at)
    WHERE state = 'CANCELLED' AND closed_event_id IS NULL;
CREATE INDEX inventory_locks_live_by_flight ON inventory_locks (flight_id)
    WHERE status IN ('ACTIVE', 'CONFIRMED');
CREATE INDEX reservations_by_flight ON reservations (flight_id);

------------------------------------------------------------------------------------------
-- Reads that now know a flight can be cancelled.

-- As in 0006, and 'cancelled': the flight was cancelled (orders for it are refused).
CREATE OR REPLACE FUNCTION inventory_read_request(p jsonb) RETURNS json
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
        'cancelled', (SELECT flight.state = 'CANCELLED'
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

-- As in 0006, and the order's flightCancelled.
CREATE OR REPLACE FUNCTION inventory_read_order(p jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    order_id_ uuid := (p->>'orderId')::uuid;
BEGIN
    RETURN json_build_object(
        'order', (SELECT json_build_object(
                      'orderId', r.order_id,
                      'flightId', r.flight_id,
                      'flightCancelled', COALESCE(flight.state = 'CANCELLED', false),
                      'closedBy', r.closed_before_reserved_by,
                      'quarantined', r.quarantined_at IS NOT NULL,
                      'booking', CASE WHEN r.booking_event_id IS NOT NULL THEN
                                     json_build_object('eventId', r.booking_event_id,
                                                       'detailType', r.booking_detail_type,
                                                       'detail', r.booking_detail) END,
                      'holds', inventory_holds_of(r.order_id))
                  FROM reservations AS r
                  LEFT JOIN flights AS flight USING (flight_id)
                  WHERE r.order_id = order_id_),
        'pending', (SELECT COALESCE(json_agg(json_build_object(
                               'eventId', entry.event_id,
                               'detailType', entry.detail_type,
                               'detail', entry.detail) ORDER BY entry.created_at), '[]')
                    FROM outbox AS entry
                    WHERE entry.order_id = order_id_ AND entry.state = 'PENDING'));
END $$;

------------------------------------------------------------------------------------------
-- Availability.

-- A flight's seat map, as anyone may see it: no order ids, nothing about passengers. A
-- seat held by a lapsed hold shows as AVAILABLE, because a reservation would take it.
-- versionSum moves whenever any seat of the flight changes (for the ETag). Null if there
-- is no such flight.
CREATE FUNCTION inventory_read_availability(p jsonb) RETURNS json
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
            'status', CASE WHEN flight.state = 'CANCELLED' THEN 'CANCELLED'
                           WHEN flight.departure_utc <= now() THEN 'DEPARTED'
                           ELSE 'SCHEDULED' END,
            'versionSum', (SELECT COALESCE(sum(seat.version), 0)
                           FROM flight_seats AS seat WHERE seat.flight_id = flight.flight_id),
            'seats', (SELECT COALESCE(json_agg(json_build_object(
                                 'seatNumber', seat.seat_number,
                                 'cabin', seat.cabin,
                                 'status', CASE WHEN seat.status = 'LOCKED'
                                                 AND hold.expires_at <= now() THEN 'AVAILABLE'
                                                ELSE seat.status::text END)
                             ORDER BY substring(seat.seat_number FROM '^[0-9]+')::integer,
                                      right(seat.seat_number, 1)), '[]')
                      FROM flight_seats AS seat
                      LEFT JOIN inventory_locks AS hold
                             ON hold.seat_id = seat.seat_id AND hold.status = 'ACTIVE'
                      WHERE seat.flight_id = flight.flight_id))
        FROM flights AS flight
        WHERE flight.flight_id = flight_id_);
END $$;

------------------------------------------------------------------------------------------
-- The schedule.

-- FlightScheduled: the flight (p.flight) and all its seats (p.seats [{seatNumber, cabin}])
-- in one transaction, with the answer p.event queued and kept on the flight. Outcomes:
-- opened; replayed {event} (the same schedule was applied before: its answer again);
-- conflict (the flight exists with other content, or was loaded without a schedule).
CREATE FUNCTION inventory_open_flight(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    flight_id_ uuid := (p#>>'{flight,flightId}')::uuid;
    existing   flights%ROWTYPE;
BEGIN
    PERFORM inventory_begin(p);
    INSERT INTO flights (flight_id, flight_code, origin_iata, destination_iata,
                         departure_utc, arrival_utc, schedule_fingerprint,
                         opened_event_id, opened_detail)
    VALUES (flight_id_, p#>>'{flight,flightCode}', p#>>'{flight,originIata}',
            p#>>'{flight,destinationIata}', (p#>>'{flight,departureUtc}')::timestamptz,
            (p#>>'{flight,arrivalUtc}')::timestamptz, p->>'fingerprint',
            (p#>>'{event,eventId}')::uuid, p#>>'{event,detail}')
    ON CONFLICT (flight_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO existing FROM flights WHERE flight_id = flight_id_;
        IF existing.schedule_fingerprint IS NOT DISTINCT FROM p->>'fingerprint'
           AND existing.opened_event_id IS NOT NULL THEN
            RETURN json_build_object(
                'outcome', 'replayed',
                'event', json_build_object('eventId', existing.opened_event_id,
                                           'detailType', 'FlightInventoryOpened',
                                           'detail', existing.opened_detail));
        END IF;
        RETURN json_build_object('outcome', 'conflict');
    END IF;
    INSERT INTO flight_seats (seat_id, flight_id, seat_number, cabin)
    SELECT gen_random_uuid(), flight_id_, seat."seatNumber", seat.cabin
    FROM jsonb_to_recordset(p->'seats') AS seat ("seatNumber" text, cabin cabin_class);
    INSERT INTO outbox (event_id, order_id, flight_id, detail_type, detail)
    VALUES ((p#>>'{event,eventId}')::uuid, NULL, flight_id_, 'FlightInventoryOpened',
            p#>>'{event,detail}');
    RETURN json_build_object('outcome', 'opened');
END $$;

-- FlightCancelled: marks the flight cancelled, once (the first reason stays). Its holds
-- and sales are then released order by order (inventory_read_flight_orders, then
-- inventory_transition). Outcomes: cancelled; missing (no such flight).
CREATE FUNCTION inventory_cancel_flight(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM inventory_begin(p);
    UPDATE flights
    SET state = 'CANCELLED', cancelled_at = now(), cancel_reason = left(p->>'reason', 500)
    WHERE flight_id = (p->>'flightId')::uuid AND state = 'SCHEDULED';
    IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM flights WHERE flight_id = (p->>'flightId')::uuid) THEN
        RETURN json_build_object('outcome', 'missing');
    END IF;
    RETURN json_build_object('outcome', 'cancelled');
END $$;

-- The orders with a live hold or sale on a cancelled flight (p.flightId), at most p.limit,
-- each as inventory_read_order reads it; how many orders the cancellation released so far;
-- and the FlightInventoryClosed answer, if the flight is closed already. Never a
-- quarantined order.
CREATE FUNCTION inventory_read_flight_orders(p jsonb) RETURNS json
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
        'ordersReleased', (SELECT count(DISTINCT hold.order_id)
                           FROM inventory_locks AS hold
                           WHERE hold.flight_id = flight_id_
                             AND hold.status = 'RELEASED'
                             AND hold.closed_at >= flight.cancelled_at),
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
                       SELECT DISTINCT hold.order_id
                       FROM inventory_locks AS hold
                       WHERE hold.flight_id = flight_id_
                         AND hold.status IN ('ACTIVE', 'CONFIRMED')
                       LIMIT (p->>'limit')::integer)
                     AND r.quarantined_at IS NULL));
END $$;

-- Closes a cancelled flight (p.flightId) once nothing live is left on it: queues and keeps
-- p.event (FlightInventoryClosed). Outcomes: closed; closedBefore {event}; notYet.
CREATE FUNCTION inventory_close_flight(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    flight_id_ uuid := (p->>'flightId')::uuid;
    flight     flights%ROWTYPE;
BEGIN
    PERFORM inventory_begin(p);
    SELECT * INTO flight FROM flights WHERE flight_id = flight_id_ FOR UPDATE;
    IF flight.closed_event_id IS NOT NULL THEN
        RETURN json_build_object(
            'outcome', 'closedBefore',
            'event', json_build_object('eventId', flight.closed_event_id,
                                       'detailType', 'FlightInventoryClosed',
                                       'detail', flight.closed_detail));
    END IF;
    IF flight.state IS DISTINCT FROM 'CANCELLED'
       OR EXISTS (SELECT 1 FROM inventory_locks
                  WHERE flight_id = flight_id_ AND status IN ('ACTIVE', 'CONFIRMED')) THEN
        RETURN json_build_object('outcome', 'notYet');
    END IF;
    UPDATE flights
    SET closed_event_id = (p#>>'{event,eventId}')::uuid, closed_detail = p#>>'{event,detail}'
    WHERE flight_id = flight_id_;
    INSERT INTO outbox (event_id, order_id, flight_id, detail_type, detail)
    VALUES ((p#>>'{event,eventId}')::uuid, NULL, flight_id_, 'FlightInventoryClosed',
            p#>>'{event,detail}');
    RETURN json_build_object('outcome', 'closed');
END $$;

-- Cancelled flights not closed yet, oldest cancellation first, for the schedule to finish.
CREATE FUNCTION inventory_cancelled_open_flights(p jsonb) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(json_agg(flight_id ORDER BY cancelled_at), '[]')
    FROM (SELECT flight_id, cancelled_at FROM flights
          WHERE state = 'CANCELLED' AND closed_event_id IS NULL
          ORDER BY cancelled_at
          LIMIT (p->>'limit')::integer) AS open_flight
$$;

------------------------------------------------------------------------------------------
-- Retention.

-- Deletes at most p.limit rows of the oldest flight that departed more than
-- p.retentionDays ago: its outbox rows, holds, reservations and seats, then the flight
-- itself once nothing else is left. Each call is a short transaction of its own, so no
-- lock is held long; the schedule calls it until it reports nothing deleted.
-- Orders closed before their OrderCreated (no flight) go the same way once that old.
CREATE FUNCTION inventory_retire(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    horizon    timestamptz := now() - make_interval(days => (p->>'retentionDays')::integer);
    budget     integer     := (p->>'limit')::integer;
    flight_id_ uuid;
    done       integer;
    deleted    integer     := 0;
    flights_deleted integer := 0;
BEGIN
    PERFORM inventory_begin(p);
    SELECT flight_id INTO flight_id_ FROM flights
    WHERE departure_utc < horizon
    ORDER BY departure_utc
    LIMIT 1
    FOR UPDATE SKIP LOCKED;

    IF flight_id_ IS NOT NULL THEN
        DELETE FROM outbox WHERE event_id IN (
            SELECT event_id FROM outbox
            WHERE flight_id = flight_id_
               OR order_id IN (SELECT order_id FROM reservations WHERE flight_id = flight_id_)
            LIMIT budget);
        GET DIAGNOSTICS done = ROW_COUNT;
        deleted := deleted + done;
        budget := budget - done;

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
            SELECT order_id FROM reservations
            WHERE flight_id IS NULL AND created_at < horizon
            LIMIT budget);
        GET DIAGNOSTICS done = ROW_COUNT;
        deleted := deleted + done;
    END IF;
    RETURN json_build_object('deleted', deleted, 'flightsDeleted', flights_deleted);
END $$;
