-- One row per order this service has answered, and one row per seat held for an order.

-- The idempotency record: the order id is the key, and the first outcome is kept so that
-- a redelivered OrderCreated is answered with exactly the same event.
CREATE TABLE reservations (
    order_id              UUID        PRIMARY KEY,
    flight_id             UUID        NOT NULL,
    -- Canonical form of what was asked for; a reused order id with other content is refused.
    request_fingerprint   TEXT        NOT NULL,
    -- Set in the transaction that claims the order, so a committed row always has them.
    outcome_event_id      UUID,
    outcome_detail_type   TEXT,
    outcome_detail        TEXT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT reservations_outcome_check CHECK (
        (outcome_event_id IS NULL) = (outcome_detail_type IS NULL)
        AND (outcome_event_id IS NULL) = (outcome_detail IS NULL))
);

CREATE TYPE hold_status AS ENUM ('ACTIVE', 'CONFIRMED', 'RELEASED', 'EXPIRED');

CREATE TABLE inventory_locks (
    lock_id      BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     UUID        NOT NULL REFERENCES reservations (order_id),
    seat_id      UUID        NOT NULL REFERENCES flight_seats (seat_id) ON DELETE CASCADE,
    flight_id    UUID        NOT NULL REFERENCES flights (flight_id) ON DELETE CASCADE,
    -- The seat's version once this hold took it: proof, later, that the seat is still ours.
    seat_version INTEGER     NOT NULL,
    status       hold_status NOT NULL DEFAULT 'ACTIVE',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    closed_at    TIMESTAMPTZ,
    CONSTRAINT inventory_locks_expiry_check CHECK (expires_at > created_at),
    CONSTRAINT inventory_locks_order_id_seat_id_key UNIQUE (order_id, seat_id)
);

-- The last line of defence: whatever the application does, a seat has at most one
-- live claim (an active hold or a confirmed sale) at a time.
CREATE UNIQUE INDEX inventory_locks_one_live_claim_per_seat
    ON inventory_locks (seat_id)
    WHERE status IN ('ACTIVE', 'CONFIRMED');

CREATE INDEX inventory_locks_active_by_expiry
    ON inventory_locks (expires_at)
    WHERE status = 'ACTIVE';
