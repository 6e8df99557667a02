//! Sessions and the remember-me series that sign a browser back in, and how they end.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use super::User;
use crate::secret::{SecretHash, SessionId, SigninId, UserId};

/// A live session. `expires_at` is the absolute end; the idle end follows `last_active_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub secret_hash: SecretHash,
    pub created_at: OffsetDateTime,
    pub last_active_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The remember-me series (its selector) this session was opened from or with: the session
    /// lives only while the series does.
    pub series: Option<String>,
    /// The sign-in this session carries on (the same across rotations and resumes).
    pub signin: SigninId,
    /// When a password last signed this browser in (OpenID `auth_time`): a resumed session's
    /// is its series' creation.
    pub authenticated_at: OffsetDateTime,
}

/// A remember-me series: a stable public `selector` and a validator that changes on every
/// use. Only the validator's hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberToken {
    pub selector: String,
    pub validator_hash: SecretHash,
    pub user_id: UserId,
    /// The session this token last created (or was issued with).
    pub session_id: SessionId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The validator this one replaced, and when: honoured only inside the race grace.
    pub previous_hash: Option<SecretHash>,
    pub rotated_at: Option<OffsetDateTime>,
    /// Whether a racing request already used the grace of the last rotation (once only).
    pub grace_used: bool,
    /// The sign-in its sessions carry on.
    pub signin: SigninId,
    /// Where the series was last used, so it can be listed as a device.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Which sessions [`SessionTx::end_sessions`] ends. Refresh tokens of the ended sessions go with them.
/// So do the remember-me series they back: for [`SessionFilter::One`] the series whose
/// `session_id` is that session (whether or not the session was still there), for
/// [`SessionFilter::AllOf`] every series of the user except the kept sessions'. A deleted
/// series takes every session opened from it along (see [`SessionTx::delete_remember`]). Expiry leaves
/// remember-me series alone, since outliving a session is their purpose.
#[derive(Debug, Clone, Copy)]
pub enum SessionFilter<'a> {
    /// One session of one user (a session id of another user matches nothing).
    One { user: &'a UserId, id: &'a SessionId },
    /// Every session of a user, except those in `keep`, with every series but those backing a
    /// kept session and `keep_series` (a remembered browser whose own session has lapsed, which
    /// signs its other devices out and stays remembered itself).
    AllOf { user: &'a UserId, keep: &'a [SessionId], keep_series: Option<&'a str> },
    /// Every session of a user past its absolute end, or idle since before `idle_cutoff`.
    Expired { user: &'a UserId, now: OffsetDateTime, idle_cutoff: OffsetDateTime },
    /// One session that has expired: like [`SessionFilter::One`], but the remember-me series
    /// it backs lives on (signing the device back in is its purpose).
    Lapsed { user: &'a UserId, id: &'a SessionId },
    /// The oldest sessions of a user beyond the newest `keep` (the per-user cap), never `spare`
    /// (the session being opened), which counts as the newest.
    OldestBeyond { user: &'a UserId, keep: u32, spare: &'a SessionId },
}

impl SessionFilter<'_> {
    /// The user whose sessions this picks.
    pub fn user(&self) -> &UserId {
        match *self {
            SessionFilter::One { user, .. }
            | SessionFilter::AllOf { user, .. }
            | SessionFilter::Expired { user, .. }
            | SessionFilter::Lapsed { user, .. }
            | SessionFilter::OldestBeyond { user, .. } => user,
        }
    }
}

/// Which remember-me series [`SessionTx::delete_remember`] deletes.
#[derive(Debug, Clone, Copy)]
pub enum RememberFilter<'a> {
    Selector(&'a str),
    AllOfUser(&'a UserId),
    /// Every series of a user past its end.
    Expired {
        user: &'a UserId,
        now: OffsetDateTime,
    },
    /// A user's least recently used series beyond the newest `keep` (the per-user cap), never
    /// `spare` (the series being used), which counts as the newest.
    OldestBeyond {
        user: &'a UserId,
        keep: u32,
        spare: Option<&'a str>,
    },
}

/// What [`SessionTx::end_sessions`] and [`SessionTx::delete_remember`] ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// Every session deleted, those taken along by a deleted series included.
    pub sessions: Vec<Session>,
    /// How many remember-me series were deleted.
    pub series: u64,
}

/// Session reads, outside any transaction (part of [`Store`](super::Store)).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The session with this secret hash and its user, whether or not it has expired.
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError>;
    async fn session_by_id(&self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError>;
    /// Sessions of `user`, most recently active first (expired ones included; callers filter).
    async fn user_sessions(&self, user: &UserId) -> Result<Vec<Session>, StoreError>;
    /// A remember-me series by its selector (a cheap look before a transaction; decisions are
    /// made on the `Tx` read).
    async fn remember_by_selector(&self, selector: &str) -> Result<Option<RememberToken>, StoreError>;
    /// Every remember-me series of a user (expired ones included; callers filter).
    async fn user_remember(&self, user: &UserId) -> Result<Vec<RememberToken>, StoreError>;
    /// Records activity outside any transaction; never moves `last_active_at` backwards.
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Up to `limit` users with a session past its end (or idle since before `idle_cutoff`) or a
    /// remember-me series past its end: the sweep ends them user by user, under each user's lock.
    async fn expired_owners(
        &self,
        now: OffsetDateTime,
        idle_cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError>;
}

/// Session changes and locked reads, inside one transaction (part of [`Tx`](super::Tx)).
#[async_trait]
pub trait SessionTx: Send {
    async fn session_by_id(&mut self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError>;
    async fn remember_by_selector(&mut self, selector: &str) -> Result<Option<RememberToken>, StoreError>;
    async fn insert_session(&mut self, session: &Session) -> Result<(), StoreError>;
    /// Detaches a session from its remember-me series, so it survives the series' deletion.
    async fn unbind_series(&mut self, session: &SessionId) -> Result<(), StoreError>;
    /// Gives a session a new id and secret, keeping everything else; `false` if it is gone.
    async fn rotate_session(&mut self, old: &SessionId, new: &SessionId, hash: &SecretHash)
    -> Result<bool, StoreError>;
    /// Deletes the sessions matching `filter` (and the remember-me series they back, with the
    /// sessions bound to those, see [`SessionFilter`]) in one statement each.
    async fn end_sessions(&mut self, filter: SessionFilter<'_>) -> Result<Ended, StoreError>;
    async fn insert_remember(&mut self, token: &RememberToken) -> Result<(), StoreError>;
    /// Replaces the validator of a series (remembering the old one as `previous_hash`, rotated
    /// `at`, its grace unused) and binds it to `session` used from `ip`/`user_agent`, only if the
    /// stored validator is still `expected` (compare-and-swap); `false` when it was not.
    async fn rotate_remember(
        &mut self,
        selector: &str,
        expected: &SecretHash,
        validator_hash: &SecretHash,
        session: &Session,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Marks the grace of a series' last rotation used, only if `previous` is still its
    /// predecessor and the grace is unused (compare-and-swap); `false` otherwise.
    async fn use_remember_grace(&mut self, selector: &str, previous: &SecretHash) -> Result<bool, StoreError>;
    /// Deletes series, and every session opened from them.
    async fn delete_remember(&mut self, filter: RememberFilter<'_>) -> Result<Ended, StoreError>;
}
