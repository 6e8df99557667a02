//! Verify signoff access tokens inside your own service, revocations included.
//!
//! A JWT library alone accepts a revoked token until it expires. A [`Verifier`] also follows
//! signoff's revocation feed (`GET /revocations/stream`, as a registered client) and keeps its
//! state in memory: revoked `jti`s, ended sessions (`sid`) and each user's minimum token
//! version (`tv`). It **fails closed**: once the feed has been silent for longer than
//! [`Options::stale_after`], every token is refused with [`VerifyError::Stale`] until the
//! feed is back and caught up.
//!
//! signoff answers a revocation only once its feed streams have sent it; this verifier's feed
//! task applies what arrives while requests are verified on other tasks, so a request verified
//! right after the revocation's answer may, rarely, be judged before the event is applied (about
//! 2 in 1,000 when a test revokes and verifies at once on two worker threads; the Python
//! verifier, which reads its socket itself, waits for what arrived). Such a token is refused
//! within milliseconds.
//!
//! ```ignore
//! let verifier = Verifier::start(Options::new("http://127.0.0.1:8080", client_id, client_secret)).await;
//! let app = axum::Router::new().route("/whoami", get(whoami)).layer(verifier.layer());
//! ```
//!
//! Tokens are checked as signoff checks them: `alg` pinned to EdDSA, the key from the JWKS
//! (refetched on an unknown `kid`, at most once per [`Options::jwks_cooldown`], and at once
//! when the feed says the keys changed), `iss`, `aud`, `exp`, `nbf` and `iat` with a leeway.
//!
//! Plain `http://` works out of the box; for `https://` enable a TLS feature of `reqwest` in
//! your own `Cargo.toml` (Cargo unifies it with this crate's).

mod feed;
mod jwks;
mod layer;

use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use layer::{VerifyLayer, VerifyService};

/// How to reach signoff and how strict to be.
#[derive(Debug, Clone)]
pub struct Options {
    /// signoff's base URL (its `SIGNOFF_PUBLIC_URL`, or an internal address of it): keys and
    /// the feed are fetched from here.
    pub url: String,
    /// The `iss` tokens must carry. `None` (the default): learned from signoff's
    /// `/.well-known/signoff-configuration` (its public origin).
    pub issuer: Option<String>,
    /// The `aud` tokens must carry. `None` (the default): learned from signoff (its
    /// `token_audience`, by default its public origin).
    pub audience: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    /// Past this much silence of the feed, every token is refused as stale.
    pub stale_after: Duration,
    /// The JWKS is refetched for an unknown `kid` at most this often.
    pub jwks_cooldown: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// How long ended sessions and token versions are kept: longer than signoff's
    /// access-token lifetime (15 minutes by default).
    pub retain: Duration,
}

impl Options {
    /// Options for signoff at `url`, with the defaults: the issuer and audience learned from
    /// signoff, stale after 3 s of silence (signoff beats every second), JWKS cooldown 30 s,
    /// leeway 10 s, retain 1 h.
    pub fn new(url: impl Into<String>, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        let url = url.into().trim_end_matches('/').to_owned();
        Self {
            issuer: None,
            audience: None,
            url,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            stale_after: Duration::from_secs(3),
            jwks_cooldown: Duration::from_secs(30),
            leeway: Duration::from_secs(10),
            retain: Duration::from_secs(3600),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a valid signoff access token (form, signature, time).
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// A token whose `iss` or `aud` is not what this verifier expects: most often a
    /// configuration fault (an issuer or audience set by hand that signoff does not use).
    #[error("invalid token: its {claim} is {found:?}, this verifier expects {expected:?}")]
    Mismatch { claim: &'static str, expected: String, found: String },
    /// A valid token that signoff has revoked (the token, its session, or its token version).
    #[error("token revoked")]
    Revoked,
    /// The revocation feed (or the JWKS) cannot be followed now: no token can be trusted.
    #[error("the revocation feed is stale")]
    Stale,
}

impl VerifyError {
    /// The stable code: `invalid_token`, `revoked` or `stale`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidToken(_) | Self::Mismatch { .. } => "invalid_token",
            Self::Revoked => "revoked",
            Self::Stale => "stale",
        }
    }
}

/// The claims of a verified token (put in request extensions by the layer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    #[serde(deserialize_with = "audience")]
    pub aud: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    pub jti: String,
    pub sid: String,
    pub tv: i64,
}

fn audience<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(a) => vec![a],
        Aud::Many(a) => a,
    })
}

/// Verifies tokens; cheap to clone (all clones share one feed and one key cache).
#[derive(Clone)]
pub struct Verifier(Arc<Shared>);

