//! What every [`Store`] must do, as one suite each backend runs (the tower-sessions way):
//! `signoff-sqlite`'s tests call [`run`], and so will every other store. It drives the traits
//! directly, so a backend is judged on the contract the lifecycle relies on — the
//! compare-and-swaps, the cascades from remember-me series to their sessions, the filters,
//! the feed's order — not on how its SQL looks.
//!
//! Compiled only with the `conformance` feature (stores enable it for their tests).

use std::future::Future;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::audit::{Actor, AuditEvent, AuditKind, ClientInfo};
use crate::clients::NewClient;
use crate::mail::{MailPurpose, MailToken};
use crate::outbox::{DeliveryPage, DeliveryStatus, Notice, deliveries_for, parse_cursor};
use crate::revocation::{FeedEntry, Revocation};
use crate::secret::{SecretHash, SessionId, UserId, random_id};
use crate::store::{RefreshToken, RememberFilter, RememberToken, Session, SessionFilter, Store, StoreError, Tx, User};
use crate::token::SigningKeyPair;

/// Runs every check, each on a fresh, empty store from `fresh`.
pub async fn run<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    users(fresh().await).await;
    session_filters(fresh().await).await;
    series_take_their_sessions_along(fresh().await).await;
    remember_compare_and_swap(fresh().await).await;
    refresh_compare_and_swap(fresh().await).await;
    feed_keeps_order_and_kinds(fresh().await).await;
    keys_and_denials(fresh().await).await;
    clients_are_kept_and_deleted(fresh().await).await;
    the_outbox_is_claimed_once_and_recorded(fresh().await).await;
    an_uncommitted_transaction_leaves_nothing(fresh().await).await;
    audit_events_in_one_statement_keep_order_and_fields(fresh().await).await;
    mail_tokens_are_used_once_before_they_expire(fresh().await).await;
}

/// A fixed instant, to the millisecond (what stores keep).
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn hash() -> SecretHash {
    SecretHash::of(b"conformance", random_id().as_bytes())
}

async fn tx(store: &Arc<dyn Store>) -> Box<dyn Tx> {
    store.begin().await.unwrap_or_else(|e| panic!("begin: {e}"))
}

async fn user(store: &Arc<dyn Store>, email: &str) -> User {
    let user = User { id: UserId::generate(), email: email.into(), token_version: 0, created_at: t0() };
    let mut t = tx(store).await;
    t.create_user(&user, "hash").await.unwrap_or_else(|e| panic!("create_user: {e}"));
    t.commit().await.unwrap_or_else(|e| panic!("commit: {e}"));
    user
}

fn session(user: &UserId, created: OffsetDateTime, series: Option<&str>) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user.clone(),
        secret_hash: hash(),
        created_at: created,
        last_active_at: created,
        expires_at: created + Duration::hours(10),
        ip: Some("192.0.2.1".into()),
        user_agent: None,
        series: series.map(str::to_owned),
    }
}

fn series(user: &UserId, session: &SessionId, created: OffsetDateTime) -> RememberToken {
    RememberToken {
        selector: random_id(),
        validator_hash: hash(),
        user_id: user.clone(),
        session_id: session.clone(),
        created_at: created,
        expires_at: created + Duration::days(30),
        previous_hash: None,
        rotated_at: None,
        grace_used: false,
        ip: None,
        user_agent: None,
    }
}

async fn insert_sessions(store: &Arc<dyn Store>, sessions: &[&Session]) {
    let mut t = tx(store).await;
    for s in sessions {
        t.insert_session(s).await.unwrap_or_else(|e| panic!("insert_session: {e}"));
    }
    t.commit().await.unwrap_or_else(|e| panic!("commit: {e}"));
}

async fn live(store: &Arc<dyn Store>, id: &SessionId) -> bool {
    store.session_by_id(id).await.unwrap_or_else(|e| panic!("session_by_id: {e}")).is_some()
}

fn ids(sessions: &[Session]) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = sessions.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<SessionId>) -> Vec<SessionId> {
    ids.sort();
    ids
}

