//! Accounts: unique by address, versioned, read back as written.

use std::sync::Arc;

use crate::secret::UserId;
use crate::store::{Store, StoreError, User};

use super::{tx, user};

pub async fn addresses_are_unique_and_writes_are_read_back(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let mut t = tx(&store).await;
    let twin = User { id: UserId::generate(), ..a.clone() };
    assert!(matches!(t.create_user(&twin, "h").await, Err(StoreError::Conflict)), "a taken e-mail is Conflict");
    drop(t);
    let found = store.user_by_email("a@example.com").await.expect("read").expect("user");
    assert_eq!(found.user, a);
    let mut t = tx(&store).await;
    assert_eq!(t.bump_token_version(&a.id).await.expect("bump"), 1);
    assert_eq!(t.bump_token_version(&a.id).await.expect("bump"), 2);
    t.set_password(&a.id, "new hash").await.expect("set_password");
    let seen = t.user_by_id(&a.id).await.expect("read").expect("user");
    assert_eq!((seen.user.token_version, seen.password_hash.as_str()), (2, "new hash"), "a Tx reads its own writes");
    t.commit().await.expect("commit");
    let b = user(&store, "b@example.com").await;
    let mut t = tx(&store).await;
    assert!(matches!(t.set_email(&b.id, "a@example.com").await, Err(StoreError::Conflict)));
}
