//! Mail to users: the letter of an outbox row, sent through the configured transport
//! (`crate::letters`).

use signoff_core::outbox::{Attempt, Delivery};

use super::TIMEOUT;
use crate::app::AppState;

/// One attempt. Started before the claim's deadline, so the whole conversation ends within the
/// claim, like a webhook's (lettre's own timeout is per command).
pub(super) async fn send(state: &AppState, d: &Delivery) -> Attempt {
    tokio::time::timeout(TIMEOUT, crate::letters::deliver(state, d)).await.unwrap_or(Attempt::later(None))
}
