-- Upstream Shared Signals transmitters signoff receives from (RFC 8935 push): the issuer and
-- audience their SETs must carry, where their keys are, and the hash of the bearer secret they
-- send. signal_received keeps each SET's jti until past its freshness (a replay is refused).
CREATE TABLE signal_upstreams (
    id          TEXT PRIMARY KEY,
    issuer      TEXT NOT NULL,
    jwks_uri    TEXT NOT NULL,
    audience    TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE signal_received (
    upstream_id TEXT NOT NULL REFERENCES signal_upstreams(id) ON DELETE CASCADE,
    jti         TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (upstream_id, jti)
);
CREATE INDEX signal_received_expiry ON signal_received (upstream_id, expires_at);
