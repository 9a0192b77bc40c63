-- wagate schema for PostgreSQL (the queue lives in RabbitMQ).
-- Times are Unix milliseconds; statuses are ranks (0 sent, 1 failed, 2 delivered, 3 read).

CREATE TABLE projects (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL
);

CREATE TABLE business_numbers (
    number     TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id)
);
CREATE INDEX business_numbers_by_project ON business_numbers (project_id);

CREATE TABLE messages (
    wamid           TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL,
    provider        TEXT,
    status_rank     INTEGER NOT NULL,
    business_number TEXT,
    phone           TEXT,
    campaign_id     TEXT,
    -- Rows in message_events for this wamid, kept in step by `apply`, so counting a project's
    -- history needs no index on message_events.
    event_count     BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
) WITH (fillfactor = 80); -- room for in-place (HOT) status updates
CREATE INDEX messages_by_project ON messages (project_id, wamid);
CREATE INDEX messages_by_campaign ON messages (project_id, campaign_id, wamid);

-- A message's history: one row per distinct (wamid, status).
CREATE TABLE message_events (
    wamid         TEXT NOT NULL,
    status_rank   INTEGER NOT NULL,
    project_id    TEXT NOT NULL,
    provider      TEXT NOT NULL,
    occurred_at   BIGINT,
    received_at   BIGINT NOT NULL,
    error_code    TEXT,
    error_message TEXT,
    raw           TEXT NOT NULL,
    PRIMARY KEY (wamid, status_rank)
);

CREATE TABLE inbound_messages (
    seq             BIGSERIAL PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    project_id      TEXT NOT NULL,
    provider        TEXT NOT NULL,
    business_number TEXT NOT NULL,
    from_phone      TEXT NOT NULL,
    profile_name    TEXT,
    kind            TEXT NOT NULL,
    body            TEXT,
    occurred_at     BIGINT,
    received_at     BIGINT NOT NULL,
    raw             TEXT NOT NULL
);
CREATE INDEX inbound_by_project ON inbound_messages (project_id, seq);

-- What could not be interpreted, kept verbatim.
CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    provider    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    body        TEXT NOT NULL,
    dedupe_key  TEXT UNIQUE,
    received_at BIGINT NOT NULL
);
