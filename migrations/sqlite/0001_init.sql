-- wagate schema for the embedded SQLite store (and its local queue, in the same file).
-- Times are Unix milliseconds; statuses are ranks (0 sent, 1 failed, 2 delivered, 3 read).

CREATE TABLE projects (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL
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
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_project ON messages (project_id, wamid);
CREATE INDEX messages_by_campaign ON messages (project_id, campaign_id, wamid);

-- A message's history: one row per distinct (wamid, status).
CREATE TABLE message_events (
    wamid         TEXT NOT NULL,
    status_rank   INTEGER NOT NULL,
    project_id    TEXT NOT NULL,
    provider      TEXT NOT NULL,
    occurred_at   INTEGER,
    received_at   INTEGER NOT NULL,
    error_code    TEXT,
    error_message TEXT,
    raw           TEXT NOT NULL,
    PRIMARY KEY (wamid, status_rank)
);
CREATE INDEX message_events_by_project ON message_events (project_id);

CREATE TABLE inbound_messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL UNIQUE,
    project_id      TEXT NOT NULL,
    provider        TEXT NOT NULL,
    business_number TEXT NOT NULL,
    from_phone      TEXT NOT NULL,
    profile_name    TEXT,
    kind            TEXT NOT NULL,
    body            TEXT,
    occurred_at     INTEGER,
    received_at     INTEGER NOT NULL,
    raw             TEXT NOT NULL
);
CREATE INDEX inbound_by_project ON inbound_messages (project_id, seq);

-- What could not be interpreted, kept verbatim.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    body        TEXT NOT NULL,
    dedupe_key  TEXT UNIQUE,
    received_at INTEGER NOT NULL
);

-- The durable local queue.
CREATE TABLE queue_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    payload     BLOB NOT NULL,
    visible_at  INTEGER NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    -- 1 while a consumer holds the job (visible_at is then its lease's end), 0 when waiting.
    claimed     INTEGER NOT NULL DEFAULT 0,
    enqueued_at INTEGER NOT NULL
);
CREATE INDEX queue_jobs_ready ON queue_jobs (queue, priority DESC, id);

CREATE TABLE queue_dead (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    queue     TEXT NOT NULL,
    priority  INTEGER NOT NULL,
    payload   BLOB NOT NULL,
    attempt   INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX queue_dead_by_queue ON queue_dead (queue, id);
