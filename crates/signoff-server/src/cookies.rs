//! Reading and writing signoff's cookies. Setting and deleting share one attribute builder,
//! so a deletion always matches the attributes the cookie was set with.

use axum::http::{HeaderMap, HeaderValue, header};
use signoff_core::SessionSecret;
use signoff_core::remember::RememberSecret;

use crate::config::Config;

/// Values of the cookie `name` in all `Cookie` headers, in order. Headers that are not
/// visible ASCII and malformed pairs are skipped, never an error.
pub fn values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    signoff_wire::cookie::values(sent(headers), name)
}

fn sent(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes)
}

/// The first well-formed session secret among the session cookies sent.
pub fn session_secret(headers: &HeaderMap, config: &Config) -> Option<SessionSecret> {
    signoff_wire::cookie::value_bytes(sent(headers), &config.session_cookie).find_map(SessionSecret::parse)
}

/// The first well-formed remember-me token among the remember-me cookies sent. Most requests
/// have none, and are told so by a search for the cookie's name.
pub fn remember_secret(headers: &HeaderMap, config: &Config) -> Option<RememberSecret> {
    if !signoff_wire::cookie::mentions(sent(headers), &config.remember_cookie) {
        return None;
    }
    values(headers, &config.remember_cookie).find_map(RememberSecret::parse)
}

fn attributes(config: &Config) -> &'static str {
    if config.cookie_secure { "Path=/; Secure; HttpOnly; SameSite=Lax" } else { "Path=/; HttpOnly; SameSite=Lax" }
}

/// `Set-Cookie` for a fresh session cookie (a browser-session cookie: no `Max-Age`).
pub fn set_session(config: &Config, secret: &SessionSecret) -> HeaderValue {
    header_value(format!("{}={}; {}", config.session_cookie, secret.expose(), attributes(config)))
}

/// `Set-Cookie` for a remember-me token, living as long as the series.
pub fn set_remember(config: &Config, secret: &RememberSecret) -> HeaderValue {
    header_value(format!(
        "{}={}; {}; Max-Age={}",
        config.remember_cookie,
        secret.expose(),
        attributes(config),
        config.sessions.remember_lifetime.whole_seconds()
    ))
}

/// `Set-Cookie` values for a sign-in: the session, and the remember-me token if there is one.
pub fn set_signed_in(config: &Config, signed_in: &signoff_core::SignedIn) -> Vec<HeaderValue> {
    let mut out = vec![set_session(config, &signed_in.ctx.secret)];
    out.extend(signed_in.remember.as_ref().map(|r| set_remember(config, r)));
    out
}

/// `Set-Cookie` deleting the cookie `name`, with the attributes it was set with.
pub fn clear(config: &Config, name: &str) -> HeaderValue {
    header_value(format!("{name}=; {}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT", attributes(config)))
}

/// `Set-Cookie` values deleting every signoff cookie.
pub fn clear_all(config: &Config) -> [HeaderValue; 2] {
    [clear(config, &config.session_cookie), clear(config, &config.remember_cookie)]
}

/// Makes a response forget this browser's sign-in: every signoff cookie deleted,
/// `Clear-Site-Data`, and no caching.
pub fn clear_browser(headers: &mut HeaderMap, config: &Config) {
    for c in clear_all(config) {
        headers.append(header::SET_COOKIE, c);
    }
    if !config.clear_site_data.is_empty()
        && let Ok(v) = HeaderValue::from_str(&config.clear_site_data)
    {
        headers.insert("clear-site-data", v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
}

/// A `Cookie` header value naming only `secret` as the session, with every other cookie of
/// `headers` kept except signoff's own.
pub fn with_session(headers: &HeaderMap, config: &Config, secret: &SessionSecret) -> HeaderValue {
    let mut pairs = vec![format!("{}={}", config.session_cookie, secret.expose())];
    let ours = [config.session_cookie.as_str(), config.remember_cookie.as_str()];
    let sent = headers.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes);
    pairs.extend(signoff_wire::cookie::others(sent, &ours).map(str::to_owned));
    header_value(pairs.join("; "))
}

fn header_value(s: String) -> HeaderValue {
    // Names are validated tokens and values base64url, so this cannot fail; fall back to an
    // inert header rather than panic if it ever did.
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("signoff_invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_cookies_are_ignored() {
        let config = Config::defaults();
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=b; __Host-signoff_session=garbage; ;=;x"));
        h.append(header::COOKIE, HeaderValue::from_bytes(b"__Host-signoff_session=\xff").unwrap());
        assert!(session_secret(&h, &config).is_none());
        let s = SessionSecret::generate();
        h.append(header::COOKIE, HeaderValue::try_from(format!("__Host-signoff_session={}", s.expose())).unwrap());
        assert_eq!(session_secret(&h, &config).map(|x| x.hash()), Some(s.hash()));
    }
}
