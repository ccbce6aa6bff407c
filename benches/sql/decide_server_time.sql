-- The server time of a reservation since migration 0011: one inventory_decide_order call
-- (read, decision and answer), one reservation per free seat of the demo flight (every
-- seat once, so no call waits or loses), timed inside the server with clock_timestamp().
-- Run by benches/reserve-server-time.sh against a schema with inventory_decide_order.
DO $$
DECLARE
    started timestamptz;
    total   interval := '0';
    seat    record;
    calls   integer := 0;
    flight  constant text := '3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10';
BEGIN
    FOR seat IN SELECT seat_number FROM flight_seats
                WHERE flight_id = flight::uuid AND status = 'AVAILABLE'
                ORDER BY seat_id LOOP
        started := clock_timestamp();
        PERFORM inventory_decide_order(jsonb_build_object(
            'published', '[]'::jsonb,
            'orderId', gen_random_uuid(),
            'flightId', flight,
            'fingerprint', flight || '|' || seat.seat_number,
            'eventId', gen_random_uuid(),
            'causationId', gen_random_uuid(),
            'seats', jsonb_build_array(seat.seat_number),
            'ttlMs', 900000,
            'skipLocked', false));
        total := total + (clock_timestamp() - started);
        calls := calls + 1;
    END LOOP;
    RAISE NOTICE 'us_per_reservation %', round(extract(epoch FROM total) * 1e6 / calls);
END $$;
