-- Access-token signing keys. The private key never leaves the store and the process.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);

-- Refresh tokens: opaque 256-bit values stored as hashes, bound to a session and a family.
-- A token is current while used_at is NULL; rotating sets used_at and replaced_by.
CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    family_id   TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    replaced_by TEXT
);
CREATE INDEX refresh_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_by_session ON refresh_tokens (session_id);
CREATE INDEX refresh_by_user ON refresh_tokens (user_id);

-- Revoked access tokens, by (issuer, jti), kept until the token would have expired anyway.
CREATE TABLE denied_tokens (
    issuer TEXT NOT NULL,
    jti    TEXT NOT NULL,
    exp    INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX denied_by_exp ON denied_tokens (exp);
