-- The server time of the reservation decision alone: one inventory_reserve call per free
-- seat of the demo flight (every seat once, so no call waits or loses), timed inside the
-- server with clock_timestamp(). Run by benches/reserve-server-time.sh.
DO $$
DECLARE
    started timestamptz;
    total   interval := '0';
    seat    record;
    calls   integer := 0;
BEGIN
    FOR seat IN SELECT seat_id, version FROM flight_seats
                WHERE flight_id = '3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10' AND status = 'AVAILABLE'
                ORDER BY seat_id LOOP
        started := clock_timestamp();
        PERFORM inventory_reserve(jsonb_build_object(
            'orderId', gen_random_uuid(),
            'flightId', '3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10',
            'fingerprint', 'bench',
            'seats', jsonb_build_array(jsonb_build_object('seatId', seat.seat_id,
                                                          'version', seat.version)),
            'createdAt', now(), 'expiresAt', now() + interval '15 minutes',
            'skipLocked', false,
            'event', jsonb_build_object('eventId', gen_random_uuid(),
                                        'detailType', 'SeatReserved', 'detail', '{}')));
        total := total + (clock_timestamp() - started);
        calls := calls + 1;
    END LOOP;
    RAISE NOTICE 'us_per_reservation %', round(extract(epoch FROM total) * 1e6 / calls);
END $$;
