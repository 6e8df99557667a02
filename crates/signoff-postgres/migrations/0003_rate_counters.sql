-- Rate-limit counters every node shares (failed sign-ins, registrations, e-mail changes), in
-- fixed windows. `key` is a digest of the limit and what it counts (no e-mail or address is
-- stored); times are Unix milliseconds.
CREATE TABLE rate_counters (
    key          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_ms    BIGINT NOT NULL,
    count        INTEGER NOT NULL
);
