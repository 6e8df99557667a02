//! The one place where the storage backend is chosen, from the database URL.

use signoff_core::Store;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unsupported database URL scheme in `{0}` (use sqlite://PATH)")]
    Unsupported(String),
    #[error("cannot open the store: {0}")]
    Open(#[from] signoff_core::StoreError),
}

pub async fn open_store(database_url: &str) -> Result<Arc<dyn Store>, BackendError> {
    if database_url.starts_with("sqlite:") {
        return Ok(Arc::new(signoff_sqlite::SqliteStore::connect(database_url).await?));
    }
    let scheme = database_url.split(':').next().unwrap_or_default();
    Err(BackendError::Unsupported(format!("{scheme}:…")))
}
