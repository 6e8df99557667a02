//! The session lifecycle of signoff.
//!
//! This crate owns every rule about accounts, sessions, logout and audit. It knows nothing of
//! HTTP, SQL or Redis: the HTTP edge (`signoff-server`) calls into [`Authority`], and stores
//! (`signoff-sqlite`, later PostgreSQL) implement the traits in [`store`].
//!
//! Layout:
//! - [`authority`]: the one place where sign-in, authentication and logout happen.
//! - [`store`]: the storage traits and the records they hold.
//! - [`secret`]: random secrets, their hashes and constant-time comparison.
//! - [`password`]: argon2id hashing and the password policy.
//! - [`email`]: e-mail normalisation.
//! - [`throttle`]: failed sign-in limits per account and per client address.
//! - [`audit`]: the audit event vocabulary.
//! - [`clock`]: time as a parameter, so expiry is testable without sleeping.

pub mod audit;
pub mod authority;
pub mod clock;
pub mod email;
pub mod error;
pub mod password;
pub mod secret;
pub mod store;
pub mod throttle;

pub use audit::ClientInfo;
pub use audit::{Actor, AuditEvent, AuditKind};
pub use authority::{Authority, LogoutScope, SessionContext, SessionPolicy};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::CoreError;
pub use secret::{SessionId, SessionSecret, UserId};
pub use store::{Session, SessionFilter, Store, StoreError, User};
