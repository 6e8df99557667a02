//! OpenID Connect Front-Channel Logout 1.0: when a browser's sign-in ends here, the page that
//! says so loads each of its apps' `frontchannel_logout_uri` in a hidden frame, with `iss` and
//! `sid` (§2), so an app whose cookies the frame carries ends its own session. In addition to
//! back-channel logout, never instead: a frame loads only while the page is open, and browsers
//! that keep third-party cookies from frames (most, by default) make it reach nobody.
//!
//! The page goes on by itself to where the browser was headed once every frame has loaded (the
//! window's `load` waits for frames) or after [`FRAME_WAIT_MS`]; without script, a link.
//!
//! A form logout or RP-initiated logout answers with the page itself. A logout by script
//! (`signoff.js`) is answered in JSON with `frontchannel_logout`, the URL of
//! `GET /oidc/frontchannel`: the same page, from a ticket signed for a minute that names the
//! ended sign-in and its apps, so the page frames nothing else.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use signoff_core::clients::EndpointKind;
use signoff_core::secret::SigninId;

use crate::app::AppState;
use crate::html::{self, esc};
use crate::redirect;

/// How long the page waits for the frames before going on (milliseconds; `demo.js` reads it).
const FRAME_WAIT_MS: u32 = 3000;

/// One frame: an app's front-channel logout URL for the ended sign-in.
pub(crate) struct Frame {
    client_id: String,
    name: String,
    url: String,
    origin: String,
}

/// The frames for `signin`, this browser's sign-in, among what a logout ended (`signed_out`: a
/// logout of every device ends other browsers' sign-ins too, whose frames would reach nobody).
/// Read after the logout committed: an app that cannot be read now gets no frame (its
/// back-channel logout is on its way), and the browser is sent on all the same.
pub(crate) async fn frames(state: &AppState, signed_out: &[(SigninId, String)], signin: &SigninId) -> Vec<Frame> {
    let issuer = &state.config().tokens.issuer;
    let mut out = Vec::new();
    for (ended, client_id) in signed_out {
        if ended != signin {
            continue;
        }
        let client = match state.authority().client(client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(client_id = %client_id, error = %e, "front-channel logout: the app cannot be read now; no frame");
                continue;
            }
        };
        let Some(uri) = client.endpoint(EndpointKind::FrontchannelLogout) else { continue };
        let Ok(parsed) = url::Url::parse(uri) else { continue };
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("iss", issuer)
            .append_pair("sid", ended.as_str())
            .finish();
        let sep = if uri.contains('?') { '&' } else { '?' };
        out.push(Frame {
            client_id: client.id.clone(),
            name: client.name.clone(),
            url: format!("{uri}{sep}{query}"),
            origin: parsed.origin().ascii_serialization(),
        });
    }
    out
}

/// The signed-out page with `frames`, going on to `next` (or staying, with a link to sign in).
pub(crate) fn page(frames: &[Frame], next: Option<&str>) -> Response {
    let iframes: String = frames
        .iter()
        .map(|f| {
            format!(
                "<iframe src=\"{}\" title=\"Signing out of {}\" width=\"0\" height=\"0\" hidden></iframe>",
                esc(&f.url),
                esc(&f.name)
            )
        })
        .collect();
    let names: Vec<String> = frames.iter().map(|f| format!("<strong>{}</strong>", esc(&f.name))).collect();
    let onward = match next {
        Some(to) => format!(
            "<div data-frontchannel-next=\"{}\" data-frontchannel-wait=\"{FRAME_WAIT_MS}\"></div>\
             <p><a href=\"{0}\">Continue</a></p>",
            esc(to)
        ),
        None => "<p><a href=\"/login\">Sign in again</a></p>".to_owned(),
    };
    let body = format!(
        "<h1>You are signed out</h1><p>You are signed out of signoff and of the applications you signed in to \
         with it; telling {}.</p>{onward}{iframes}",
        names.join(", ")
    );
    let mut res = html::page(StatusCode::OK, "Signed out", None, &body);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut origins: Vec<&str> = frames.iter().map(|f| f.origin.as_str()).collect();
    origins.sort_unstable();
    origins.dedup();
    html::with_frames(res, &origins)
}

/// Where a script sends the browser after its logout, when the ended sign-in has apps with
/// front-channel logouts: the signed-out page, from a ticket (`None` without frames).
pub(crate) fn page_url(state: &AppState, frames: &[Frame], signin: &SigninId) -> Option<String> {
    if frames.is_empty() {
        return None;
    }
    let apps: Vec<String> = frames.iter().map(|f| f.client_id.clone()).collect();
    let ticket = state.authority().frontchannel_ticket(signin, &apps)?;
    Some(format!("{}/oidc/frontchannel?t={ticket}", state.config().public_origin))
}

/// `GET /oidc/frontchannel?t=…&next=…`: the signed-out page for a ticket, going on to `next`
/// (checked as a `return_to`). A ticket that is not one (or is over a minute old) frames
/// nothing: the browser goes straight on; so does a browser that did not come from one of
/// signoff's own pages (`Sec-Fetch-Site` other than `same-origin`, or none), so that no other
/// site can make signoff's origin load an app's front-channel logout with a ticket of its own.
pub(super) async fn signed_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut ticket = None;
    let mut next = None;
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "t" if ticket.is_none() => ticket = Some(v.into_owned()),
            "next" if next.is_none() => next = Some(v.into_owned()),
            _ => {}
        }
    }
    // Checked as a return_to: no scheme but http(s), no `//`, no control characters, so the
    // redirect below always has a valid Location.
    let to = redirect::validate(next.as_deref(), "/login?logged_out=1", state.config());
    let ours = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"same-origin");
    let read = ticket
        .filter(|t| ours && t.len() <= MAX_TICKET_LEN)
        .and_then(|t| state.authority().read_frontchannel_ticket(&t));
    let frames = match read {
        Some((signin, apps)) => {
            let ended: Vec<(SigninId, String)> = apps.into_iter().map(|a| (signin.clone(), a)).collect();
            frames(&state, &ended, &signin).await
        }
        None => Vec::new(),
    };
    let mut res = if frames.is_empty() { Redirect::to(&to).into_response() } else { page(&frames, Some(&to)) };
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Longest ticket read (ours are a few hundred bytes).
const MAX_TICKET_LEN: usize = 4096;
