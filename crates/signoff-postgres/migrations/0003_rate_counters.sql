-- Rate-limit counters every node shares (failed sign-ins, registrations, e-mail changes), in
-- fixed windows. `key` is a SHA-256 digest of the limit and what it counts (no e-mail or
-- address in the clear); times are Unix milliseconds.
CREATE TABLE rate_counters (
    key          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_ms    BIGINT NOT NULL,
    count        INTEGER NOT NULL
);
