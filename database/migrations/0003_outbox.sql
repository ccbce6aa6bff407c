-- Transactional outbox: every outgoing event is written in the transaction that decides it
-- and published after commit; published_at is set only once PutEvents accepted the entry.
CREATE TABLE outbox (
    event_id         UUID        PRIMARY KEY,
    order_id         UUID        NOT NULL,
    detail_type      TEXT        NOT NULL,
    detail           TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at     TIMESTAMPTZ,
    publish_attempts INTEGER     NOT NULL DEFAULT 0,
    -- A relay run leases the rows it publishes, so two relays do not send the same entry.
    claimed_until    TIMESTAMPTZ
);

CREATE INDEX outbox_pending_by_age ON outbox (created_at) WHERE published_at IS NULL;
CREATE INDEX outbox_published_by_age ON outbox (published_at) WHERE published_at IS NOT NULL;
