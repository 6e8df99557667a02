//! The authorization endpoint (OpenID Connect Core §3.1.2), `GET` or a form `POST`: the code flow
//! only, with PKCE S256 required, `state`, `nonce`, `prompt` (`none`, `login`), `max_age`, and
//! the `iss` response parameter (RFC 9207).
//!
//! An unknown client, or a `redirect_uri` that is not exactly one the client registered, gets
//! an error page and never a redirect. Every other refusal goes back to the registered URI as
//! `error` with `state` and `iss`. A browser already signed in to signoff is not asked for its
//! password again (single sign-on) unless `prompt=login` or `max_age` says so; admin-registered
//! clients are first-party, so there is no consent screen.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use signoff_core::clients::{EndpointKind, GrantType, RegisteredClient};
use signoff_core::{CodeRequest, SessionContext};
use url::Url;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::routes::current_session;

/// The longest `state` or `nonce` kept (they travel in URLs and the code's row).
const MAX_ECHOED: usize = 512;

/// The request's parameters, each once; `repeated` names the first given twice.
struct Params {
    map: BTreeMap<String, String>,
    repeated: Option<String>,
}

impl Params {
    fn of_query(query: &str) -> Self {
        let mut params = Params { map: BTreeMap::new(), repeated: None };
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if params.map.contains_key(k.as_ref()) {
                params.repeated.get_or_insert_with(|| k.to_string());
            } else {
                params.map.insert(k.into_owned(), v.into_owned());
            }
        }
        params
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// This request as a `GET` of the authorization endpoint once the browser has signed in:
    /// `prompt=login` taken out and `login_after` (now) put in, so that the password entered
    /// meanwhile answers both `prompt=login` and `max_age` however long the way back takes.
    fn again_after_login(&self, now: i64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.map {
            match k.as_str() {
                "prompt" => {
                    let rest: Vec<&str> = v.split(' ').filter(|p| *p != "login" && !p.is_empty()).collect();
                    if !rest.is_empty() {
                        query.append_pair(k, &rest.join(" "));
                    }
                }
                "login_after" => {}
                _ => {
                    query.append_pair(k, v);
                }
            }
        }
        query.append_pair("login_after", &now.to_string());
        format!("/oidc/authorize?{}", query.finish())
    }

    fn prompts(&self, value: &str) -> bool {
        self.get("prompt").is_some_and(|p| p.split(' ').any(|v| v == value))
    }
}

pub(super) async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    respond(&state, &headers, Params::of_query(query.as_deref().unwrap_or_default())).await
}

pub(super) async fn authorize_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Input(form): Input<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    respond(&state, &headers, Params { map: form, repeated: None }).await
}

/// A refusal sent back to the client's registered redirect URI.
struct Refusal<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl Refusal<'_> {
    fn with(&self, error: &str, description: &str) -> Response {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(state) = self.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", self.issuer));
        found(self.redirect_uri, &pairs)
    }
}

