-- Registered clients: applications and services that rely on signoff. The client secret is
-- kept only as a hash; the webhook secret as it is (signoff signs with it).
CREATE TABLE clients (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    secret_hash            BLOB NOT NULL,
    backchannel_logout_uri TEXT,
    webhook_url            TEXT,
    webhook_secret         TEXT,
    created_at             INTEGER NOT NULL
);
