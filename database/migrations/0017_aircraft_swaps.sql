-- Aircraft swaps: AircraftChanged gives a flight a new cabin layout while orders hold and
-- own its seats.
--
--   a seat in both layouts keeps its state, hold or sale, and block (and takes the new
--     layout's cabin);
--   a seat only in the new layout is added, free;
--   a seat only in the old layout leaves the layout (in_layout false): it is never FREE
--     again (inventory_seat_standing), so no reservation, block or change takes it, and the
--     seat map no longer shows it; a block on it is lifted. Its row stays, with its
--     history, and comes back (same seat id, next version) if a later layout has it again;
--   every hold or sale on a seat that left the layout is moved within its cabin
--     (inventory_reassign_order, in batches, planned by the service) or, if the cabin has
--     no room, its order is released (SeatReleased, AIRCRAFT_CHANGED);
--   once nothing live is left on such a seat, the change is finished and answered once
--     with FlightLayoutChanged (inventory_finish_aircraft_change).
--
-- One change at a time per flight (aircraft_changes_one_open_per_flight): a second,
-- different change is refused while one is open, and the service fails it as retryable.
-- The change locks the flight's row, then every seat of the flight in seat_id order, as a
-- cancellation does: reservations, blocks and seat changes in flight finish first, and any
-- that follow see the new layout.

ALTER TABLE flight_seats ADD COLUMN in_layout boolean NOT NULL DEFAULT true;
CREATE INDEX flight_seats_out_of_layout ON flight_seats (flight_id) WHERE NOT in_layout;

-- The rule: a hold or sale is displaced when it is live on a seat out of its flight's
-- layout. Every function below that moves, counts or waits for them reads this view.
CREATE VIEW inventory_displaced_holds AS
SELECT seat.flight_id, seat.seat_id, seat.seat_number, seat.cabin, seat.version,
       hold.lock_id, hold.order_id, hold.status,
       holder.quarantined_at IS NOT NULL AS quarantined
FROM flight_seats AS seat
JOIN inventory_locks AS hold
     ON hold.seat_id = seat.seat_id AND hold.status IN ('ACTIVE', 'CONFIRMED')
JOIN reservations AS holder ON holder.order_id = hold.order_id
WHERE NOT seat.in_layout;

CREATE TABLE aircraft_changes (
    change_id       uuid PRIMARY KEY,
    flight_id       uuid NOT NULL REFERENCES flights (flight_id) ON DELETE CASCADE,
    fingerprint     text NOT NULL,
    causation_id    text NOT NULL,
    orders_moved    integer NOT NULL DEFAULT 0,
    orders_released integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    finished_event_id uuid,
    finished_detail text,
    CHECK ((finished_at IS NULL) = (finished_event_id IS NULL)
           AND (finished_event_id IS NULL) = (finished_detail IS NULL))
);
CREATE UNIQUE INDEX aircraft_changes_one_open_per_flight ON aircraft_changes (flight_id)
    WHERE finished_at IS NULL;
CREATE INDEX aircraft_changes_by_flight ON aircraft_changes (flight_id);

-- The standing, as 0014 defines it, and a seat out of the layout is never FREE or LAPSED.
CREATE OR REPLACE VIEW inventory_seat_standing AS
SELECT seat.seat_id,
       seat.flight_id,
       seat.seat_number,
       seat.cabin,
       seat.status,
       seat.version,
       claim.order_id AS holder,
       CASE
           WHEN NOT seat.in_layout THEN 'TAKEN'
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
       END AS shown_status,
       seat.block_reason,
       seat.in_layout
FROM flight_seats AS seat
LEFT JOIN inventory_locks AS claim
       ON claim.seat_id = seat.seat_id AND claim.status IN ('ACTIVE', 'CONFIRMED')
LEFT JOIN reservations AS holder
       ON holder.order_id = claim.order_id;

-- The seat map, as 0014 defines it, of the seats in the layout.
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
                           FROM flight_seats AS seat
                           WHERE seat.flight_id = flight.flight_id AND seat.in_layout),
            'seats', (SELECT COALESCE(json_agg(json_strip_nulls(json_build_object(
                                 'seatNumber', seat.seat_number,
                                 'cabin', seat.cabin,
                                 'status', seat.shown_status,
                                 'blockReason', seat.block_reason))
                             ORDER BY substring(seat.seat_number FROM '^[0-9]+')::integer,
                                      right(seat.seat_number, 1)), '[]')
                      FROM inventory_seat_standing AS seat
                      WHERE seat.flight_id = flight.flight_id AND seat.in_layout))
        FROM flights AS flight
        WHERE flight.flight_id = flight_id_);
