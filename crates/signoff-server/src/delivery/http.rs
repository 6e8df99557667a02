//! What the callback channels (webhooks, back-channel logout) share: the client's current URL
//! for the channel, the URL checked again just now (SSRF) and its addresses pinned, no
//! redirects, a timeout, and the answer classified and logged.

use signoff_core::clients::RegisteredClient;
use signoff_core::outbox::{Attempt, Delivery};
use std::time::Instant;

use super::TIMEOUT;
use crate::app::AppState;
use crate::callback;

/// A callback channel: where it sends, and what it sends.
pub(super) trait Channel {
    /// What a refusal means, for the operator's log.
    const REFUSED: &'static str;
    /// The URL the client has now for this channel (a delivery to any other is abandoned: the
    /// URL was dropped after a `410`, or changed, since it was written).
    fn url<'a>(&'a self, client: &'a RegisteredClient) -> Option<&'a str>;
    /// The request to send, or the outcome without sending.
    fn request(
        &self,
        state: &AppState,
        d: &Delivery,
        client: &RegisteredClient,
        http: reqwest::Client,
        url: url::Url,
    ) -> Result<reqwest::RequestBuilder, Attempt>;
}

/// One attempt through `channel`; `None` when the claim would run out before the receiver's
/// time to answer.
pub(super) async fn send<C: Channel>(state: &AppState, d: &Delivery, send_by: Instant, channel: &C) -> Option<Attempt> {
    let authority = state.authority();
    let client = match authority.delivery_client(d).await {
        Ok(Some(client)) => client,
        Ok(None) => return Some(Attempt::Abandoned),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a delivery's client");
            return Some(Attempt::later(None));
        }
    };
    let (url, pinned) = match callback::checked(&d.url, state.config().allow_private_callbacks).await {
        Ok(checked) => checked,
        Err(callback::CallbackError::Unresolvable) => {
            return Some(Attempt::later(Some("the callback's host name does not resolve")));
        }
        Err(e) => {
            tracing::warn!(delivery = %d.id, url = %redact(&d.url), error = %e, "callback URL refused at delivery");
            return Some(Attempt::Abandoned);
        }
    };
    if channel.url(&client) != Some(d.url.as_str()) {
        return Some(Attempt::Abandoned);
    }
    let Some(http) = callback::pinned_client(&url, &pinned, TIMEOUT) else { return Some(Attempt::later(None)) };
    let request = match channel.request(state, d, &client, http, url) {
        Ok(request) => request,
        Err(outcome) => return Some(outcome),
    };
    // Checked again here: the lookups above may have taken a while.
    if Instant::now() >= send_by {
        return None;
    }
    let started = Instant::now();
    let sent = request.send().await;
    let outcome = match &sent {
        Ok(res) if res.status().is_success() => "delivered",
        Ok(_) => "refused",
        Err(_) => "unreachable",
    };
    state.metrics().delivery(outcome, started.elapsed());
    Some(match sent {
        Ok(res) => {
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, authority.now()));
            let status = res.status().as_u16();
            let mut attempt = Attempt::of_status(status, retry_after);
            if let Attempt::Refused { why, .. } = &mut attempt {
                *why = refusal_reason(res).await;
                // Most often a configuration fault (a receiver expecting another issuer or
                // client id): said plainly, with the receiver's own words.
                let what = C::REFUSED;
                tracing::warn!(delivery = %d.id, client_id = %d.client_id, event = %d.event, status, why = why.as_deref().unwrap_or("(no reason given)"), "{what}: check the receiver's configuration");
            } else {
                tracing::info!(delivery = %d.id, client_id = %d.client_id, event = %d.event, status, "delivery attempted");
            }
            attempt
        }
        Err(e) => {
            let why = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            tracing::info!(delivery = %d.id, client_id = %d.client_id, why, "delivery not answered; retrying later");
            Attempt::later(Some(why))
        }
    })
}

/// Why a receiver refused a delivery, in its own words: the `error_description` (or `error`) of
/// an OAuth-style JSON error (OIDC Back-Channel Logout 2.8), else the start of its text; at most
/// 200 printable characters, read from at most 4 KiB of the body.
async fn refusal_reason(mut res: reqwest::Response) -> Option<String> {
    const READ: usize = 4096;
    let mut body = Vec::new();
    while body.len() < READ {
        match res.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(READ - body.len())]),
            _ => break,
        }
    }
    reason_in(&body)
}

/// The reason a refusal's body gives (see [`refusal_reason`]).
fn reason_in(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let said = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let field = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_owned);
            // OAuth's form (OIDC Back-Channel Logout 2.8), then RFC 8935 §2.3's.
            field("error_description").or_else(|| field("message")).or_else(|| field("error")).or_else(|| {
                match (field("err"), field("description")) {
                    (Some(err), Some(description)) => Some(format!("{err}: {description}")),
                    (err, description) => err.or(description),
                }
            })
        })
        .unwrap_or_else(|| text.into_owned());
    // Printable text only (no control, direction or zero-width characters), and nothing shaped
    // like a token a receiver might echo back.
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
    };
    let clean: String = said
        .chars()
        .map(|c| if invisible(c) { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .map(|word| if word.contains("eyJ") || word.contains("whsec_") { "[redacted]" } else { word })
        .collect::<Vec<_>>()
        .join(" ");
    let short: String = clean.chars().take(200).collect();
    (!short.is_empty()).then_some(short)
}

/// A `Retry-After` value (RFC 9110: seconds, or an HTTP date) as a wait from `now`.
fn retry_after(value: &str, now: time::OffsetDateTime) -> Option<time::Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u32>() {
        return Some(time::Duration::seconds(i64::from(seconds)));
    }
    let at = time::OffsetDateTime::from(httpdate::parse_http_date(value).ok()?);
    Some((at - now).max(time::Duration::ZERO))
}

/// A URL for the logs: its query (which may carry a token) left out.
fn redact(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refusal_reason_is_the_receivers_own_words_printable_and_short() {
        let said = |body: &str| super::reason_in(body.as_bytes());
        assert_eq!(
            said(r#"{"error":"invalid_request","error_description":"wrong iss"}"#).as_deref(),
            Some("wrong iss")
        );
        assert_eq!(said(r#"{"error":"invalid_request"}"#).as_deref(), Some("invalid_request"));
        assert_eq!(
            said(r#"{"err":"invalid_audience","description":"not us"}"#).as_deref(),
            Some("invalid_audience: not us"),
            "RFC 8935's error body"
        );
        assert_eq!(said("Bad\r\nRequest\u{202e}txt.exe\u{200b}").as_deref(), Some("Bad Request txt.exe"));
        assert_eq!(said("token eyJhbGciOi.x.y refused").as_deref(), Some("token [redacted] refused"));
        assert_eq!(said(&"x".repeat(500)).map(|s| s.chars().count()), Some(200));
        assert_eq!(said("   "), None);
    }

    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let now = time::OffsetDateTime::from_unix_timestamp(784_111_777).expect("time"); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(" 120 ", now), Some(time::Duration::seconds(120)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now), Some(time::Duration::seconds(120)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(time::Duration::ZERO), "a past date: now");
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(retry_after("soon", now), None);
    }
}
