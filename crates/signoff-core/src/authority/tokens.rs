//! The token half of the authority: grants, verification, revocation, keys.
//!
//! Hot-path rule: verifying an access token reads the keyring, the denylist and the token
//! versions from memory ([`TokenState`]). They are kept exact by the same batches that revoke
//! (in this process) and by the revocation feed (from other processes).

use super::BatchKind;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;
use time::{Duration, OffsetDateTime};

use super::signature_memo::SignatureMemo;
use super::{Authority, Batch, ClientInfo, SignedIn};
use crate::audit::{Actor, AuditKind};
use crate::clients::SigningAlg;
use crate::denylist::Denylist;
use crate::email;
use crate::error::CoreError;
use crate::feed::FeedEntry;
use crate::remember::RememberSecret;
use crate::secret::{Secret, SessionId, UserId, random_bytes, random_id};
use crate::store::{RefreshToken, RememberFilter, Session, SessionFilter, User};
use crate::token::{Claims, Keyring, SigningKeyPair, TokenError};

const REFRESH_LABEL: &[u8] = b"signoff/refresh/v1";
const SUCCESSOR_LABEL: &[u8] = b"signoff/refresh/successor/v1";

/// The successor of a refresh token: 256 bits derived from a random salt (stored with the
/// predecessor) and the predecessor's secret (never stored). Only someone presenting the
/// predecessor can derive it again; the store alone cannot.
fn successor_of(predecessor: &Secret, salt: &[u8; 32]) -> Secret {
    let mut h = Sha256::new();
    h.update(SUCCESSOR_LABEL);
    h.update(salt);
    h.update(predecessor.bytes());
    Secret::from_bytes(h.finalize().into())
}
/// An unknown `kid` reloads the keys from the store at most this often.
const KEY_RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Lifetimes and names of tokens.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long the immediate predecessor of a rotated refresh token is still honoured.
    pub reuse_grace: Duration,
}

impl TokenPolicy {
    /// The `aud` of machine clients' tokens: signoff's own API for clients, never the audience
    /// of user tokens, so a relying service's verifier (which expects that one) refuses them
    /// and no service takes a client for a user.
    pub fn machine_audience(&self) -> String {
        format!("{}/clients", self.issuer.trim_end_matches('/'))
    }
}

/// What the token grants hand out. Not `Debug`: it holds the tokens themselves.
#[derive(Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub session_id: SessionId,
}

/// A verified access token, its user and its live session.
#[derive(Debug, Clone)]
pub struct AccessContext {
    pub claims: Claims,
    pub user: Arc<User>,
    pub session: Arc<Session>,
}

/// Credentials a logout presented, besides the session itself. Not `Debug`: it holds secrets.
#[derive(Default)]
pub struct Presented<'a> {
    pub remember: Option<&'a RememberSecret>,
    pub access: Option<&'a Claims>,
    pub refresh_token: Option<&'a str>,
}

/// The in-memory side of token checks.
#[derive(Debug)]
pub struct TokenState {
    pub(super) policy: TokenPolicy,
    keyring: RwLock<Arc<Keyring>>,
    last_reload: Mutex<Option<Instant>>,
    /// Held across a reload's read and install, so installs happen in the order of the reads:
    /// a reload that read before a withdrawal can never install after one that read after it.
    reloading: tokio::sync::Mutex<()>,
    /// Denied tokens that have not expired, by `(iss, jti)`.
    denied: Denylist,
    /// Token versions of users seen so far, and how many times they were forgotten (a
    /// read-through that began before a forgetting must not insert what it read after it).
    versions: RwLock<(u64, HashMap<UserId, i64>)>,
    /// Tokens whose signature already verified (see `signature_memo`).
    verified: SignatureMemo,
}

impl TokenState {
    pub fn new(policy: TokenPolicy) -> Self {
        Self {
            policy,
            keyring: RwLock::default(),
            last_reload: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            denied: Denylist::default(),
            versions: RwLock::default(),
            verified: SignatureMemo::default(),
        }
    }

    pub(super) fn keyring(&self) -> Arc<Keyring> {
        self.keyring.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the keyring and forgets every remembered signature.
    fn set_keyring(&self, keys: Vec<SigningKeyPair>) {
        self.verified.clear_after(|| {
            *self.keyring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Keyring::new(keys));
        });
    }

