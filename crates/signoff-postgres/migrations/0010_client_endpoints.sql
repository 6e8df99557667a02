-- Where a client is reached or sent: one row per endpoint, so a new kind (a notification
-- channel, a list of redirect URIs) is a new value of `kind`, not a new column. The columns
-- this replaces (clients.backchannel_logout_uri, clients.webhook_url) are still written, for
-- nodes of the previous release during a rolling upgrade, and while they are, each says whether
-- its kind is there: one such a node registers or drops is in the column alone.
CREATE TABLE client_endpoints (
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    url       TEXT NOT NULL,
    PRIMARY KEY (client_id, kind, url)
);
INSERT INTO client_endpoints (client_id, kind, url)
    SELECT id, 'backchannel_logout', backchannel_logout_uri FROM clients WHERE backchannel_logout_uri IS NOT NULL;
INSERT INTO client_endpoints (client_id, kind, url)
    SELECT id, 'webhook', webhook_url FROM clients WHERE webhook_url IS NOT NULL;
