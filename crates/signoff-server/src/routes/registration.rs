//! `POST /admin/clients`: what a client registers, read and checked. The names are those of
//! OpenID Connect Dynamic Client Registration 1.0 and its logout extensions (`client_name`,
//! `redirect_uris`, `grant_types`, …), beside the ones signoff had before (`name`,
//! `webhook_url`). A refusal names the field: `400 invalid_redirect_uri` for a browser URL,
//! `400 invalid_client_metadata` for the rest (RFC 7591 §3.2.2), `422 invalid_callback` for a
//! URL signoff would call (the SSRF guard, as before).

use serde::Deserialize;
use signoff_core::clients::{
    ClientProfile, Endpoint, EndpointKind, GrantType, SigningAlg, TokenAuthMethod, check_browser_uri,
};

use crate::app::AppState;
use crate::callback;
use crate::error::{ApiError, ApiResult};

/// Longest client name kept.
const MAX_NAME_CHARS: usize = 200;
/// Most redirect URIs (and post-logout redirect URIs) one client registers.
const MAX_BROWSER_URIS: usize = 20;

/// The registration request.
#[derive(Debug, Deserialize)]
pub(super) struct Registration {
    name: Option<String>,
    client_name: Option<String>,
    backchannel_logout_uri: Option<String>,
    webhook_url: Option<String>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    frontchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: Option<bool>,
    frontchannel_logout_session_required: Option<bool>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    id_token_signed_response_alg: Option<String>,
    /// May end every credential of any user (Global Token Revocation).
    global_token_revocation: Option<bool>,
    /// May configure Shared Signals streams: told of every user's security events.
    shared_signals: Option<bool>,
}

/// A registration checked: what the authority stores.
pub(super) struct Checked {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub profile: ClientProfile,
}

fn metadata(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest("invalid_client_metadata", message.into())
}

