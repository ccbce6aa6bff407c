-- The whole seat lifecycle: cabins for any-seat orders, and the answer to a payment kept
-- with the order so that a redelivered PaymentSucceeded is answered the same way.

CREATE TYPE cabin_class AS ENUM ('FIRST', 'BUSINESS', 'PREMIUM_ECONOMY', 'ECONOMY');

ALTER TABLE flight_seats
    ADD COLUMN cabin cabin_class NOT NULL DEFAULT 'ECONOMY';

-- Any-seat orders look for free seats of one cabin.
CREATE INDEX flight_seats_free_by_cabin
    ON flight_seats (flight_id, cabin)
    WHERE status = 'AVAILABLE';

CREATE INDEX inventory_locks_by_order ON inventory_locks (order_id);

ALTER TABLE reservations
    ADD COLUMN booking_event_id    UUID,
    ADD COLUMN booking_detail_type TEXT,
    ADD COLUMN booking_detail      TEXT,
    ADD CONSTRAINT reservations_booking_check CHECK (
        (booking_event_id IS NULL) = (booking_detail_type IS NULL)
        AND (booking_event_id IS NULL) = (booking_detail IS NULL));
