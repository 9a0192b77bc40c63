-- A manual retry or redrive gives a delivery a fresh retry budget without forgetting its
-- attempts (their numbers stay unique in delivery_attempts): the schedule counts
-- `attempts - attempts_before_retry`.
ALTER TABLE deliveries ADD COLUMN attempts_before_retry INTEGER NOT NULL DEFAULT 0;

-- Dead deliveries: redrive finds an endpoint's, and the dead-letter depth metric counts them
-- all, without reading the (much larger) delivered history.
CREATE INDEX deliveries_dead ON deliveries (endpoint_id) WHERE status = 'dead';