impl Registration {
    pub(super) async fn check(self, state: &AppState) -> ApiResult<Checked> {
        let name = match (self.client_name, self.name) {
            (Some(a), Some(b)) if a.trim() != b.trim() => {
                return Err(metadata("client_name and name differ: give one"));
            }
            (a, b) => a.or(b).map(|n| n.trim().to_owned()).unwrap_or_default(),
        };
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!("name: 1 to {MAX_NAME_CHARS} printable characters")));
        }
        let mut endpoints = Vec::new();
        for (kind, field, raw) in [
            (EndpointKind::Redirect, "redirect_uris", self.redirect_uris.unwrap_or_default()),
            (
                EndpointKind::PostLogoutRedirect,
                "post_logout_redirect_uris",
                self.post_logout_redirect_uris.unwrap_or_default(),
            ),
            (
                EndpointKind::FrontchannelLogout,
                "frontchannel_logout_uri",
                self.frontchannel_logout_uri.into_iter().collect(),
            ),
        ] {
            if raw.len() > MAX_BROWSER_URIS {
                return Err(ApiError::BadRequest(
                    "invalid_redirect_uri",
                    format!("{field}: at most {MAX_BROWSER_URIS}"),
                ));
            }
            for uri in raw.iter().filter(|u| !u.trim().is_empty()) {
                let uri = check_browser_uri(uri)
                    .map_err(|e| ApiError::BadRequest("invalid_redirect_uri", format!("{field}: {uri}: {e}")))?;
                // What a browser is sent to is the URL as parsed: it must be the one registered
                // (a port out of range, an IPv4 address out of range, dot segments or case that
                // parsing changes are refused here, not found out at sign-in).
                if !parses_as_written(&uri) {
                    return Err(ApiError::BadRequest(
                        "invalid_redirect_uri",
                        format!(
                            "{field}: {uri}: not a URL as browsers read it (write it as it is sent: host in lower case, a port up to 65535, no dot segments)"
                        ),
                    ));
                }
                endpoints.push(Endpoint::new(kind, uri));
            }
        }
        let signs_in = endpoints.iter().any(|e| e.kind == EndpointKind::Redirect);
        if !signs_in && endpoints.iter().any(|e| e.kind != EndpointKind::Redirect) {
            return Err(metadata("post_logout_redirect_uris and frontchannel_logout_uri need redirect_uris"));
        }
        // Front-Channel Logout 1.0 §2: its scheme, host and port are those of a redirect URI.
        let origin = |uri: &str| url::Url::parse(uri).map(|u| u.origin().ascii_serialization()).ok();
        if let Some(fc) = endpoints.iter().find(|e| e.kind == EndpointKind::FrontchannelLogout) {
            let same = endpoints
                .iter()
                .filter(|e| e.kind == EndpointKind::Redirect)
                .any(|r| origin(&r.url).is_some() && origin(&r.url) == origin(&fc.url));
            if !same {
                return Err(metadata(format!(
                    "frontchannel_logout_uri: {}: must have the scheme, host and port of one of the redirect_uris",
                    fc.url
                )));
            }
        }
        let mut profile = if signs_in { ClientProfile::relying_party() } else { ClientProfile::service() };
        if let Some(types) = self.response_types {
            if types.iter().any(|t| t != "code") {
                return Err(metadata("response_types: only \"code\" (the authorization code flow)"));
            }
            if types.is_empty() == signs_in {
                return Err(metadata(if signs_in {
                    "response_types: a client with redirect_uris uses \"code\""
                } else {
                    "response_types: \"code\" needs redirect_uris"
                }));
            }
        }
        if let Some(grants) = self.grant_types {
            let mut parsed = Vec::new();
            for g in &grants {
                parsed.push(GrantType::parse(g).ok_or_else(|| {
                    metadata(format!(
                        "grant_types: {g:?} is not one of authorization_code, refresh_token, client_credentials"
                    ))
                })?);
            }
            parsed.sort();
            parsed.dedup();
            profile.grant_types = parsed;
        }
        if profile.allows(GrantType::AuthorizationCode) != signs_in {
            return Err(metadata(if signs_in {
                "redirect_uris are for the authorization_code grant, which grant_types leaves out"
            } else {
                "the authorization_code grant needs redirect_uris"
            }));
        }
        if profile.allows(GrantType::RefreshToken) && !signs_in {
            return Err(metadata("the refresh_token grant comes with authorization_code"));
        }
        if let Some(method) = self.token_endpoint_auth_method {
            profile.token_endpoint_auth_method = TokenAuthMethod::parse(&method).ok_or_else(|| {
                metadata(format!(
                    "token_endpoint_auth_method: {method:?} is not client_secret_basic or client_secret_post"
                ))
            })?;
        }
        if let Some(alg) = self.id_token_signed_response_alg {
            profile.id_token_signed_response_alg = SigningAlg::parse(&alg).ok_or_else(|| {
                metadata(format!("id_token_signed_response_alg: {alg:?} is not RS256, ES256 or EdDSA"))
            })?;
        }
        // Both default to false (the registration metadata's defaults); signoff sends `sid` (and
        // `iss` to front-channel URLs) whatever the client registered.
        profile.backchannel_logout_session_required = self.backchannel_logout_session_required.unwrap_or(false);
        profile.frontchannel_logout_session_required = self.frontchannel_logout_session_required.unwrap_or(false);
        profile.global_token_revocation = self.global_token_revocation.unwrap_or(false);
        profile.shared_signals = self.shared_signals.unwrap_or(false);
        // Last, as it resolves host names: the URLs signoff will call, under the SSRF guard.
        for (kind, field, raw) in [
            (EndpointKind::BackchannelLogout, "backchannel_logout_uri", self.backchannel_logout_uri),
            (EndpointKind::Webhook, "webhook_url", self.webhook_url),
        ] {
            let Some(raw) = raw.filter(|s| !s.trim().is_empty()) else { continue };
            let url = callback::check(raw.trim(), state.config().allow_private_callbacks)
                .await
                .map_err(|e| ApiError::Unprocessable("invalid_callback", format!("{field}: {e}")))?;
            endpoints.push(Endpoint::new(kind, url.to_string()));
        }
        Ok(Checked { name, endpoints, profile })
    }
}

/// Whether a browser URL parses to itself (but for the `/` a URL without a path gets).
fn parses_as_written(raw: &str) -> bool {
    let Ok(parsed) = url::Url::parse(raw) else { return false };
    let after_scheme = raw.find("://").map_or(0, |i| i + 3);
    let authority_end = raw[after_scheme..].find(['/', '?', '#']).map_or(raw.len(), |i| after_scheme + i);
    let with_root = format!("{}/{}", &raw[..authority_end], &raw[authority_end..]);
    let written = if raw[authority_end..].starts_with('/') { raw } else { with_root.as_str() };
    parsed.as_str() == written
}
