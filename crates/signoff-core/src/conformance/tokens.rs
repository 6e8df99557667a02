//! Refresh tokens: one use wins, one grace, families end together.

use std::sync::Arc;
use time::Duration;

use crate::store::{RefreshToken, SessionFilter, Store};

use super::{hash, insert_sessions, session, t0, tx, user};

pub async fn refresh_compare_and_swap(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let s = session(&a.id, t0(), None);
    insert_sessions(&store, &[&s]).await;
    let token = |id: &str, family: &str| RefreshToken {
        id: id.into(),
        token_hash: hash(),
        family_id: family.into(),
        session_id: s.id.clone(),
        user_id: a.id.clone(),
        created_at: t0(),
        expires_at: t0() + Duration::days(1),
        used_at: None,
        replaced_by: None,
        successor_salt: None,
        grace_used: false,
        client_id: (family == "g").then(|| "a-client".to_owned()),
    };
    let (first, other) = (token("r1", "f"), token("o1", "g"));
    let mut t = tx(&store).await;
    t.insert_refresh(&first).await.expect("insert");
    t.insert_refresh(&other).await.expect("insert");
    assert!(!t.use_refresh_grace("r1").await.expect("grace"), "no grace before a rotation");
    assert!(t.consume_refresh("r1", "r2", &[7; 32], t0()).await.expect("cas"));
    assert!(!t.consume_refresh("r1", "r3", &[8; 32], t0()).await.expect("cas"), "of two uses one wins");
    let used = t.refresh_by_id("r1").await.expect("read").expect("token");
    assert_eq!((used.replaced_by.as_deref(), used.successor_salt), (Some("r2"), Some([7; 32])));
    assert!(t.use_refresh_grace("r1").await.expect("grace"));
    let of_client = t.refresh_by_id("o1").await.expect("read").expect("token");
    assert_eq!((used.client_id, of_client.client_id.as_deref()), (None, Some("a-client")), "the client is kept");
    assert!(!t.use_refresh_grace("r1").await.expect("grace"), "the grace is used once");
    assert_eq!(t.revoke_refresh_family("f").await.expect("revoke"), 1);
    assert!(t.refresh_by_hash(&first.token_hash).await.expect("read").is_none());
    // Ending a session ends its refresh tokens.
    t.end_sessions(SessionFilter::One { user: &a.id, id: &s.id }).await.expect("end");
    assert!(t.refresh_by_id("o1").await.expect("read").is_none(), "refresh tokens die with their session");
    t.commit().await.expect("commit");
}
