-- Raw provider payloads are pruned after RAW_PAYLOAD_RETENTION_DAYS (the normalized history
-- stays). These partial indexes find what is left to prune without reading the whole history;
-- pruned rows leave them, so they hold only the retention window.
CREATE INDEX message_events_raw_by_age ON message_events (received_at) WHERE raw <> '';
CREATE INDEX inbound_raw_by_age ON inbound_messages (received_at) WHERE raw <> '';
