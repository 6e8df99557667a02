//! Registered clients: the applications and services that rely on signoff.
//!
//! A client proves itself with `client_id:client_secret` (HTTP Basic). The secret is 256
//! random bits, shown once and stored only as a labelled hash; the webhook secret is kept as
//! it is, because signoff signs with it. Deleting a client puts it on the revocation feed, so
//! every process drops its open feed streams at once.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use time::OffsetDateTime;

use crate::secret::{Secret, SecretHash, SessionId, random_bytes, random_id};

mod profile;

pub use profile::{ClientProfile, GrantType, RedirectUriError, SigningAlg, TokenAuthMethod, check_browser_uri};

const SECRET_LABEL: &[u8] = b"signoff/client/v1";
/// Longest client id looked up (ours are 22 characters); longer ones are refused unread.
pub const MAX_CLIENT_ID_LEN: usize = 64;

/// What a client's endpoint is for. Stored as one row per endpoint (`client_endpoints`), so a
/// new kind is a variant here and a string there, not a column in two SQL dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointKind {
    /// OIDC Back-Channel Logout: a logout token is posted here when a session ends.
    BackchannelLogout,
    /// Standard Webhooks: every notification, signed with the webhook secret.
    Webhook,
    /// Where the authorization endpoint may send a browser back with a code (`redirect_uris`;
    /// matched exactly).
    Redirect,
    /// Where RP-initiated logout may send a browser afterwards (`post_logout_redirect_uris`).
    PostLogoutRedirect,
    /// OpenID Connect Front-Channel Logout: loaded in the logged-out page
    /// (`frontchannel_logout_uri`).
    FrontchannelLogout,
}

impl EndpointKind {
    pub const ALL: [Self; 5] =
        [Self::BackchannelLogout, Self::Webhook, Self::Redirect, Self::PostLogoutRedirect, Self::FrontchannelLogout];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackchannelLogout => "backchannel_logout",
            Self::Webhook => "webhook",
            Self::Redirect => "redirect",
            Self::PostLogoutRedirect => "post_logout_redirect",
            Self::FrontchannelLogout => "frontchannel_logout",
        }
    }

    /// `None` for a kind this release does not know (one a newer node wrote): it is ignored.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether signoff calls it when credentials die (the outbox's recipients). A client has at
    /// most one endpoint of each such kind (registration takes one), kept in the old column of
    /// `clients` too while nodes of the previous release may read it.
    pub fn is_callback(self) -> bool {
        match self {
            Self::BackchannelLogout | Self::Webhook => true,
            Self::Redirect | Self::PostLogoutRedirect | Self::FrontchannelLogout => false,
        }
    }
}

/// One URL of a client, for one purpose.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub kind: EndpointKind,
    pub url: String,
}

impl Endpoint {
    pub fn new(kind: EndpointKind, url: impl Into<String>) -> Self {
        Self { kind, url: url.into() }
    }

    pub fn backchannel_logout(url: impl Into<String>) -> Self {
        Self::new(EndpointKind::BackchannelLogout, url)
    }

    pub fn webhook(url: impl Into<String>) -> Self {
        Self::new(EndpointKind::Webhook, url)
    }
}

/// A registered client as stored. Its `Debug` leaves out the webhook secrets (kept as they are,
/// to sign with).
#[derive(Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    pub id: String,
    pub name: String,
    pub secret_hash: SecretHash,
    /// Its endpoints, sorted by kind and URL (as every store reads them back).
    pub endpoints: Vec<Endpoint>,
    /// What it registered beyond its URLs (grants, token authentication, signing algorithm).
    pub profile: ClientProfile,
    /// `whsec_` + base64 of 32 random bytes (Standard Webhooks); set with a webhook endpoint.
    pub webhook_secret: Option<String>,
    /// The webhook secret before the last rotation, still signed with until
    /// `previous_webhook_secret_until` (so receivers can switch over without losing one).
    pub previous_webhook_secret: Option<String>,
    pub previous_webhook_secret_until: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("RegisteredClient")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret_hash", &self.secret_hash)
            .field("endpoints", &self.endpoints)
            .field("profile", &self.profile)
            .field("webhook_secret", &hidden(&self.webhook_secret))
            .field("previous_webhook_secret", &hidden(&self.previous_webhook_secret))
            .field("previous_webhook_secret_until", &self.previous_webhook_secret_until)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A client just registered, with the secrets to show its owner this once.
#[derive(Debug)]
pub struct NewClient {
    pub client: RegisteredClient,
    pub client_secret: Secret,
}

impl NewClient {
    /// A new client with these endpoints. Its profile is a relying party's when it has a
    /// redirect URI and a service's otherwise; set `client.profile` for anything else.
    pub fn generate(name: String, mut endpoints: Vec<Endpoint>, now: OffsetDateTime) -> Self {
        endpoints.sort();
        endpoints.dedup();
        let client_secret = Secret::generate();
        let webhook_secret = endpoints.iter().any(|e| e.kind == EndpointKind::Webhook).then(webhook_secret);
        let signs_in = endpoints.iter().any(|e| e.kind == EndpointKind::Redirect);
        let profile = if signs_in { ClientProfile::relying_party() } else { ClientProfile::service() };
        Self {
            client: RegisteredClient {
                id: random_id(),
                name,
                secret_hash: hash_secret(&client_secret),
                endpoints,
                profile,
                webhook_secret,
                previous_webhook_secret: None,
                previous_webhook_secret_until: None,
                created_at: now,
            },
            client_secret,
        }
    }
}

