//! What the lifecycle needs from storage, and the records it keeps there.
//!
//! Backends (SQLite, PostgreSQL) implement [`Store`] for reads and [`Tx`] for changes.
//! Every change happens inside a transaction together with its audit events, so a backend never
//! leaves a half-written change behind: the core opens a [`Tx`], makes its changes, and commits
//! once. Ending many sessions of one user is one statement on an indexed column, not a loop.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::clients::RegisteredClient;
use crate::mail::{MailPurpose, MailToken};
use crate::outbox::{Delivery, DeliveryPage};
use crate::revocation::FeedEntry;
use crate::secret::{SecretHash, SessionId, UserId};
use crate::token::SigningKeyPair;

/// A user as the lifecycle sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    /// Bumped by "log out everywhere" and security events; access tokens carry it.
    pub token_version: i64,
    pub created_at: OffsetDateTime,
}

/// A user with the password hash, for checking a password.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

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
    /// Where the series was last used, so it can be listed as a device.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A refresh token. Current while `used_at` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: String,
    pub token_hash: SecretHash,
    pub family_id: String,
    pub session_id: SessionId,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub replaced_by: Option<String>,
    /// Set at rotation: the random salt the successor's secret was derived from (with this
    /// token's secret, which is never stored), so the grace can hand out the same successor.
    pub successor_salt: Option<[u8; 32]>,
    /// Whether the grace of this token's rotation was used (once only).
    pub grace_used: bool,
}

/// Which sessions [`Tx::end_sessions`] ends. Refresh tokens of the ended sessions go with them.
/// So do the remember-me series they back: for [`SessionFilter::One`] the series whose
/// `session_id` is that session (whether or not the session was still there), for
/// [`SessionFilter::AllOf`] every series of the user except the kept sessions'. A deleted
/// series takes every session opened from it along (see [`Tx::delete_remember`]). Expiry leaves
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

/// Which remember-me series [`Tx::delete_remember`] deletes.
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

/// What [`Tx::end_sessions`] and [`Tx::delete_remember`] ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// Every session deleted, those taken along by a deleted series included.
    pub sessions: Vec<Session>,
    /// How many remember-me series were deleted.
    pub series: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was hit (an e-mail that is taken).
    #[error("conflict")]
    Conflict,
    /// The backend is saturated (locked, or no connection free in time): retrying may work.
    #[error("busy: {0}")]
    Busy(String),
    /// The backend failed; the message is for operators' logs only.
    #[error("backend: {0}")]
    Backend(String),
}

