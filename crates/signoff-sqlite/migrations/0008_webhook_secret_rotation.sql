-- A rotated webhook secret: the one it replaced is still signed with until the overlap ends,
-- so a receiver can switch to the new one without refusing a delivery.
ALTER TABLE clients ADD COLUMN previous_webhook_secret TEXT;
ALTER TABLE clients ADD COLUMN previous_webhook_secret_until INTEGER;
-- Listing a client's deliveries of one status, newest first.
CREATE INDEX deliveries_client_status ON deliveries (client_id, status, created_at);
-- Claiming a few due deliveries per URL: the pending URLs are walked off this index.
CREATE INDEX deliveries_by_url ON deliveries (status, url, next_attempt_at);