END $$;

-- The FlightLayoutChanged of an open change, if nothing live is left on a seat out of the
-- layout: queued, and the change finished, once. Used by the two functions below.
CREATE FUNCTION inventory_finish_if_done(p_change uuid, p_event uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    change aircraft_changes%ROWTYPE;
    detail text;
BEGIN
    SELECT * INTO change FROM aircraft_changes WHERE change_id = p_change FOR UPDATE;
    IF change.finished_at IS NOT NULL THEN
        RETURN json_build_object('eventId', change.finished_event_id,
                                 'detailType', 'FlightLayoutChanged',
                                 'detail', change.finished_detail);
    END IF;
    -- A flight that has departed moves nothing more: its change is finished as it stands.
    IF EXISTS (SELECT 1 FROM inventory_displaced_holds AS displaced
               WHERE displaced.flight_id = change.flight_id)
       AND (SELECT inventory_flight_status(f.state, f.departure_utc) FROM flights AS f
            WHERE f.flight_id = change.flight_id) <> 'DEPARTED' THEN
        RETURN NULL;
    END IF;
    detail := json_build_object(
        'eventId', p_event, 'changeId', change.change_id, 'flightId', change.flight_id,
        'cabins', (SELECT json_agg(json_build_object('cabin', cabin, 'seats', seats)
                                   ORDER BY cabin)
                   FROM (SELECT cabin, count(*) AS seats FROM flight_seats
                         WHERE flight_id = change.flight_id AND in_layout
                         GROUP BY cabin) AS per_cabin),
        'seats', (SELECT count(*) FROM flight_seats
                  WHERE flight_id = change.flight_id AND in_layout),
        'ordersMoved', change.orders_moved,
        'ordersReleased', change.orders_released,
        'causationId', change.causation_id)::text;
    UPDATE aircraft_changes
    SET finished_at = now(), finished_event_id = p_event, finished_detail = detail
    WHERE change_id = p_change;
    INSERT INTO outbox (event_id, flight_id, detail_type, detail)
    VALUES (p_event, change.flight_id, 'FlightLayoutChanged', detail);
    RETURN json_build_object('eventId', p_event, 'detailType', 'FlightLayoutChanged',
                             'detail', detail);
END $$;

-- AircraftChanged: p: changeId, flightId, fingerprint, causationId, eventId (of
-- FlightLayoutChanged, if it finishes now), seats ([{seatNumber, cabin}], the new layout).
-- Outcomes:
--   applied {finished: event or null}: the layout is the new one; orders to move, if any,
--     are the service's to move (inventory_read_displaced);
--   earlier {fingerprint, finished: event or null}: this change id was applied before;
--   busy: another change of the flight is open; missing; cancelled; departed.
CREATE FUNCTION inventory_change_aircraft(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    change_id_ uuid := (p->>'changeId')::uuid;
    flight_id_ uuid := (p->>'flightId')::uuid;
    flight     flights%ROWTYPE;
    earlier    aircraft_changes%ROWTYPE;
    counts     bigint[];
BEGIN
    PERFORM inventory_begin(p);
    SELECT * INTO earlier FROM aircraft_changes WHERE change_id = change_id_;
    IF FOUND THEN
        RETURN json_build_object('outcome', 'earlier', 'fingerprint', earlier.fingerprint,
                                 'finished', CASE WHEN earlier.finished_at IS NOT NULL THEN
                                     json_build_object('eventId', earlier.finished_event_id,
                                                       'detailType', 'FlightLayoutChanged',
                                                       'detail', earlier.finished_detail) END);
    END IF;
    -- NO KEY UPDATE, as a cancellation's UPDATE takes: a block or seat change that holds
    -- seats and then writes its request (a foreign key share lock on this row) must not
    -- wait for this change while it waits for their seats.
    SELECT * INTO flight FROM flights WHERE flight_id = flight_id_ FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN json_build_object('outcome', 'missing');
    ELSIF inventory_flight_status(flight.state, flight.departure_utc) = 'CANCELLED' THEN
        RETURN json_build_object('outcome', 'cancelled');
    ELSIF inventory_flight_status(flight.state, flight.departure_utc) = 'DEPARTED' THEN
        RETURN json_build_object('outcome', 'departed');
    END IF;
    INSERT INTO aircraft_changes (change_id, flight_id, fingerprint, causation_id)
    VALUES (change_id_, flight_id_, p->>'fingerprint', p->>'causationId')
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        -- The same id, decided at this very moment, or another change still open.
        IF EXISTS (SELECT 1 FROM aircraft_changes WHERE change_id = change_id_) THEN
            RETURN inventory_change_aircraft(p);
        END IF;
        RETURN json_build_object('outcome', 'busy');
    END IF;

    -- Every seat of the flight, in seat_id order: what is in flight on them finishes first.
    PERFORM 1 FROM flight_seats WHERE flight_id = flight_id_ ORDER BY seat_id FOR UPDATE;

    WITH layout AS (
        SELECT seat."seatNumber" AS seat_number, seat.cabin
        FROM jsonb_to_recordset(p->'seats') AS seat ("seatNumber" text, cabin cabin_class)
    ),
    kept AS (
        UPDATE flight_seats AS seat
        SET in_layout = true, cabin = layout.cabin,
            version = CASE WHEN seat.in_layout THEN seat.version ELSE seat.version + 1 END,
            updated_at = now()
        FROM layout
        WHERE seat.flight_id = flight_id_ AND seat.seat_number = layout.seat_number
          AND (NOT seat.in_layout OR seat.cabin <> layout.cabin)
        RETURNING seat.seat_id
    ),
    added AS (
        INSERT INTO flight_seats (seat_id, flight_id, seat_number, cabin)
        SELECT gen_random_uuid(), flight_id_, layout.seat_number, layout.cabin
        FROM layout
        WHERE NOT EXISTS (SELECT 1 FROM flight_seats AS seat
                          WHERE seat.flight_id = flight_id_
                            AND seat.seat_number = layout.seat_number)
        RETURNING seat_id
    ),
    -- A seat that leaves the layout: out of it, its block lifted (at a new version).
    gone AS (
        UPDATE flight_seats AS seat
        SET in_layout = false,
            status = CASE WHEN seat.status = 'BLOCKED' THEN 'AVAILABLE'::seat_status
                          ELSE seat.status END,
            version = CASE WHEN seat.status = 'BLOCKED' THEN seat.version + 1
                           ELSE seat.version END,
            block_reason = NULL, block_note = NULL, blocked_by = NULL, updated_at = now()
        WHERE seat.flight_id = flight_id_ AND seat.in_layout
          AND NOT EXISTS (SELECT 1 FROM layout WHERE layout.seat_number = seat.seat_number)
        RETURNING seat.seat_id
    )
    SELECT ARRAY[(SELECT count(*) FROM kept), (SELECT count(*) FROM added),
                 (SELECT count(*) FROM gone)]
    INTO counts;
    RETURN json_build_object('outcome', 'applied',
                             'finished', inventory_finish_if_done(change_id_,
                                                                  (p->>'eventId')::uuid));
END $$;

-- The orders a flight's open change still has to move (p.flightId, at most p.limit, not
-- quarantined), each as inventory_read_order reads it with the holds to move; and every
-- FREE seat of the flight, for the service to plan where they go. None while the flight
-- does not take holds (a cancellation releases its orders; a departed flight's change is
-- finished as it stands). No lock.
CREATE FUNCTION inventory_read_displaced(p jsonb) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'changeId', change.change_id,
        'causationId', change.causation_id,
        'orders', (SELECT COALESCE(json_agg(json_build_object(
                              'order', json_build_object(
                                  'orderId', r.order_id, 'flightId', r.flight_id,
                                  'flightCancelled', false,
                                  'closedBy', r.closed_before_reserved_by,
                                  'quarantined', false, 'booking', NULL,
                                  'holds', inventory_holds_of(r.order_id)),
                              'displaced', (SELECT json_agg(json_build_object(
                                                'lockId', displaced.lock_id,
                                                'seatId', displaced.seat_id,
                                                'seatNumber', displaced.seat_number,
                                                'cabin', displaced.cabin,
                                                'version', displaced.version,
                                                'status', displaced.status)
                                                ORDER BY displaced.seat_number)
                                            FROM inventory_displaced_holds AS displaced
                                            WHERE displaced.order_id = r.order_id))
                          ORDER BY r.order_id), '[]')
                   FROM reservations AS r
                   WHERE inventory_flight_status(flight.state, flight.departure_utc) = 'SCHEDULED'
                     AND r.order_id IN (
                       SELECT DISTINCT displaced.order_id
                       FROM inventory_displaced_holds AS displaced
                       WHERE displaced.flight_id = change.flight_id AND NOT displaced.quarantined
                       ORDER BY displaced.order_id
                       LIMIT (p->>'limit')::integer)),
        'free', (SELECT COALESCE(json_agg(json_build_object(
                            'seatId', seat.seat_id, 'seatNumber', seat.seat_number,
                            'cabin', seat.cabin, 'version', seat.version)), '[]')
                 FROM inventory_seat_standing AS seat
                 WHERE seat.flight_id = change.flight_id AND seat.standing = 'FREE'))
    FROM aircraft_changes AS change
    JOIN flights AS flight ON flight.flight_id = change.flight_id
    WHERE change.flight_id = (p->>'flightId')::uuid AND change.finished_at IS NULL
