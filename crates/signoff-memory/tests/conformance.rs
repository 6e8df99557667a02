//! The store conformance suite (`signoff_core::conformance`) against the memory store: one test
//! per rule, each on a fresh store.

use signoff_core::Store;
use signoff_memory::MemoryStore;
use std::sync::Arc;

async fn fresh() -> (Arc<dyn Store>, ()) {
    (Arc::new(MemoryStore::new()) as Arc<dyn Store>, ())
}

signoff_core::store_conformance!(fresh);
