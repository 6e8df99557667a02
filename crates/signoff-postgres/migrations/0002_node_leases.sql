-- Node leases (see signoff_core::cluster): each server process holds one while it follows the
-- revocation feed, timed by this database's clock. `applied_seq` is how far it has applied
-- the feed (the acknowledgement a revoker waits for); `fenced` is set by a revoker that gave up
-- waiting, after which renewals fail until the node takes a new lease.
CREATE TABLE node_leases (
    node        TEXT PRIMARY KEY,
    incarnation BIGINT NOT NULL,
    applied_seq BIGINT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    fenced      BOOLEAN NOT NULL DEFAULT false
);
