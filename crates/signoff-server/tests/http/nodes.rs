//! Two server processes sharing one database behave as two nodes: what one revokes, the other
//! refuses on its next request (after the revocation feed's short poll) and tells its streams.

use crate::support::*;
use async_trait::async_trait;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::json;
use signoff_core::audit::AuditEvent;
use signoff_core::clients::RegisteredClient;
use signoff_core::mail::{MailPurpose, MailToken};
use signoff_core::outbox::{Delivery, DeliveryPage, DeliveryStatus};
use signoff_core::secret::SecretHash;
use signoff_core::store::{
    Announce, AuditStore, ClientStore, FeedStore, KeyStore, MailStore, OutboxStore, RefreshToken, RememberToken,
    Session, SessionStore, Store, StoreError, TokenStore, Tx, User, UserCredentials, UserStore,
};
use signoff_core::token::SigningKeyPair;
use signoff_core::{FeedEntry, SessionId, UserId};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Polls `/api/me` on `node` with `access` until it is refused; returns how long that took.
async fn refused_within(node: &mut Browser, access: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let rb = node.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {access}"));
        if node.send(rb).await.status == StatusCode::UNAUTHORIZED {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn grant(b: &mut Browser, email: &str) -> String {
    let res =
        b.post_json("/auth/token", &json!({"grant_type": "password", "email": email, "password": PASSWORD})).await;
    res.json()["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn a_revocation_on_one_node_reaches_the_other() {
    let a = TestServer::with(|c| c.revocation_poll = Duration::from_millis(20)).await;
    a.register("nodes@example.com").await;
    let b = a.sibling().await;
    let (mut on_a, mut on_b) = (a.browser(), b.browser());

    // A denied jti.
    let t = grant(&mut on_a, "nodes@example.com").await;
    let rb = on_b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {t}"));
    assert_eq!(on_b.send(rb).await.status, StatusCode::OK, "node B accepts A's token");
    on_a.post_json("/auth/revoke", &json!({"token": t})).await;
    let took = refused_within(&mut on_b, &t, Duration::from_secs(2)).await;
    println!("denylist reached node B after {took:?}");

    // A token-version bump (global logout on A).
    let t1 = grant(&mut on_a, "nodes@example.com").await;
    let t2 = grant(&mut on_b, "nodes@example.com").await;
    let rb = on_b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {t2}"));
    assert_eq!(on_b.send(rb).await.status, StatusCode::OK);
    let rb = on_a
        .bare(Method::POST, "/auth/logout")
        .header("authorization", format!("Bearer {t1}"))
        .json(&json!({"scope": "global"}));
    assert_eq!(on_a.send(rb).await.status, StatusCode::OK);
    refused_within(&mut on_b, &t2, Duration::from_secs(2)).await;

    // A session ended on A closes its event stream on B.
    let mut web = b.browser();
    web.login("nodes@example.com", PASSWORD).await;
    let mut stream = web.request(Method::GET, "/auth/events").send().await.expect("events");
    let mut on_a_web = a.browser();
    on_a_web.login("nodes@example.com", PASSWORD).await;
    on_a_web.post_json("/auth/logout", &json!({"scope": "others"})).await;
    let mut text = String::new();
    let started = Instant::now();
    while !text.contains("event: revoked") && started.elapsed() < Duration::from_secs(2) {
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(2), stream.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(text.contains("event: revoked"), "{text:?}");
}

#[tokio::test]
async fn cached_sessions_follow_revocations_and_activity_on_other_nodes() {
    let a = TestServer::with(|c| c.revocation_poll = Duration::from_millis(20)).await;
    a.register("cache@example.com").await;
    let b = a.sibling().await;
    let mut on_a = a.browser();
    on_a.login("cache@example.com", PASSWORD).await;
    let mut on_b = b.browser();
    on_b.jar = on_a.jar.clone();
    on_b.csrf = on_a.csrf.clone();
    assert_eq!(on_a.session_status().await, StatusCode::OK, "node A caches the session");
    assert_eq!(on_b.session_status().await, StatusCode::OK, "node B caches the session");

    // Activity on B only, for longer than the idle timeout: A's cached copy is stale, and A must
    // ask the store before calling the session idle.
    for _ in 0..4 {
        a.clock.advance(time::Duration::minutes(10));
        assert_eq!(on_b.session_status().await, StatusCode::OK);
    }
    assert_eq!(on_a.session_status().await, StatusCode::OK, "A must not expire a session active on B");

    // Logout on A: B forgets its cached copy once the feed reaches it.
    on_a.post_json("/auth/logout", &json!({})).await;
    let started = Instant::now();
    while on_b.session_status().await != StatusCode::UNAUTHORIZED {
        assert!(started.elapsed() < Duration::from_secs(2), "node B still accepts the cookie");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_session_rotated_on_one_node_leaves_its_old_cookie_dead_on_the_other() {
    let a = TestServer::with(|c| c.revocation_poll = Duration::from_millis(20)).await;
    a.register("rekey@example.com").await;
    let b = a.sibling().await;
    let mut victim = a.browser();
    victim.login("rekey@example.com", PASSWORD).await;
    // A thief holds a copy of the cookie and uses it through node B, which caches the session.
    let mut thief = b.browser();
    thief.jar = victim.jar.clone();
    assert_eq!(thief.session_status().await, StatusCode::OK);
    // The victim changes the password on node A: their session lives on under a new id, and
    // the copied cookie (the old id's secret) must die everywhere.
    let res = victim
        .post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(victim.session_status().await, StatusCode::OK);
    let started = Instant::now();
    while thief.session_status().await != StatusCode::UNAUTHORIZED {
        assert!(started.elapsed() < Duration::from_secs(2), "node B still accepts the rotated-away cookie");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A store through which "another process" denies a token right after this process has
/// loaded its denylist at start: the narrow window a starting process must not lose.
struct DeniedWhileLoading {
    inner: Arc<dyn Store>,
    pending: Mutex<Option<(String, String, i64)>>,
}

#[async_trait]
impl Store for DeniedWhileLoading {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        self.inner.begin().await
    }
}

#[async_trait]
impl UserStore for DeniedWhileLoading {
    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        self.inner.user_by_email(email).await
    }
    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserCredentials>, StoreError> {
        self.inner.user_by_id(id).await
    }
}

#[async_trait]
impl SessionStore for DeniedWhileLoading {
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError> {
        self.inner.session_by_hash(hash).await
    }
    async fn session_by_id(&self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        self.inner.session_by_id(id).await
    }
    async fn user_sessions(&self, user: &UserId) -> Result<Vec<Session>, StoreError> {
        self.inner.user_sessions(user).await
    }
    async fn remember_by_selector(&self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        self.inner.remember_by_selector(selector).await
    }
    async fn user_remember(&self, user: &UserId) -> Result<Vec<RememberToken>, StoreError> {
        self.inner.user_remember(user).await
    }
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.touch_session(id, at).await
    }
    async fn expired_owners(
        &self,
        now: OffsetDateTime,
        idle_cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        self.inner.expired_owners(now, idle_cutoff, limit).await
    }
}

#[async_trait]
impl TokenStore for DeniedWhileLoading {
    async fn refresh_by_hash(&self, hash: &SecretHash) -> Result<Option<RefreshToken>, StoreError> {
        self.inner.refresh_by_hash(hash).await
    }
    async fn denied_tokens(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        let loaded = self.inner.denied_tokens(now).await?;
        let pending = self.pending.lock().expect("lock").take();
        if let Some((issuer, jti, exp)) = pending {
            let mut tx = self.inner.begin().await?;
            tx.deny_token(&issuer, &jti, exp).await?;
            tx.record_revocations(
                &[FeedEntry::Token { issuer, jti, exp, user_id: None }],
                OffsetDateTime::now_utc(),
                Announce::Now,
            )
            .await?;
            tx.commit().await?;
        }
        Ok(loaded)
    }
}

#[async_trait]
impl signoff_core::store::SigninStore for DeniedWhileLoading {
    async fn code_user(&self, hash: &SecretHash) -> Result<Option<UserId>, StoreError> {
        self.inner.code_user(hash).await
    }
    async fn signin_clients(&self, signin: &signoff_core::secret::SigninId) -> Result<Vec<String>, StoreError> {
        self.inner.signin_clients(signin).await
    }
}

#[async_trait]
impl KeyStore for DeniedWhileLoading {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyPair>, StoreError> {
        self.inner.signing_keys().await
    }
}

#[async_trait]
impl AuditStore for DeniedWhileLoading {
    async fn user_audit(&self, user: &UserId, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.user_audit(user, limit).await
    }
}

#[async_trait]
impl FeedStore for DeniedWhileLoading {
    async fn revocations_since(&self, after: i64, limit: u32) -> Result<Vec<(i64, FeedEntry)>, StoreError> {
        self.inner.revocations_since(after, limit).await
    }
    async fn revocation_head(&self) -> Result<i64, StoreError> {
        self.inner.revocation_head().await
    }
    async fn feed_page(&self, after: i64, limit: u32) -> Result<signoff_core::store::FeedPage, StoreError> {
        self.inner.feed_page(after, limit).await
    }
    async fn skip_positions(&self, past: i64) -> Result<i64, StoreError> {
        self.inner.skip_positions(past).await
    }
    async fn trim_revocations(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.trim_revocations(before, now).await
    }
}

#[async_trait]
impl ClientStore for DeniedWhileLoading {
    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        self.inner.client_by_id(id).await
    }
    async fn clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        self.inner.clients().await
    }
    async fn rotate_webhook_secret(
        &self,
        client: &str,
        secret: &str,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.inner.rotate_webhook_secret(client, secret, previous_until, now).await
    }
    async fn forget_replaced_webhook_secrets(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.forget_replaced_webhook_secrets(now).await
    }
}

#[async_trait]
impl OutboxStore for DeniedWhileLoading {
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
        per_endpoint: u32,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.claim_deliveries(now, until, limit, per_endpoint, skip).await
    }
    async fn release_deliveries(&self, claim: &str, ids: &[String]) -> Result<(), StoreError> {
        self.inner.release_deliveries(claim, ids).await
    }
    async fn record_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        self.inner.record_delivery(delivery).await
    }
    async fn pending_among(&self, ids: &[String]) -> Result<u64, StoreError> {
        self.inner.pending_among(ids).await
    }
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.prune_deliveries(before).await
    }
    async fn client_deliveries(&self, client: &str, page: &DeliveryPage) -> Result<Vec<Delivery>, StoreError> {
        self.inner.client_deliveries(client, page).await
    }
    async fn retry_delivery(&self, client: &str, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.inner.retry_delivery(client, id, now).await
    }
    async fn drop_callback(&self, client: &str, url: &str) -> Result<(), StoreError> {
        self.inner.drop_callback(client, url).await
    }
    async fn waiting_deliveries(&self, url: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        self.inner.waiting_deliveries(url, limit).await
    }
    async fn settle_waiting(
        &self,
        url: &str,
        ids: Option<&[String]>,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.inner.settle_waiting(url, ids, status, error).await
    }
    async fn delivery_counts(&self) -> Result<(i64, i64), StoreError> {
        self.inner.delivery_counts().await
    }
}

