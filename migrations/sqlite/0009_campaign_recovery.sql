-- Campaigns that recover without an operator: what becomes of a send left without an answer
-- (`hold` keeps it `unknown` for an explicit retry, `resend` queues it again), and the
-- scheduler's worklist read by start time through its own index, however many campaigns wait
-- for a later one.

ALTER TABLE campaigns ADD COLUMN unknown_policy TEXT NOT NULL DEFAULT 'hold';
CREATE INDEX campaigns_scheduled_at ON campaigns (schedule_time) WHERE state = 'scheduled';
