-- Remember-me series are devices: every session opened from a series names it and dies with it,
-- and a series remembers where it was last used so it can be listed when no session is live.
ALTER TABLE sessions ADD COLUMN series TEXT;
CREATE INDEX sessions_by_series ON sessions (series) WHERE series IS NOT NULL;
ALTER TABLE remember_tokens ADD COLUMN ip TEXT;
ALTER TABLE remember_tokens ADD COLUMN user_agent TEXT;
-- The race grace of a rotation is honoured once: set when a racing request used it.
ALTER TABLE remember_tokens ADD COLUMN grace_used INTEGER NOT NULL DEFAULT 0;
-- Expired series are swept.
CREATE INDEX remember_by_expiry ON remember_tokens (expires_at);
-- A rotated refresh token keeps the random salt its successor was derived from, so a racing
-- tab presenting it inside the grace gets the same successor back (never a fork).
ALTER TABLE refresh_tokens ADD COLUMN successor_salt BLOB;
ALTER TABLE refresh_tokens ADD COLUMN grace_used INTEGER NOT NULL DEFAULT 0;
-- A session that kept its place under a new id (after a password or e-mail change) goes on the
-- feed too, so other processes forget the old id at once:
--   kind 'rekeyed': subject = the old session id, next = its new id
ALTER TABLE revocations ADD COLUMN next TEXT;
