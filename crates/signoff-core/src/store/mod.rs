//! What the lifecycle needs from storage, and the records it keeps there.
//!
//! Backends (SQLite, PostgreSQL) implement [`Store`] for reads and [`Tx`] for changes.
//! Every change happens inside a transaction together with its audit events, so a backend never
//! leaves a half-written change behind: the core opens a [`Tx`], makes its changes, and commits
//! once. Ending many sessions of one user is one statement on an indexed column, not a loop.

use crate::clients::RegisteredClient;
use crate::secret::{SessionId, SigninId, UserId};
use crate::signals::SignalStream;
use async_trait::async_trait;

mod audit;
mod clients;
mod feed;
mod keys;
mod mail;
mod outbox;
mod sessions;
mod signals;
mod signins;
mod tokens;
mod users;

pub use audit::{AuditStore, AuditTx};
pub use clients::{ClientStore, ClientTx};
pub use feed::{Announce, FeedPage, FeedStore, FeedTx};
pub use keys::{KeyStore, KeyTx};
pub use mail::{MailStore, MailTx};
pub use outbox::{OutboxStore, OutboxTx};
pub use sessions::{Ended, RememberFilter, RememberToken, Session, SessionFilter, SessionStore, SessionTx};
pub use signals::{SignalStore, SignalTx};
pub use signins::{AuthorizationCode, CodeIssue, CodeUse, SigninStore, SigninTx};
pub use tokens::{RefreshToken, TokenStore, TokenTx};
pub use users::{User, UserCredentials, UserStore, UserTx};

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
///
/// Each concept's reads are a trait of their own in the module named for it; a store implements
/// them all.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + TokenStore
    + KeyStore
    + AuditStore
    + FeedStore
    + ClientStore
    + OutboxStore
    + MailStore
    + SigninStore
    + SignalStore
    + 'static
{
    /// Cheap reachability check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Called once when the server stops: everything written is left in the database's own
    /// files (SQLite: the write-ahead log checkpointed into the database file) and connections
    /// are closed.
    async fn close(&self) {}
    /// Opens a transaction; dropping it without [`Tx::commit`] rolls back.
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError>;
}

/// Changes, made together or not at all.
///
/// Reads through a `Tx` see the newest committed state and hold it until the transaction ends
/// (SQLite takes the write lock at `BEGIN IMMEDIATE`; PostgreSQL reads `FOR UPDATE`), so a
/// decision taken on them cannot be overtaken by a revocation committing meanwhile.
///
/// Each concept's changes are a trait of their own in the module named for it; a transaction
/// implements them all, so every change a batch makes is in the one transaction.
#[async_trait]
pub trait Tx:
    UserTx + SessionTx + TokenTx + KeyTx + AuditTx + FeedTx + ClientTx + OutboxTx + MailTx + SigninTx + SignalTx
{
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;

    /// Takes `user`'s lock ([`UserTx::lock_user`]) and then reads session `id` as
    /// [`SessionTx::session_by_id`] does, if it is `user`'s (another user's is `None`: no other
    /// user's row is locked): how a batch for one user's session begins. The default makes the
    /// two calls; a store with round trips to save makes them one, the lock still taken first.
    async fn lock_user_and_read_session(
        &mut self,
        user: &UserId,
        id: &SessionId,
    ) -> Result<Option<(Session, User)>, StoreError> {
        self.lock_user(user).await?;
        Ok(self.session_by_id(id).await?.filter(|(session, _)| &session.user_id == user))
    }

    /// Ends the sessions `filter` picks ([`SessionTx::end_sessions`]) and bumps the token
    /// version of their user ([`UserTx::bump_token_version`]), returning both: what logging out
    /// everywhere and a trigger do. The default makes the two calls; a store with round trips
    /// to save makes them one.
    async fn end_sessions_and_bump(&mut self, filter: SessionFilter<'_>) -> Result<(Ended, i64), StoreError> {
        let ended = self.end_sessions(filter).await?;
        let version = self.bump_token_version(filter.user()).await?;
        Ok((ended, version))
    }

    /// What a batch's commit reads before it writes who must be told: ends `users`' sign-ins
    /// that no session or series carries any more ([`SigninTx::end_signins`]; nothing when
    /// `users` is empty), and reads the callback clients ([`ClientTx::callback_clients`]) when
    /// `clients` or when a sign-in ended, and the live Shared Signals streams
    /// ([`SignalTx::live_signal_streams`]) when `streams`; what is not read is empty. The
    /// default makes the three calls; a store with round trips to save makes them one.
    async fn end_signins_and_read_recipients(
        &mut self,
        users: &[UserId],
        clients: bool,
        streams: bool,
    ) -> Result<Recipients, StoreError> {
        let signins_ended = if users.is_empty() { Vec::new() } else { self.end_signins(users).await? };
        let clients = if clients || !signins_ended.is_empty() { self.callback_clients().await? } else { Vec::new() };
        let streams = if streams { self.live_signal_streams().await? } else { Vec::new() };
        Ok(Recipients { signins_ended, clients, streams })
    }
}

/// What [`Tx::end_signins_and_read_recipients`] ended and read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    /// Each link of an ended sign-in, as `(sign-in, user, client)`.
    pub signins_ended: Vec<(SigninId, UserId, String)>,
    /// The clients with a back-channel logout or webhook URL, oldest first.
    pub clients: Vec<RegisteredClient>,
    /// The streams not disabled, oldest first.
    pub streams: Vec<SignalStream>,
}
