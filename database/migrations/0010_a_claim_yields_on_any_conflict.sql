-- Two deliveries of one order, with other content, deciding at the same moment: the
-- claim's INSERT named only the primary key as its conflict target, and a conflict found on
-- the other unique index of the claim, (flight_id, order_id) since 0008, was an error
-- (23505) instead of "decided elsewhere". Found by the random-interleaving test's long mode
-- at step 187,620. The claim now yields to a conflict on any unique index.

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
    ON CONFLICT DO NOTHING;
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
