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
    /// Whether a proxy forwarded it (`Forwarded`, `X-Forwarded-*`): never redirected then.
    forwarded: bool,
    /// The path and query, for the way to the public URL.
    target: String,
    navigation: bool,
}

impl Browser {
    /// `Some` for a browser that wants HTML (not for API clients, `fetch` or event streams).
    pub fn of(method: &Method, uri: &axum::http::Uri, headers: &HeaderMap) -> Option<Self> {
        // The gateway answers proxies (which pass a browser's `Accept` along): its answers stay
        // as they are, and its hot path pays nothing here.
        if uri.path().starts_with("/authz/") || !crate::extract::Wants::of(headers).html {
            return None;
        }
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Some(Self {
            cookie: headers.get(header::COOKIE).cloned(),
            origin: text(header::ORIGIN),
            host: text(header::HOST),
            forwarded: headers.contains_key(header::FORWARDED)
                || headers
                    .keys()
                    .any(|k| k.as_str().starts_with("x-forwarded-") || k.as_str().starts_with("x-original-")),
            target: uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            navigation: matches!(*method, Method::GET | Method::HEAD),
        })
    }

    /// A navigation to another loopback name of this very server (`127.0.0.1:8080` for a
    /// public `localhost:8080`: the development case), sent to the public URL. Only loopback
    /// names on the public port and never what a proxy forwarded (nor the gateway, see
    /// [`Self::of`]): a proxy that rewrites the Host is never sent round in circles.
    pub fn elsewhere(&self, config: &Config) -> Option<Response> {
        if !self.navigation || self.forwarded {
            return None;
        }
        let (name, port) = split_host(self.host.as_deref()?)?;
        if !same_server_elsewhere(config, name, port) {
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
        // Who is signed in, for the header; not for refusals under load (429, 503) or failures,
        // which must cost nothing more.
        let cheap = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        let signed_in =
            if cheap { None } else { crate::routes::current_session(state, &headers, false).await.ok().flatten() };
        let (title, body) = explain(status, &text, self.origin.as_deref(), config, signed_in.is_some());
        let body = format!("<h1>{}</h1>{body}", esc(title));
        let mut html = page(status, title, signed_in.as_ref().map(|c| c.user.email.as_str()), &body);
        // What the error said in headers still holds (Retry-After, Allow, WWW-Authenticate,
        // cookies cleared or set).
        let clear_site_data = header::HeaderName::from_static("clear-site-data");
        for name in [header::RETRY_AFTER, header::ALLOW, header::WWW_AUTHENTICATE, clear_site_data] {
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

/// Whether `name:port` is another loopback name of a loopback public URL, on its port.
fn same_server_elsewhere(config: &Config, name: &str, port: u16) -> bool {
    let public = &config.public_url;
    let (Some(public_host), Some(public_port)) = (public.host_str(), public.port_or_known_default()) else {
        return false;
    };
    let public_host = public_host.trim_matches(['[', ']']);
    port == public_port && loopback(public_host) && loopback(name) && !name.eq_ignore_ascii_case(public_host)
}

fn loopback(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
        (StatusCode::FORBIDDEN, "csrf") => match origin.filter(|o| opened_elsewhere(config, o)) {
            Some(o) => (
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
        (StatusCode::SERVICE_UNAVAILABLE, _) => said(
            "Try again in a moment",
            "The server is busy right now. Try again in a moment: doing it again is safe.",
        ),
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            said("Too much to send", "What the form sent is larger than this server accepts.")
        }
        (s, _) if s.is_server_error() => said(
            "Something went wrong",
            &format!(
                "Something went wrong on the server. Try again; if it keeps happening, tell the site\u{2019}s operators \
                 (request id {}).",
                e.message
            ),
        ),
        _ => (
            "This did not work",
            format!("<section class=\"card\"><p>{}</p>{home}</section>", esc(&sentence(&e.message))),
        ),
    }
}

/// Whether a form's `Origin` is this server under another loopback name (named on the page);
/// any other origin gets the plain refusal, so no page of signoff's names someone else's site.
fn opened_elsewhere(config: &Config, origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else { return false };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return false };
    origin != config.public_origin && same_server_elsewhere(config, host.trim_matches(['[', ']']), port)
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
        let mut config = Config::defaults();
        assert!(same_server_elsewhere(&config, "127.0.0.1", 8080), "localhost's own other name");
        assert!(same_server_elsewhere(&config, "::1", 8080));
        assert!(!same_server_elsewhere(&config, "localhost", 8080), "the public host itself");
        assert!(!same_server_elsewhere(&config, "127.0.0.1", 8081), "another port: a proxy");
        assert!(!same_server_elsewhere(&config, "signoff", 8080), "a proxy's upstream name");
        assert!(opened_elsewhere(&config, "http://127.0.0.1:8080"));
        assert!(!opened_elsewhere(&config, "https://evil.example"), "no page names another site");
        config.serve_at("https://auth.example.com".parse().expect("url"));
        assert!(!same_server_elsewhere(&config, "127.0.0.1", 443), "only a loopback public URL");
    }
}
