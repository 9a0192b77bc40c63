-- History rows are keyed by what the provider reported, not only by the four statuses a message
-- can have: `status_rank` now holds a kind code (0 sent, 1 failed, 2 delivered, 3 read as
-- before; 4 played, 5 deleted, 6 warning, 7 a word wagate does not know), and `status_word`
-- holds that unknown word ('' for the other kinds), so two unknown words for one message are
-- two rows. Existing rows keep their codes and get ''. `messages.status_rank` is unchanged: it
-- is still the merged status, 0 to 3.

ALTER TABLE message_events ADD COLUMN status_word TEXT NOT NULL DEFAULT '';

ALTER TABLE message_events
    DROP CONSTRAINT message_events_pkey,
    ADD PRIMARY KEY (wamid, status_rank, status_word);
