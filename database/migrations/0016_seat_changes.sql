-- Seat changes: an order's active hold or sale moves from each `from` seat to its `to`
-- seat, every move or none, in one commit. The hold row itself moves (its lock id, status
-- and expiry stay): a hold keeps its expiry and a sale stays sold.
--
-- The rules, where they are written:
--   a change takes each target only if it is FREE (inventory_seat_standing) at the version
--     read, and each source only from a live hold of the order at the seat's version, all
--     re-checked under the order's row lock and the seats' row locks in a new snapshot
--     (inventory_change_seats); a lost race reads and decides again;
--   a hold moves only while it is live, keeps its state, and never onto a cancelled flight
--     (the trigger inventory_guard_hold, now also on seat_id);
--   a transition (payment, release, expiry) that read the order before a change applies
--     nothing: it re-reads (inventory_transition, below), so its answer names the seats
--     the order holds now.
-- A change and a transition of one order serialize on the order's row, which both lock
-- before any seat; a change and a reservation or block of one target serialize on the
-- target's row.

-- The seat status a live hold or sale implies: LOCKED for an ACTIVE hold, BOOKED for a
-- CONFIRMED one. Whatever moves a hold writes its new seat with it.
CREATE FUNCTION inventory_seat_status_of(status hold_status) RETURNS seat_status
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status WHEN 'CONFIRMED' THEN 'BOOKED'::seat_status ELSE 'LOCKED'::seat_status END
$$;

-- A hold moves between seats only while it is live and keeps its state; the rest is as
-- 0008 defines it.
CREATE OR REPLACE FUNCTION inventory_guard_hold() RETURNS trigger
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
    IF TG_OP = 'UPDATE' AND OLD.seat_id IS DISTINCT FROM NEW.seat_id
       AND (OLD.status NOT IN ('ACTIVE', 'CONFIRMED') OR NEW.status <> OLD.status) THEN
        RAISE EXCEPTION 'hold % (%) cannot move to another seat', OLD.lock_id, OLD.status
            USING ERRCODE = 'IV002';
    END IF;
    IF NEW.status IN ('ACTIVE', 'CONFIRMED')
       AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status
            OR OLD.seat_id IS DISTINCT FROM NEW.seat_id)
       AND EXISTS (SELECT 1 FROM flights
                   WHERE flight_id = NEW.flight_id AND state = 'CANCELLED') THEN
        RAISE EXCEPTION 'flight % is cancelled: no hold or sale on it', NEW.flight_id
            USING ERRCODE = 'IV002';
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER inventory_guard_hold ON inventory_locks;
CREATE TRIGGER inventory_guard_hold
    BEFORE INSERT OR UPDATE OF status, seat_id ON inventory_locks
    FOR EACH ROW EXECUTE FUNCTION inventory_guard_hold();

-- A transition, as 0008 defines it, applied only if every hold it read is still on the
-- seat and at the version it read (p.seen[].seatId, .seatVersion, when given): a seat
-- change in between makes it read again. The order's row is locked here first, as the
-- transition locks it, so the check holds until the commit.
ALTER FUNCTION inventory_transition(jsonb) RENAME TO inventory_transition_of_holds;