    /// Applies denials and version bumps (from this process's batches or from the feed).
    pub(super) fn apply(&self, entries: &[FeedEntry]) {
        for e in entries {
            match e {
                FeedEntry::Token { issuer, jti, exp, .. } => self.deny(issuer, jti, *exp),
                FeedEntry::TokenVersion { user_id, version } => {
                    let mut versions = self.versions.write().unwrap_or_else(PoisonError::into_inner);
                    let v = versions.1.entry(user_id.clone()).or_insert(*version);
                    *v = (*v).max(*version);
                }
                FeedEntry::Session(_)
                | FeedEntry::Keys { .. }
                | FeedEntry::Rekeyed { .. }
                | FeedEntry::ClientRemoved { .. }
                // A machine token is checked against its client's row, read each time.
                | FeedEntry::ClientGrantEnded { .. } => {}
                FeedEntry::Unknown { .. } => {}
            }
        }
    }

    /// Forgets the token versions and remembered signatures, so checks read the store again.
    pub(super) fn distrust(&self) {
        let mut versions = self.versions.write().unwrap_or_else(PoisonError::into_inner);
        versions.0 += 1;
        versions.1.clear();
        drop(versions);
        self.verified.clear();
    }

    pub(super) fn forget_expired(&self, now: i64) {
        self.denied.forget_expired(now);
        self.verified.forget_expired(now);
    }

    pub(super) fn deny(&self, issuer: &str, jti: &str, exp: i64) {
        self.denied.deny(issuer, jti, exp);
    }

    pub(super) fn is_denied(&self, issuer: &str, jti: &str) -> bool {
        self.denied.is_denied(issuer, jti)
    }

    /// How many tokens are denied in memory, and how many signatures are remembered.
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.denied.len(), self.verified.len())
    }

    fn version(&self, user: &UserId) -> Option<i64> {
        self.versions.read().unwrap_or_else(PoisonError::into_inner).1.get(user).copied()
    }

    /// Where forgetting stands; pass it back to [`remember_version`](Self::remember_version).
    fn versions_generation(&self) -> u64 {
        self.versions.read().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Keeps a version read from the store, unless the versions were forgotten since
    /// `generation` (then the next check reads again).
    fn remember_version(&self, user: &UserId, version: i64, generation: u64) {
        let mut versions = self.versions.write().unwrap_or_else(PoisonError::into_inner);
        if versions.0 != generation {
            return;
        }
        let v = versions.1.entry(user.clone()).or_insert(version);
        *v = (*v).max(version);
    }
}

impl Authority {
    /// Loads the keys (creating the first of each algorithm on first start, or on the first
    /// start of a release that signs with a new algorithm) and the denylist.
    pub(super) async fn load_token_state(&self) -> Result<(), CoreError> {
        let mut keys = self.store.signing_keys().await?;
        if SigningAlg::ALL.iter().any(|alg| !keys.iter().any(|k| k.retired_at.is_none() && k.alg() == *alg)) {
            // Nodes starting together on a new database: the first to take the lock makes the
            // keys, the others find them.
            let mut tx = self.store.begin().await?;
            tx.lock_signing_keys().await?;
            for alg in SigningAlg::ALL {
                if !tx.has_signer(alg).await? {
                    let key = SigningKeyPair::generate_for(alg, self.now()).map_err(key_error)?;
                    tx.insert_signing_key(&key).await?;
                    tracing::info!(kid = %key.kid, %alg, "generated the first signing key of its algorithm");
                }
            }
            tx.commit().await?;
            keys = self.store.signing_keys().await?;
        }
        self.tokens.set_keyring(keys);
        for (issuer, jti, exp) in self.store.denied_tokens(self.now().unix_timestamp()).await? {
            self.tokens.deny(&issuer, &jti, exp);
        }
        Ok(())
    }

