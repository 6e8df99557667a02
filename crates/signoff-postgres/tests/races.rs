//! Races on PostgreSQL, through the authority: where SQLite runs one writer at a time,
//! PostgreSQL runs transactions side by side, so the guarantees must come from row locks taken
//! in one order. Each round races 60 resumes from one remember-me cookie (its current and its
//! previous validator) against "log out everywhere"; the logout must succeed (no deadlock
//! turned into 503) and nothing resumed may outlive it. Another races the expiry sweep
//! against refreshes and uses of the sessions it is ending.

use signoff_core::password::Passwords;
use signoff_core::remember::RememberSecret;
use signoff_core::store::Store;
use signoff_core::throttle::ThrottlePolicy;
use signoff_core::{
    Authority, ClientInfo, Clock, LogoutScope, ManualClock, Presented, Resume, SessionPolicy, SystemClock, TokenPolicy,
};
use signoff_postgres::{PgStore, PoolOptions};
use signoff_testdb::TestDatabase;
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";

/// The session rules these races run under.
const SESSIONS: SessionPolicy = SessionPolicy {
    idle_timeout: time::Duration::minutes(30),
    absolute_lifetime: time::Duration::hours(10),
    remember_lifetime: time::Duration::days(30),
    race_grace: time::Duration::seconds(5),
    max_sessions_per_user: 100,
};

async fn authority(store: Arc<dyn Store>) -> Arc<Authority> {
    authority_at(store, Arc::new(SystemClock)).await
}

async fn authority_at(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Arc<Authority> {
    let tokens = TokenPolicy {
        issuer: "https://auth.example".into(),
        audience: "https://auth.example".into(),
        access_ttl: time::Duration::minutes(15),
        refresh_ttl: time::Duration::days(30),
        reuse_grace: time::Duration::seconds(5),
    };
    let passwords = Passwords::new(4, Duration::from_secs(10)).await.expect("passwords");
    let policy = SESSIONS;
    let throttle = ThrottlePolicy::uniform(10_000, time::Duration::minutes(15));
    let authority = Authority::new(store, clock, policy, throttle, tokens, passwords);
    Arc::new(authority.await.expect("authority"))
}

/// A store on a fresh database (dropped with the returned guard).
async fn fresh_store() -> (Arc<PgStore>, TestDatabase) {
    let db = TestDatabase::create("signoff_races").await;
    let options = PoolOptions { max_connections: 24, acquire_timeout: Duration::from_secs(10) };
    (Arc::new(PgStore::connect(&db.url, options).await.expect("store")), db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_expiry_sweep_queues_behind_refreshes_and_uses_instead_of_deadlocking() {
    let (store, _db) = fresh_store().await;
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let auth = authority_at(store, Arc::new(clock.clone())).await;
    let client = ClientInfo { ip: "192.0.2.2".into(), user_agent: None };
    for round in 0..4 {
        let mut held = Vec::new();
        for i in 0..24 {
            let email = format!("sweep{round}-{i}@example.com");
            auth.create_user(&email, PASSWORD, &client).await.expect("user");
            let signed_in = auth.login(&email, PASSWORD, true, (None, None), &client).await.expect("login");
            let tokens = auth.password_grant(&email, PASSWORD, &client).await.expect("grant");
            held.push((signed_in.ctx.secret.clone(), tokens.refresh_token));
        }
        // Every session is now past its idle end: the sweep and their holders go for them at once.
        clock.advance(SESSIONS.idle_timeout + time::Duration::minutes(1));
        let mut racers = tokio::task::JoinSet::new();
        for (secret, refresh) in held {
            let (a, b, client) = (auth.clone(), auth.clone(), client.clone());
            racers.spawn(async move { a.refresh_grant(&refresh, None, &client).await.map(|_| ()) });
            racers.spawn(async move { b.authenticate(&secret).await.map(|_| ()) });
        }
        let sweep = auth.sweep_expired().await;
        assert!(sweep.is_ok(), "round {round}: the sweep failed: {sweep:?}");
        for r in racers.join_all().await {
            match r {
                Ok(()) | Err(signoff_core::CoreError::InvalidGrant) => {}
                Err(e) => panic!("round {round}: a refresh or use racing the sweep failed: {e}"),
            }
        }
        let left = auth.sweep_expired().await.expect("sweep again");
        assert_eq!(left, 0, "round {round}: the first sweep and the racers ended everything");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resumes_racing_a_global_logout_leave_nothing_alive() {
    let (store, _db) = fresh_store().await;
    let auth = authority(store).await;
    let client = ClientInfo { ip: "192.0.2.1".into(), user_agent: None };
    let user = auth.create_user("race@example.com", PASSWORD, &client).await.expect("user");

    for round in 0..5 {
        let browser = auth.login(&user.email, PASSWORD, true, (None, None), &client).await.expect("login");
        let previous = browser.remember.clone().expect("remember");
        let current = match auth.resume(&previous, &client).await.expect("resume") {
            Resume::Resumed(s) => s.remember.clone().expect("rotated"),
            other => panic!("round {round}: first resume gave {other:?}"),
        };
        let owner = auth.login(&user.email, PASSWORD, false, (None, None), &client).await.expect("owner");
        let mut racers = tokio::task::JoinSet::new();
        for i in 0..60 {
            let (auth, client) = (auth.clone(), client.clone());
            let cookie: RememberSecret = if i % 2 == 0 { previous.clone() } else { current.clone() };
            racers.spawn(async move { auth.resume(&cookie, &client).await });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let ended = auth
            .logout(std::slice::from_ref(&owner.ctx.session), LogoutScope::Global, &Presented::default(), &client)
            .await;
        assert!(ended.is_ok(), "round {round}: the logout failed: {ended:?}");
        let mut resumed = Vec::new();
        for r in racers.join_all().await {
            match r {
                Ok(Resume::Resumed(s)) => resumed.push(s.ctx.secret.clone()),
                Ok(_) => {}
                // A racer may be refused as busy; it created nothing.
                Err(signoff_core::CoreError::Store(signoff_core::StoreError::Busy(_))) => {}
                Err(e) => panic!("round {round}: a resume failed: {e}"),
            }
        }
        for (i, secret) in resumed.iter().enumerate() {
            assert!(
                auth.peek(secret).await.expect("peek").is_none(),
                "round {round}: resumed session {i} outlived the logout"
            );
        }
        assert!(auth.sessions_of(&user.id).await.expect("sessions").is_empty(), "round {round}: a session survived");
    }
}
