-- An OrderCreated decided in one call, and its answer written where it is decided.
--
-- Until now the reservation was two calls: inventory_read_request read, Rust decided, and
-- inventory_reserve re-checked that decision under its locks, in about ten PL/pgSQL
-- statements, with the answer rendered by Rust and sent in. inventory_decide_order does it
-- in one round trip for an order that names its seats, and in four statements:
--
--   1. read    the order's earlier outcome, the flight's status and each named seat's
--              standing and version (no lock);
--   2. lock    the seats to take, in seat_id order;
--   3. check   under those locks, in a new snapshot: the flight still accepts holds, every
--              seat is of the flight, FREE and at the version read; if not, the race was
--              lost and the order is read and decided again (at most eight times);
--   4. write   one statement: the claim of the order id with its answer, the answer in the
--              outbox, the seats at the versions read, and their holds. The claim comes
--              first, so a claim that finds another delivery's takes no seat either.
--
-- followed by the all-or-nothing check (IV001). A refusal is statements 1 and 4.
--
-- An any-seat order keeps its read (inventory_read_request) and its picker in Rust, so it
-- is two round trips: the picker spreads concurrent orders over the cabin by order id and
-- remembers which seats it lost, which is simpler to keep and test in Rust. It sends the
-- seats it picked (p.take) and this call checks and takes them as it does named seats.
--
-- The answers, SeatReserved and SeatReservationFailed, are rendered here once for every
-- path, since only this call knows what it decided and at which versions.
--
-- A hold's flight was checked three times on every hold taken: by the trigger, and by two
-- foreign keys, one to its seat of that flight and one to the flight itself. The second
-- adds nothing (the seat's own key holds the flight, and deleting a flight deletes its
-- seats and so their holds), but it share-locked the flight's row on every reservation,
-- so concurrent reservations of one flight all wrote that row's lockers. It is dropped.
ALTER TABLE inventory_locks DROP CONSTRAINT inventory_locks_flight_id_fkey;

-- inventory_read_request and inventory_reserve stay for the binaries still running while a
-- deployment rolls out; nothing of this version calls inventory_reserve.

