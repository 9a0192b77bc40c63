-- History rows are keyed by what the provider reported, not only by the four statuses a message
-- can have: `status_rank` now holds a kind code (0 sent, 1 failed, 2 delivered, 3 read as
-- before; 4 played, 5 deleted, 6 warning, 7 a word wagate does not know), and `status_word`
-- holds that unknown word ('' for the other kinds), so two unknown words for one message are
-- two rows. Existing rows keep their codes and get ''. `messages.status_rank` is unchanged: it
-- is still the merged status, 0 to 3.
--
-- SQLite cannot change a table's primary key, so the table is rebuilt with the new one.

CREATE TABLE message_events_v3 (
    wamid         TEXT NOT NULL,
    status_rank   INTEGER NOT NULL,
    status_word   TEXT NOT NULL DEFAULT '',
    project_id    TEXT NOT NULL,
    provider      TEXT NOT NULL,
    occurred_at   INTEGER,
    received_at   INTEGER NOT NULL,
    error_code    TEXT,
    error_message TEXT,
    raw           TEXT NOT NULL,
    PRIMARY KEY (wamid, status_rank, status_word)
); -- a rowid table on purpose: rows (with raw) are large, and appending them beats splitting
   -- pages of a wamid-ordered tree; only the small primary-key index takes random inserts.

INSERT INTO message_events_v3 (wamid, status_rank, status_word, project_id, provider,
                               occurred_at, received_at, error_code, error_message, raw)
SELECT wamid, status_rank, '', project_id, provider,
       occurred_at, received_at, error_code, error_message, raw
FROM message_events;

DROP TABLE message_events;

ALTER TABLE message_events_v3 RENAME TO message_events;