struct Shared {
    options: Options,
    /// When the issuer and audience were last asked for from `verify` (at most once a second).
    last_asked: std::sync::Mutex<Option<std::time::Instant>>,
    /// The issuer and audience tokens must carry: from the options, or learned from signoff.
    expect: std::sync::OnceLock<Expect>,
    http: reqwest::Client,
    keys: jwks::Keys,
    feed: feed::FeedState,
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Verifier {
    /// Starts following the feed and returns once it has caught up (or once
    /// [`Options::stale_after`] has passed without that: tokens are then refused as stale
    /// until it does). Must be called inside a Tokio runtime.
    pub async fn start(options: Options) -> Self {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().unwrap_or_default();
        let expect = std::sync::OnceLock::new();
        if let (Some(issuer), Some(audience)) = (&options.issuer, &options.audience) {
            let _ = expect.set(Expect { issuer: issuer.clone(), audience: audience.clone() });
        }
        let shared = Arc::new(Shared {
            last_asked: std::sync::Mutex::new(None),
            expect,
            keys: jwks::Keys::new(format!("{}/.well-known/jwks.json", options.url), options.jwks_cooldown),
            feed: feed::FeedState::default(),
            follower: std::sync::Mutex::new(None),
            http,
            options,
        });
        shared.learn_expectations().await;
        let _ = shared.keys.refresh(&shared.http).await;
        let caught_up = shared.feed.caught_up();
        let follower = tokio::spawn(feed::follow(Arc::downgrade(&shared)));
        *shared.follower.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(follower);
        if tokio::time::timeout(shared.options.stale_after, caught_up).await.is_err() {
            tracing::warn!(url = %shared.options.url, "signoff's revocation feed is not reachable yet; refusing tokens until it is");
        }
        Self(shared)
    }

    /// Checks `token`; its claims if it is valid and not revoked.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let o = &self.0.options;
        if !self.0.feed.fresh(o.stale_after) {
            return Err(VerifyError::Stale);
        }
        // Not yet learned from signoff: asked again (at most once a second), and until then
        // nothing can be trusted.
        let expect = match self.0.expect.get() {
            Some(expect) => expect,
            None => {
                self.0.learn_again().await;
                self.0.expect.get().ok_or(VerifyError::Stale)?
            }
        };
        let kid = signoff_jwt::kid(token).map_err(|_| VerifyError::InvalidToken("malformed"))?;
        let key = match self.0.keys.get(&kid) {
            Some(key) => key,
            None => self.0.keys.fetch_for(&self.0.http, &kid).await?.ok_or(VerifyError::InvalidToken("unknown key"))?,
        };
        let claims: Claims =
            signoff_jwt::verify(token, |_| Some(key)).map_err(|_| VerifyError::InvalidToken("bad signature"))?;
        expect.check(&claims)?;
        let now = unix_now();
        let leeway = o.leeway.as_secs() as i64;
        if claims.exp.saturating_add(leeway) <= now {
            return Err(VerifyError::InvalidToken("expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + leeway) || claims.iat > now + leeway {
            return Err(VerifyError::InvalidToken("not yet valid"));
        }
        // What the feed said about a token is kept for `retain`: a longer-lived token could
        // outlive its revocation here.
        if claims.exp.saturating_sub(claims.iat) > o.retain.as_secs() as i64 {
            return Err(VerifyError::InvalidToken("lifetime longer than the verifier retains revocations"));
        }
        // Again: the key fetch above may have waited while a key was withdrawn or the feed
        // went silent.
        if self.0.keys.is_withdrawn(&kid) {
            return Err(VerifyError::InvalidToken("unknown key"));
        }
        if !self.0.feed.fresh(o.stale_after) {
            return Err(VerifyError::Stale);
        }
        if self.0.feed.revokes(&claims) {
            return Err(VerifyError::Revoked);
        }
        Ok(claims)
    }

    /// A tower layer that lets only requests with a valid `Authorization: Bearer` token
    /// through, with their [`Claims`] in the request's extensions.
    pub fn layer(&self) -> VerifyLayer {
        VerifyLayer::new(self.clone())
    }

    /// How many revocation events this verifier holds (for metrics and tests).
    pub fn held(&self) -> usize {
        self.0.feed.held()
    }

    /// Stops following the feed; every later `verify` is refused as stale.
    pub fn close(&self) {
        if let Some(task) = self.0.follower.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            task.abort();
        }
        self.0.feed.close();
    }
}

/// The issuer and audience of valid tokens.
#[derive(Debug, Clone)]
struct Expect {
    issuer: String,
    audience: String,
}

impl Expect {
    fn check(&self, claims: &Claims) -> Result<(), VerifyError> {
        let refuse = |claim, found: String| {
            let e = VerifyError::Mismatch {
                claim,
                expected: if claim == "iss" { self.issuer.clone() } else { self.audience.clone() },
                found,
            };
            tracing::warn!(error = %e, "signoff-verify refused a token: check the verifier's issuer and audience");
            Err(e)
        };
        if claims.iss != self.issuer {
            return refuse("iss", claims.iss.clone());
        }
        if !claims.aud.contains(&self.audience) {
            return refuse("aud", claims.aud.join(" "));
        }
        Ok(())
    }
}

/// The part of `/.well-known/signoff-configuration` a verifier needs.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    token_audience: String,
}

impl Shared {
    /// [`Self::learn_expectations`] from `verify`, at most once a second whatever the traffic.
    async fn learn_again(&self) {
        {
            let mut last = self.last_asked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        self.learn_expectations().await;
    }

    /// Learns the issuer and audience from signoff, unless they are known (set in the options,
    /// or learned before). What the options set wins over what signoff says.
    async fn learn_expectations(&self) {
        if self.expect.get().is_some() {
            return;
        }
        let url = format!("{}/.well-known/signoff-configuration", self.options.url);
        let fetched = async {
            let res = self.http.get(&url).timeout(Duration::from_secs(5)).send().await?.error_for_status()?;
            res.json::<Metadata>().await
        };
        match fetched.await {
            Ok(m) => {
                let o = &self.options;
                let _ = self.expect.set(Expect {
                    issuer: o.issuer.clone().unwrap_or(m.issuer),
                    audience: o.audience.clone().unwrap_or(m.token_audience),
                });
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, "cannot read signoff's configuration yet; refusing tokens until it can")
            }
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