CREATE FUNCTION inventory_transition(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
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
    RETURN inventory_transition_of_holds(p);
END $$;

-- SeatChangeRequested, decided, written and answered in one call. p: changeId, orderId
-- (null when unreadable), flightId (null when unreadable), fingerprint, eventId,
-- causationId, moves ([{from, to}], as sent), refusal ({reason, message}: INVALID_REQUEST
-- decided at the edge). Outcomes:
--   decided {event}; earlier {earlier: {fingerprint, event}};
--   lapsed {holders}: targets held by lapsed holds of other orders; expire those, then again;
--   quarantined {reason}: the order is set aside (now, if a seat it holds is not at its
--     hold's version, as a transition would); nothing else written;
--   lost: every race was lost.
CREATE FUNCTION inventory_change_seats(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    change_id_  uuid  := (p->>'changeId')::uuid;
    order_id_   uuid  := (p->>'orderId')::uuid;
    flight_id_  uuid  := (p->>'flightId')::uuid;
    refusal     jsonb := NULLIF(p->'refusal', 'null');
    earlier     json;
    flight      text;
    quarantine  text;
    missing     text[];
    cabins      text[];
    not_held    text[];
    expired     text[];
    strayed     text[];
    taken       text[];
    holders     uuid[];
    lock_ids    bigint[];
    statuses    hold_status[];
    from_ids    uuid[];
    from_versions integer[];
    to_ids      uuid[];
    to_versions integer[];
    positions   bigint[];
    lost        integer;
    new_seats   json;
    freed_seats json;
    reason      text;
    message     text;
    unavailable text[];
    detail_type text;
    detail      text;
    counts      integer[];
BEGIN
    PERFORM inventory_begin(p);
    FOR attempt IN 1..8 LOOP
        -- 1. read, without locks.
        WITH wanted AS (
            SELECT m."from", m."to", m.position
            FROM ROWS FROM (jsonb_to_recordset(CASE WHEN refusal IS NULL THEN p->'moves'
                                                    ELSE '[]' END) AS ("from" text, "to" text))
                 WITH ORDINALITY AS m ("from", "to", position)
        ),
        pairs AS (
            SELECT w.position, w."from", w."to",
                   source.seat_id AS from_id, source.version AS from_version,
                   source.cabin AS from_cabin, source.status AS from_status,
                   hold.lock_id, hold.status AS hold_status, hold.seat_version AS hold_version,
                   inventory_hold_lapsed(hold.status, hold.expires_at) AS lapsed,
                   target.seat_id AS to_id, target.version AS to_version,
                   target.cabin AS to_cabin, target.standing AS to_standing,
                   target.holder AS to_holder
            FROM wanted AS w
            LEFT JOIN flight_seats AS source
                   ON source.flight_id = flight_id_ AND source.seat_number = w."from"
            LEFT JOIN inventory_locks AS hold
                   ON hold.seat_id = source.seat_id AND hold.order_id = order_id_
                  AND hold.status IN ('ACTIVE', 'CONFIRMED', 'EXPIRED')
            LEFT JOIN inventory_seat_standing AS target
                   ON target.flight_id = flight_id_ AND target.seat_number = w."to"
        )
        SELECT inventory_seat_request_of(change_id_),
               (SELECT inventory_flight_status(f.state, f.departure_utc)
                FROM flights AS f WHERE f.flight_id = flight_id_),
               (SELECT r.quarantine_reason FROM reservations AS r WHERE r.order_id = order_id_),
               array_agg(pairs."from" ORDER BY position) FILTER (WHERE from_id IS NULL)
                   || array_agg(pairs."to" ORDER BY position) FILTER (WHERE to_id IS NULL),
               array_agg(pairs."to" ORDER BY position) FILTER (WHERE from_cabin <> to_cabin),
               array_agg(pairs."from" ORDER BY position) FILTER (WHERE lock_id IS NULL),
               array_agg(pairs."from" ORDER BY position)
                   FILTER (WHERE hold_status = 'EXPIRED' OR lapsed),
               array_agg(pairs."from" ORDER BY position)
                   FILTER (WHERE hold_status IN ('ACTIVE', 'CONFIRMED') AND NOT lapsed
                             AND (from_version <> hold_version
                                  OR from_status <> inventory_seat_status_of(hold_status))),
               array_agg(pairs."to" ORDER BY position) FILTER (WHERE to_standing = 'TAKEN'),
               array_agg(DISTINCT to_holder) FILTER (WHERE to_standing = 'LAPSED'),
               array_agg(lock_id ORDER BY position),
               array_agg(hold_status ORDER BY position),
               array_agg(from_id ORDER BY position),
               array_agg(from_version ORDER BY position),
               array_agg(to_id ORDER BY position),
               array_agg(to_version ORDER BY position),
               array_agg(position ORDER BY position)
        INTO earlier, flight, quarantine, missing, cabins, not_held, expired, strayed, taken,
             holders, lock_ids, statuses, from_ids, from_versions, to_ids, to_versions, positions
        FROM pairs;
        IF earlier IS NOT NULL THEN
            RETURN json_build_object('outcome', 'earlier', 'earlier', earlier);
        END IF;

        reason := NULL;
        message := NULL;
        unavailable := '{}';
        IF refusal IS NOT NULL THEN
            reason := refusal->>'reason';
            message := refusal->>'message';
        ELSIF flight IS NULL THEN
            reason := 'FLIGHT_NOT_FOUND';
            message := format('flight %s does not exist', flight_id_);
        ELSIF flight = 'CANCELLED' THEN
            reason := 'FLIGHT_CANCELLED';
            message := format('flight %s was cancelled', flight_id_);
        ELSIF flight = 'DEPARTED' THEN
            reason := 'FLIGHT_DEPARTED';
            message := format('flight %s has already departed', flight_id_);
        ELSIF quarantine IS NOT NULL THEN
            RETURN json_build_object('outcome', 'quarantined', 'reason', quarantine);
        ELSIF missing IS NOT NULL THEN
            reason := 'SEAT_NOT_FOUND';
            unavailable := missing;
            message := format('no seat %s on flight %s', array_to_string(missing, ', '), flight_id_);
        ELSIF cabins IS NOT NULL THEN
            reason := 'INVALID_REQUEST';
            message := format('the fare does not allow a change of cabin (to %s)',
                              array_to_string(cabins, ', '));
        ELSIF not_held IS NOT NULL THEN
            reason := 'NOT_HELD_BY_ORDER';
            unavailable := not_held;
            message := format('order %s holds neither an active hold nor a sale of %s', order_id_,
                              array_to_string(not_held, ', '));
        ELSIF expired IS NOT NULL THEN
            reason := 'HOLD_EXPIRED';
            unavailable := expired;
            message := format('the hold of %s has expired', array_to_string(expired, ', '));
        ELSIF strayed IS NOT NULL THEN
            -- A seat the order holds is not where its hold says: set the order aside, as a
            -- transition would.
            UPDATE reservations
            SET quarantined_at = now(),
                quarantine_reason = 'a seat it holds is not at the version its hold took it at'
            WHERE order_id = order_id_ AND quarantined_at IS NULL;
            RETURN json_build_object('outcome', 'quarantined', 'reason',
                                     'a seat it holds is not at the version its hold took it at');
        ELSIF taken IS NOT NULL THEN
            reason := 'SEAT_UNAVAILABLE';
            unavailable := taken;
            message := format('held, sold or blocked: %s', array_to_string(taken, ', '));
        ELSIF holders IS NOT NULL THEN
            RETURN json_build_object('outcome', 'lapsed', 'holders', holders);
        END IF;

        IF reason IS NULL THEN
            IF COALESCE(cardinality(lock_ids), 0) = 0 THEN
                RAISE EXCEPTION 'change %: no move', change_id_ USING ERRCODE = '22023';
            END IF;
            -- 2. lock: the order's row, then every seat of the change in seat_id order.
            PERFORM 1 FROM reservations WHERE order_id = order_id_ FOR UPDATE;
            PERFORM 1 FROM flight_seats WHERE seat_id = ANY (from_ids || to_ids)
            ORDER BY seat_id FOR UPDATE;
            -- 3. check, in a snapshot taken after the locks.
            SELECT (SELECT inventory_flight_status(f.state, f.departure_utc)
                    FROM flights AS f WHERE f.flight_id = flight_id_),
                   COALESCE((SELECT r.quarantined_at IS NOT NULL FROM reservations AS r
                             WHERE r.order_id = order_id_), true)::integer
                   + count(*) FILTER (
                       WHERE hold.lock_id IS NULL
                          OR hold.order_id <> order_id_ OR hold.seat_id <> m.from_id
                          OR hold.status <> m.status
                          OR inventory_hold_lapsed(hold.status, hold.expires_at)
                          OR hold.seat_version <> m.from_version
                          OR source.version <> m.from_version
                          OR target.seat_id IS NULL OR target.flight_id <> flight_id_
                          OR target.standing <> 'FREE' OR target.version <> m.to_version),
                   json_agg(json_build_object('seatId', target.seat_id,
                                              'seatNumber', target.seat_number,
                                              'version', target.version + 1)
                            ORDER BY m.position),
                   json_agg(json_build_object('seatId', source.seat_id,
                                              'seatNumber', source.seat_number,
                                              'version', source.version + 1)
                            ORDER BY m.position)
            INTO flight, lost, new_seats, freed_seats
            FROM unnest(lock_ids, statuses, from_ids, from_versions, to_ids, to_versions, positions)
                 AS m (lock_id, status, from_id, from_version, to_id, to_version, position)
            LEFT JOIN inventory_locks AS hold ON hold.lock_id = m.lock_id
            LEFT JOIN flight_seats AS source ON source.seat_id = m.from_id
            LEFT JOIN LATERAL (SELECT * FROM inventory_seat_standing AS standing
                               WHERE standing.seat_id = m.to_id) AS target ON true;
            IF flight IS DISTINCT FROM 'SCHEDULED' OR lost > 0 THEN
                CONTINUE;
            END IF;
        ELSE
            lock_ids := '{}';
            statuses := '{}';
            from_ids := '{}';
            from_versions := '{}';
            to_ids := '{}';
            to_versions := '{}';
        END IF;

        -- 4. write: the answer with the change, the outbox, the targets, the sources and
        -- the holds, in one statement.
        IF reason IS NULL THEN
            detail_type := 'SeatsChanged';
            detail := json_build_object(
                'eventId', p->'eventId', 'changeId', p->'changeId', 'orderId', p->'orderId',
                'flightId', p->'flightId', 'moves', p->'moves', 'seats', new_seats,
                'freedSeats', freed_seats, 'causationId', p->'causationId')::text;
        ELSE
            detail_type := 'SeatChangeFailed';
            detail := json_build_object(
                'eventId', p->'eventId', 'changeId', p->'changeId', 'orderId', p->'orderId',
                'flightId', p->'flightId', 'moves', COALESCE(p->'moves', '[]'),
                'reason', reason, 'unavailableSeats', to_json(unavailable),
                'message', message, 'causationId', p->'causationId')::text;
        END IF;
        WITH claim AS (
            INSERT INTO seat_requests (request_id, kind, flight_id, fingerprint,
                                       outcome_event_id, outcome_detail_type, outcome_detail)
            VALUES (change_id_, 'SeatChangeRequested',
                    CASE WHEN flight IS NOT NULL THEN flight_id_ END, p->>'fingerprint',
                    (p->>'eventId')::uuid, detail_type, detail)
            ON CONFLICT DO NOTHING
            RETURNING request_id
        ),
        queued AS (
            INSERT INTO outbox (event_id, order_id, flight_id, detail_type, detail)
            SELECT (p->>'eventId')::uuid, order_id_,
                   CASE WHEN flight IS NOT NULL THEN flight_id_ END, detail_type, detail
            FROM claim
        ),
        targets AS (
            UPDATE flight_seats AS seat
            SET status = inventory_seat_status_of(m.status),
                version = seat.version + 1, updated_at = now()
            FROM claim, unnest(to_ids, to_versions, statuses) AS m (seat_id, version, status)
            WHERE seat.seat_id = m.seat_id AND seat.version = m.version
              AND seat.status = 'AVAILABLE'
            RETURNING 1
        ),
        sources AS (
            UPDATE flight_seats AS seat
            SET status = 'AVAILABLE', version = seat.version + 1, updated_at = now()
            FROM claim, unnest(from_ids, from_versions) AS m (seat_id, version)
            WHERE seat.seat_id = m.seat_id AND seat.version = m.version
            RETURNING 1
        ),
        moved AS (
            UPDATE inventory_locks AS hold
            SET seat_id = m.to_id, seat_version = m.to_version + 1
            FROM claim, unnest(lock_ids, to_ids, to_versions) AS m (lock_id, to_id, to_version)
            WHERE hold.lock_id = m.lock_id AND hold.order_id = order_id_
            RETURNING 1
        )
        SELECT ARRAY[(SELECT count(*) FROM claim), (SELECT count(*) FROM targets),
                     (SELECT count(*) FROM sources), (SELECT count(*) FROM moved)]::integer[]
        INTO counts;
        IF counts[1] = 0 THEN
            -- Another delivery of this change decided first: the next read answers with it.
            CONTINUE;
        END IF;
        IF counts[2] <> cardinality(lock_ids) OR counts[3] <> cardinality(lock_ids)
           OR counts[4] <> cardinality(lock_ids) THEN
            RAISE EXCEPTION 'change %: % targets, % sources and % holds of % moves were written',
                change_id_, counts[2], counts[3], counts[4], cardinality(lock_ids)
                USING ERRCODE = 'IV001';
        END IF;
        RETURN json_build_object(
            'outcome', 'decided',
            'event', json_build_object('eventId', p->'eventId', 'detailType', detail_type,
                                       'detail', detail));
    END LOOP;
    RETURN json_build_object('outcome', 'lost');
END $$;
