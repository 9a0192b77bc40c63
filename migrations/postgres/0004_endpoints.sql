-- Webhook forwarding: the endpoints a project registers, one delivery row per (event, endpoint)
-- that the outbox writes in the transaction that applies the event, and every attempt at it.
-- Times are Unix milliseconds. Deliveries carry no foreign keys: the outbox must never fail an
-- apply because an endpoint was deleted a moment earlier (the forwarder drops such a delivery),
-- and deleting an endpoint removes its deliveries explicitly.

CREATE TABLE endpoints (
    id                         TEXT PRIMARY KEY,
    project_id                 TEXT NOT NULL REFERENCES projects (id),
    url                        TEXT NOT NULL,
    -- Comma list of topics (`datagen.delivery,meta.delivery`, or `*`).
    topics                     TEXT NOT NULL,
    description                TEXT,
    secret                     TEXT NOT NULL,
    -- During a rotation the old secret keeps signing beside the new one until it expires.
    previous_secret            TEXT,
    previous_secret_expires_at BIGINT,
    enabled                    BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason            TEXT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);
CREATE INDEX endpoints_by_project ON endpoints (project_id, id);

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    project_id       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    -- The exact body sent (and signed) on every attempt.
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
-- What the sweeper scans: pending deliveries that are due.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, id);

CREATE TABLE delivery_attempts (
    delivery_id      TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    status_code      INTEGER,
    latency_ms       BIGINT,
    error            TEXT,
    -- At most 1 KB of the response body, cut by the forwarder.
    response_snippet TEXT,
    attempted_at     BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
