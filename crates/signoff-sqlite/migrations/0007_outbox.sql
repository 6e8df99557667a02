-- The outbox of logout notifications (back-channel logout, webhooks), written in the
-- transaction that ended the credentials it tells of. A worker claims due rows (claimed_until
-- keeps another worker off while one is sending; claim_token makes sure only the claim's
-- holder records the attempt) and records each attempt.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    event            TEXT NOT NULL,
    url              TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    last_status_code INTEGER,
    next_attempt_at  INTEGER NOT NULL,
    claim_token      TEXT,
    claimed_until    INTEGER,
    created_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_client ON deliveries (client_id, created_at);
