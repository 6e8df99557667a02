-- The revocation feed: everything that stops a credential, written in the transaction that
-- stopped it. Each server process tails it, so what another process (the CLI, another node)
-- revoked reaches this process's event streams and in-memory checks too. Old rows are swept.
--   kind 'session':       subject = session id, user_id, reason
--   kind 'token':         subject = jti, issuer, value = exp (Unix seconds)
--   kind 'token_version': subject = user id, value = the new version
CREATE TABLE revocations (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT,
    issuer  TEXT,
    reason  TEXT,
    value   INTEGER,
    at      INTEGER NOT NULL
);
