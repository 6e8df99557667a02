-- The signoff schema on PostgreSQL: the same records as the SQLite store (times as Unix
-- milliseconds, secret hashes as 32-byte BYTEA), one migration for what SQLite built in five.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    token_version BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

-- Only the SHA-256 of a session secret is stored. `series` is the remember-me series the
-- session was opened from or with: the session lives only while the series does.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    secret_hash    BYTEA NOT NULL UNIQUE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    ip             TEXT,
    user_agent     TEXT,
    series         TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id, last_active_at DESC);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_activity ON sessions (last_active_at);
CREATE INDEX sessions_by_series ON sessions (series) WHERE series IS NOT NULL;

CREATE TABLE audit_events (
    seq        BIGSERIAL PRIMARY KEY,
    user_id    TEXT,
    session_id TEXT,
    kind       TEXT NOT NULL,
    scope      TEXT,
    reason     TEXT,
    detail     TEXT,
    actor      TEXT NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX audit_by_user ON audit_events (user_id, seq DESC);

CREATE TABLE remember_tokens (
    selector       TEXT PRIMARY KEY,
    validator_hash BYTEA NOT NULL,
    previous_hash  BYTEA,
    rotated_at     BIGINT,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    grace_used     BOOLEAN NOT NULL DEFAULT FALSE,
    ip             TEXT,
    user_agent     TEXT
);
CREATE INDEX remember_by_user ON remember_tokens (user_id);
CREATE INDEX remember_by_session ON remember_tokens (session_id);
CREATE INDEX remember_by_expiry ON remember_tokens (expires_at);

-- The revocation feed. Positions come from a one-row counter whose row lock serialises the
-- transactions that append, so position order is commit order and there are no gaps that a
-- later commit could fill (a BIGSERIAL commits out of order: a reader tracking the highest
-- position it has seen would skip rows).
CREATE TABLE revocation_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO revocation_counter (id, seq) VALUES (1, 0);
CREATE TABLE revocations (
    seq     BIGINT PRIMARY KEY,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT,
    issuer  TEXT,
    reason  TEXT,
    value   BIGINT,
    at      BIGINT NOT NULL,
    next    TEXT
);
CREATE INDEX revocations_by_time ON revocations (at);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

CREATE TABLE refresh_tokens (
    id             TEXT PRIMARY KEY,
    token_hash     BYTEA NOT NULL UNIQUE,
    family_id      TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    replaced_by    TEXT,
    successor_salt BYTEA,
    grace_used     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_by_session ON refresh_tokens (session_id);
CREATE INDEX refresh_by_user ON refresh_tokens (user_id);

CREATE TABLE denied_tokens (
    issuer TEXT NOT NULL,
    jti    TEXT NOT NULL,
    exp    BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX denied_by_exp ON denied_tokens (exp);
