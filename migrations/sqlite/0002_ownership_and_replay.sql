-- Meta's phone-number id per business number (sending through the Cloud API needs it), and
-- what quarantine replay needs: the business number an event named, the normalized event, and
-- the replay that claimed the row.
ALTER TABLE business_numbers ADD COLUMN meta_phone_number_id TEXT;

ALTER TABLE quarantine ADD COLUMN business_number TEXT;
ALTER TABLE quarantine ADD COLUMN event TEXT;
ALTER TABLE quarantine ADD COLUMN replay_token TEXT;
CREATE INDEX quarantine_by_number ON quarantine (business_number) WHERE business_number IS NOT NULL;