/// A new webhook secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks).
pub fn webhook_secret() -> String {
    format!("whsec_{}", STANDARD.encode(random_bytes::<32>()))
}

/// The id of a machine client's grant under the secret whose hash is `secret_hash`: the `sid` of
/// its `client_credentials` tokens. A new secret (or none, the client deleted) makes a new grant,
/// and tokens naming the old one are dead. Derived, not stored: one-way, so it tells nothing of
/// the hash, and every node computes the same.
pub fn grant_sid(secret_hash: &SecretHash) -> SessionId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(b"signoff client grant\0").chain_update(secret_hash.0).finalize();
    SessionId::from_string(URL_SAFE_NO_PAD.encode(&digest[..16]))
}

pub fn hash_secret(secret: &Secret) -> SecretHash {
    secret.hash(SECRET_LABEL)
}

impl RegisteredClient {
    /// Its URLs of this kind, sorted.
    pub fn endpoints_of(&self, kind: EndpointKind) -> impl Iterator<Item = &str> {
        self.endpoints.iter().filter(move |e| e.kind == kind).map(|e| e.url.as_str())
    }

    /// Its (first) URL of this kind.
    pub fn endpoint(&self, kind: EndpointKind) -> Option<&str> {
        self.endpoints.iter().find(|e| e.kind == kind).map(|e| e.url.as_str())
    }

    /// Whether it signs users in (has redirect URIs): it then hears of the sign-ins it served
    /// only, not of every ended session.
    pub fn signs_in(&self) -> bool {
        self.endpoints.iter().any(|e| e.kind == EndpointKind::Redirect)
    }

    /// Whether it has an endpoint signoff calls (so the outbox writes it deliveries).
    pub fn has_callbacks(&self) -> bool {
        self.endpoints.iter().any(|e| e.kind.is_callback())
    }

    /// Whether `presented` is this client's secret (constant time; garbage is simply wrong).
    pub fn secret_matches(&self, presented: &str) -> bool {
        let hash = Secret::parse(presented).map(|s| hash_secret(&s)).unwrap_or(SecretHash([0; 32]));
        // A stored hash is never all zeros, so a secret that does not parse never matches.
        hash.ct_eq(&self.secret_hash) && hash != SecretHash([0; 32])
    }

    /// The secrets a webhook is signed with at `now`: the current one, and the one before a
    /// rotation until its overlap ends.
    pub fn webhook_secrets(&self, now: OffsetDateTime) -> Vec<&str> {
        let previous = match (&self.previous_webhook_secret, self.previous_webhook_secret_until) {
            (Some(secret), Some(until)) if now < until => Some(secret.as_str()),
            _ => None,
        };
        self.webhook_secret.as_deref().into_iter().chain(previous).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_by_hash_and_webhook_secrets_have_the_standard_form() {
        let n = NewClient::generate(
            "app".into(),
            vec![Endpoint::webhook("https://a.example/h")],
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(n.client.secret_matches(&n.client_secret.expose()));
        assert!(!n.client.secret_matches(&Secret::generate().expose()));
        assert!(!n.client.secret_matches("not base64 at all"));
        assert!(!n.client.secret_matches(""));
        let whsec = n.client.webhook_secret.as_deref().expect("a webhook URL gets a secret");
        let raw = STANDARD.decode(whsec.strip_prefix("whsec_").expect("prefix")).expect("base64");
        assert_eq!(raw.len(), 32);
        let plain = NewClient::generate("api".into(), vec![], OffsetDateTime::UNIX_EPOCH);
        assert!(plain.client.webhook_secret.is_none());
        // Neither webhook secret shows in a `Debug` (a log line, a test's failure).
        let rotated = RegisteredClient { previous_webhook_secret: Some(whsec.replace('A', "B")), ..n.client.clone() };
        let shown = format!("{rotated:?}");
        let secret = rotated.previous_webhook_secret.as_deref().unwrap_or_default();
        assert!(!shown.contains(whsec) && !shown.contains(secret), "{shown}");
        assert!(shown.contains(&n.client.id) && shown.contains("<redacted>"), "{shown}");
        assert_ne!(plain.client.id, n.client.id);
    }

    #[test]
    fn a_rotated_webhook_secret_is_signed_with_until_its_overlap_ends() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let mut c = NewClient::generate("app".into(), vec![Endpoint::webhook("https://a.example/h")], now).client;
        let old = c.webhook_secret.clone().expect("secret");
        assert_eq!(c.webhook_secrets(now), vec![old.as_str()]);
        c.previous_webhook_secret = Some(old.clone());
        c.previous_webhook_secret_until = Some(now + time::Duration::hours(1));
        c.webhook_secret = Some(webhook_secret());
        let new = c.webhook_secret.clone().expect("secret");
        assert_ne!(new, old);
        assert_eq!(c.webhook_secrets(now), vec![new.as_str(), old.as_str()]);
        assert_eq!(c.webhook_secrets(now + time::Duration::hours(1)), vec![new.as_str()]);
    }
}
