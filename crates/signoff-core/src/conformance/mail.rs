//! Tokens of mailed links.

use std::sync::Arc;
use time::Duration;

use crate::mail::{MailPurpose, MailToken};
use crate::store::Store;

use super::{hash, t0, tx, user};

pub async fn mail_tokens_are_used_once_before_they_expire(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let token = |purpose, expires| MailToken {
        hash: hash(),
        purpose,
        user_id: a.id.clone(),
        new_email: (purpose == MailPurpose::EmailChange).then(|| "new@example.com".to_owned()),
        fingerprint: hash(),
        request: None,
        created_at: t0(),
        expires_at: expires,
        used_at: None,
    };
    let stale = token(MailPurpose::PasswordReset, t0() + Duration::minutes(1));
    let superseded = token(MailPurpose::EmailChange, t0() + Duration::hours(1));
    let mut t = tx(&store).await;
    t.insert_mail_token(&stale).await.expect("insert");
    t.insert_mail_token(&superseded).await.expect("insert");
    t.commit().await.expect("commit");
    // An expired link is still unused: a newer one of the same purpose replaces it too.
    let reset = token(MailPurpose::PasswordReset, t0() + Duration::hours(1));
    let change = token(MailPurpose::EmailChange, t0() + Duration::hours(1));
    let mut t = tx(&store).await;
    for m in [&reset, &change] {
        t.insert_mail_token(m).await.expect("insert");
    }
    t.commit().await.expect("commit");
    assert_eq!(store.mail_token(&superseded.hash).await.expect("read"), None, "only the newest link of a purpose");
    assert_eq!(store.mail_token(&stale.hash).await.expect("read"), None, "only the newest link of a purpose");
    assert_eq!(store.mail_token(&change.hash).await.expect("read").as_ref(), Some(&change));
    let pending = store.pending_mail_token(&a.id, MailPurpose::EmailChange, t0()).await.expect("pending");
    assert_eq!(pending.as_ref(), Some(&change));
    let later = t0() + Duration::hours(2);
    assert_eq!(store.pending_mail_token(&a.id, MailPurpose::EmailChange, later).await.expect("pending"), None);
    // A link of another purpose, or of another user, is left alone.
    let b = user(&store, "b@example.com").await;
    let of_b = MailToken { user_id: b.id.clone(), ..token(MailPurpose::PasswordReset, t0() + Duration::minutes(1)) };
    let mut t = tx(&store).await;
    t.insert_mail_token(&of_b).await.expect("insert");
    t.commit().await.expect("commit");
    assert!(store.mail_token(&reset.hash).await.expect("read").is_some());
    // A change request's row takes each attempt's link hash, keeping its times; a used row, an
    // expired one and an unknown request take nothing.
    let id = hash();
    let placeholder =
        MailToken { hash: id, request: Some(id), ..token(MailPurpose::EmailChange, t0() + Duration::hours(1)) };
    let (first, second) = (hash(), hash());
    let mut t = tx(&store).await;
    t.insert_mail_token(&placeholder).await.expect("insert");
    let took = t.replace_mail_token(&id, &first, t0()).await.expect("replace");
    assert_eq!(took, Some(MailToken { hash: first, ..placeholder.clone() }));
    let again = t.replace_mail_token(&id, &second, t0()).await.expect("replace");
    assert_eq!(again.map(|m| m.hash), Some(second), "a retry's link takes the row again");
    let late = t0() + Duration::hours(2);
    assert_eq!(t.replace_mail_token(&id, &hash(), late).await.expect("replace"), None, "expired");
    assert!(t.consume_mail_token(&second, MailPurpose::EmailChange, t0()).await.expect("consume").is_some());
    assert_eq!(t.replace_mail_token(&id, &hash(), t0()).await.expect("replace"), None, "used");
    assert_eq!(t.replace_mail_token(&hash(), &hash(), t0()).await.expect("replace"), None, "unknown");
    drop(t);
    assert_eq!(store.mail_token(&id).await.expect("read"), None, "rolled back with its transaction");
    let at = t0() + Duration::minutes(5);
    let mut t = tx(&store).await;
    assert_eq!(
        t.consume_mail_token(&reset.hash, MailPurpose::EmailChange, at).await.expect("read"),
        None,
        "another purpose"
    );
    let used = t.consume_mail_token(&reset.hash, MailPurpose::PasswordReset, at).await.expect("consume");
    assert_eq!(used, Some(MailToken { used_at: Some(at), ..reset.clone() }), "every field back, marked used");
    assert_eq!(
        t.consume_mail_token(&reset.hash, MailPurpose::PasswordReset, at).await.expect("read"),
        None,
        "used once"
    );
    assert_eq!(t.consume_mail_token(&of_b.hash, MailPurpose::PasswordReset, at).await.expect("read"), None, "expired");
    assert_eq!(t.consume_mail_token(&hash(), MailPurpose::PasswordReset, at).await.expect("read"), None, "unknown");
    drop(t);
    // Rolled back: the reset link is usable again, exactly once.
    let mut t = tx(&store).await;
    let got = t.consume_mail_token(&change.hash, MailPurpose::EmailChange, at).await.expect("consume");
    assert_eq!(got.and_then(|m| m.new_email).as_deref(), Some("new@example.com"));
    assert!(t.consume_mail_token(&reset.hash, MailPurpose::PasswordReset, at).await.expect("consume").is_some());
    t.commit().await.expect("commit");
    assert_eq!(store.pending_mail_token(&a.id, MailPurpose::EmailChange, t0()).await.expect("pending"), None, "used");
    assert_eq!(store.prune_mail_tokens(t0() + Duration::minutes(2)).await.expect("prune"), 1, "b's expired one");
    assert_eq!(store.prune_mail_tokens(t0() + Duration::hours(2)).await.expect("prune"), 2);
}