#[async_trait]
impl MailStore for DeniedWhileLoading {
    async fn mail_token(&self, hash: &SecretHash) -> Result<Option<MailToken>, StoreError> {
        self.inner.mail_token(hash).await
    }
    async fn pending_mail_token(
        &self,
        user: &UserId,
        purpose: MailPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<MailToken>, StoreError> {
        self.inner.pending_mail_token(user, purpose, now).await
    }
    async fn prune_mail_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.prune_mail_tokens(before).await
    }
}

#[async_trait]
impl signoff_core::store::SignalStore for DeniedWhileLoading {
    async fn signal_streams(&self, client: &str) -> Result<Vec<signoff_core::signals::SignalStream>, StoreError> {
        self.inner.signal_streams(client).await
    }
    async fn signal_stream(
        &self,
        client: &str,
        id: &str,
    ) -> Result<Option<signoff_core::signals::SignalStream>, StoreError> {
        self.inner.signal_stream(client, id).await
    }
    async fn signal_upstream(&self, id: &str) -> Result<Option<signoff_core::signals::upstream::Upstream>, StoreError> {
        self.inner.signal_upstream(id).await
    }
    async fn signal_upstreams(&self) -> Result<Vec<signoff_core::signals::upstream::Upstream>, StoreError> {
        self.inner.signal_upstreams().await
    }
}

