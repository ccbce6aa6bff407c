-- Blocked seats: operations takes a seat out of sale (crew rest, an inoperative seat,
-- weight and balance, a seat kept for a passenger with reduced mobility) and gives it
-- back. Each request of operations is answered once, by its id, like an order.
--
-- The rules, where they are written:
--   a seat is BLOCKED exactly when it carries a block reason and the request that set it
--     (flight_seats_block_check);
--   only a FREE seat (inventory_seat_standing) is blocked, all the seats of a request or
--     none, each at the version read and re-checked under its row lock in a new snapshot
--     (inventory_block_seats), so a reservation and a block of one seat serialize on its
--     row and whichever commits second sees the other;
--   a BLOCKED seat is never FREE, so no reservation, any-seat pick or batch takes it: the
--     standing already says TAKEN for any seat that is not AVAILABLE;
--   a seat is unblocked only from BLOCKED (inventory_unblock_seats), at a new version.

CREATE TYPE seat_block_reason AS ENUM (
    'CREW_REST', 'INOPERATIVE', 'WEIGHT_AND_BALANCE', 'RESERVED_FOR_ASSISTANCE', 'OPERATOR');

ALTER TABLE flight_seats
    ADD COLUMN block_reason seat_block_reason,
    ADD COLUMN block_note text,
    ADD COLUMN blocked_by uuid,
    ADD CONSTRAINT flight_seats_block_check CHECK (
        (status = 'BLOCKED') = (block_reason IS NOT NULL)
        AND (block_reason IS NULL) = (blocked_by IS NULL)
        AND (block_note IS NULL OR block_reason IS NOT NULL));

-- The requests of operations (and, from 0015, seat changes), each answered once: the
-- answer is kept with the request, and a redelivery gets it again. A request for a flight
-- that does not exist names no flight; retention deletes it once old.
CREATE TYPE seat_request_kind AS ENUM ('SeatBlockRequested', 'SeatUnblockRequested');