$$;

-- One order's holds moved off seats out of the layout, as the service planned them.
-- p: changeId, orderId, flightId, eventId, moves ([{lockId, fromId, fromVersion, toId,
-- toVersion}]). Locks the order's row, then the seats in seat_id order, and re-checks in a
-- new snapshot: each hold is still the order's, live, on its seat out of the layout at the
-- seat's version; each target is FREE at its version, in the same cabin. Then one
-- statement: the targets, the sources, the holds, SeatsReassigned in the outbox, and the
-- change's count. Outcomes: moved {event}; changed (read again); cancelled.
CREATE FUNCTION inventory_reassign_order(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    order_id_  uuid := (p->>'orderId')::uuid;
    flight_id_ uuid := (p->>'flightId')::uuid;
    flight     text;
    wrong      integer;
    detail     text;
    counts     bigint[];
    moves      integer := jsonb_array_length(p->'moves');
BEGIN
    PERFORM inventory_begin(p);
    PERFORM 1 FROM reservations WHERE order_id = order_id_ FOR UPDATE;
    PERFORM 1 FROM flight_seats
    WHERE seat_id IN (SELECT m."fromId" FROM jsonb_to_recordset(p->'moves') AS m ("fromId" uuid)
                      UNION
                      SELECT m."toId" FROM jsonb_to_recordset(p->'moves') AS m ("toId" uuid))
    ORDER BY seat_id FOR UPDATE;
    SELECT (SELECT inventory_flight_status(f.state, f.departure_utc)
            FROM flights AS f WHERE f.flight_id = flight_id_),
           COALESCE((SELECT r.quarantined_at IS NOT NULL FROM reservations AS r
                     WHERE r.order_id = order_id_), true)::integer
           + count(*) FILTER (
               WHERE hold.lock_id IS NULL OR hold.order_id <> order_id_
                  OR hold.seat_id <> m."fromId" OR hold.status NOT IN ('ACTIVE', 'CONFIRMED')
                  OR hold.seat_version <> m."fromVersion"
                  OR source.version <> m."fromVersion" OR source.in_layout
                  OR target.seat_id IS NULL OR target.flight_id <> flight_id_
                  OR target.standing <> 'FREE' OR target.version <> m."toVersion"
                  OR target.cabin <> source.cabin)
    INTO flight, wrong
    FROM jsonb_to_recordset(p->'moves')
         AS m ("lockId" bigint, "fromId" uuid, "fromVersion" integer, "toId" uuid,
               "toVersion" integer)
    LEFT JOIN inventory_locks AS hold ON hold.lock_id = m."lockId"
    LEFT JOIN flight_seats AS source ON source.seat_id = m."fromId"
    LEFT JOIN LATERAL (SELECT * FROM inventory_seat_standing AS standing
                       WHERE standing.seat_id = m."toId") AS target ON true;
    IF flight = 'CANCELLED' THEN
        RETURN json_build_object('outcome', 'cancelled');
    END IF;
    IF flight IS DISTINCT FROM 'SCHEDULED' OR wrong > 0 OR moves = 0 THEN
        RETURN json_build_object('outcome', 'changed');
    END IF;

    detail := json_build_object(
        'eventId', p->'eventId', 'changeId', p->'changeId', 'orderId', p->'orderId',
        'flightId', p->'flightId',
        'moves', (SELECT json_agg(json_build_object('from', source.seat_number,
                                                    'to', target.seat_number,
                                                    'seatId', target.seat_id,
                                                    'version', target.version + 1)
                                  ORDER BY source.seat_number)
                  FROM jsonb_to_recordset(p->'moves') AS m ("fromId" uuid, "toId" uuid)
                  JOIN flight_seats AS source ON source.seat_id = m."fromId"
                  JOIN flight_seats AS target ON target.seat_id = m."toId"),
        'causationId', (SELECT causation_id FROM aircraft_changes
                        WHERE change_id = (p->>'changeId')::uuid))::text;
    WITH m AS (
        SELECT * FROM jsonb_to_recordset(p->'moves')
            AS m ("lockId" bigint, "fromId" uuid, "fromVersion" integer, "toId" uuid,
                  "toVersion" integer, status hold_status)
    ),
    targets AS (
        UPDATE flight_seats AS seat
        SET status = inventory_seat_status_of(m.status),
            version = seat.version + 1, updated_at = now()
        FROM m
        WHERE seat.seat_id = m."toId" AND seat.version = m."toVersion"
          AND seat.status = 'AVAILABLE'
        RETURNING 1
    ),
    sources AS (
        UPDATE flight_seats AS seat
        SET status = 'AVAILABLE', version = seat.version + 1, updated_at = now()
        FROM m
        WHERE seat.seat_id = m."fromId" AND seat.version = m."fromVersion"
        RETURNING 1
    ),
    moved AS (
        UPDATE inventory_locks AS hold
        SET seat_id = m."toId", seat_version = m."toVersion" + 1
        FROM m
        WHERE hold.lock_id = m."lockId" AND hold.order_id = order_id_
          AND hold.status = m.status
        RETURNING 1
    ),
    queued AS (
        INSERT INTO outbox (event_id, order_id, flight_id, detail_type, detail)
        VALUES ((p->>'eventId')::uuid, order_id_, flight_id_, 'SeatsReassigned', detail)
    ),
    counted AS (
        UPDATE aircraft_changes SET orders_moved = orders_moved + 1
        WHERE change_id = (p->>'changeId')::uuid
    )
    SELECT ARRAY[(SELECT count(*) FROM targets), (SELECT count(*) FROM sources),
                 (SELECT count(*) FROM moved)]
    INTO counts;
    IF counts[1] <> moves OR counts[2] <> moves OR counts[3] <> moves THEN
        RAISE EXCEPTION 'order %: % targets, % sources and % holds of % moves were written',
            order_id_, counts[1], counts[2], counts[3], moves USING ERRCODE = 'IV001';
    END IF;
    RETURN json_build_object('outcome', 'moved',
                             'event', json_build_object('eventId', p->'eventId',
                                                        'detailType', 'SeatsReassigned',
                                                        'detail', detail));
END $$;

-- The open change of a flight finished, if nothing is left to move: FlightLayoutChanged
-- (p.eventId if it is queued now), or null. p: flightId.
CREATE FUNCTION inventory_finish_aircraft_change(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    change_id_ uuid;
BEGIN
    PERFORM inventory_begin(p);
    SELECT change_id INTO change_id_ FROM aircraft_changes
    WHERE flight_id = (p->>'flightId')::uuid AND finished_at IS NULL;
    IF change_id_ IS NULL THEN
        RETURN json_build_object('finished', NULL);
    END IF;
    RETURN json_build_object('finished',
                             inventory_finish_if_done(change_id_, (p->>'eventId')::uuid));
END $$;

-- Flights with an open change that can make progress, oldest first, for the schedule to
-- go on with (p.limit). A change only quarantined orders hold open waits for their repair
-- (or the flight's departure, which finishes it as it stands) and never keeps another
-- flight's change from its turn.
CREATE FUNCTION inventory_open_aircraft_changes(p jsonb) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(json_agg(flight_id ORDER BY created_at), '[]')
    FROM (SELECT change.flight_id, change.created_at
          FROM aircraft_changes AS change
          JOIN flights AS flight ON flight.flight_id = change.flight_id
          WHERE change.finished_at IS NULL
            AND (inventory_flight_status(flight.state, flight.departure_utc) = 'DEPARTED'
                 OR NOT (EXISTS (SELECT 1 FROM inventory_displaced_holds AS displaced
                                 WHERE displaced.flight_id = change.flight_id
                                   AND displaced.quarantined)
                         AND NOT EXISTS (SELECT 1 FROM inventory_displaced_holds AS displaced
                                         WHERE displaced.flight_id = change.flight_id
                                           AND NOT displaced.quarantined)))
          ORDER BY change.created_at
          LIMIT (p->>'limit')::integer) AS open
$$;
CREATE INDEX aircraft_changes_open ON aircraft_changes (created_at) WHERE finished_at IS NULL;

-- A transition, as 0016 defines it; one that releases an order for an aircraft change
-- (p.aircraftChangeId) counts it with the change, in the same commit.
CREATE OR REPLACE FUNCTION inventory_transition(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    result json;
BEGIN
    IF p ? 'lockTimeoutMs' THEN
        PERFORM set_config('lock_timeout', (p->>'lockTimeoutMs')::integer || 'ms', true);
    END IF;
    IF (p->>'wait')::boolean THEN
        PERFORM 1 FROM reservations WHERE order_id = (p->>'orderId')::uuid FOR UPDATE;
    ELSE
        PERFORM 1 FROM reservations WHERE order_id = (p->>'orderId')::uuid
        FOR UPDATE SKIP LOCKED;
    END IF;
    IF EXISTS (
        SELECT 1
        FROM jsonb_to_recordset(COALESCE(p->'seen', '[]'))
             AS seen ("lockId" bigint, "seatId" uuid, "seatVersion" integer)
        JOIN inventory_locks AS hold ON hold.lock_id = seen."lockId"
        WHERE seen."seatId" IS NOT NULL
          AND (hold.seat_id <> seen."seatId" OR hold.seat_version <> seen."seatVersion")) THEN
        RETURN json_build_object('outcome', 'changed');
    END IF;
    result := inventory_transition_of_holds(p);
    IF p ? 'aircraftChangeId' AND result->>'outcome' = 'applied' THEN
        UPDATE aircraft_changes SET orders_released = orders_released + 1
        WHERE change_id = (p->>'aircraftChangeId')::uuid;
    END IF;
    RETURN result;
END $$;

-- Retention deletes a flight's changes with it (the foreign key); nothing else keeps them.