/// `302` to `uri` with `pairs` added to its query; never cached.
pub(super) fn found(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let location = match with_query(uri, pairs) {
        Ok(location) => location,
        Err(e) => return e.into_response(),
    };
    let mut res = (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `uri`, a registered URI, with `pairs` added to its query.
pub(super) fn with_query(uri: &str, pairs: &[(&str, &str)]) -> Result<String, ApiError> {
    // Registered URIs were parsed when they were registered.
    let mut url =
        Url::parse(uri).map_err(|_| ApiError::Internal(format!("a registered redirect URI does not parse: {uri}")))?;
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    Ok(url.to_string())
}

async fn respond(state: &AppState, headers: &HeaderMap, params: Params) -> ApiResult<Response> {
    let authority = state.authority();
    // Until the client and its redirect URI are known good, refusals are pages: a redirect to
    // an unchecked URI would make signoff an open redirector.
    let refused_here = |what: &str| ApiError::BadRequest("invalid_request", what.to_owned());
    if let Some(name) = params.repeated.as_deref().filter(|n| matches!(*n, "client_id" | "redirect_uri")) {
        return Err(refused_here(&format!("{name} is given more than once")));
    }
    let client_id = params.get("client_id").ok_or_else(|| refused_here("client_id is required"))?;
    let client: RegisteredClient = authority
        .client(client_id)
        .await?
        .ok_or_else(|| refused_here("no client is registered with this client_id"))?;
    let redirect_uri = params.get("redirect_uri").ok_or_else(|| refused_here("redirect_uri is required"))?;
    if !client.endpoints_of(EndpointKind::Redirect).any(|r| r == redirect_uri) {
        return Err(refused_here("redirect_uri is not one this client registered"));
    }
    let issuer = state.config().tokens.issuer.as_str();
    let state_param = params.get("state");
    let echoed = state_param.filter(|s| s.len() <= MAX_ECHOED);
    let refuse = Refusal { redirect_uri, state: echoed, issuer };
    if let Some(name) = &params.repeated {
        return Ok(refuse.with("invalid_request", &format!("{name} is given more than once")));
    }
    if state_param.is_some() && echoed.is_none() || params.get("nonce").is_some_and(|n| n.len() > MAX_ECHOED) {
        return Ok(refuse.with("invalid_request", "state and nonce are at most 512 characters"));
    }
    if params.get("request").is_some() {
        return Ok(refuse.with("request_not_supported", "request objects are not supported"));
    }
    if params.get("request_uri").is_some() {
        return Ok(refuse.with("request_uri_not_supported", "request_uri is not supported"));
    }
    if params.get("response_type") != Some("code") {
        return Ok(refuse.with("unsupported_response_type", "only response_type=code is supported"));
    }
    if !params.get("scope").is_some_and(|s| s.split(' ').any(|v| v == "openid")) {
        return Ok(refuse.with("invalid_scope", "scope must include openid"));
    }
    if !client.profile.grant_types.contains(&GrantType::AuthorizationCode) {
        return Ok(refuse.with("unauthorized_client", "this client is not registered for the authorization_code grant"));
    }
    if params.get("code_challenge_method") != Some("S256") {
        return Ok(refuse.with("invalid_request", "PKCE is required, with code_challenge_method=S256"));
    }
    let Some(challenge) = params
        .get("code_challenge")
        .filter(|c| c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    else {
        return Ok(refuse.with("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier"));
    };
    if params.prompts("none") && params.get("prompt").is_some_and(|p| p.split(' ').count() > 1) {
        return Ok(refuse.with("invalid_request", "prompt=none cannot be combined with other values"));
    }
    let max_age = match params.get("max_age").map(str::parse::<u32>) {
        None => None,
        Some(Ok(age)) => Some(i64::from(age)),
        Some(Err(_)) => return Ok(refuse.with("invalid_request", "max_age must be a number of seconds")),
    };
    let login_after = params.get("login_after").and_then(|t| t.parse::<i64>().ok());

    let now = authority.now().unix_timestamp();
    let ctx = current_session(state, headers, true).await?;
    // Signed in since signoff asked for the password (`login_after`, which signoff set when it
    // sent the browser to sign in; an app must check `auth_time` itself all the same), or
    // recently enough for `max_age` and without `prompt=login`.
    let fresh_enough = |ctx: &SessionContext| {
        let auth_time = ctx.session.authenticated_at.unix_timestamp();
        match login_after {
            Some(after) => auth_time >= after,
            None => max_age.is_none_or(|age| now - auth_time <= age) && !params.prompts("login"),
        }
    };
    let Some(ctx) = ctx.filter(fresh_enough) else {
        if params.prompts("none") {
            return Ok(refuse.with("login_required", "the browser is not signed in (or not recently enough)"));
        }
        let back = params.again_after_login(now);
        let login = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("reauth", "1")
            .append_pair("return_to", &back)
            .finish();
        let mut res = (StatusCode::FOUND, [(header::LOCATION, format!("/login?{login}"))]).into_response();
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(res);
    };
    let request = CodeRequest { client: &client, redirect_uri, code_challenge: challenge, nonce: params.get("nonce") };
    let code = match authority.issue_code(&ctx, request).await {
        Ok(code) => code,
        // The session ended meanwhile: as if it had not been there.
        Err(signoff_core::CoreError::Unauthenticated) => {
            return Ok(refuse.with("login_required", "the browser's session ended"));
        }
        Err(e) => return Err(e.into()),
    };
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = echoed {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    Ok(found(redirect_uri, &pairs))
}
