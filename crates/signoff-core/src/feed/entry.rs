//! What the feed says: one entry per thing that stopped a credential, in the one vocabulary
//! every consumer reads (the in-memory checks, the session cache, the open pages, the registered
//! clients' deliveries, relying services' window).

use time::OffsetDateTime;

use crate::secret::{SessionId, UserId};

/// One ended session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub session_id: SessionId,
    pub user_id: UserId,
    /// Why, in a stable word (`logout`, `revoked`, `password_changed`, `expired`, …).
    pub reason: String,
    pub at: OffsetDateTime,
}

/// One entry of the revocation feed: anything that stops a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEntry {
    /// A session ended.
    Session(Revocation),
    /// An access token was revoked; it stays denied until `exp` (Unix seconds). `user_id` is
    /// whose it was (entries recorded before it was kept have none, and so do a machine
    /// client's tokens, which have no user).
    Token { issuer: String, jti: String, exp: i64, user_id: Option<UserId> },
    /// A user's token version moved on; older access tokens are dead.
    TokenVersion { user_id: UserId, version: i64 },
    /// The signing keys changed (`kid` added by a rotation, or withdrawn): every process
    /// reloads them.
    Keys { kid: String, withdrawn: bool },
    /// A session kept its place under a new id: the old id (and its secret) is dead. `user_id`
    /// and `reason` say whose and why (entries recorded before they were kept have none).
    Rekeyed { old: SessionId, new: SessionId, user_id: Option<UserId>, reason: Option<String> },
    /// A registered client was deleted: its credentials are dead and its feed streams end.
    ClientRemoved { client_id: String },
    /// A client's grant ended (its secret was rotated, or it was deleted): the access tokens it
    /// got by `client_credentials`, which carry `sid`, are dead, and so is whatever its old
    /// secret opened (its feed streams end). `reason` says why.
    ClientGrantEnded { sid: SessionId, client_id: String, reason: String },
    /// A kind this version does not know (written by a newer process on the same database):
    /// passed over, so the relay moves on past it.
    Unknown { kind: String },
}
