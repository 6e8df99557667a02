-- Shared Signals (SSF) streams: each registered client's configuration of the security events
-- it is sent. events_requested is a JSON array of event type URIs as the receiver gave them;
-- excluded_subjects a JSON array of the keys of subjects it removed (every other is included).
-- authorization_header is kept as given: signoff sends it with each pushed event.
CREATE TABLE signal_streams (
    id                   TEXT PRIMARY KEY,
    client_id            TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    description          TEXT,
    events_requested     TEXT NOT NULL,
    delivery_method      TEXT NOT NULL,
    endpoint_url         TEXT,
    authorization_header TEXT,
    status               TEXT NOT NULL,
    reason               TEXT,
    excluded_subjects    TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX signal_streams_by_client ON signal_streams (client_id, created_at);