fn sorted_users(mut ids: Vec<UserId>) -> Vec<UserId> {
    ids.sort();
    ids
}

async fn users(store: Arc<dyn Store>) {
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

async fn session_filters(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let b = user(&store, "b@example.com").await;
    let s: Vec<Session> = (0..5).map(|i| session(&a.id, t0() + Duration::seconds(i), None)).collect();
    let other = session(&b.id, t0(), None);
    insert_sessions(&store, &s.iter().chain([&other]).collect::<Vec<_>>()).await;

    // Activity never moves backwards.
    store.touch_session(&s[0].id, t0() + Duration::minutes(5)).await.expect("touch");
    store.touch_session(&s[0].id, t0() + Duration::minutes(1)).await.expect("touch");
    let (seen, _) = store.session_by_hash(&s[0].secret_hash).await.expect("read").expect("session");
    assert_eq!(seen.last_active_at, t0() + Duration::minutes(5));
    assert_eq!(store.user_sessions(&a.id).await.expect("list")[0].id, s[0].id, "most recently active first");

    let mut t = tx(&store).await;
    let none = t.end_sessions(SessionFilter::One { user: &a.id, id: &other.id }).await.expect("end");
    assert!(none.sessions.is_empty(), "another user's session id matches nothing");
    // The cap: the newest `keep` stay, the spared one counting as the newest.
    let capped = t.end_sessions(SessionFilter::OldestBeyond { user: &a.id, keep: 3, spare: &s[0].id }).await;
    assert_eq!(ids(&capped.expect("cap").sessions), sorted(vec![s[1].id.clone(), s[2].id.clone()]));
    let kept = [s[0].id.clone(), s[3].id.clone()];
    let all =
        t.end_sessions(SessionFilter::AllOf { user: &a.id, keep: &kept, keep_series: None }).await.expect("all of");
    assert_eq!(ids(&all.sessions), vec![s[4].id.clone()], "every session but the kept ones");
    t.commit().await.expect("commit");
    let (now, idle_cutoff) = (t0() + Duration::hours(11), t0());
    let mut owners = store.expired_owners(now, idle_cutoff, 10).await.expect("owners");
    owners.sort();
    assert_eq!(owners, sorted_users(vec![a.id.clone(), other.user_id.clone()]), "each owner once");
    assert_eq!(store.expired_owners(now, idle_cutoff, 1).await.expect("owners").len(), 1, "at most the limit");
    let mut t = tx(&store).await;
    let expired = t.end_sessions(SessionFilter::Expired { user: &a.id, now, idle_cutoff }).await.expect("expired");
    assert_eq!(ids(&expired.sessions), sorted(vec![s[0].id.clone(), s[3].id.clone()]), "only this user's");
    let theirs =
        t.end_sessions(SessionFilter::Expired { user: &other.user_id, now, idle_cutoff }).await.expect("expired");
    assert_eq!(ids(&theirs.sessions), vec![other.id.clone()]);
    t.commit().await.expect("commit");
    assert!(store.expired_owners(now, idle_cutoff, 10).await.expect("owners").is_empty());
    assert!(store.user_sessions(&a.id).await.expect("list").is_empty());
}

async fn series_take_their_sessions_along(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    // Series X backs session sx and was used by a racing tab (sx2); series Y backs sy; k is a
    // session with no series.
    let sx = session(&a.id, t0(), None);
    let x = series(&a.id, &sx.id, t0());
    let sx = Session { series: Some(x.selector.clone()), ..sx };
    let sx2 = session(&a.id, t0(), Some(&x.selector));
    let sy = session(&a.id, t0(), None);
    let y = series(&a.id, &sy.id, t0());
    let sy = Session { series: Some(y.selector.clone()), ..sy };
    let k = session(&a.id, t0(), None);
    insert_sessions(&store, &[&sx, &sx2, &sy, &k]).await;
    let mut t = tx(&store).await;
    t.insert_remember(&x).await.expect("insert");
    t.insert_remember(&y).await.expect("insert");
    t.commit().await.expect("commit");

    // Ending a session that holds a series deletes the series and every session opened from it.
    let mut t = tx(&store).await;
    let ended = t.end_sessions(SessionFilter::One { user: &a.id, id: &sx.id }).await.expect("end");
    assert_eq!(ended.series, 1);
    assert_eq!(ids(&ended.sessions), sorted(vec![sx.id.clone(), sx2.id.clone()]), "the racer's session went along");
    // A lapsed session leaves its series alone.
    let lapsed = t.end_sessions(SessionFilter::Lapsed { user: &a.id, id: &sy.id }).await.expect("lapsed");
    assert_eq!((lapsed.sessions.len(), lapsed.series), (1, 0));
    t.commit().await.expect("commit");
    assert!(store.remember_by_selector(&y.selector).await.expect("read").is_some(), "Y outlives its session");
    assert!(store.remember_by_selector(&x.selector).await.expect("read").is_none());
    assert_eq!(store.user_remember(&a.id).await.expect("list").len(), 1);

    // A session resumed from Y, then Y deleted: the session goes with it and is reported.
    let sy2 = session(&a.id, t0(), Some(&y.selector));
    insert_sessions(&store, &[&sy2]).await;
    let mut t = tx(&store).await;
    let ended = t.delete_remember(RememberFilter::Selector(&y.selector)).await.expect("delete");
    assert_eq!((ids(&ended.sessions), ended.series), (vec![sy2.id.clone()], 1));
    t.commit().await.expect("commit");
    assert!(live(&store, &k.id).await, "a session with no series is untouched");

    // AllOf keeps the kept session's series, an unbound session survives its series, and the
    // cap and the sweep pick the right series.
    let z_holder = session(&a.id, t0(), None);
    let z = series(&a.id, &z_holder.id, t0());
    let z_holder = Session { series: Some(z.selector.clone()), ..z_holder };
    let w = series(&a.id, &SessionId::generate(), t0() - Duration::days(40));
    let v = series(&a.id, &SessionId::generate(), t0() + Duration::seconds(1));
    // U's own session has lapsed (its row is still there): kept as a series, its session goes.
    let u_lapsed = session(&a.id, t0() - Duration::days(1), None);
    let u = series(&a.id, &u_lapsed.id, t0());
    let u_lapsed = Session { series: Some(u.selector.clone()), ..u_lapsed };
    insert_sessions(&store, &[&z_holder, &u_lapsed]).await;
    let mut t = tx(&store).await;
    for r in [&z, &w, &v] {
        t.insert_remember(r).await.expect("insert");
    }
    t.insert_remember(&u).await.expect("insert");
    let kept = [z_holder.id.clone()];
    let all = t
        .end_sessions(SessionFilter::AllOf { user: &a.id, keep: &kept, keep_series: Some(&u.selector) })
        .await
        .expect("all of");
    assert_eq!(
        (ids(&all.sessions), all.series),
        (sorted(vec![k.id.clone(), u_lapsed.id.clone()]), 2),
        "W and V go, Z (kept) and U (kept as a series) stay"
    );
    t.commit().await.expect("commit");
    assert!(store.remember_by_selector(&u.selector).await.expect("read").is_some(), "U stays");
    let mut t = tx(&store).await;
    t.unbind_series(&z_holder.id).await.expect("unbind");
    let ended = t.delete_remember(RememberFilter::AllOfUser(&a.id)).await.expect("delete");
    assert_eq!((ended.sessions.len(), ended.series), (0, 2), "an unbound session survives its series");
    t.commit().await.expect("commit");
    assert!(live(&store, &z_holder.id).await);

    let mut t = tx(&store).await;
    let old = series(&a.id, &SessionId::generate(), t0() - Duration::days(40));
    let newer = series(&a.id, &SessionId::generate(), t0());
    let spared = series(&a.id, &SessionId::generate(), t0() - Duration::days(1));
    for r in [&old, &newer, &spared] {
        t.insert_remember(r).await.expect("insert");
    }
    let swept = t.delete_remember(RememberFilter::Expired { user: &a.id, now: t0() }).await.expect("sweep");
    assert_eq!(swept.series, 1, "only the series past its end");
    let capped = t
        .delete_remember(RememberFilter::OldestBeyond { user: &a.id, keep: 1, spare: Some(&spared.selector) })
        .await
        .expect("cap");
    assert_eq!(capped.series, 1, "keep one: the spared series, though not the newest");
    t.commit().await.expect("commit");
    assert!(store.remember_by_selector(&spared.selector).await.expect("read").is_some());
}

async fn remember_compare_and_swap(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let s = session(&a.id, t0(), None);
    let r = series(&a.id, &s.id, t0());
    insert_sessions(&store, &[&s]).await;
    let mut t = tx(&store).await;
    t.insert_remember(&r).await.expect("insert");
    let next = hash();
    let s2 = session(&a.id, t0(), Some(&r.selector));
    assert!(!t.rotate_remember(&r.selector, &hash(), &next, &s2, t0()).await.expect("cas"), "wrong validator");
    assert!(t.rotate_remember(&r.selector, &r.validator_hash, &next, &s2, t0()).await.expect("cas"));
    assert!(!t.rotate_remember(&r.selector, &r.validator_hash, &hash(), &s2, t0()).await.expect("cas"), "once");
    let seen = t.remember_by_selector(&r.selector).await.expect("read").expect("series");
    assert_eq!(
        (seen.validator_hash, seen.previous_hash, seen.session_id.clone()),
        (next, Some(r.validator_hash), s2.id)
    );
    assert!(!t.use_remember_grace(&r.selector, &hash()).await.expect("grace"), "not the predecessor");
    assert!(t.use_remember_grace(&r.selector, &r.validator_hash).await.expect("grace"));
    assert!(!t.use_remember_grace(&r.selector, &r.validator_hash).await.expect("grace"), "the grace is used once");
    assert!(t.rotate_remember(&r.selector, &next, &hash(), &s, t0()).await.expect("cas"));
    let seen = t.remember_by_selector(&r.selector).await.expect("read").expect("series");
    assert!(!seen.grace_used, "a rotation opens a new grace");
    t.commit().await.expect("commit");
}

async fn refresh_compare_and_swap(store: Arc<dyn Store>) {
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
    assert!(!t.use_refresh_grace("r1").await.expect("grace"), "the grace is used once");
    assert_eq!(t.revoke_refresh_family("f").await.expect("revoke"), 1);
    assert!(t.refresh_by_hash(&first.token_hash).await.expect("read").is_none());
    // Ending a session ends its refresh tokens.
    t.end_sessions(SessionFilter::One { user: &a.id, id: &s.id }).await.expect("end");
    assert!(t.refresh_by_id("o1").await.expect("read").is_none(), "refresh tokens die with their session");
    t.commit().await.expect("commit");
}

async fn feed_keeps_order_and_kinds(store: Arc<dyn Store>) {
    let head = store.revocation_head().await.expect("head");
    let u = UserId::generate();
    let entries = vec![
        FeedEntry::Session(Revocation {
            session_id: SessionId::generate(),
            user_id: u.clone(),
            reason: "logout".into(),
            at: t0(),
        }),
        FeedEntry::Token { issuer: "https://a.example".into(), jti: "j".into(), exp: 1_800_000_900 },
        FeedEntry::TokenVersion { user_id: u, version: 3 },
        FeedEntry::Keys { kid: "k".into(), withdrawn: true },
        FeedEntry::Keys { kid: "k2".into(), withdrawn: false },
        FeedEntry::Rekeyed { old: SessionId::generate(), new: SessionId::generate() },
        FeedEntry::ClientRemoved { client_id: "c".into() },
    ];
    let mut t = tx(&store).await;
    let first = t.record_revocations(&entries[..2], t0()).await.expect("record");
    t.commit().await.expect("commit");
    let mut t = tx(&store).await;
    assert_eq!(t.record_revocations(&[], t0()).await.expect("record nothing"), 0, "nothing written, no position");
    let second = t.record_revocations(&entries[2..], t0()).await.expect("record");
    t.commit().await.expect("commit");
    let read = store.revocations_since(head, 100).await.expect("read");
    let seqs: Vec<i64> = read.iter().map(|(seq, _)| *seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "positions rise with no gap (a gap means a lost entry): {seqs:?}"
    );
    assert_eq!((first, second), (seqs[1], seqs[6]), "each append returns its last position");
    assert_eq!(read.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), entries, "every kind round-trips, in order");
    assert_eq!(store.revocation_head().await.expect("head"), seqs[6]);
    assert_eq!(store.revocations_since(seqs[1], 2).await.expect("page").len(), 2, "paged after a position");
    assert_eq!(store.trim_revocations(t0() + Duration::seconds(1), t0()).await.expect("trim"), 7);
}

