//! The OpenID provider: an authorization code for a signed-in browser, its redemption at the
//! token endpoint (once, on any node), ID tokens signed in each client's algorithm, and the
//! claims of the UserInfo endpoint.
//!
//! A code is a random 256-bit secret stored as a labelled hash, bound to its client, redirect
//! URI and PKCE S256 challenge, and to the browser's sign-in; it lives [`CODE_LIFETIME`]. Its
//! redemption spends it by compare-and-swap inside the transaction that issues the tokens and
//! links the sign-in to the client (so the app hears when that sign-in ends); a second
//! redemption revokes what the first issued (RFC 6749 §4.1.2).

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::Duration;

use super::{Authority, ClientInfo, SessionContext};
use crate::audit::{Actor, AuditKind};
use crate::clients::{GrantType, RegisteredClient, SigningAlg};
use crate::error::CoreError;
use crate::secret::{Secret, SigninId, random_id};
use crate::store::{AuthorizationCode, CodeIssue, CodeUse, Session, User};

/// How long an authorization code may be redeemed.
pub const CODE_LIFETIME: Duration = Duration::seconds(60);

/// The domain-separation label of an authorization code's hash.
const CODE_LABEL: &[u8] = b"signoff authorization code";

/// What the authorization endpoint asks a code to be bound to.
#[derive(Debug, Clone, Copy)]
pub struct CodeRequest<'a> {
    pub client: &'a RegisteredClient,
    /// Already matched exactly against the client's registration.
    pub redirect_uri: &'a str,
    /// The PKCE S256 challenge (43 base64url characters).
    pub code_challenge: &'a str,
    pub nonce: Option<&'a str>,
}

/// The token endpoint's answer to a redeemed code.
#[derive(Debug, Clone)]
pub struct OidcTokens {
    pub access_token: String,
    pub expires_in: i64,
    /// Only for a client registered with the `refresh_token` grant.
    pub refresh_token: Option<String>,
    pub id_token: String,
}

/// The claims of an ID token (OpenID Connect Core §2, with `sid` of Front- and Back-Channel
/// Logout: the browser's sign-in, which outlives rotations of its session).
#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: &'a str,
    email: &'a str,
    /// signoff does not confirm an address when an account is registered.
    email_verified: bool,
}

/// What a valid `id_token_hint` names: an ID token signoff issued (expired or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    /// The client it was issued to.
    pub client_id: String,
    pub sub: String,
    /// The browser's sign-in it was issued for.
    pub sid: String,
}

/// An ID token's claims as a hint reads them: `auth_time` sets it apart from signoff's access
/// and logout tokens, which are signed with the same keys.
#[derive(serde::Deserialize)]
struct HintClaims {
    iss: String,
    aud: String,
    sub: String,
    sid: String,
    #[serde(rename = "auth_time")]
    _auth_time: i64,
}

/// How long a front-channel ticket is good for: the moment between a logout's answer and the
/// signed-out page it leads to.
const FRONTCHANNEL_TICKET_LIFETIME: Duration = Duration::seconds(60);
const FRONTCHANNEL_PURPOSE: &str = "frontchannel_logout";
/// Most apps a ticket names (a sign-in's front-channel apps beyond these get no frame; their
/// back-channel logout still goes).
pub const FRONTCHANNEL_TICKET_APPS: usize = 50;

/// A signed note that a sign-in ended and which of its apps take front-channel logouts: what
/// the signed-out page a script leads to (`signoff.js`, after its logout request) renders frames
/// from, so that page cannot be made to frame anything else.
#[derive(serde::Serialize, serde::Deserialize)]
struct FrontchannelTicket {
    iss: String,
    /// `<issuer>/oidc/frontchannel`: for signoff's own page, never an audience of any token.
    aud: String,
    purpose: String,
    exp: i64,
    sid: String,
    apps: Vec<String>,
}

/// Whether `verifier` is a PKCE code verifier (RFC 7636 §4.1: 43 to 128 unreserved characters)
/// whose S256 challenge is `challenge`, compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

impl Authority {
    /// Issues an authorization code to `request.client` for the browser's session.
    pub async fn issue_code(&self, ctx: &SessionContext, request: CodeRequest<'_>) -> Result<String, CoreError> {
        let now = self.now();
        let code = Secret::generate();
        let mut batch = self.batch_for(&[&ctx.user.id]).await?;
        // Decided under the transaction: a session ended meanwhile issues nothing.
        let Some((session, _)) = batch.tx.session_by_id(&ctx.session.id).await? else {
            return Err(CoreError::Unauthenticated);
        };
        if !self.is_live(&session, now) {
            return Err(CoreError::Unauthenticated);
        }
        // A client deleted meanwhile gets no code (and cannot be deleted until this commits).
        if !batch.tx.hold_client(&request.client.id).await? {
            return Err(CoreError::NotFound);
        }
        batch
            .tx
            .insert_code(&AuthorizationCode {
                code_hash: code.hash(CODE_LABEL),
                client_id: request.client.id.clone(),
                redirect_uri: request.redirect_uri.to_owned(),
                user_id: session.user_id.clone(),
                session_id: session.id.clone(),
                signin: session.signin.clone(),
                code_challenge: request.code_challenge.to_owned(),
                nonce: request.nonce.map(str::to_owned),
                auth_time: session.authenticated_at,
                created_at: now,
                expires_at: now + CODE_LIFETIME,
            })
            .await?;
        batch.commit().await?;
        Ok(code.expose())
    }

