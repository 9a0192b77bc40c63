-- Template campaigns: the campaign rows, one row per recipient (the truth about its send),
-- per-project opt-outs, and per-project provider settings. Times are Unix milliseconds; JSON is
-- TEXT.

CREATE TABLE campaigns (
    id                    TEXT PRIMARY KEY,
    project_id            TEXT NOT NULL,
    name                  TEXT NOT NULL,
    template_id           TEXT NOT NULL,
    language              TEXT NOT NULL,
    provider              TEXT NOT NULL,
    sender                TEXT NOT NULL,
    params                TEXT NOT NULL,
    media                 TEXT,
    schedule_time         BIGINT,
    rate_limit_per_second BIGINT,
    state                 TEXT NOT NULL,
    last_error            TEXT,
    created_at            BIGINT NOT NULL,
    started_at            BIGINT,
    finished_at           BIGINT,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX campaigns_by_project ON campaigns (project_id, id);
-- The scheduler's and sender's worklists; finished and cancelled campaigns pile up outside it.
CREATE INDEX campaigns_active ON campaigns (state) WHERE state IN ('scheduled', 'running', 'paused');

CREATE TABLE campaign_recipients (
    id                  TEXT PRIMARY KEY,
    campaign_id         TEXT NOT NULL,
    project_id          TEXT NOT NULL,
    phone               TEXT NOT NULL,
    variables           TEXT NOT NULL,
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    due_at              BIGINT NOT NULL,
    sending_since       BIGINT,
    provider_message_id TEXT,
    error_code          TEXT,
    error_title         TEXT,
    updated_at          BIGINT NOT NULL,
    UNIQUE (campaign_id, phone)
);
-- Due recipients per campaign: the sweeper reads each running campaign's oldest due ones, so
-- the queued rows of drafts and paused campaigns are never walked past.
CREATE INDEX recipients_due ON campaign_recipients (campaign_id, due_at, id) WHERE status = 'queued';
CREATE INDEX recipients_sending ON campaign_recipients (sending_since) WHERE status = 'sending';
CREATE INDEX recipients_by_status ON campaign_recipients (campaign_id, status, id);
CREATE INDEX recipients_by_message ON campaign_recipients (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

CREATE TABLE opt_outs (
    project_id TEXT NOT NULL,
    phone      TEXT NOT NULL,
    opted_out  BOOLEAN NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, phone)
);

CREATE TABLE provider_settings (
    project_id TEXT NOT NULL,
    provider   TEXT NOT NULL,
    settings   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, provider)
);
