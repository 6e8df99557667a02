//! OIDC Back-Channel Logout 1.0: a logout token (`typ: logout+jwt`) for the ended session,
//! posted as a form.

use signoff_core::clients::{EndpointKind, RegisteredClient};
use signoff_core::outbox::{Attempt, Delivery};

use super::http::Channel;
use crate::app::AppState;

pub(super) struct BackchannelLogout;

impl Channel for BackchannelLogout {
    const REFUSED: &'static str = "the back-channel logout receiver refused the logout token";

    fn url<'a>(&'a self, client: &'a RegisteredClient) -> Option<&'a str> {
        client.endpoint(EndpointKind::BackchannelLogout)
    }

    fn request(
        &self,
        state: &AppState,
        d: &Delivery,
        client: &RegisteredClient,
        http: reqwest::Client,
        url: url::Url,
    ) -> Result<reqwest::RequestBuilder, Attempt> {
        let ids: serde_json::Value = serde_json::from_str(&d.payload).unwrap_or_default();
        let (Some(sub), Some(sid)) = (ids["sub"].as_str(), ids["sid"].as_str()) else {
            return Err(Attempt::Abandoned);
        };
        let Some(token) = state.authority().logout_token(client, sub, sid, &d.id) else {
            return Err(Attempt::later(None));
        };
        Ok(http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cache-control", "no-store")
            .body(format!("logout_token={token}")))
    }
}
