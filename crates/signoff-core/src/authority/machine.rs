//! Machine clients: the `client_credentials` grant (RFC 6749 §4.4) and its tokens.
//!
//! A machine token is one of signoff's access tokens with no user and no session: `sub` and
//! `client_id` are the client (RFC 9068 §2.2), `aud` is signoff's API for clients
//! ([`TokenPolicy::machine_audience`](super::TokenPolicy::machine_audience), never the user
//! tokens' audience, so relying services' verifiers refuse it), and `sid` is the client's grant
//! under its current secret ([`grant_sid`]). It dies when the client's secret is rotated or the client is deleted:
//! here by reading the client's row on every check, and for relying services by the feed, which
//! ends that `sid` like a session ([`FeedEntry::ClientGrantEnded`](crate::feed::FeedEntry)).

use super::Authority;
use crate::clients::{GrantType, RegisteredClient, grant_sid};
use crate::error::CoreError;
use crate::secret::UserId;
use crate::token::{Claims, TokenError};

/// A machine client's access token, as the token endpoint answers it.
#[derive(Debug, Clone)]
pub struct MachineToken {
    pub access_token: String,
    pub expires_in: i64,
}

/// A verified machine token and the client it was issued to (read from the store).
#[derive(Debug, Clone)]
pub struct MachineContext {
    pub claims: Claims,
    pub client: RegisteredClient,
}

/// Whether `claims` are a machine client's: its own subject.
pub fn is_machine(claims: &Claims) -> bool {
    claims.client_id.as_deref() == Some(claims.sub.as_str())
}

impl Authority {
    /// An access token for `client` itself, which the caller has authenticated and found
    /// registered for the `client_credentials` grant.
    pub fn client_credentials(&self, client: &RegisteredClient) -> Result<MachineToken, CoreError> {
        let p = &self.tokens.policy;
        let subject = UserId::from_string(client.id.clone());
        let grant = grant_sid(&client.secret_hash);
        let audience = p.machine_audience();
        let mut claims = Claims::new(&p.issuer, &audience, &subject, &grant, 0, self.now(), p.access_ttl);
        claims.client_id = Some(client.id.clone());
        let access_token =
            self.tokens.keyring().sign(&claims).ok_or_else(|| CoreError::Internal("no signing key".into()))?;
        tracing::info!(target: "signoff::audit", client_id = %client.id, jti = %claims.jti, "machine token issued");
        Ok(MachineToken { access_token, expires_in: p.access_ttl.whole_seconds() })
    }

    /// A live machine token: signed by us, unexpired, not revoked, and naming the current grant
    /// of a client that still exists and still may use the grant.
    pub async fn verify_machine(&self, token: &str) -> Result<MachineContext, TokenError> {
        self.vouch().await.map_err(|_| TokenError::Unavailable)?;
        let claims = self.verify_signature_for(token, &self.tokens.policy.machine_audience(), self.now()).await?;
        if !is_machine(&claims) {
            return Err(TokenError::Revoked);
        }
        if self.tokens.is_denied(&self.tokens.policy.issuer, &claims.jti) {
            return Err(TokenError::Revoked);
        }
        let client = self.client(claims.sub.as_str()).await.map_err(|_| TokenError::Unavailable)?;
        let client = client
            .filter(|c| grant_sid(&c.secret_hash) == claims.sid && c.profile.allows(GrantType::ClientCredentials))
            .ok_or(TokenError::Revoked)?;
        Ok(MachineContext { claims, client })
    }
}
