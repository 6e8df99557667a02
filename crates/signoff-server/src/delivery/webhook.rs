//! Standard Webhooks: the notification as JSON, signed with the client's webhook secret (with
//! both during a rotation's overlap).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use signoff_core::clients::{EndpointKind, RegisteredClient};
use signoff_core::outbox::{Attempt, Delivery};

use super::http::Channel;
use crate::app::AppState;

pub(super) struct Webhook;

impl Channel for Webhook {
    const REFUSED: &'static str = "the webhook receiver refused the notification";

    fn url<'a>(&'a self, client: &'a RegisteredClient) -> Option<&'a str> {
        client.endpoint(EndpointKind::Webhook)
    }

    fn request(
        &self,
        state: &AppState,
        d: &Delivery,
        client: &RegisteredClient,
        http: reqwest::Client,
        url: url::Url,
    ) -> Result<reqwest::RequestBuilder, Attempt> {
        let now = state.authority().now();
        let timestamp = now.unix_timestamp();
        // During a rotation, signed with the new secret and the old one.
        let signatures: Option<Vec<String>> = client
            .webhook_secrets(now)
            .into_iter()
            .map(|secret| sign_webhook(secret, &d.id, timestamp, &d.payload))
            .collect();
        let Some(signature) = signatures.filter(|s| !s.is_empty()).map(|s| s.join(" ")) else {
            return Err(Attempt::Abandoned);
        };
        Ok(http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone()))
    }
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under a `whsec_` secret
/// (Standard Webhooks).
pub fn sign_webhook(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signatures_follow_the_standard() {
        // The Standard Webhooks specification's example secret, id, timestamp and payload.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign_webhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(sign_webhook("not_whsec", "id", 1, body), None);
    }
}