async fn keys_and_denials(store: Arc<dyn Store>) {
    let (k1, k2) = (SigningKeyPair::generate(t0()), SigningKeyPair::generate(t0() + Duration::seconds(1)));
    let mut t = tx(&store).await;
    assert!(!t.has_signer().await.expect("signer"));
    t.insert_signing_key(&k1).await.expect("insert");
    t.insert_signing_key(&k2).await.expect("insert");
    assert_eq!(t.retire_signing_keys(&k2.kid, t0()).await.expect("retire"), 1);
    assert!(t.has_signer().await.expect("signer"));
    assert!(t.delete_signing_key(&k2.kid).await.expect("delete"));
    assert!(!t.delete_signing_key(&k2.kid).await.expect("delete"), "gone is gone");
    assert!(!t.has_signer().await.expect("signer"), "only a retired key is left");
    t.deny_token("https://a.example", "j1", 100).await.expect("deny");
    t.deny_token("https://a.example", "j1", 100).await.expect("denying twice is harmless");
    t.deny_token("https://a.example", "j2", 1_000).await.expect("deny");
    t.commit().await.expect("commit");
    let keys = store.signing_keys().await.expect("keys");
    assert_eq!((keys.len(), keys[0].kid.as_str(), keys[0].retired_at), (1, k1.kid.as_str(), Some(t0())));
    let denied = store.denied_tokens(500).await.expect("denied");
    assert_eq!(denied, vec![("https://a.example".to_owned(), "j2".to_owned(), 1_000)], "expired denials are left out");
}