    /// Re-reads the keys from the store (after a rotation or withdrawal by another process).
    pub async fn reload_keys(&self) -> Result<(), CoreError> {
        let _one_at_a_time = self.tokens.reloading.lock().await;
        let keys = self.store.signing_keys().await?;
        let kids = |ring: &Keyring| ring.kids().map(str::to_owned).collect::<Vec<_>>();
        let unchanged = {
            let ring = self.tokens.keyring();
            let mut now: Vec<_> = keys.iter().map(|k| (k.kid.clone(), k.retired_at)).collect();
            let mut before: Vec<_> = kids(&ring).into_iter().zip(ring.retirements()).collect();
            now.sort();
            before.sort();
            now == before
        };
        if !unchanged {
            self.tokens.set_keyring(keys);
        }
        Ok(())
    }

    /// Starts signing with a new key of every algorithm; the old ones keep verifying until
    /// their tokens expire. Every process is told through the revocation feed and reloads at
    /// once. Returns the new keys' `kid`s, the access-token (EdDSA) key's first.
    pub async fn rotate_signing_key(&self) -> Result<Vec<(SigningAlg, String)>, CoreError> {
        let mut keys = Vec::new();
        for alg in [SigningAlg::EdDsa, SigningAlg::Rs256, SigningAlg::Es256] {
            keys.push(SigningKeyPair::generate_for(alg, self.now()).map_err(key_error)?);
        }
        let mut batch = self.batch().await?;
        batch.tx.lock_signing_keys().await?;
        for key in &keys {
            batch.tx.insert_signing_key(key).await?;
            batch.tx.retire_signing_keys(key.alg(), &key.kid, self.now()).await?;
            batch.ended.push(FeedEntry::Keys { kid: key.kid.clone(), withdrawn: false });
        }
        batch.commit().await?;
        self.reload_keys().await?;
        let rotated: Vec<_> = keys.into_iter().map(|k| (k.alg(), k.kid)).collect();
        tracing::info!(keys = ?rotated, "rotated the signing keys");
        Ok(rotated)
    }

    /// Withdraws a compromised key: it is deleted, so every token it signed fails verification
    /// on every process (told through the revocation feed) and it leaves the JWKS. When it was
    /// the signing key of its algorithm, a new one takes over in the same transaction.
    /// `NotFound` for an unknown `kid`.
    pub async fn revoke_signing_key(&self, kid: &str) -> Result<Option<String>, CoreError> {
        let mut batch = self.batch().await?;
        batch.tx.lock_signing_keys().await?;
        let Some(alg) = batch.tx.delete_signing_key(kid).await? else {
            return Err(CoreError::NotFound);
        };
        // Decided on the store as it is now, inside the transaction: if no signing key of this
        // algorithm is left (this was it), a new one takes over.
        let mut replacement = None;
        if !batch.tx.has_signer(alg).await? {
            let key = SigningKeyPair::generate_for(alg, self.now()).map_err(key_error)?;
            batch.tx.insert_signing_key(&key).await?;
            replacement = Some(key.kid);
        }
        batch.ended.push(FeedEntry::Keys { kid: kid.to_owned(), withdrawn: true });
        let event = self.event(AuditKind::KeyRevoked, Actor::Admin, &ClientInfo::default()).reason(kid);
        batch.audit(event);
        batch.commit().await?;
        self.reload_keys().await?;
        tracing::warn!(kid, %alg, "withdrew a signing key; its tokens are dead");
        Ok(replacement)
    }

    /// [`jwks`](Self::jwks), once this node vouches for its keys (a withdrawn key must not be
    /// served to relying parties by a node that has not applied the withdrawal).
    pub async fn current_jwks(&self) -> Result<serde_json::Value, CoreError> {
        self.vouch().await?;
        Ok(self.jwks())
    }

    /// The public keys that may verify live tokens, as a JWK set.
    pub fn jwks(&self) -> serde_json::Value {
        let ring = self.tokens.keyring();
        let keys: Vec<_> = ring.verifiers(self.now(), self.tokens.policy.access_ttl).map(SigningKeyPair::jwk).collect();
        serde_json::json!({ "keys": keys })
    }

    // ---- grants ---------------------------------------------------------------------------

