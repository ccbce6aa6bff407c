-- The server time of a reservation through migration 0010: the read
-- (inventory_read_request) and the decision (inventory_reserve, given an answer of the
-- size the service renders), one reservation per free seat of the demo flight (every seat
-- once, so no call waits or loses), timed inside the server with clock_timestamp(). Run by
-- benches/reserve-server-time.sh against a schema without inventory_decide_order.
DO $$
DECLARE
    started timestamptz;
    total   interval := '0';
    seat    record;
    calls   integer := 0;
    order_  uuid;
    flight  constant text := '3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10';
BEGIN
    FOR seat IN SELECT seat_id, seat_number, version FROM flight_seats
                WHERE flight_id = flight::uuid AND status = 'AVAILABLE'
                ORDER BY seat_id LOOP
        order_ := gen_random_uuid();
        started := clock_timestamp();
        PERFORM inventory_read_request(jsonb_build_object(
            'orderId', order_, 'flightId', flight, 'seats', jsonb_build_array(seat.seat_number),
            'anySeat', false, 'cabin', null));
        PERFORM inventory_reserve(jsonb_build_object(
            'published', '[]'::jsonb,
            'orderId', order_,
            'flightId', flight,
            'fingerprint', flight || '|' || seat.seat_number,
            'seats', jsonb_build_array(jsonb_build_object('seatId', seat.seat_id,
                                                          'version', seat.version)),
            'createdAt', now(), 'expiresAt', now() + interval '15 minutes',
            'skipLocked', false,
            'event', jsonb_build_object(
                'eventId', gen_random_uuid(), 'detailType', 'SeatReserved',
                'detail', json_build_object(
                    'eventId', gen_random_uuid(), 'orderId', order_, 'flightId', flight,
                    'seats', json_build_array(json_build_object(
                        'seatId', seat.seat_id, 'seatNumber', seat.seat_number,
                        'version', seat.version + 1)),
                    'lockedUntil', now() + interval '15 minutes',
                    'causationId', gen_random_uuid())::text)));
        total := total + (clock_timestamp() - started);
        calls := calls + 1;
    END LOOP;
    RAISE NOTICE 'us_per_reservation %', round(extract(epoch FROM total) * 1e6 / calls);
END $$;
