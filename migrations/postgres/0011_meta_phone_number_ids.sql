-- Meta's status webhooks name the business number by its phone-number id as well as by its
-- display number (whose format varies): the processor finds the project by the id first.
CREATE INDEX business_numbers_by_meta_id ON business_numbers (meta_phone_number_id)
    WHERE meta_phone_number_id IS NOT NULL;
