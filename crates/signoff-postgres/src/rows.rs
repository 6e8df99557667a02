//! PostgreSQL rows as core records: how to read one column of a row; the records are read by
//! `signoff_sql::columns`, shared with the other SQL store.

use signoff_core::audit::AuditEvent;
use signoff_core::clients::RegisteredClient;
use signoff_core::feed::FeedEntry;
use signoff_core::mail::MailToken;
use signoff_core::outbox::Delivery;
use signoff_core::signals::SignalStream;
use signoff_core::store::{
    AuthorizationCode, CodeUse, FeedPage, RefreshToken, RememberToken, Session, StoreError, UserCredentials,
};
use signoff_core::token::SigningKeyPair;
use signoff_sql::columns::{self, Columns};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

pub use signoff_sql::columns::{FeedRow, backend, feed_row, ms};

/// Unique violations are conflicts; lock and serialisation failures, deadlocks, cancelled
/// statements, an exhausted pool, insufficient resources (too many connections), a read-only
/// server (a replica just after a failover) and a lost or refused connection (the server
/// going away, `pg_terminate_backend`) are `Busy`, answered 503: a retry may succeed.
pub fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(d)
            if d.code().is_some_and(|c| {
                // Conflicts and timeouts, a server shutting down or full (53300: too many
                // clients), and connections it refuses while it runs (55000: the database does
                // not allow connections; 3D000: dropped; 28xxx: credentials changed): 503, and
                // a retry may work.
                matches!(
                    c.as_ref(),
                    "40001" | "40P01" | "55000" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "25006" | "3D000"
                ) || c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("28")
            }) =>
        {
            StoreError::Busy(e.to_string())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => {
            StoreError::Busy(e.to_string())
        }
        _ => backend(e),
    }
}

struct Row<'a>(&'a PgRow);

impl Columns for Row<'_> {
    fn text(&self, col: &str) -> Result<Option<String>, StoreError> {
        self.0.try_get(col).map_err(backend)
    }
    fn int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        self.0.try_get(col).map_err(backend)
    }
    fn bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.try_get(col).map_err(backend)
    }
    fn flag(&self, col: &str) -> Result<Option<bool>, StoreError> {
        self.0.try_get(col).map_err(backend)
    }
}

macro_rules! read {
    ($($name:ident -> $record:ty),* $(,)?) => {
        $(pub fn $name(row: &PgRow) -> Result<$record, StoreError> {
            columns::$name(&Row(row))
        })*
    };
}

read! {
    session_from -> Session,
    user_from -> UserCredentials,
    remember_from -> RememberToken,
    audit_from -> AuditEvent,
    feed_from -> (i64, FeedEntry),
    refresh_from -> RefreshToken,
    signing_key_from -> SigningKeyPair,
    delivery_from -> Delivery,
    mail_token_from -> MailToken,
    code_from -> AuthorizationCode,
    spent_code_from -> CodeUse,
    signal_stream_from -> SignalStream,
    signal_upstream_from -> signoff_core::signals::upstream::Upstream,
}

/// The [`FeedPage`] of a read of the head beside a page of entries.
pub fn feed_page_from(rows: &[PgRow]) -> Result<FeedPage, StoreError> {
    columns::feed_page_from(rows.iter().map(Row))
}

/// The clients of a [`signoff_sql::select_clients!`] read, a client's endpoint rows together.
pub fn clients_from(rows: &[PgRow]) -> Result<Vec<RegisteredClient>, StoreError> {
    columns::clients_from(rows.iter().map(Row))
}