async fn clients_are_kept_and_deleted(store: Arc<dyn Store>) {
    let a = NewClient::generate("a".into(), Some("https://a.example/bc".into()), None, t0()).client;
    let b =
        NewClient::generate("b".into(), None, Some("https://b.example/h".into()), t0() + Duration::seconds(1)).client;
    let mut t = tx(&store).await;
    t.insert_client(&a).await.expect("insert");
    t.insert_client(&b).await.expect("insert");
    t.commit().await.expect("commit");
    assert_eq!(store.client_by_id(&a.id).await.expect("read"), Some(a.clone()), "every field round-trips");
    assert_eq!(store.clients().await.expect("list"), vec![a.clone(), b.clone()], "oldest first");
    let mut t = tx(&store).await;
    assert!(t.delete_client(&a.id).await.expect("delete"));
    assert!(!t.delete_client(&a.id).await.expect("delete"), "gone is gone");
    t.commit().await.expect("commit");
    assert_eq!(store.client_by_id(&a.id).await.expect("read"), None);
    assert_eq!(store.clients().await.expect("list"), vec![b]);
}

async fn the_outbox_is_claimed_once_and_recorded(store: Arc<dyn Store>) {
    let c =
        NewClient::generate("a".into(), Some("https://a.example/bc".into()), Some("https://a.example/h".into()), t0())
            .client;
    let quiet = NewClient::generate("b".into(), None, None, t0()).client;
    let mut t = tx(&store).await;
    t.insert_client(&c).await.expect("insert");
    t.insert_client(&quiet).await.expect("insert");
    let recipients = t.callback_clients().await.expect("recipients");
    assert_eq!(recipients, vec![c.clone()], "only clients with callback URLs");
    let notice = Notice::SessionEnded { user_id: "u".into(), session_id: "s".into(), reason: "logout".into() };
    let deliveries = deliveries_for(&[notice], &recipients, t0());
    assert_eq!(deliveries.len(), 2);
    t.enqueue_deliveries(&deliveries).await.expect("enqueue");
    t.commit().await.expect("commit");
    let claimed = store.claim_deliveries(t0(), t0() + Duration::seconds(60), 10, 10, &[]).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|d| d.claim.is_some()), "claimed under a token");
    let unclaimed = |d: &crate::outbox::Delivery| crate::outbox::Delivery { claim: None, ..d.clone() };
    assert!(claimed.iter().all(|d| deliveries.contains(&unclaimed(d))), "every field round-trips");
    assert!(
        store.claim_deliveries(t0(), t0() + Duration::seconds(60), 10, 10, &[]).await.expect("claim").is_empty(),
        "claimed once"
    );
    let later = store
        .claim_deliveries(t0() + Duration::seconds(61), t0() + Duration::seconds(121), 10, 10, &[])
        .await
        .expect("claim");
    assert_eq!(later.len(), 2, "a claim that ran out is taken over");
    let mut stale = claimed[0].clone();
    stale.status = DeliveryStatus::Delivered;
    assert!(!store.record_delivery(&stale).await.expect("record"), "only the claim's holder records");
    let mut failed = later[0].clone();
    failed.status = DeliveryStatus::Failed;
    failed.attempts = 1;
    failed.last_status_code = Some(400);
    assert!(store.record_delivery(&failed).await.expect("record"));
    let mut retry = later[1].clone();
    retry.attempts = 1;
    retry.next_attempt_at = t0() + Duration::hours(1);
    assert!(store.record_delivery(&retry).await.expect("record"));
    assert!(
        store
            .claim_deliveries(t0() + Duration::seconds(200), t0() + Duration::seconds(260), 10, 10, &[])
            .await
            .expect("claim")
            .is_empty(),
        "a failed one and one not yet due stay put"
    );
    assert_eq!(store.delivery_counts().await.expect("counts"), (1, 1));
    let page = |status, before, limit| DeliveryPage { status, before, limit };
    let listed = store.client_deliveries(&c.id, &page(None, None, 10)).await.expect("list");
    assert_eq!(listed.len(), 2);
    let first = store.client_deliveries(&c.id, &page(None, None, 1)).await.expect("list");
    let rest = store.client_deliveries(&c.id, &page(None, parse_cursor(&first[0].cursor()), 10)).await.expect("list");
    assert_eq!([first, rest].concat(), listed, "a cursor continues where a page ended");
    let failed_only =
        store.client_deliveries(&c.id, &page(Some(DeliveryStatus::Failed), None, 10)).await.expect("list");
    assert_eq!(failed_only.iter().map(|d| &d.id).collect::<Vec<_>>(), vec![&failed.id], "filtered by status");
    assert!(store.retry_delivery(&c.id, &failed.id, t0() + Duration::seconds(300)).await.expect("retry"));
    assert!(!store.retry_delivery(&c.id, &failed.id, t0()).await.expect("retry"), "only a failed one");
    assert!(!store.retry_delivery(&quiet.id, &retry.id, t0()).await.expect("retry"), "only the client's own");
    let mut delivered = store
        .claim_deliveries(t0() + Duration::seconds(400), t0() + Duration::seconds(460), 10, 10, &[])
        .await
        .expect("claim");
    assert_eq!(delivered.len(), 1, "the retried one");
    delivered[0].status = DeliveryStatus::Delivered;
    assert!(store.record_delivery(&delivered[0]).await.expect("record"));
    let pruned = store.prune_deliveries(t0() + Duration::seconds(301)).await.expect("prune");
    assert_eq!(pruned, 1, "the delivered one (a retry restarts its clock, at 300 s)");
    let old = c.webhook_secret.clone();
    let until = t0() + Duration::hours(1);
    assert!(store.rotate_webhook_secret(&c.id, "whsec_new", until, t0()).await.expect("rotate"));
    let rotated = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!(rotated.webhook_secret.as_deref(), Some("whsec_new"));
    assert_eq!((rotated.previous_webhook_secret, rotated.previous_webhook_secret_until), (old, Some(until)));
    assert!(store.rotate_webhook_secret(&c.id, "whsec_next", t0(), t0()).await.expect("rotate"));
    let at_once = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!(at_once.webhook_secrets(t0()), vec!["whsec_next"], "no overlap asked: the old one is dropped");
    assert_eq!(at_once.previous_webhook_secret, None);
    assert!(!store.rotate_webhook_secret(&quiet.id, "whsec_x", until, t0()).await.expect("rotate"), "no webhook URL");
    assert!(!store.rotate_webhook_secret("nobody", "whsec_x", until, t0()).await.expect("rotate"));
    store.drop_callback(&c.id, "https://a.example/h").await.expect("drop");
    let after = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!((after.webhook_url, after.backchannel_logout_uri.as_deref()), (None, Some("https://a.example/bc")));
    // Hundreds of deliveries in one transaction (many statements' worth of rows).
    let many: Vec<Notice> = (0..700)
        .map(|i| Notice::SessionEnded { user_id: "u".into(), session_id: format!("s{i}"), reason: "logout".into() })
        .collect();
    let recipients =
        vec![c.clone(), NewClient::generate("d".into(), Some("https://d.example/bc".into()), None, t0()).client];
    let bulk = deliveries_for(&many, &recipients, t0() + Duration::days(30));
    assert_eq!(bulk.len(), 700 * 3);
    let mut t = tx(&store).await;
    t.enqueue_deliveries(&bulk).await.expect("enqueue many");
    t.commit().await.expect("commit");
    let listed = store.client_deliveries(&c.id, &page(Some(DeliveryStatus::Pending), None, 5000)).await.expect("list");
    let written = listed.iter().filter(|d| d.created_at == t0() + Duration::days(30)).count();
    assert_eq!(written, 1400, "every row written");

    // A claim takes at most `per_endpoint` per URL, so the one other endpoint is not crowded out.
    let at = t0() + Duration::days(31);
    // Every URL's first before any URL's second: a claim of 3 with 3 URLs due takes one each.
    let first = store.claim_deliveries(at, at + Duration::seconds(60), 3, 3, &[]).await.expect("claim");
    let mut urls: Vec<&str> = first.iter().map(|d| d.url.as_str()).collect();
    urls.sort();
    assert_eq!(urls, ["https://a.example/bc", "https://a.example/h", "https://d.example/bc"], "one per URL");
    let skipped = store
        .claim_deliveries(
            at,
            at + Duration::seconds(60),
            100,
            3,
            &["https://a.example/bc".into(), "https://a.example/h".into()],
        )
        .await
        .expect("claim");
    assert!(!skipped.is_empty() && skipped.iter().all(|d| d.url == "https://d.example/bc"), "busy URLs are skipped");
    let fair = store.claim_deliveries(at, at + Duration::seconds(60), 100, 3, &[]).await.expect("claim");
    let to = |url: &str| fair.iter().filter(|d| d.url == url).count();
    assert_eq!((to("https://a.example/bc"), to("https://d.example/bc")), (3, 3), "three per endpoint");
    assert!(fair.iter().all(|d| d.claim == fair[0].claim), "one claim token per claim");
    // A release under another claim does nothing; under its own, they are claimable again.
    let back: Vec<String> = fair.iter().take(2).map(|d| d.id.clone()).collect();
    store.release_deliveries("someone-else", &back).await.expect("release");
    let all = store.claim_deliveries(at, at + Duration::seconds(60), 5000, 5000, &[]).await.expect("claim");
    assert!(all.iter().all(|d| !back.contains(&d.id)), "still held by their claim");
    store
        .release_deliveries(
            &all[0].claim.clone().expect("claim"),
            &all.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        )
        .await
        .expect("release");
    store.release_deliveries(fair[0].claim.as_deref().expect("claim"), &back).await.expect("release");
    let again = store.claim_deliveries(at, at + Duration::seconds(60), 5000, 5000, &[]).await.expect("claim");
    let mut ids: Vec<String> = again.iter().filter(|d| back.contains(&d.id)).map(|d| d.id.clone()).collect();
    ids.sort();
    let mut expected = back.clone();
    expected.sort();
    assert_eq!(ids, expected, "released ones are claimed again");
    assert!(again.iter().all(|d| !fair[2..].iter().any(|f| f.id == d.id)), "the others stay claimed");

    // A replaced webhook secret is forgotten once its overlap has ended, not before.
    let hooked = NewClient::generate("e".into(), None, Some("https://e.example/h".into()), t0()).client;
    let mut t = tx(&store).await;
    t.insert_client(&hooked).await.expect("insert");
    t.commit().await.expect("commit");
    assert!(store.rotate_webhook_secret(&hooked.id, "whsec_e2", at + Duration::hours(1), at).await.expect("rotate"));
    assert_eq!(store.forget_replaced_webhook_secrets(at).await.expect("forget"), 0);
    assert_eq!(store.forget_replaced_webhook_secrets(at + Duration::hours(1)).await.expect("forget"), 1);
    let after = store.client_by_id(&hooked.id).await.expect("read").expect("client");
    assert_eq!((after.previous_webhook_secret, after.previous_webhook_secret_until), (None, None));
    assert_eq!(after.webhook_secret.as_deref(), Some("whsec_e2"));
}