-- The decision of an OrderCreated (see above). p: orderId, flightId (null when unreadable),
-- fingerprint, eventId, causationId, seats (as requested, echoed in the answer; the seats
-- to take when neither take nor refusal is given), ttlMs, and optionally take
-- ([{seatId, version}], an any-seat order's pick), skipLocked (for take: skip seats another
-- order is taking), refusal ({reason, message}: decided before the call; INVALID_REQUEST
-- before anything else, any other reason after the flight's own). Outcomes:
--   decided   {event, reason (null when reserved), seats (how many held), lostRaces}
--   earlier   {earlier: {fingerprint, closedBy, outcome}}: the order was decided before
--   lapsed    {holders}: named seats held by lapsed holds; expire those orders, then again
--   lost      {lost, lostRaces}: the seats picked changed (or eight races were lost)
CREATE FUNCTION inventory_decide_order(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    order_id_  uuid    := (p->>'orderId')::uuid;
    flight_id_ uuid    := (p->>'flightId')::uuid;
    picked     boolean := p ? 'take';
    refusal    jsonb   := p->'refusal';
    expires    timestamptz := now() + make_interval(secs => (p->>'ttlMs')::bigint / 1000.0);
    earlier    json;
    flight     text;
    seat_ids   uuid[];
    versions   integer[];
    positions  bigint[];
    missing    text[];
    taken      text[];
    holders    uuid[];
    locked     uuid[];
    lost       uuid[];
    held       json;
    reason     text;
    message    text;
    unavailable text[];
    detail_type text;
    detail     text;
    lost_races integer := 0;
    claimed    integer;
    holds      integer;
BEGIN
    PERFORM inventory_begin(p);
    FOR attempt IN 1..8 LOOP
        -- 1. read
        WITH wanted AS (
            SELECT number, position
            FROM jsonb_array_elements_text(p->'seats') WITH ORDINALITY AS wanted (number, position)
            WHERE NOT picked AND refusal IS NULL
        ),
        -- Through the (flight_id, seat_number) key: the named seats, never the whole flight.
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
        SELECT (SELECT json_build_object(
                           'fingerprint', r.request_fingerprint,
                           'closedBy', r.closed_before_reserved_by,
                           'outcome', CASE WHEN r.outcome_event_id IS NOT NULL THEN
                                          json_build_object('eventId', r.outcome_event_id,
                                                            'detailType', r.outcome_detail_type,
                                                            'detail', r.outcome_detail) END)
                FROM reservations AS r WHERE r.order_id = order_id_),
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
        IF refusal->>'reason' = 'INVALID_REQUEST' THEN
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
        ELSIF refusal IS NOT NULL THEN
            reason := refusal->>'reason';
            message := refusal->>'message';
        ELSIF picked THEN
            -- In the picker's order in the answer, as named seats are in the order asked.
            SELECT array_agg(pick."seatId" ORDER BY pick."seatId"),
                   array_agg(pick.version ORDER BY pick."seatId"),
                   array_agg(pick.position ORDER BY pick."seatId")
            INTO seat_ids, versions, positions
            FROM ROWS FROM (jsonb_to_recordset(p->'take') AS ("seatId" uuid, version integer))
                 WITH ORDINALITY AS pick ("seatId", version, position);
        ELSIF missing IS NOT NULL THEN
            reason := 'SEAT_NOT_FOUND';
            unavailable := missing;
            message := format('no seat %s on flight %s', array_to_string(missing, ', '), flight_id_);
        ELSIF taken IS NOT NULL THEN
            reason := 'SEAT_UNAVAILABLE';
            unavailable := taken;
            message := CASE WHEN cardinality(taken) = 1
                            THEN format('seat %s is no longer available', taken[1])
                            ELSE format('seats %s are no longer available',
                                        array_to_string(taken, ', ')) END;
        ELSIF holders IS NOT NULL THEN
            RETURN json_build_object('outcome', 'lapsed', 'holders', holders);
        END IF;

        IF reason IS NULL THEN
            IF COALESCE(cardinality(seat_ids), 0) = 0 THEN
                IF picked THEN
                    -- Picked on a read that found the flight closed to holds; it is open now.
                    RETURN json_build_object('outcome', 'lost', 'lost', '{}'::uuid[],
                                             'lostRaces', lost_races);
                END IF;
                RAISE EXCEPTION 'order %: no seat to take', order_id_ USING ERRCODE = '22023';
            END IF;
            -- 2. lock
            IF picked AND COALESCE((p->>'skipLocked')::boolean, false) THEN
                locked := ARRAY(SELECT seat_id FROM flight_seats WHERE seat_id = ANY (seat_ids)
                                ORDER BY seat_id FOR UPDATE SKIP LOCKED);
            ELSE
                locked := ARRAY(SELECT seat_id FROM flight_seats WHERE seat_id = ANY (seat_ids)
                                ORDER BY seat_id FOR UPDATE);
            END IF;
            -- 3. check, in a snapshot taken after the locks: a cancellation committed before
            -- this sees no hold of ours, so we must see it.
            SELECT (SELECT inventory_flight_status(f.state, f.departure_utc)
                    FROM flights AS f WHERE f.flight_id = flight_id_),
                   array_agg(expected.seat_id) FILTER (
                       WHERE seat.seat_id IS NULL OR NOT seat.seat_id = ANY (locked)
                          OR seat.flight_id <> flight_id_ OR seat.standing <> 'FREE'
                          OR seat.version <> expected.version),
                   json_agg(json_build_object('seatId', seat.seat_id,
                                              'seatNumber', seat.seat_number,
                                              'version', seat.version + 1)
                            ORDER BY expected.position, seat.seat_number)
            INTO flight, lost, held
            FROM unnest(seat_ids, versions, positions) AS expected (seat_id, version, position)
            LEFT JOIN LATERAL (SELECT * FROM inventory_seat_standing AS standing
                               WHERE standing.seat_id = expected.seat_id) AS seat ON true;
            IF flight IS DISTINCT FROM 'SCHEDULED' OR lost IS NOT NULL THEN
                lost_races := lost_races + 1;
                IF picked THEN
                    RETURN json_build_object('outcome', 'lost', 'lost', COALESCE(lost, '{}'),
                                             'lostRaces', lost_races);
                END IF;
                CONTINUE;
            END IF;
        ELSE
            seat_ids := '{}';
            versions := '{}';
        END IF;

        -- 4. write
        IF reason IS NULL THEN
            detail_type := 'SeatReserved';
            detail := json_build_object(
                'eventId', p->'eventId', 'orderId', p->'orderId', 'flightId', p->'flightId',
                'seats', held,
                'lockedUntil', to_char(expires AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'causationId', p->'causationId')::text;
        ELSE
            detail_type := 'SeatReservationFailed';
            detail := json_build_object(
                'eventId', p->'eventId', 'orderId', p->'orderId', 'flightId', p->'flightId',
                'seats', COALESCE(p->'seats', '[]'), 'reason', reason,
                'unavailableSeats', to_json(unavailable), 'message', message,
                'causationId', p->'causationId')::text;
        END IF;
        WITH claim AS (
            INSERT INTO reservations (order_id, flight_id, request_fingerprint,
                                      outcome_event_id, outcome_detail_type, outcome_detail)
            VALUES (order_id_, CASE WHEN flight IS NOT NULL THEN flight_id_ END,
                    p->>'fingerprint', (p->>'eventId')::uuid, detail_type, detail)
            ON CONFLICT DO NOTHING
            RETURNING order_id
        ),
        queued AS (
            INSERT INTO outbox (event_id, order_id, detail_type, detail)
            SELECT (p->>'eventId')::uuid, order_id, detail_type, detail FROM claim
        ),
        taken_seats AS (
            UPDATE flight_seats AS seat
            SET status = 'LOCKED', version = seat.version + 1, updated_at = now()
            FROM claim, unnest(seat_ids, versions) AS expected (seat_id, version)
            WHERE seat.seat_id = expected.seat_id
              AND seat.version = expected.version
              AND seat.status = 'AVAILABLE'
            RETURNING seat.seat_id, seat.version
        ),
        held_seats AS (
            INSERT INTO inventory_locks (order_id, seat_id, flight_id, seat_version,
                                         created_at, expires_at)
            SELECT order_id_, taken_seats.seat_id, flight_id_, taken_seats.version, now(), expires
            FROM taken_seats
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM claim), (SELECT count(*) FROM held_seats)
        INTO claimed, holds;
        IF claimed = 0 THEN
            -- Another delivery of this order decided first: the next read answers with it.
            CONTINUE;
        END IF;
        IF holds <> cardinality(seat_ids) THEN
            RAISE EXCEPTION 'order %: % of % decided seats were taken', order_id_, holds,
                cardinality(seat_ids) USING ERRCODE = 'IV001';
        END IF;
        RETURN json_build_object(
            'outcome', 'decided',
            'event', json_build_object('eventId', p->'eventId', 'detailType', detail_type,
                                       'detail', detail),
            'reason', reason, 'seats', holds, 'lostRaces', lost_races);
    END LOOP;
    RETURN json_build_object('outcome', 'lost', 'lost', '{}'::uuid[], 'lostRaces', lost_races);
END $$;
