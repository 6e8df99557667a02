//! The session lifecycle of signoff.
//!
//! This crate owns every rule about accounts, sessions, logout and audit. It knows nothing of
//! HTTP, SQL or Redis: the HTTP edge (`signoff-server`) calls into [`Authority`], and stores
//! (`signoff-sqlite`, `signoff-postgres`) implement the traits in [`store`]; several nodes
//! follow the protocol in [`cluster`].
//!
//! Layout:
//! - [`authority`]: the one place where sign-in, authentication and logout happen.
//! - [`store`]: the storage traits and the records they hold.
//! - [`session_cache`]: live sessions in memory, kept exact by revocation events.
//! - [`secret`]: random secrets, their hashes and constant-time comparison.
//! - [`password`]: argon2id hashing and the password policy.
//! - [`email`]: e-mail normalisation.
//! - [`policy`]: what each security trigger ends and revokes.
//! - [`remember`]: remember-me tokens (selector:validator).
//! - [`revocation`]: telling open pages that their session ended.
//! - [`feed`]: the revocation feed in one home: its entries, how a process follows it, and the
//!   window relying services read.
//! - [`clients`]: registered clients (relying applications) and their secrets.
//! - [`signals`]: Shared Signals (SSF) streams to registered clients.
//! - [`subject`]: subject identifiers (RFC 9493) other systems name users by.
//! - [`outbox`]: logout notifications to clients (back-channel logout, webhooks) and retries.
//! - [`token`]: EdDSA access tokens (JWT) and the keyring.
//! - [`throttle`]: failed sign-in limits per account and per client address.
//! - [`audit`]: the audit event vocabulary.
//! - [`cluster`]: several nodes: leases, fan-out, jeopardy (the node protocol).
//! - [`clock`]: time as a parameter, so expiry is testable without sleeping.
//! - `conformance` (feature `conformance`): the suite every store runs.

pub mod audit;
pub mod authority;
pub mod clients;
pub mod clock;
pub mod cluster;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod denylist;
pub mod email;
pub mod error;
pub mod fanouts;
pub mod feed;
pub mod mail;
pub mod outbox;
pub mod password;
pub mod policy;
pub mod remember;
pub mod revocation;
pub mod secret;
pub mod session_cache;
pub mod signals;
pub mod store;
pub mod subject;
pub mod throttle;
pub mod token;

pub use audit::ClientInfo;
pub use audit::{Actor, AuditEvent, AuditKind};
pub use authority::upstream_secret_hash;
pub use authority::{
    AccessContext, Authority, CODE_LIFETIME, CodeRequest, Device, IdTokenHint, LoggedOut, LogoutRule, LogoutScope,
    OidcTokens, Presented, Resume, SessionContext, SessionPolicy, SignedIn, TokenPair, TokenPolicy, pkce_matches,
};
pub use authority::{LONG_POLL, MAX_POLLED, MAX_REMOVED_SUBJECTS, MAX_STREAMS_PER_CLIENT, Poll, Polled, StreamConfig};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::CoreError;
pub use feed::{FeedEntry, Revocation};
pub use policy::Trigger;
pub use revocation::RevocationHub;
pub use secret::{SessionId, SessionSecret, UserId};
pub use store::{RememberToken, Session, SessionFilter, Store, StoreError, Tx, User};