#[tokio::test]
async fn a_token_denied_while_a_process_starts_is_still_refused_by_it() {
    let a = TestServer::start().await;
    a.register("starting@example.com").await;
    let mut on_a = a.browser();
    let token = grant(&mut on_a, "starting@example.com").await;
    let payload = token.split('.').nth(1).expect("payload");
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("claims");
    let denial = (
        claims["iss"].as_str().expect("iss").to_owned(),
        claims["jti"].as_str().expect("jti").to_owned(),
        claims["exp"].as_i64().expect("exp"),
    );
    // Node B starts on the same database; node A's denial commits just after B loaded its
    // denylist. B must still apply it, from the revocation feed.
    let inner = signoff_server::backend::open_store(&a.db_url).await.expect("store");
    let store = Arc::new(DeniedWhileLoading { inner, pending: Mutex::new(Some(denial)) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = signoff_server::Config::defaults();
    config.serve_at(a.origin.parse().expect("origin"));
    config.revocation_poll = Duration::from_millis(20);
    let state = signoff_server::AppState::new(
        config,
        store as Arc<dyn signoff_core::Store>,
        Arc::new(signoff_core::SystemClock),
    )
    .await
    .expect("state");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(signoff_server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let res = http.get(format!("{base}/api/me")).bearer_auth(&token).send().await.expect("me");
        if res.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "node B never applied the denial");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn a_feed_entry_of_an_unknown_kind_does_not_stall_the_relay() {
    let a = TestServer::with(|c| c.revocation_poll = Duration::from_millis(20)).await;
    a.register("future@example.com").await;
    let b = a.sibling().await;
    let (mut on_a, mut on_b) = (a.browser(), b.browser());
    let t = grant(&mut on_a, "future@example.com").await;
    // A newer version sharing the database writes a kind this one does not know.
    let insert = if crate::support::on_postgres() {
        "WITH c AS (UPDATE revocation_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq) \
         INSERT INTO revocations (seq, kind, subject, at) SELECT seq, 'from_a_newer_version', 'x', 0 FROM c"
    } else {
        "INSERT INTO revocations (kind, subject, at) VALUES ('from_a_newer_version', 'x', 0)"
    };
    sqlx::query(insert).execute(&a.db().await).await.expect("insert");
    on_a.post_json("/auth/revoke", &json!({"token": t})).await;
    refused_within(&mut on_b, &t, Duration::from_secs(2)).await;
}