    /// Redeems a code at the token endpoint for `client` (already authenticated). Anything
    /// that does not match (another client, another redirect URI, a wrong PKCE verifier, a
    /// session that ended) spends the code and is `InvalidGrant`; a code spent before revokes
    /// what its first redemption issued.
    pub async fn redeem_code(
        &self,
        client: &RegisteredClient,
        presented: &str,
        redirect_uri: &str,
        verifier: &str,
        info: &ClientInfo,
    ) -> Result<OidcTokens, CoreError> {
        let now = self.now();
        let hash = Secret::parse(presented).ok_or(CoreError::InvalidGrant)?.hash(CODE_LABEL);
        // A cheap look first: an unknown code (anyone can send one) takes no write lock.
        let Some(owner) = self.store.code_user(&hash).await? else {
            return Err(CoreError::InvalidGrant);
        };
        let mut batch = self.batch_for(&[&owner]).await?;
        // The client, held before the code, in the order a deletion takes them: deleted
        // meanwhile, it took its codes with it; deleted after, it takes what this issues.
        if !batch.tx.hold_client(&client.id).await? {
            return Err(CoreError::InvalidGrant);
        }
        let code = match batch.tx.use_code(&hash, now).await? {
            CodeUse::First(code) => code,
            CodeUse::Unknown => return Err(CoreError::InvalidGrant),
            CodeUse::Again { user_id, issued } => {
                if let Some(issued) = issued {
                    if let Some(family) = &issued.family {
                        batch.tx.revoke_refresh_family(family).await?;
                    }
                    batch.deny(&self.tokens.policy.issuer, &issued.access_jti, issued.access_exp, &user_id).await?;
                }
                let event = self.event(AuditKind::AuthorizationCodeReuse, Actor::Reuse, info).user(&user_id);
                batch.audit(event.reason(&client.id));
                batch.commit().await?;
                tracing::warn!(client_id = %client.id, "a spent authorization code came back: what it issued is revoked");
                return Err(CoreError::InvalidGrant);
            }
        };
        let session = match batch.tx.session_by_id(&code.session_id).await? {
            Some((session, user)) if self.is_live(&session, now) && session.signin == code.signin => {
                Some((session, user))
            }
            _ => None,
        };
        let matches = code.client_id == client.id
            && code.redirect_uri == redirect_uri
            && pkce_matches(verifier, &code.code_challenge);
        let (true, Some((session, user))) = (matches, session) else {
            // Spent all the same: a code is tried once.
            batch.commit().await?;
            return Err(CoreError::InvalidGrant);
        };
        let refresh = client.profile.grant_types.contains(&GrantType::RefreshToken).then(Secret::generate);
        let family = refresh.as_ref().map(|_| random_id());
        if let (Some(secret), Some(family)) = (&refresh, &family) {
            self.insert_refresh(&mut batch, &session, family, random_id(), secret, Some(&client.id)).await?;
        }
        let (access_token, claims, expires_in) = self.access_token(&user, &session, Some(&client.id))?;
        let id_token = self.id_token(client, &user, &session, code.nonce.as_deref())?;
        let issue = CodeIssue { family, access_jti: claims.jti.clone(), access_exp: claims.exp };
        batch.tx.record_code_issue(&hash, &issue).await?;
        batch.tx.link_signin(&session.signin, &client.id, &user.id, now).await?;
        let event = self.event(AuditKind::AppSignIn, Actor::User, info).about(&session).reason(&client.id);
        batch.audit(event);
        batch.commit().await?;
        Ok(OidcTokens { access_token, expires_in, refresh_token: refresh.map(|r| r.expose()), id_token })
    }

    /// The ID token an app passed as `id_token_hint` (RP-Initiated Logout 1.0 §2), if it is one
    /// signoff signed with a key it still has, for this issuer; its expiry does not matter.
    /// Anything else (forged, foreign, malformed) is `None`.
    pub fn id_token_hint(&self, token: &str) -> Option<IdTokenHint> {
        let p = &self.tokens.policy;
        let keyring = self.tokens.keyring();
        let key_for =
            |kid: &str| keyring.verifiers(self.now(), p.access_ttl).find(|k| k.kid == kid).map(|k| k.public());
        let claims: HintClaims = signoff_jwt::keys::verify_with(token, key_for).ok()?;
        (claims.iss == p.issuer).then_some(IdTokenHint { client_id: claims.aud, sub: claims.sub, sid: claims.sid })
    }

