-- Accounts, sessions and the audit log. Times are Unix milliseconds (UTC).
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    token_version INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

-- Only the SHA-256 of a session secret is stored, never the secret.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    secret_hash    BLOB NOT NULL UNIQUE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    ip             TEXT,
    user_agent     TEXT
);
-- "All sessions of a user" must be one indexed statement.
CREATE INDEX sessions_by_user ON sessions (user_id, last_active_at DESC);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_activity ON sessions (last_active_at);

CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT,
    session_id TEXT,
    kind       TEXT NOT NULL,
    scope      TEXT,
    reason     TEXT,
    actor      TEXT NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX audit_by_user ON audit_events (user_id, seq DESC);