CREATE TABLE seat_requests (
    request_id          uuid PRIMARY KEY,
    kind                seat_request_kind NOT NULL,
    flight_id           uuid REFERENCES flights (flight_id) ON DELETE CASCADE,
    fingerprint         text NOT NULL,
    outcome_event_id    uuid NOT NULL,
    outcome_detail_type text NOT NULL,
    outcome_detail      text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX seat_requests_by_flight ON seat_requests (flight_id);
CREATE INDEX seat_requests_flightless_by_age ON seat_requests (created_at)
    WHERE flight_id IS NULL;

-- The seat's standing, as 0008 defines it, and now its block reason for the seat map.
CREATE OR REPLACE VIEW inventory_seat_standing AS
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
       END AS shown_status,
       seat.block_reason
FROM flight_seats AS seat
LEFT JOIN inventory_locks AS claim
       ON claim.seat_id = seat.seat_id AND claim.status IN ('ACTIVE', 'CONFIRMED')
LEFT JOIN reservations AS holder
       ON holder.order_id = claim.order_id;

-- An earlier request under this id, with its answer, or null.
CREATE FUNCTION inventory_seat_request_of(p_request uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
               'fingerprint', r.fingerprint,
               'event', json_build_object('eventId', r.outcome_event_id,
                                          'detailType', r.outcome_detail_type,
                                          'detail', r.outcome_detail))
    FROM seat_requests AS r WHERE r.request_id = p_request
$$;

-- SeatBlockRequested, decided, written and answered in one call, as an order is
-- (inventory_decide_order): read, decide, lock in seat_id order, re-check under the locks
-- in a new snapshot (a lost race reads and decides again), write the request's answer,
-- the outbox entry and the seats in one statement. p: requestId, flightId (null when
-- unreadable), fingerprint, eventId, causationId, seats, reason, note, and refusal
-- ({reason, message}, INVALID_REQUEST decided at the edge). Outcomes:
--   decided {event}; earlier {earlier: {fingerprint, event}};
--   lapsed {holders}: named seats held by lapsed holds; expire those orders, then again.
CREATE FUNCTION inventory_block_seats(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    request_id_ uuid  := (p->>'requestId')::uuid;
    flight_id_  uuid  := (p->>'flightId')::uuid;
    refusal     jsonb := NULLIF(p->'refusal', 'null');
    earlier     json;
    flight      text;
    seat_ids    uuid[];
    versions    integer[];
    positions   bigint[];
    missing     text[];
    taken       text[];
    holders     uuid[];
    lost        integer;
    held        json;
    reason      text;
    message     text;
    unavailable text[];
    detail_type text;
    detail      text;
    claimed     integer;
    blocked     integer;
BEGIN
    PERFORM inventory_begin(p);
    FOR attempt IN 1..8 LOOP
        WITH wanted AS (
            SELECT number, position
            FROM jsonb_array_elements_text(p->'seats') WITH ORDINALITY AS wanted (number, position)
            WHERE refusal IS NULL
        ),
        found AS (
            SELECT seat.seat_id, seat.seat_number, seat.version, seat.standing, seat.holder
            FROM inventory_seat_standing AS seat
            WHERE seat.flight_id = flight_id_
              AND seat.seat_number = ANY (ARRAY(SELECT number FROM wanted))
        ),
        named AS (
            SELECT wanted.number, wanted.position, found.seat_id, found.version,
                   found.standing, found.holder
            FROM wanted LEFT JOIN found ON found.seat_number = wanted.number
        )
        SELECT inventory_seat_request_of(request_id_),
               (SELECT inventory_flight_status(f.state, f.departure_utc)
                FROM flights AS f WHERE f.flight_id = flight_id_),
               array_agg(named.seat_id ORDER BY named.seat_id) FILTER (WHERE named.standing = 'FREE'),
               array_agg(named.version ORDER BY named.seat_id) FILTER (WHERE named.standing = 'FREE'),
               array_agg(named.position ORDER BY named.seat_id) FILTER (WHERE named.standing = 'FREE'),
               array_agg(named.number ORDER BY named.position) FILTER (WHERE named.seat_id IS NULL),
               array_agg(named.number ORDER BY named.position) FILTER (WHERE named.standing = 'TAKEN'),
               array_agg(DISTINCT named.holder) FILTER (WHERE named.standing = 'LAPSED')
        INTO earlier, flight, seat_ids, versions, positions, missing, taken, holders
        FROM named;
        IF earlier IS NOT NULL THEN
            RETURN json_build_object('outcome', 'earlier', 'earlier', earlier);
        END IF;

        reason := NULL;
        message := NULL;
        unavailable := '{}';
        held := '[]';
        IF refusal IS NOT NULL THEN
            reason := refusal->>'reason';
            message := refusal->>'message';
        ELSIF flight IS NULL THEN
            reason := 'FLIGHT_NOT_FOUND';
            message := format('flight %s does not exist', flight_id_);
        ELSIF flight = 'CANCELLED' THEN
            reason := 'FLIGHT_CANCELLED';
            message := format('flight %s was cancelled', flight_id_);
        ELSIF missing IS NOT NULL THEN
            reason := 'SEAT_NOT_FOUND';
            unavailable := missing;
            message := format('no seat %s on flight %s', array_to_string(missing, ', '), flight_id_);
        ELSIF taken IS NOT NULL THEN
            reason := 'SEAT_UNAVAILABLE';
            unavailable := taken;
            message := format('held, sold or blocked: %s', array_to_string(taken, ', '));
        ELSIF holders IS NOT NULL THEN
            RETURN json_build_object('outcome', 'lapsed', 'holders', holders);
        END IF;

        IF reason IS NULL THEN
            IF COALESCE(cardinality(seat_ids), 0) = 0 THEN
                RAISE EXCEPTION 'request %: no seat to block', request_id_ USING ERRCODE = '22023';
            END IF;
            PERFORM 1 FROM flight_seats WHERE seat_id = ANY (seat_ids) ORDER BY seat_id FOR UPDATE;
            -- In a snapshot taken after the locks: a reservation or cancellation that
            -- committed first is seen.
            SELECT (SELECT inventory_flight_status(f.state, f.departure_utc)
                    FROM flights AS f WHERE f.flight_id = flight_id_),
                   count(*) FILTER (WHERE seat.seat_id IS NULL OR seat.standing <> 'FREE'
                                       OR seat.version <> expected.version),
                   json_agg(json_build_object('seatId', seat.seat_id,
                                              'seatNumber', seat.seat_number,
                                              'version', seat.version + 1)
                            ORDER BY expected.position)
            INTO flight, lost, held
            FROM unnest(seat_ids, versions, positions) AS expected (seat_id, version, position)
            LEFT JOIN LATERAL (SELECT * FROM inventory_seat_standing AS standing
                               WHERE standing.seat_id = expected.seat_id
                                 AND standing.flight_id = flight_id_) AS seat ON true;
            IF flight IS NULL OR flight = 'CANCELLED' OR lost > 0 THEN
                CONTINUE;
            END IF;
        ELSE
            seat_ids := '{}';
            versions := '{}';
        END IF;

        IF reason IS NULL THEN
            detail_type := 'SeatsBlocked';
            detail := json_build_object(
                'eventId', p->'eventId', 'requestId', p->'requestId', 'flightId', p->'flightId',
                'seats', held, 'reason', p->'reason', 'note', p->'note',
                'causationId', p->'causationId')::text;
        ELSE
            detail_type := 'SeatBlockFailed';
            detail := json_build_object(
                'eventId', p->'eventId', 'requestId', p->'requestId', 'flightId', p->'flightId',
                'seats', COALESCE(p->'seats', '[]'), 'reason', reason,
                'unavailableSeats', to_json(unavailable), 'message', message,
                'causationId', p->'causationId')::text;
        END IF;
        WITH claim AS (
            INSERT INTO seat_requests (request_id, kind, flight_id, fingerprint,
                                       outcome_event_id, outcome_detail_type, outcome_detail)
            VALUES (request_id_, 'SeatBlockRequested',
                    CASE WHEN flight IS NOT NULL THEN flight_id_ END, p->>'fingerprint',
                    (p->>'eventId')::uuid, detail_type, detail)
            ON CONFLICT DO NOTHING
            RETURNING request_id
        ),
        queued AS (
            INSERT INTO outbox (event_id, flight_id, detail_type, detail)
            SELECT (p->>'eventId')::uuid, CASE WHEN flight IS NOT NULL THEN flight_id_ END,
                   detail_type, detail
            FROM claim
        ),
        blocked_seats AS (
            UPDATE flight_seats AS seat
            SET status = 'BLOCKED', version = seat.version + 1, updated_at = now(),
                block_reason = (p->>'reason')::seat_block_reason, block_note = p->>'note',
                blocked_by = request_id_
            FROM claim, unnest(seat_ids, versions) AS expected (seat_id, version)
            WHERE seat.seat_id = expected.seat_id
              AND seat.version = expected.version
              AND seat.status = 'AVAILABLE'
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM claim), (SELECT count(*) FROM blocked_seats)
        INTO claimed, blocked;
        IF claimed = 0 THEN
            -- Another delivery of this request decided first: the next read answers with it.
            CONTINUE;
        END IF;
        IF blocked <> cardinality(seat_ids) THEN
            RAISE EXCEPTION 'request %: % of % decided seats were blocked', request_id_,
                blocked, cardinality(seat_ids) USING ERRCODE = 'IV001';
        END IF;
        RETURN json_build_object(
            'outcome', 'decided',
            'event', json_build_object('eventId', p->'eventId', 'detailType', detail_type,
                                       'detail', detail));
    END LOOP;
    RETURN json_build_object('outcome', 'lost');
END $$;

-- SeatUnblockRequested: the BLOCKED seats among those named become AVAILABLE at a new
-- version; the others are named in the answer as not blocked. p as for a block, without
-- reason and note. The request is claimed first (its answer filled in once the seats are
-- freed), so two deliveries never both free seats. Outcomes: decided, earlier.
CREATE FUNCTION inventory_unblock_seats(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    request_id_ uuid  := (p->>'requestId')::uuid;
    flight_id_  uuid  := (p->>'flightId')::uuid;
    refusal     jsonb := NULLIF(p->'refusal', 'null');
    earlier     json;
    flight      text;
    freed       json;
    not_blocked text[];
    detail_type text;
    detail      text;
    claimed     integer;
BEGIN
    PERFORM inventory_begin(p);
    FOR attempt IN 1..2 LOOP
        SELECT inventory_seat_request_of(request_id_),
               (SELECT inventory_flight_status(f.state, f.departure_utc)
                FROM flights AS f WHERE f.flight_id = flight_id_)
        INTO earlier, flight;
        IF earlier IS NOT NULL THEN
            RETURN json_build_object('outcome', 'earlier', 'earlier', earlier);
        END IF;
        -- The claim, its answer still to come: the seats are freed under it.
        INSERT INTO seat_requests (request_id, kind, flight_id, fingerprint,
                                   outcome_event_id, outcome_detail_type, outcome_detail)
        VALUES (request_id_, 'SeatUnblockRequested',
                CASE WHEN flight IS NOT NULL THEN flight_id_ END, p->>'fingerprint',
                (p->>'eventId')::uuid, '', '')
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS claimed = ROW_COUNT;
        IF claimed = 0 THEN
            CONTINUE;
        END IF;

        IF refusal IS NOT NULL OR flight IS NULL THEN
            detail_type := 'SeatUnblockFailed';
            detail := json_build_object(
                'eventId', p->'eventId', 'requestId', p->'requestId', 'flightId', p->'flightId',
                'seats', COALESCE(p->'seats', '[]'),
                'reason', COALESCE(refusal->>'reason', 'FLIGHT_NOT_FOUND'),
                'message', COALESCE(refusal->>'message',
                                    format('flight %s does not exist', flight_id_)),
                'causationId', p->'causationId')::text;
        ELSE
            -- In seat_id order, as every writer locks seats.
            PERFORM 1 FROM flight_seats
            WHERE flight_id = flight_id_
              AND seat_number = ANY (ARRAY(SELECT jsonb_array_elements_text(p->'seats')))
            ORDER BY seat_id FOR UPDATE;
            WITH unblocked AS (
                UPDATE flight_seats AS seat
                SET status = 'AVAILABLE', version = seat.version + 1, updated_at = now(),
                    block_reason = NULL, block_note = NULL, blocked_by = NULL
                WHERE seat.flight_id = flight_id_
                  AND seat.seat_number = ANY (ARRAY(SELECT jsonb_array_elements_text(p->'seats')))
                  AND seat.status = 'BLOCKED'
                RETURNING seat.seat_id, seat.seat_number, seat.version
            )
            SELECT COALESCE(json_agg(json_build_object('seatId', u.seat_id,
                                                       'seatNumber', u.seat_number,
                                                       'version', u.version)
                                     ORDER BY wanted.position)
                                FILTER (WHERE u.seat_id IS NOT NULL), '[]'),
                   array_agg(wanted.number ORDER BY wanted.position) FILTER (WHERE u.seat_id IS NULL)
            INTO freed, not_blocked
            FROM jsonb_array_elements_text(p->'seats') WITH ORDINALITY AS wanted (number, position)
            LEFT JOIN unblocked AS u ON u.seat_number = wanted.number;
            detail_type := 'SeatsUnblocked';
            detail := json_build_object(
                'eventId', p->'eventId', 'requestId', p->'requestId', 'flightId', p->'flightId',
                'seats', freed, 'notBlocked', to_json(COALESCE(not_blocked, '{}')),
                'causationId', p->'causationId')::text;
        END IF;
        UPDATE seat_requests SET outcome_detail_type = detail_type, outcome_detail = detail
        WHERE request_id = request_id_;
        INSERT INTO outbox (event_id, flight_id, detail_type, detail)
        VALUES ((p->>'eventId')::uuid, CASE WHEN flight IS NOT NULL THEN flight_id_ END,
                detail_type, detail);
        RETURN json_build_object(
            'outcome', 'decided',
            'event', json_build_object('eventId', p->'eventId', 'detailType', detail_type,
                                       'detail', detail));
    END LOOP;
    RETURN json_build_object('outcome', 'lost');
END $$;

-- Retention, as 0008 defines it, and then the requests that name no flight (those of a
-- flight go with it, by the foreign key) once as old, unless their answer is undelivered.
ALTER FUNCTION inventory_retire(jsonb) RENAME TO inventory_retire_flights_and_orders;

CREATE FUNCTION inventory_retire(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    result jsonb   := inventory_retire_flights_and_orders(p)::jsonb;
    budget integer := (p->>'limit')::integer - (result->>'deleted')::integer;
    done   integer := 0;
BEGIN
    IF budget > 0 THEN
        DELETE FROM seat_requests WHERE request_id IN (
            SELECT r.request_id FROM seat_requests AS r
            WHERE r.flight_id IS NULL
              AND r.created_at < now() - make_interval(days => (p->>'retentionDays')::integer)
              AND NOT EXISTS (SELECT 1 FROM outbox
                              WHERE outbox.event_id = r.outcome_event_id
                                AND outbox.state IN ('PENDING', 'PARKED'))
            LIMIT budget);
        GET DIAGNOSTICS done = ROW_COUNT;
    END IF;
    RETURN jsonb_set(result, '{deleted}', to_jsonb((result->>'deleted')::integer + done))::json;
END $$;

-- The seat map, as 0008 defines it, with a blocked seat's reason (never its note, which is
-- for operations).
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
            'seats', (SELECT COALESCE(json_agg(json_strip_nulls(json_build_object(
                                 'seatNumber', seat.seat_number,
                                 'cabin', seat.cabin,
                                 'status', seat.shown_status,
                                 'blockReason', seat.block_reason))
                             ORDER BY substring(seat.seat_number FROM '^[0-9]+')::integer,
                                      right(seat.seat_number, 1)), '[]')
                      FROM inventory_seat_standing AS seat
                      WHERE seat.flight_id = flight.flight_id))
        FROM flights AS flight
        WHERE flight.flight_id = flight_id_);
END $$;
