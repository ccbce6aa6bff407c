-- EventBridge does not order events: a payment or cancellation can be handled before the
-- order's OrderCreated. It then claims the order id with no flight, so that the late
-- OrderCreated holds nothing, and the payment's answer is kept like any other.
ALTER TABLE reservations ALTER COLUMN flight_id DROP NOT NULL;