    /// A ticket for the signed-out page to load the front-channel logouts of `apps` for the
    /// ended sign-in `signin` (valid a minute).
    pub fn frontchannel_ticket(&self, signin: &SigninId, apps: &[String]) -> Option<String> {
        let ticket = FrontchannelTicket {
            iss: self.tokens.policy.issuer.clone(),
            aud: self.frontchannel_audience(),
            purpose: FRONTCHANNEL_PURPOSE.to_owned(),
            exp: (self.now() + FRONTCHANNEL_TICKET_LIFETIME).unix_timestamp(),
            sid: signin.to_string(),
            apps: apps.iter().take(FRONTCHANNEL_TICKET_APPS).cloned().collect(),
        };
        self.tokens.keyring().signer_for(SigningAlg::EdDsa)?.sign_as(&ticket, "frontchannel+jwt")
    }

    fn frontchannel_audience(&self) -> String {
        format!("{}/oidc/frontchannel", self.tokens.policy.issuer.trim_end_matches('/'))
    }

    /// The ended sign-in and its apps a ticket of ours names, if it is one and still good.
    pub fn read_frontchannel_ticket(&self, ticket: &str) -> Option<(SigninId, Vec<String>)> {
        let p = &self.tokens.policy;
        let keyring = self.tokens.keyring();
        // Signed with the EdDSA key alone, as it is made.
        let key_for = |kid: &str| {
            keyring
                .verifiers(self.now(), p.access_ttl)
                .find(|k| k.kid == kid && k.alg() == SigningAlg::EdDsa)
                .map(|k| k.public())
        };
        let t: FrontchannelTicket = signoff_jwt::keys::verify_with(ticket, key_for).ok()?;
        let live = self.now().unix_timestamp() <= t.exp + crate::token::LEEWAY.whole_seconds();
        let good = t.iss == p.issuer && t.aud == self.frontchannel_audience() && t.purpose == FRONTCHANNEL_PURPOSE;
        (good && live && t.apps.len() <= FRONTCHANNEL_TICKET_APPS).then(|| (SigninId::from_string(t.sid), t.apps))
    }

    /// The sign-in and user of the remember-me series a browser presents (a plain read, to match
    /// an `id_token_hint` against; the logout that follows checks the series itself).
    pub async fn remembered_signin(
        &self,
        presented: &crate::remember::RememberSecret,
    ) -> Result<Option<(crate::secret::SigninId, crate::secret::UserId)>, CoreError> {
        let series = self.store.remember_by_selector(presented.selector()).await?;
        Ok(series.filter(|t| self.now() < t.expires_at).map(|t| (t.signin, t.user_id)))
    }

    /// An ID token for `client` about `user`'s sign-in, signed with the client's
    /// `id_token_signed_response_alg`.
    fn id_token(
        &self,
        client: &RegisteredClient,
        user: &User,
        session: &Session,
        nonce: Option<&str>,
    ) -> Result<String, CoreError> {
        let p = &self.tokens.policy;
        let iat = self.now().unix_timestamp();
        let claims = IdClaims {
            iss: &p.issuer,
            sub: user.id.as_str(),
            aud: &client.id,
            exp: iat + p.access_ttl.whole_seconds(),
            iat,
            auth_time: session.authenticated_at.unix_timestamp(),
            nonce,
            sid: session.signin.as_str(),
            email: &user.email,
            email_verified: false,
        };
        let keyring = self.tokens.keyring();
        let key = keyring
            .signer_for(client.profile.id_token_signed_response_alg)
            .ok_or_else(|| CoreError::Internal("no ID-token signing key".into()))?;
        key.sign_as(&claims, "JWT").ok_or_else(|| CoreError::Internal("signing an ID token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_example_and_nothing_else() {
        // RFC 7636 Appendix B.
        let (verifier, challenge) =
            ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        assert!(!pkce_matches(challenge, challenge), "plain is not S256");
        assert!(!pkce_matches("short", "yFuHfRX3UbDKFyH3ENVLAy4Jyt6H3A7dZS5dn2RKbYU"), "43 characters at least");
        let long = "a".repeat(129);
        let long_challenge =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, Sha256::digest(long.as_bytes()));
        assert!(!pkce_matches(&long, &long_challenge), "128 at most");
        let odd = format!("{}+", "a".repeat(42));
        let odd_challenge =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, Sha256::digest(odd.as_bytes()));
        assert!(!pkce_matches(&odd, &odd_challenge), "unreserved characters only");
    }
}
