-- Why the last attempt of a delivery did not succeed, in the receiver's words where it gave
-- any (a refusal's error_description), for the deliveries view.
ALTER TABLE deliveries ADD COLUMN last_error TEXT;