    /// The `password` grant: a new session with a refresh family and an access token.
    pub async fn password_grant(
        &self,
        raw_email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<TokenPair, CoreError> {
        let key = email::account_key(raw_email);
        let verified = self.check_password(&key, password, client).await?;
        let mut batch = self.batch_for(&[&verified.user.id]).await?;
        let user = Self::password_still(&mut batch, &verified).await?;
        let signed_in = self.open_session(&mut batch, user, None, None, false, "password_grant", client).await?;
        self.cap_sessions(&mut batch, &signed_in, client).await?;
        let SignedIn { ctx, .. } = signed_in;
        let refresh = Secret::generate();
        self.insert_refresh(&mut batch, &ctx.session, &random_id(), random_id(), &refresh, None).await?;
        batch.commit().await?;
        self.pair(&ctx.user, &ctx.session, refresh, None)
    }

    /// The `refresh_token` grant: rotates the refresh token and issues a new access token.
    ///
    /// Everything is read and decided inside one transaction (compare-and-swap), so a token
    /// whose family, session or user was revoked by a commit before is refused, and nothing is
    /// ever inserted into a family that no longer exists. A token that was already rotated is
    /// theft (its family and session end), with one exception: the immediate predecessor,
    /// presented inside the grace, once per rotation, gets the same successor back (derived
    /// from the salt kept at rotation and the presented secret), so the family never forks.
    ///
    /// `for_client` is the relying party that authenticated at the OpenID token endpoint
    /// (`None`: signoff's own endpoint): a token issued to another is refused like an unknown one.
    pub async fn refresh_grant(
        &self,
        presented: &str,
        for_client: Option<&str>,
        client: &ClientInfo,
    ) -> Result<TokenPair, CoreError> {
        let now = self.now();
        let secret = Secret::parse(presented).ok_or(CoreError::InvalidGrant)?;
        let hash = secret.hash(REFRESH_LABEL);
        // A cheap look first: an unknown token (anyone can send one) takes no write lock.
        let Some(seen) = self.store.refresh_by_hash(&hash).await? else {
            return Err(CoreError::InvalidGrant);
        };
        let mut batch = self.batch_for(&[&seen.user_id]).await?;
        let token = batch.tx.refresh_by_hash(&hash).await?.ok_or(CoreError::InvalidGrant)?;
        if now >= token.expires_at || token.client_id.as_deref() != for_client {
            return Err(CoreError::InvalidGrant);
        }
        let Some((session, user)) = batch.tx.session_by_id(&token.session_id).await? else {
            return Err(CoreError::InvalidGrant);
        };
        if !self.is_live(&session, now) {
            return Err(CoreError::InvalidGrant);
        }
        if token.used_at.is_none() {
            let salt = random_bytes::<32>();
            let successor_id = random_id();
            if !batch.tx.consume_refresh(&token.id, &successor_id, &salt, now).await? {
                return Err(CoreError::InvalidGrant);
            }
            let successor = successor_of(&secret, &salt);
            self.insert_refresh(&mut batch, &session, &token.family_id, successor_id, &successor, for_client).await?;
            batch.commit().await?;
            self.store.touch_session(&session.id, now).await?;
            return self.pair(&user, &session, successor, for_client);
        }
        // Already used: a racing tab inside the grace, or a thief.
        let successor = match token.replaced_by.as_deref() {
            Some(id) => batch.tx.refresh_by_id(id).await?,
            None => None,
        };
        let grace = self.tokens.policy.reuse_grace;
        let immediate = successor.as_ref().is_some_and(|s| s.used_at.is_none());
        let in_grace = grace > Duration::ZERO && token.used_at.is_some_and(|at| now - at <= grace);
        if immediate && in_grace {
            // Once per rotation; a second racer (or a replayed copy) gets nothing.
            let (Some(salt), Some(successor)) = (token.successor_salt, successor) else {
                return Err(CoreError::InvalidGrant);
            };
            let again = successor_of(&secret, &salt);
            if !again.hash(REFRESH_LABEL).ct_eq(&successor.token_hash) || !batch.tx.use_refresh_grace(&token.id).await?
            {
                return Err(CoreError::InvalidGrant);
            }
            batch.commit().await?;
            return self.pair(&user, &session, again, for_client);
        }
        batch.tx.revoke_refresh_family(&token.family_id).await?;
        let event = self.event(AuditKind::SessionRevoked, Actor::Reuse, client).reason("refresh_token_reuse");
        batch.end(SessionFilter::One { user: &user.id, id: &session.id }, &event).await?;
        batch.audit(self.event(AuditKind::RefreshTokenReuse, Actor::Reuse, client).about(&session));
        batch.commit().await?;
        Err(CoreError::InvalidGrant)
    }

    /// Inserts a refresh token of `family` for `session`, issued to `client` at the OpenID
    /// token endpoint (`None`: signoff's own).
    pub(super) async fn insert_refresh(
        &self,
        batch: &mut Batch<'_>,
        session: &Session,
        family: &str,
        id: String,
        secret: &Secret,
        client: Option<&str>,
    ) -> Result<(), CoreError> {
        let now = self.now();
        batch
            .tx
            .insert_refresh(&RefreshToken {
                id,
                token_hash: secret.hash(REFRESH_LABEL),
                family_id: family.to_owned(),
                session_id: session.id.clone(),
                user_id: session.user_id.clone(),
                created_at: now,
                expires_at: (now + self.tokens.policy.refresh_ttl).min(session.expires_at),
                used_at: None,
                replaced_by: None,
                successor_salt: None,
                grace_used: false,
                client_id: client.map(str::to_owned),
            })
            .await?;
        Ok(())
    }

    fn pair(
        &self,
        user: &User,
        session: &Session,
        refresh: Secret,
        client: Option<&str>,
    ) -> Result<TokenPair, CoreError> {
        let (access_token, _, expires_in) = self.access_token(user, session, client)?;
        Ok(TokenPair { access_token, expires_in, refresh_token: refresh.expose(), session_id: session.id.clone() })
    }

    /// A signed access token for `session` (issued to the relying party `client`, if any): the
    /// token, its claims and its lifetime in seconds.
    pub(super) fn access_token(
        &self,
        user: &User,
        session: &Session,
        client: Option<&str>,
    ) -> Result<(String, Claims, i64), CoreError> {
        let p = &self.tokens.policy;
        let now = self.now();
        // An access token never outlives its session's absolute end: services that verify it
        // themselves would otherwise honour it past that, until the sweep announced the end.
        let ttl = p.access_ttl.min(session.expires_at - now).max(Duration::seconds(1));
        let mut claims = Claims::new(&p.issuer, &p.audience, &user.id, &session.id, user.token_version, now, ttl);
        claims.client_id = client.map(str::to_owned);
        let access_token =
            self.tokens.keyring().sign(&claims).ok_or_else(|| CoreError::Internal("no signing key".into()))?;
        Ok((access_token, claims, ttl.whole_seconds()))
    }

    // ---- verification ---------------------------------------------------------------------

    /// Signature, time, issuer and audience; then the denylist and the token version from
    /// memory; then the session, which must be live.
    pub async fn verify_access(&self, token: &str) -> Result<AccessContext, TokenError> {
        // Keys, denylist and versions answer from memory only while this node vouches for them.
        self.vouch().await.map_err(|_| TokenError::Unavailable)?;
        // One reading of the clock for every check of the request.
        let now = self.now();
        let claims = self.check_signature(token, now).await?;
        let p = &self.tokens.policy;
        if self.tokens.is_denied(&p.issuer, &claims.jti) {
            return Err(TokenError::Revoked);
        }
        let version = match self.tokens.version(&claims.sub) {
            Some(v) => v,
            None => {
                let generation = self.tokens.versions_generation();
                let user = self.store.user_by_id(&claims.sub).await.map_err(|_| TokenError::Unavailable)?;
                let v = user.ok_or(TokenError::Revoked)?.user.token_version;
                self.tokens.remember_version(&claims.sub, v, generation);
                self.tokens.version(&claims.sub).unwrap_or(v)
            }
        };
        if claims.tv != version {
            return Err(TokenError::Revoked);
        }
        let (session, user) = self
            .vouched_session_by_id(&claims.sid, now)
            .await
            .map_err(|_| TokenError::Unavailable)?
            .filter(|(s, _)| s.user_id == claims.sub && self.is_live(s, now))
            .ok_or(TokenError::Revoked)?;
        Ok(AccessContext { claims, user, session })
    }

    /// Signature, time, issuer and audience only.
    async fn check_signature(&self, token: &str, now: OffsetDateTime) -> Result<Claims, TokenError> {
        let (looked, memo) = self.tokens.verified.get(token);
        if let Some(claims) = memo {
            // Same bytes, same signature: only time needs checking again.
            if claims.exp + crate::token::LEEWAY.whole_seconds() > now.unix_timestamp() {
                return Ok(claims);
            }
            return Err(TokenError::Expired);
        }
        let claims = self.verify_signature(token, now).await?;
        self.tokens.verified.insert(looked, claims.clone());
        Ok(claims)
    }

    async fn verify_signature(&self, token: &str, now: OffsetDateTime) -> Result<Claims, TokenError> {
        self.verify_signature_for(token, &self.tokens.policy.audience, now).await
    }

    /// Signature, time, issuer and `audience`, reloading the keys once for a key not seen yet.
    pub(super) async fn verify_signature_for(
        &self,
        token: &str,
        audience: &str,
        now: OffsetDateTime,
    ) -> Result<Claims, TokenError> {
        let p = &self.tokens.policy;
        match self.tokens.keyring().verify(token, &p.issuer, audience, now, p.access_ttl) {
            Err(TokenError::UnknownKey) if self.may_reload_keys() => {
                // A store that cannot answer is no verdict on the token.
                self.reload_keys().await.map_err(|_| TokenError::Unavailable)?;
                self.tokens.keyring().verify(token, &p.issuer, audience, now, p.access_ttl)
            }
            other => other,
        }
    }

    fn may_reload_keys(&self) -> bool {
        let mut last = self.tokens.last_reload.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < KEY_RELOAD_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// The claims of a correctly signed, unexpired access token of ours, whether or not it
    /// was revoked (logout and revocation need no more).
    pub async fn signed_claims(&self, token: &str) -> Option<Claims> {
        self.check_signature(token, self.now()).await.ok()
    }

    /// What a logout presenting `token` as its bearer ends: the claims of a token we signed
    /// (expired or revoked ones too: its `jti` is denied all the same), and its session if that
    /// still lives for the same user and token version. A token that fails the signature
    /// check is ignored.
    ///
    /// A relying party's token (`client_id`) is not a credential of signoff's: it ends nothing
    /// here (`None`), so an app cannot end the browser's sign-in with it.
    pub async fn bearer_for_logout(&self, token: &str) -> Result<Option<(Claims, Option<Arc<Session>>)>, CoreError> {
        match self.verify_access(token).await {
            Ok(ctx) if ctx.claims.client_id.is_some() => return Ok(None),
            Ok(ctx) => return Ok(Some((ctx.claims, Some(ctx.session)))),
            // A logout that cannot see what it would end refuses rather than half-succeeds.
            Err(TokenError::Unavailable) => return Err(CoreError::Busy(Duration::seconds(1))),
            Err(_) => {}
        }
        let p = &self.tokens.policy;
        let Ok(claims) =
            self.tokens.keyring().verify_ignoring_time(token, &p.issuer, &p.audience, self.now(), p.access_ttl)
        else {
            return Ok(None);
        };
        if claims.client_id.is_some() {
            return Ok(None);
        }
        let session = self
            .session_by_id(&claims.sid)
            .await
            .map_err(|_| CoreError::Busy(Duration::seconds(1)))?
            .filter(|(s, u)| s.user_id == claims.sub && u.token_version == claims.tv && self.is_live(s, self.now()))
            .map(|(s, _)| s);
        Ok(Some((claims, session)))
    }

    // ---- revocation -----------------------------------------------------------------------

    /// RFC 7009: revokes an access token (its `jti` denied until `exp`) or a refresh token (its
    /// family). Unknown or invalid tokens are quietly ignored. `hint` picks which to try first.
    /// Returns how many sessions ended with it (a refresh token's grant ends its session).
    pub async fn revoke_token(&self, token: &str, hint: Option<&str>, client: &ClientInfo) -> Result<u64, CoreError> {
        let refresh_first = hint == Some("refresh_token");
        for attempt in if refresh_first { [true, false] } else { [false, true] } {
            let done = if attempt {
                self.revoke_refresh(token, client).await?
            } else {
                self.revoke_access(token, client).await?.then_some(0)
            };
            if let Some(ended) = done {
                return Ok(ended);
            }
        }
        // Nothing (left) to revoke, and still a success: perhaps a retry of a revocation that
        // committed and then answered 503. Answer once every node is as far as the feed goes.
        self.propagate_head().await?;
        Ok(0)
    }

    async fn revoke_access(&self, token: &str, client: &ClientInfo) -> Result<bool, CoreError> {
        self.vouch().await?;
        let claims = match self.signed_claims(token).await {
            Some(claims) => claims,
            // Perhaps signed with a key another node has just made, whose announcement this
            // node has not applied yet: read the feed (which reloads the keys) and look again,
            // rather than call a live token unknown and leave it alive.
            None => {
                self.catch_up().await?;
                match self.signed_claims(token).await {
                    Some(claims) => claims,
                    None => return self.revoke_machine(token, client).await,
                }
            }
        };
        let mut batch = self.batch().await?;
        batch.deny(&self.tokens.policy.issuer, &claims.jti, claims.exp, &claims.sub).await?;
        batch.audit(
            self.event(AuditKind::TokenRevoked, Actor::SelfSession, client)
                .user(&claims.sub)
                .session(&claims.sid)
                .reason("access_token"),
        );
        batch.commit().await?;
        Ok(true)
    }

    /// A machine client's token: denied until it expires, with no user to tell.
    async fn revoke_machine(&self, token: &str, client: &ClientInfo) -> Result<bool, CoreError> {
        let now = self.now();
        let Ok(claims) = self.verify_signature_for(token, &self.tokens.policy.machine_audience(), now).await else {
            return Ok(false);
        };
        let mut batch = self.batch().await?;
        batch.deny_machine(&self.tokens.policy.issuer, &claims.jti, claims.exp).await?;
        let event = self.event(AuditKind::TokenRevoked, Actor::SelfSession, client).reason("machine_token");
        batch.audit(event);
        batch.commit().await?;
        tracing::info!(target: "signoff::audit", client_id = %claims.sub, jti = %claims.jti, "machine token revoked");
        Ok(true)
    }

    /// RFC 7009 §2.1: revoking a refresh token also invalidates the access tokens of the same
    /// grant. A refresh family belongs to exactly one session (the grant), so the session ends:
    /// its access tokens (they carry its `sid`) die with it, on every node.
    /// The sessions it ended, or `None` when `token` is no refresh token.
    async fn revoke_refresh(&self, token: &str, client: &ClientInfo) -> Result<Option<u64>, CoreError> {
        let Some(secret) = Secret::parse(token) else { return Ok(None) };
        let hash = secret.hash(REFRESH_LABEL);
        let Some(seen) = self.store.refresh_by_hash(&hash).await? else {
            return Ok(None);
        };
        let mut batch = self.batch_for(&[&seen.user_id]).await?;
        batch.kind = BatchKind::Revocation;
        let Some(found) = batch.tx.refresh_by_hash(&hash).await? else { return Ok(None) };
        let event = self
            .event(AuditKind::TokenRevoked, Actor::SelfSession, client)
            .user(&found.user_id)
            .session(&found.session_id)
            .reason("refresh_token");
        batch.tx.revoke_refresh_family(&found.family_id).await?;
        if found.client_id.is_some() {
            // An app's grant from the OpenID provider: it ends, the browser's sign-in (and every
            // other app's) does not. Its access tokens live out their minutes.
            batch.audit(event);
            batch.commit().await?;
            return Ok(Some(0));
        }
        let ended = batch.end(SessionFilter::One { user: &found.user_id, id: &found.session_id }, &event).await?;
        if ended == 0 {
            batch.audit(event);
        }
        batch.commit().await?;
        Ok(Some(ended))
    }

    /// Whose the remember-me series and refresh token a logout presents are (a plain read, to
    /// take their users' locks before the logout's transaction).
    pub(super) async fn presented_owners(&self, presented: &Presented<'_>) -> Result<Vec<UserId>, CoreError> {
        let mut owners = Vec::new();
        if let Some(r) = presented.remember
            && let Some(t) = self.store.remember_by_selector(r.selector()).await?
        {
            owners.push(t.user_id);
        }
        if let Some(secret) = presented.refresh_token.and_then(Secret::parse)
            && let Some(t) = self.store.refresh_by_hash(&secret.hash(REFRESH_LABEL)).await?
        {
            owners.push(t.user_id);
        }
        Ok(owners)
    }

    /// Inside a logout batch: kills the credentials the caller presented besides its sessions,
    /// and returns how many sessions that ended. The refresh token's session (its grant) ends
    /// with its family; the remember-me series ends with every session opened from it.
    pub(super) async fn revoke_presented(
        &self,
        batch: &mut Batch<'_>,
        presented: &Presented<'_>,
        event: &crate::audit::AuditEvent,
    ) -> Result<u64, CoreError> {
        let mut ended = 0;
        if let Some(r) = presented.remember {
            ended += batch.drop_series(RememberFilter::Selector(r.selector()), event).await?;
        }
        if let Some(claims) = presented.access {
            batch.deny(&self.tokens.policy.issuer, &claims.jti, claims.exp, &claims.sub).await?;
        }
        if let Some(secret) = presented.refresh_token.and_then(Secret::parse)
            && let Some(found) = batch.tx.refresh_by_hash(&secret.hash(REFRESH_LABEL)).await?
        {
            batch.tx.revoke_refresh_family(&found.family_id).await?;
            // An app's grant (OpenID) ends alone: it does not speak for the browser's sign-in.
            if found.client_id.is_none() {
                ended += batch.end(SessionFilter::One { user: &found.user_id, id: &found.session_id }, event).await?;
            }
        }
        Ok(ended)
    }

    /// RFC 7662: what an access or refresh token is, if it is active.
    pub async fn introspect(&self, token: &str) -> Result<serde_json::Value, CoreError> {
        let verified = match self.verify_access(token).await {
            Err(TokenError::Unavailable) => return Err(CoreError::Busy(Duration::seconds(1))),
            other => other,
        };
        if let Ok(ctx) = verified {
            let c = &ctx.claims;
            let mut answer = serde_json::json!({
                "active": true, "token_type": "access_token", "sub": c.sub, "sid": c.sid, "jti": c.jti,
                "exp": c.exp, "iat": c.iat, "iss": c.iss, "aud": c.aud, "tv": c.tv, "username": ctx.user.email,
            });
            // An app's token names its app (RFC 7662 §2.2), so a resource server can refuse it.
            if let Some(client) = &c.client_id {
                answer["client_id"] = serde_json::json!(client);
            }
            return Ok(answer);
        }
        match self.verify_machine(token).await {
            Ok(m) => {
                let c = &m.claims;
                // A machine client's own token: no user, no session (RFC 7662 §2.2).
                return Ok(serde_json::json!({
                    "active": true, "token_type": "access_token", "sub": c.sub, "client_id": m.client.id,
                    "jti": c.jti, "exp": c.exp, "iat": c.iat, "iss": c.iss, "aud": c.aud,
                }));
            }
            Err(TokenError::Unavailable) => return Err(CoreError::Busy(Duration::seconds(1))),
            Err(_) => {}
        }
        let now = self.now();
        if let Some(secret) = Secret::parse(token)
            && let Some(t) = self.store.refresh_by_hash(&secret.hash(REFRESH_LABEL)).await?
            && t.used_at.is_none()
            && now < t.expires_at
            && let Some((session, _)) = self.store.session_by_id(&t.session_id).await?
            && self.is_live(&session, now)
        {
            let mut answer = serde_json::json!({
                "active": true, "token_type": "refresh_token", "sub": t.user_id, "sid": t.session_id,
                "exp": t.expires_at.unix_timestamp(), "iat": t.created_at.unix_timestamp(),
            });
            if let Some(client) = &t.client_id {
                answer["client_id"] = serde_json::json!(client);
            }
            return Ok(answer);
        }
        Ok(serde_json::json!({ "active": false }))
    }
}

/// A key that could not be generated is the machine's fault (no randomness, no memory), not
/// the caller's.
fn key_error(e: signoff_jwt::keys::KeyError) -> CoreError {
    CoreError::Store(crate::store::StoreError::Backend(e.to_string()))
}
