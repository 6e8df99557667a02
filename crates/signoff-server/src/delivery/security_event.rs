//! Shared Signals push (RFC 8935): a Security Event Token `POST`ed as
//! `application/secevent+jwt` to the stream's endpoint, with the `Authorization` header the
//! receiver asked for; `202` accepts. A paused stream's events are held (not counted as
//! attempts), a disabled or deleted stream's dropped.

use signoff_core::clients::RegisteredClient;
use signoff_core::outbox::{Attempt, Delivery};
use signoff_core::signals::{DeliveryMethod, SignalStream, StreamStatus};
use std::time::Instant;

use super::http::{self, Channel};
use crate::app::AppState;

struct Push {
    stream: SignalStream,
}

/// One attempt at a pushed SET, decided on the stream as it is now.
pub(super) async fn send(state: &AppState, d: &Delivery, send_by: Instant) -> Option<Attempt> {
    // The stream is read from the row (signing waits until the SET is sent).
    let Some((stream_id, _)) = signoff_core::signals::emit::read_payload(&d.payload) else {
        tracing::warn!(delivery = %d.id, "a security event's row is damaged");
        return Some(Attempt::Abandoned);
    };
    let stream = match state.authority().signal_stream(&d.client_id, &stream_id).await {
        Ok(stream) => stream,
        Err(signoff_core::CoreError::NotFound) => return Some(Attempt::Skipped),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a security event's stream");
            return Some(Attempt::later(None));
        }
    };
    match stream.status {
        StreamStatus::Paused => return Some(Attempt::Held),
        StreamStatus::Disabled => return Some(Attempt::Skipped),
        StreamStatus::Enabled if stream.method != DeliveryMethod::Push => return Some(Attempt::Skipped),
        StreamStatus::Enabled => {}
    }
    http::send(state, d, send_by, &Push { stream }).await
}

impl Channel for Push {
    const REFUSED: &'static str = "the Shared Signals receiver refused the security event";

    fn url<'a>(&'a self, client: &'a RegisteredClient) -> Option<&'a str> {
        // The stream's endpoint now: a SET written for an endpoint since replaced is not sent.
        self.stream.endpoint_url.as_deref().filter(|_| self.stream.client_id == client.id)
    }

    fn request(
        &self,
        state: &AppState,
        d: &Delivery,
        _client: &RegisteredClient,
        http: reqwest::Client,
        url: url::Url,
    ) -> Result<reqwest::RequestBuilder, Attempt> {
        let Some((_, set)) = state.authority().security_event_token(d) else {
            return Err(Attempt::later(Some("the event could not be signed")));
        };
        let mut request = http
            .post(url)
            .header("content-type", "application/secevent+jwt")
            .header("accept", "application/json")
            .body(set);
        if let Some(auth) = &self.stream.authorization_header {
            request = request.header("authorization", auth);
        }
        Ok(request)
    }
}