async fn an_uncommitted_transaction_leaves_nothing(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let s = session(&a.id, t0(), None);
    let mut t = tx(&store).await;
    t.insert_session(&s).await.expect("insert");
    t.append_audit(&AuditEvent::new(AuditKind::Login, Actor::User, t0(), &ClientInfo::default()).user(&a.id))
        .await
        .expect("audit");
    t.bump_token_version(&a.id).await.expect("bump");
    drop(t);
    assert!(!live(&store, &s.id).await);
    assert!(store.user_audit(&a.id, 10).await.expect("audit").is_empty());
    assert_eq!(store.user_by_id(&a.id).await.expect("read").expect("user").user.token_version, 0);
}

async fn audit_events_in_one_statement_keep_order_and_fields(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let client = ClientInfo { ip: "2001:db8::1".into(), user_agent: Some("Mozilla/5.0 \"quoted\" \\ é 🙂".into()) };
    let full = AuditEvent::new(AuditKind::SessionRevoked, Actor::Admin, t0(), &client)
        .user(&a.id)
        .session(&SessionId::generate())
        .scope("global")
        .reason("12345")
        .detail("null");
    let bare = AuditEvent::new(AuditKind::Login, Actor::User, t0() + Duration::milliseconds(1), &ClientInfo::default())
        .user(&a.id);
    // Many, as a global logout writes them: a statement's size must not depend on the count.
    let mut events: Vec<AuditEvent> =
        (0..1500).map(|i| if i % 2 == 0 { full.clone().reason(&format!("r{i}")) } else { bare.clone() }).collect();
    events[0] = full.clone();
    let mut t = tx(&store).await;
    t.append_audits(&[]).await.expect("nothing to append");
    t.append_audits(&events).await.expect("append");
    t.commit().await.expect("commit");
    let mut read = store.user_audit(&a.id, 2000).await.expect("audit");
    read.reverse();
    assert_eq!(read.len(), events.len());
    assert!(read == events, "every field of every event, in the order written");
}

async fn mail_tokens_are_used_once_before_they_expire(store: Arc<dyn Store>) {
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
