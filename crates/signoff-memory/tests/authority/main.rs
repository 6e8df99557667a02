//! The authority's rules in-process, on the memory store with a manual clock: scope, trigger,
//! expiry and grace rules checked in milliseconds, without HTTP or a database (the HTTP suite
//! checks the same contract through the real door, on SQLite and PostgreSQL).

mod expiry;
mod logout;
mod restore;
mod triggers;

use signoff_core::password::Passwords;
use signoff_core::throttle::ThrottlePolicy;
use signoff_core::{
    Authority, ClientInfo, ManualClock, SessionContext, SessionPolicy, SessionSecret, SignedIn, TokenPolicy,
};
use signoff_memory::MemoryStore;
use std::sync::Arc;

pub const PASSWORD: &str = "correct horse battery staple";

/// The session rules these tests are written against.
pub const SESSIONS: SessionPolicy = SessionPolicy {
    idle_timeout: time::Duration::minutes(30),
    absolute_lifetime: time::Duration::hours(10),
    remember_lifetime: time::Duration::days(30),
    race_grace: time::Duration::seconds(5),
    max_sessions_per_user: 100,
};

/// An authority on a fresh memory store, with its clock and the client it is asked from.
pub struct World {
    pub authority: Authority,
    pub store: Arc<MemoryStore>,
    pub clock: ManualClock,
    pub client: ClientInfo,
}

impl World {
    pub async fn new() -> Self {
        let start = time::OffsetDateTime::from_unix_timestamp(1_796_472_000).expect("a time");
        let clock = ManualClock::new(start);
        let store = Arc::new(MemoryStore::new());
        let authority = Self::authority_on(&store, &clock).await;
        Self { authority, store, clock, client: ClientInfo { ip: "192.0.2.1".into(), user_agent: None } }
    }

    /// Another process on the same store and clock.
    pub async fn beside(&self) -> Authority {
        Self::authority_on(&self.store, &self.clock).await
    }

    async fn authority_on(store: &Arc<MemoryStore>, clock: &ManualClock) -> Authority {
        let tokens = TokenPolicy {
            issuer: "https://auth.example".into(),
            audience: "https://auth.example".into(),
            access_ttl: time::Duration::minutes(15),
            refresh_ttl: time::Duration::days(30),
            reuse_grace: time::Duration::seconds(5),
        };
        let passwords = Passwords::new(2, std::time::Duration::from_secs(10)).await.expect("passwords");
        let throttle = ThrottlePolicy::uniform(10_000, time::Duration::minutes(15));
        Authority::new(store.clone(), Arc::new(clock.clone()), SESSIONS, throttle, tokens, passwords)
            .await
            .expect("authority")
    }

    /// Makes an account for `email` (once per address and world).
    pub async fn account(&self, email: &str) {
        self.authority.create_user(email, PASSWORD, &self.client).await.expect("account");
    }

    /// A new browser signed in as `email`, remembered or not.
    pub async fn sign_in(&self, email: &str, remember: bool) -> SignedIn {
        self.authority.login(email, PASSWORD, remember, (None, None), &self.client).await.expect("sign-in")
    }

    /// The live session behind `secret`, if any.
    pub async fn lookup(&self, secret: &SessionSecret) -> Option<SessionContext> {
        self.authority.peek(secret).await.expect("lookup")
    }

    pub async fn token_version(&self, email: &str) -> i64 {
        self.authority.user_by_email(email).await.expect("read").expect("user").token_version
    }
}
