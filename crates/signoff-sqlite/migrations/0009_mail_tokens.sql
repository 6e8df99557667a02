-- Tokens of mailed links (e-mail confirmation, password reset): only their hash, single use.
CREATE TABLE mail_tokens (
    token_hash           BLOB PRIMARY KEY,
    purpose              TEXT NOT NULL,
    user_id              TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    new_email            TEXT,
    fingerprint          BLOB NOT NULL,
    -- A change of address's request: its link's token takes the row whatever attempt sends it.
    request              BLOB UNIQUE,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    used_at              INTEGER
);
CREATE INDEX mail_tokens_by_expiry ON mail_tokens (expires_at);
CREATE INDEX mail_tokens_by_user ON mail_tokens (user_id);
