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

-- WITHOUT ROWID: the wamid is the clustering key, one B-tree instead of table + index. Writes
-- land on random pages (wamids are random), so every tree fewer is pages fewer per commit.
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
    event_count     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
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
); -- a rowid table on purpose: rows (with raw) are large, and appending them beats splitting
   -- pages of a wamid-ordered tree; only the small primary-key index takes random inserts.

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

-- The durable local queue. Payloads sit in their own table so that claiming a job (which
-- updates its row) does not rewrite its payload.
CREATE TABLE queue_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    visible_at  INTEGER NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    -- 1 while a consumer holds the job (visible_at is then its lease's end), 0 when waiting.
    claimed     INTEGER NOT NULL DEFAULT 0,
    enqueued_at INTEGER NOT NULL
);
CREATE INDEX queue_jobs_ready ON queue_jobs (queue, priority DESC, id);

CREATE TABLE queue_payloads (
    id      INTEGER PRIMARY KEY,
    payload BLOB NOT NULL
);

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
