//! Errors as pages for browsers: a navigation or a form post (`Accept: text/html`) that ends in
//! an error gets an HTML page with the same status and headers, written for people; API
//! clients keep the JSON. And a browser that reached this server under another host name of the
//! same address is sent to the public URL, where its cookies and the origin check work.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::config::Config;
use crate::error::ErrorText;
use crate::html::{esc, page};

/// What the edge keeps of a request to answer it as a page: only for browsers.
pub struct Browser {
    cookie: Option<HeaderValue>,
    origin: Option<String>,
    host: Option<String>,
    /// The path and query, for the way to the public URL.
    target: String,
    navigation: bool,
}

impl Browser {
    /// `Some` for a browser that wants HTML (not for API clients, `fetch` or event streams).
    pub fn of(method: &Method, uri: &axum::http::Uri, headers: &HeaderMap) -> Option<Self> {
        if !crate::extract::Wants::of(headers).html {
            return None;
        }
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Some(Self {
            cookie: headers.get(header::COOKIE).cloned(),
            origin: text(header::ORIGIN),
            host: text(header::HOST),
            target: uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            navigation: matches!(*method, Method::GET | Method::HEAD),
        })
    }

    /// A navigation to another host name of this very server (the same port: `127.0.0.1:8080`
    /// for a public `localhost:8080`), sent to the public URL. Behind a proxy the port differs
    /// (or the proxy keeps the public host), so nothing is redirected there.
    pub fn elsewhere(&self, config: &Config) -> Option<Response> {
        let host = self.host.as_deref()?;
        let public = &config.public_url;
        let public_host = public.host_str()?;
        let public_port = public.port_or_known_default()?;
        let (name, port) = split_host(host)?;
        if !self.navigation || port != public_port || name.eq_ignore_ascii_case(public_host.trim_matches(['[', ']'])) {
            return None;
        }
        let to = format!("{}{}", config.public_origin, self.target);
        let mut res = (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response();
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(res)
    }

    /// The error response `res` as a page, if it is one of ours in JSON.
    pub async fn page(&self, state: &AppState, res: Response) -> Response {
        let status = res.status();
        let json =
            res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !(status.is_client_error() || status.is_server_error()) || !json {
            return res;
        }
        let Some(text) = res.extensions().get::<ErrorText>().cloned() else { return res };
        let config = state.config();
        let mut headers = HeaderMap::new();
        if let Some(cookie) = &self.cookie {
            headers.insert(header::COOKIE, cookie.clone());
        }
        let signed_in = crate::routes::current_session(state, &headers, false).await.ok().flatten();
        let (title, body) = explain(status, &text, self.origin.as_deref(), config, signed_in.is_some());
        let body = format!("<h1>{}</h1>{body}", esc(title));
        let mut html = page(status, title, signed_in.as_ref().map(|c| c.user.email.as_str()), &body);
        // What the error said in headers still holds (Retry-After, Allow, WWW-Authenticate,
        // cookies cleared or set).
        for name in [header::RETRY_AFTER, header::ALLOW, header::WWW_AUTHENTICATE] {
            if let Some(v) = res.headers().get(&name) {
                html.headers_mut().insert(name, v.clone());
            }
        }
        for v in res.headers().get_all(header::SET_COOKIE) {
            html.headers_mut().append(header::SET_COOKIE, v.clone());
        }
        html
    }
}

/// `host[:port]` of a Host header, the port defaulting to 80.
fn split_host(host: &str) -> Option<(&str, u16)> {
    if let Some(rest) = host.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').map_or(Some(80), |p| p.parse().ok())?;
        return Some((name, port));
    }
    match host.rsplit_once(':') {
        Some((name, port)) => Some((name, port.parse().ok()?)),
        None => Some((host, 80)),
    }
}

/// A title and a body for the page of an error.
fn explain(
    status: StatusCode,
    e: &ErrorText,
    origin: Option<&str>,
    config: &Config,
    signed_in: bool,
) -> (&'static str, String) {
    let home = if signed_in {
        "<p><a href=\"/app\">Go to the app</a></p>"
    } else {
        "<p><a href=\"/login\">Go to sign-in</a></p>"
    };
    let said = |title: &'static str, text: &str| {
        (title, format!("<section class=\"card\"><p>{}</p>{home}</section>", esc(text)))
    };
    match (status, e.code) {
        (StatusCode::FORBIDDEN, "csrf") => match origin {
            Some(o) if o != config.public_origin => (
                "Open this site at its own address",
                format!(
                    "<section class=\"card\"><p>This page was opened at <strong>{}</strong>, but this server\u{2019}s \
                     address is <strong>{public}</strong>, and forms are only taken from pages there.</p>\
                     <p><a href=\"{public}/login\">Continue at {public}</a></p></section>",
                    esc(o),
                    public = esc(&config.public_origin),
                ),
            ),
            _ => said(
                "This form could not be sent",
                "The form was not sent from one of this site\u{2019}s current pages (it may have been open for a \
                 long time, or you signed in again meanwhile). Go back, reload the page, and try again.",
            ),
        },
        (StatusCode::NOT_FOUND, _) => {
            said("Page not found", "There is no page at this address. Check the address, or start again from the app.")
        }
        (StatusCode::METHOD_NOT_ALLOWED, _) => said(
            "This page cannot be opened like that",
            "This address only takes forms sent from the site\u{2019}s own pages.",
        ),
        (StatusCode::UNAUTHORIZED, _) => {
            said("Please sign in", "You are not signed in, or your session has ended. Sign in to continue.")
        }
        (StatusCode::TOO_MANY_REQUESTS, _) => {
            said("Too many attempts", "There have been too many attempts. Wait a little, then try again.")
        }
        (StatusCode::SERVICE_UNAVAILABLE, _) => {
            said("Try again in a moment", "The server is busy right now. Nothing was changed; try again in a moment.")
        }
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            said("Too much to send", "What the form sent is larger than this server accepts.")
        }
        (s, _) if s.is_server_error() => said(
            "Something went wrong",
            "Something went wrong on the server, and nothing was changed. Try again; if it keeps happening, tell the site\u{2019}s operators.",
        ),
        _ => (
            "This did not work",
            format!("<section class=\"card\"><p>{}</p>{home}</section>", esc(&sentence(&e.message))),
        ),
    }
}

/// A message as a sentence: a capital first, a full stop last.
pub fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_split_into_name_and_port() {
        assert_eq!(split_host("127.0.0.1:8080"), Some(("127.0.0.1", 8080)));
        assert_eq!(split_host("[::1]:8080"), Some(("::1", 8080)));
        assert_eq!(split_host("example.com"), Some(("example.com", 80)));
        assert_eq!(split_host("example.com:x"), None);
        assert_eq!(sentence("e-mail or password is wrong"), "E-mail or password is wrong.");
    }
}
