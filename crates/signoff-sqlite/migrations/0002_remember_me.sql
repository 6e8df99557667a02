-- Remember-me series: a public selector, the hash of the current validator, and the hash of
-- the one it replaced (honoured for a few seconds, for tabs racing a rotation).
CREATE TABLE remember_tokens (
    selector       TEXT PRIMARY KEY,
    validator_hash BLOB NOT NULL,
    previous_hash  BLOB,
    rotated_at     INTEGER,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX remember_by_user ON remember_tokens (user_id);
CREATE INDEX remember_by_session ON remember_tokens (session_id);

-- Free text from a person: a security report's details, an admin's reason.
ALTER TABLE audit_events ADD COLUMN detail TEXT;
