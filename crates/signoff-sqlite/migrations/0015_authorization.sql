-- The OpenID provider. Authorization codes: only the hash of the 256-bit code is kept, bound to
-- its client, redirect URI and PKCE challenge and to the sign-in that issued it; spent once
-- (used_at, by compare-and-swap); what the first use issued is kept with it, so that a second
-- use can revoke it. Links from a browser's sign-in to every relying party it signed in to: the
-- apps told when that sign-in ends. Refresh tokens issued at the OpenID token endpoint name their
-- client (NULL: signoff's own token endpoint).
CREATE TABLE authorization_codes (
    code_hash      BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id     TEXT NOT NULL,
    signin_id      TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce          TEXT,
    auth_time      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    issued_family  TEXT,
    issued_jti     TEXT,
    issued_exp     BIGINT
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
CREATE TABLE signin_clients (
    signin_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (signin_id, client_id)
);
CREATE INDEX signin_clients_by_user ON signin_clients (user_id);
ALTER TABLE refresh_tokens ADD COLUMN client_id TEXT;
