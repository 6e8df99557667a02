//! Registered clients: the applications and services that rely on signoff.
//!
//! A client proves itself with `client_id:client_secret` (HTTP Basic). The secret is 256
//! random bits, shown once and stored only as a labelled hash; the webhook secret is kept as
//! it is, because signoff signs with it. Deleting a client puts it on the revocation feed, so
//! every process drops its open feed streams at once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use crate::secret::{Secret, SecretHash, random_bytes, random_id};

const SECRET_LABEL: &[u8] = b"signoff/client/v1";
/// Longest client id looked up (ours are 22 characters); longer ones are refused unread.
pub const MAX_CLIENT_ID_LEN: usize = 64;

/// A registered client as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    pub id: String,
    pub name: String,
    pub secret_hash: SecretHash,
    pub backchannel_logout_uri: Option<String>,
    pub webhook_url: Option<String>,
    /// `whsec_` + base64 of 32 random bytes (Standard Webhooks); set with `webhook_url`.
    pub webhook_secret: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A client just registered, with the secrets to show its owner this once.
#[derive(Debug)]
pub struct NewClient {
    pub client: RegisteredClient,
    pub client_secret: Secret,
}

impl NewClient {
    pub fn generate(
        name: String,
        backchannel_logout_uri: Option<String>,
        webhook_url: Option<String>,
        now: OffsetDateTime,
    ) -> Self {
        let client_secret = Secret::generate();
        let webhook_secret = webhook_url.as_ref().map(|_| format!("whsec_{}", STANDARD.encode(random_bytes::<32>())));
        Self {
            client: RegisteredClient {
                id: random_id(),
                name,
                secret_hash: hash_secret(&client_secret),
                backchannel_logout_uri,
                webhook_url,
                webhook_secret,
                created_at: now,
            },
            client_secret,
        }
    }
}

pub fn hash_secret(secret: &Secret) -> SecretHash {
    secret.hash(SECRET_LABEL)
}

impl RegisteredClient {
    /// Whether `presented` is this client's secret (constant time; garbage is simply wrong).
    pub fn secret_matches(&self, presented: &str) -> bool {
        let hash = Secret::parse(presented).map(|s| hash_secret(&s)).unwrap_or(SecretHash([0; 32]));
        // A stored hash is never all zeros, so a secret that does not parse never matches.
        hash.ct_eq(&self.secret_hash) && hash != SecretHash([0; 32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_by_hash_and_webhook_secrets_have_the_standard_form() {
        let n = NewClient::generate("app".into(), None, Some("https://a.example/h".into()), OffsetDateTime::UNIX_EPOCH);
        assert!(n.client.secret_matches(&n.client_secret.expose()));
        assert!(!n.client.secret_matches(&Secret::generate().expose()));
        assert!(!n.client.secret_matches("not base64 at all"));
        assert!(!n.client.secret_matches(""));
        let whsec = n.client.webhook_secret.as_deref().expect("a webhook URL gets a secret");
        let raw = STANDARD.decode(whsec.strip_prefix("whsec_").expect("prefix")).expect("base64");
        assert_eq!(raw.len(), 32);
        let plain = NewClient::generate("api".into(), None, None, OffsetDateTime::UNIX_EPOCH);
        assert!(plain.client.webhook_secret.is_none());
        assert_ne!(plain.client.id, n.client.id);
    }
}
