-- The revocation feed: every ended session, written in the transaction that ended it. Each
-- server process tails it, so a session ended by another process (the CLI, another node)
-- reaches this process's open event streams and caches too. Old rows are swept.
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         INTEGER NOT NULL
);
