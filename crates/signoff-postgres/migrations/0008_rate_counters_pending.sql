-- Attempts counted on a shared rate counter before their work and not yet settled (a password
-- still being hashed): a limit full only because of these refuses with 503 ("busy, retry in a
-- second"), not with 429 for the rest of the window, since they may yet succeed and be given
-- back. `pending_since` is when the last of them was taken (Unix milliseconds): a check never
-- takes a minute, so pending attempts older than that (their node died) count as settled.
ALTER TABLE rate_counters ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rate_counters ADD COLUMN pending_since BIGINT NOT NULL DEFAULT 0;