/// Reads, and the door to changes.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap reachability check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Called once when the server stops: everything written is left in the database's own
    /// files (SQLite: the write-ahead log checkpointed into the database file) and connections
    /// are closed.
    async fn close(&self) {}
    /// Opens a transaction; dropping it without [`Tx::commit`] rolls back.
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError>;

    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError>;
    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserCredentials>, StoreError>;
    /// The session with this secret hash and its user, whether or not it has expired.
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError>;
    /// Sessions of `user`, most recently active first (expired ones included; callers filter).
    async fn user_sessions(&self, user: &UserId) -> Result<Vec<Session>, StoreError>;
    /// A remember-me series by its selector (a cheap look before a transaction; decisions are
    /// made on the `Tx` read).
    async fn remember_by_selector(&self, selector: &str) -> Result<Option<RememberToken>, StoreError>;
    /// Every remember-me series of a user (expired ones included; callers filter).
    async fn user_remember(&self, user: &UserId) -> Result<Vec<RememberToken>, StoreError>;
    /// Records activity outside any transaction; never moves `last_active_at` backwards.
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError>;
    /// A user's events, newest first.
    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
    /// Up to `limit` users with a session past its end (or idle since before `idle_cutoff`) or a
    /// remember-me series past its end: the sweep ends them user by user, under each user's lock.
    async fn expired_owners(
        &self,
        now: OffsetDateTime,
        idle_cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError>;

    /// Feed entries recorded after position `after`, oldest first, at most `limit`, each with
    /// its position.
    async fn revocations_since(&self, after: i64, limit: u32) -> Result<Vec<(i64, FeedEntry)>, StoreError>;
    /// The feed's newest position (0 when empty).
    async fn revocation_head(&self) -> Result<i64, StoreError>;
    /// Drops feed entries older than `before`, and denylist entries past their expiry.
    async fn trim_revocations(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError>;

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError>;
    async fn refresh_by_hash(&self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError>;
    /// Every signing key, retired ones included.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyPair>, StoreError>;
    /// Denied access tokens that have not expired by `now` (Unix seconds): `(issuer, jti, exp)`.
    async fn denied_tokens(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError>;

    /// A registered client by id.
    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError>;
    /// Every registered client, oldest first.
    async fn clients(&self) -> Result<Vec<RegisteredClient>, StoreError>;

    /// Claims up to `limit` pending deliveries due by `now` that no worker holds, for this
    /// worker until `until` (rows another transaction holds are skipped): at most
    /// `per_endpoint` to one URL and none to the URLs in `skip` (those this worker is still
    /// busy with), each URL's oldest first before any URL's second (so a backlog at some
    /// endpoints never crowds out the others). Every delivery of one claim carries the same
    /// claim token.
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
        per_endpoint: u32,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Gives back deliveries of claim `claim` this worker will not send after all (they are due
    /// again at once, for any worker).
    async fn release_deliveries(&self, claim: &str, ids: &[String]) -> Result<(), StoreError>;
    /// Records an attempt's outcome and releases the claim, if the delivery is still pending
    /// under the claim it was read with (`false` otherwise: another worker took it over, or an
    /// admin or a `410` changed it meanwhile).
    async fn record_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError>;
    /// Deletes finished (delivered, failed, skipped) deliveries created before `before`.
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
    /// Deletes mail tokens that expired before `before`.
    async fn prune_mail_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
    /// The mail token with `hash`, used or not, expired or not (a look before the transaction
    /// that consumes it; the decision is [`Tx::consume_mail_token`]'s).
    async fn mail_token(&self, hash: &SecretHash) -> Result<Option<MailToken>, StoreError>;
    /// The user's newest unused token for `purpose` that has not expired by `now`.
    async fn pending_mail_token(
        &self,
        user: &UserId,
        purpose: MailPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError>;
    /// A page of a client's deliveries, newest first.
    async fn client_deliveries(&self, client: &str, page: &DeliveryPage) -> Result<Vec<Delivery>, StoreError>;
    /// Makes `secret` the client's webhook secret; the one it replaces is still signed with
    /// until `previous_until` (dropped at once when that is not after `now`). `false` when the
    /// client is unknown or has no webhook URL.
    async fn rotate_webhook_secret(
        &self,
        client: &str,
        secret: &str,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Makes a failed delivery of `client` pending again, due at `now`; `false` when there is no
    /// such failed delivery.
    async fn retry_delivery(&self, client: &str, id: &str, now: OffsetDateTime) -> Result<bool, StoreError>;
    /// A URL answered `410 Gone`: the client's callbacks at it are removed and its pending
    /// deliveries to it fail.
    async fn drop_callback(&self, client: &str, url: &str) -> Result<(), StoreError>;
    /// Forgets webhook secrets replaced by a rotation whose overlap ended before `now`.
    async fn forget_replaced_webhook_secrets(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
    /// Logout notifications (deliveries to registered clients, not mail to users: only mail to
    /// an address with an account could be pending or failed) pending and failed, for metrics.
    async fn delivery_counts(&self) -> Result<(i64, i64), StoreError>;
}

/// Changes, made together or not at all.
///
/// Reads through a `Tx` see the newest committed state and hold it until the transaction ends
/// (SQLite takes the write lock at `BEGIN IMMEDIATE`; PostgreSQL reads `FOR UPDATE`), so a
/// decision taken on them cannot be overtaken by a revocation committing meanwhile.
#[async_trait]
pub trait Tx: Send {
    /// Takes the user's lock until the transaction ends. Every transaction that decides about a
    /// user's credentials takes it first (the authority's `batch_for`), so concurrent ones queue
    /// in one order instead of deadlocking over their rows. A no-op where transactions are
    /// serial anyway (SQLite).
    async fn lock_user(&mut self, user: &UserId) -> Result<(), StoreError>;
    async fn user_by_id(&mut self, id: &UserId) -> Result<Option<UserCredentials>, StoreError>;
    async fn session_by_id(&mut self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError>;
    async fn remember_by_selector(&mut self, selector: &str) -> Result<Option<RememberToken>, StoreError>;
    async fn refresh_by_hash(&mut self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError>;
    async fn refresh_by_id(&mut self, id: &str) -> Result<Option<RefreshToken>, StoreError>;

    /// Inserts a user; `Conflict` when the e-mail is taken.
    async fn create_user(&mut self, user: &User, password_hash: &str) -> Result<(), StoreError>;
    async fn set_password(&mut self, user: &UserId, password_hash: &str) -> Result<(), StoreError>;
    /// `Conflict` when the e-mail is taken.
    async fn set_email(&mut self, user: &UserId, email: &str) -> Result<(), StoreError>;
    /// Increments the user's token version and returns the new value.
    async fn bump_token_version(&mut self, user: &UserId) -> Result<i64, StoreError>;

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

    async fn append_audit(&mut self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Appends several events in one statement, in order (a global logout of a user with
    /// thousands of sessions writes one event per session).
    async fn append_audits(&mut self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Appends entries to the revocation feed, in order and in one statement; `at` dates those
    /// that carry no time of their own.
    /// Returns the position of the last entry written (0 when none was).
    async fn record_revocations(&mut self, entries: &[FeedEntry], at: OffsetDateTime) -> Result<i64, StoreError>;

    /// Stores a mailed link's token, deleting the user's unused tokens of the same purpose: only
    /// the newest link works, and a user has at most one outstanding per purpose.
    async fn insert_mail_token(&mut self, token: &MailToken) -> Result<(), StoreError>;
    /// Gives the unused, unexpired token of change request `request` the hash `new`, keeping
    /// everything else, and returns it; `None` when the request's row is gone (a newer request
    /// replaced it), used or expired.
    async fn replace_mail_token(
        &mut self,
        request: &SecretHash,
        new: &SecretHash,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError>;
    /// Marks the token with `hash` used, only if it is for `purpose`, unused and not expired at
    /// `at` (compare-and-swap), and returns it; `None` otherwise (unknown, used, expired, or
    /// meant for something else).
    async fn consume_mail_token(
        &mut self,
        hash: &SecretHash,
        purpose: MailPurpose,
        at: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError>;

    async fn insert_refresh(&mut self, token: &RefreshToken) -> Result<(), StoreError>;
    /// Marks a current refresh token used and replaced by `successor` (derived with `salt`),
    /// only if it is still current (compare-and-swap); `false` when another request got there
    /// first.
    async fn consume_refresh(
        &mut self,
        id: &str,
        successor: &str,
        salt: &[u8; 32],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Marks the grace of a used refresh token taken, only if it was not (compare-and-swap).
    async fn use_refresh_grace(&mut self, id: &str) -> Result<bool, StoreError>;
    /// Deletes a whole refresh family; returns how many tokens it held.
    async fn revoke_refresh_family(&mut self, family: &str) -> Result<u64, StoreError>;
    /// Deletes every refresh token of a user.
    async fn revoke_user_refresh(&mut self, user: &UserId) -> Result<u64, StoreError>;
    /// Denies an access token until `exp` (Unix seconds).
    async fn deny_token(&mut self, issuer: &str, jti: &str, exp: i64) -> Result<(), StoreError>;
    /// Takes the signing keys' lock until the transaction ends: key changes (the first key,
    /// a rotation, a withdrawal) from several processes then happen one after the other, so
    /// exactly one key signs. A no-op where transactions are serial anyway (SQLite).
    async fn lock_signing_keys(&mut self) -> Result<(), StoreError>;
    async fn insert_signing_key(&mut self, key: &SigningKeyPair) -> Result<(), StoreError>;
    /// Retires every unretired key except `keep`.
    async fn retire_signing_keys(&mut self, keep: &str, at: OffsetDateTime) -> Result<u64, StoreError>;
    /// Deletes a key (withdrawn after a compromise); `false` when there was none.
    async fn delete_signing_key(&mut self, kid: &str) -> Result<bool, StoreError>;
    /// Whether an unretired key (one that signs) is left.
    async fn has_signer(&mut self) -> Result<bool, StoreError>;
    async fn insert_client(&mut self, client: &RegisteredClient) -> Result<(), StoreError>;
    /// Clients with a back-channel logout or webhook URL (the outbox's recipients).
    async fn callback_clients(&mut self) -> Result<Vec<RegisteredClient>, StoreError>;
    async fn enqueue_deliveries(&mut self, deliveries: &[Delivery]) -> Result<(), StoreError>;
    /// Deletes a client; `false` when there was none with this id.
    async fn delete_client(&mut self, id: &str) -> Result<bool, StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
