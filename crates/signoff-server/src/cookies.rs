//! Reading and writing signoff's cookies. Setting and deleting share one attribute builder,
//! so a deletion always matches the attributes the cookie was set with.

use axum::http::{HeaderMap, HeaderValue, header};
use signoff_core::SessionSecret;

use crate::config::Config;

/// Values of the cookie `name` in all `Cookie` headers, in order. Headers that are not
/// visible ASCII and malformed pairs are skipped, never an error.
pub fn values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).filter_map(
        move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        },
    )
}

/// The first well-formed session secret among the session cookies sent.
pub fn session_secret(headers: &HeaderMap, config: &Config) -> Option<SessionSecret> {
    values(headers, &config.session_cookie).find_map(SessionSecret::parse)
}

/// Whether the request carries any signoff cookie at all (valid or not).
pub fn any_present(headers: &HeaderMap, config: &Config) -> bool {
    values(headers, &config.session_cookie).next().is_some()
        || values(headers, &config.remember_cookie).next().is_some()
}

fn attributes(config: &Config) -> &'static str {
    if config.cookie_secure { "Path=/; Secure; HttpOnly; SameSite=Lax" } else { "Path=/; HttpOnly; SameSite=Lax" }
}

/// `Set-Cookie` for a fresh session cookie (a browser-session cookie: no `Max-Age`).
pub fn set_session(config: &Config, secret: &SessionSecret) -> HeaderValue {
    header_value(format!("{}={}; {}", config.session_cookie, secret.expose(), attributes(config)))
}

/// `Set-Cookie` values deleting every signoff cookie, with the attributes they were set with.
pub fn clear_all(config: &Config) -> [HeaderValue; 2] {
    [&config.session_cookie, &config.remember_cookie].map(|name| {
        header_value(format!("{name}=; {}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT", attributes(config)))
    })
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
        assert!(any_present(&h, &config));
        let s = SessionSecret::generate();
        h.append(header::COOKIE, HeaderValue::try_from(format!("__Host-signoff_session={}", s.expose())).unwrap());
        assert_eq!(session_secret(&h, &config).map(|x| x.hash()), Some(s.hash()));
    }
}
