-- A batch of OrderCreated decided in one call and one commit: the queued intake
-- (OrderIntake=queue) hands the function up to a batch of orders at once.
--
-- inventory_decide_orders(p) decides p.orders ([{orderId, flightId, fingerprint, eventId,
-- causationId, seats, refusal?}], each as inventory_decide_order takes one, sorted by order
-- id by the caller) with holds lasting p.ttlMs, and answers their outcomes in the same
-- order, each as inventory_decide_order answers it. Every order stays all or nothing on its
-- own and idempotent by its id: it is decided by inventory_decide_order itself, so the rules
-- are not written twice. A refusal is an outcome like any other and never touches the
-- others; an order that needs more than one call (its seats held by lapsed holds) is
-- answered "lapsed" and decided alone afterwards.
--
-- Before deciding anything it locks every free seat the batch names, once, in seat_id
-- order: a batch then never loses a race to another writer, and two batches, or a batch and
-- a single order (which also lock in seat_id order, holding nothing before), never wait on
-- each other in a cycle. Orders are claimed in order id order for the same reason. A seat
-- freed while the batch runs is locked by the order that takes it, out of that order; a
-- deadlock that may cause fails the call, and its orders are decided one at a time.
--
-- A fault (a lock timeout, a broken rule) fails the whole call and commits nothing; the
-- caller then decides those orders one at a time.
CREATE FUNCTION inventory_decide_orders(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    one     jsonb;
    ttl     jsonb := jsonb_build_object('ttlMs', p->'ttlMs');
    decided json[] := '{}';
BEGIN
    PERFORM inventory_begin(p);
    -- Each named seat found through its (flight_id, seat_number) key (the LIMIT keeps the
    -- planner from joining whole flights), then all of them locked through the primary key.
    PERFORM 1
    FROM flight_seats AS seat
    WHERE seat.seat_id = ANY (ARRAY(
        SELECT found.seat_id
        FROM jsonb_array_elements(p->'orders') AS named,
             jsonb_array_elements_text(named.value->'seats') AS number,
             LATERAL (SELECT key.seat_id FROM flight_seats AS key
                      WHERE key.flight_id = (named.value->>'flightId')::uuid
                        AND key.seat_number = number
                      LIMIT 1) AS found
        WHERE NOT named.value ? 'refusal' AND NOT named.value ? 'take'))
      -- A seat held or sold already refuses its orders on what the read sees: no lock
      -- needed, so once a sale is sold out its batches no longer wait on each other.
      AND seat.status = 'AVAILABLE'
    ORDER BY seat.seat_id
    FOR UPDATE;
    FOR one IN SELECT value FROM jsonb_array_elements(p->'orders') LOOP
        decided := decided || inventory_decide_order(one || ttl);
    END LOOP;
    RETURN array_to_json(decided);
END $$;
