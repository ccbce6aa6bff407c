-- Delivery and deadlines the server keeps.
--
-- * The deadline: every call is sent as two statements in one simple query, one round
--   trip and one implicit transaction: `SELECT * FROM inventory_bound(s, l)` sets
--   statement_timeout and lock_timeout for that transaction only (set_config(..., true)),
--   computed from the time the invocation has left when the call is sent; then the call.
--   The server gives up what the invocation started before the invocation gives up, so
--   nothing it started commits afterwards. Nothing is left on the session.
-- * One publication per answer: what the bus accepted is marked right after PutEvents, in
--   a commit of its own that does not wait for the WAL flush (synchronous_commit off for
--   that transaction only). Losing a mark in a crash only means a duplicate.
-- * Outages are waited out: an entry the bus refuses for a reason that can pass backs off,
--   capped, and is parked only once it has kept failing for longer than p.parkAfterSeconds
--   (OUTBOX_PARK_AFTER); only what can never succeed is parked at once.

CREATE FUNCTION inventory_bound(statement_timeout_ms integer, lock_timeout_ms integer)
RETURNS SETOF integer LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('statement_timeout', greatest(statement_timeout_ms, 1) || 'ms', true);
    PERFORM set_config('lock_timeout', greatest(lock_timeout_ms, 1) || 'ms', true);
    RETURN;
END $$;

CREATE OR REPLACE FUNCTION inventory_acknowledge(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM inventory_begin(p);
    RETURN '{}';
END $$;

ALTER TABLE outbox
    -- When the bus first refused the entry in the current run of failures (reset when it
    -- is published or redriven): how long it has been failing, for OUTBOX_PARK_AFTER.
    ADD COLUMN failing_since TIMESTAMPTZ;

-- Records the entries the bus did not accept (p.rejected [{eventId, error, permanent}]):
-- one more attempt, the error kept, and due again after an exponential backoff with
-- jitter (p.backoffSeconds doubling per attempt, at most p.maxBackoffSeconds). Parked at
-- once when the error can never succeed (permanent), or once the entry has been failing
-- for longer than p.parkAfterSeconds.
CREATE OR REPLACE FUNCTION inventory_outbox_rejected(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    parked integer;
BEGIN
    PERFORM inventory_begin(p);
    WITH rejected AS (
        UPDATE outbox AS entry
        SET publish_attempts = entry.publish_attempts + 1,
            last_error = left(rejection.error, 1000),
            failing_since = COALESCE(entry.failing_since, now()),
            state = CASE WHEN rejection.permanent
                           OR COALESCE(entry.failing_since, now())
                              <= now() - make_interval(secs => (p->>'parkAfterSeconds')::float8)
                         THEN 'PARKED'::outbox_state ELSE 'PENDING' END,
            parked_at = CASE WHEN rejection.permanent
                               OR COALESCE(entry.failing_since, now())
                                  <= now() - make_interval(secs => (p->>'parkAfterSeconds')::float8)
                             THEN now() END,
            next_attempt_at = now() + make_interval(secs =>
                least((p->>'backoffSeconds')::float8 * 2 ^ least(entry.publish_attempts, 30),
                      (p->>'maxBackoffSeconds')::float8) * (0.5 + random() / 2))
        FROM jsonb_to_recordset(p->'rejected') AS rejection ("eventId" uuid, error text, permanent boolean)
        WHERE entry.event_id = rejection."eventId"
          AND entry.state = 'PENDING'
        RETURNING entry.state
    )
    SELECT count(*) FILTER (WHERE state = 'PARKED') INTO parked FROM rejected;
    RETURN json_build_object('parked', parked);
END $$;

-- The parked entries, oldest first, for `aeronode-inventory outbox dead`: an order's
-- answers name the order, a flight's events the flight.
CREATE OR REPLACE FUNCTION inventory_outbox_parked(p jsonb) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(json_agg(json_build_object(
               'eventId', event_id, 'orderId', order_id, 'flightId', flight_id,
               'detailType', detail_type, 'attempts', publish_attempts,
               'lastError', last_error, 'failingSince', failing_since, 'parkedAt', parked_at)
               ORDER BY parked_at, event_id), '[]')
    FROM outbox
    WHERE state = 'PARKED'
$$;

-- Makes parked entries due again, as new: those of p.eventIds, or all.
CREATE OR REPLACE FUNCTION inventory_outbox_redrive(p jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    redriven integer;
BEGIN
    PERFORM inventory_begin(p);
    UPDATE outbox
    SET state = 'PENDING', parked_at = NULL, publish_attempts = 0, failing_since = NULL,
        next_attempt_at = now()
    WHERE state = 'PARKED'
      AND (NOT p ? 'eventIds'
           OR event_id IN (SELECT value::uuid FROM jsonb_array_elements_text(p->'eventIds')));
    GET DIAGNOSTICS redriven = ROW_COUNT;
    RETURN json_build_object('redriven', redriven);
END $$;
