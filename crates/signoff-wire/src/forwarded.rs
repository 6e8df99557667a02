//! Headers a reverse proxy adds: `X-Forwarded-For` (the client's address) and the
//! `X-Forwarded-Proto`/`-Host`/`-Uri` of the request a forward-auth subrequest stands for.
//! Whether the sender is a proxy to believe is the caller's decision.

use std::net::IpAddr;

/// The address the nearest proxy saw: the last `X-Forwarded-For` entry, if it is an address.
pub fn client_ip(x_forwarded_for: &str) -> Option<IpAddr> {
    x_forwarded_for.rsplit(',').next()?.trim().parse().ok()
}

/// The URL of the original request, from the proxy's `X-Forwarded-Proto`, `-Host` and `-Uri`:
/// only when all three are there and the URI is a path.
pub fn original_url(proto: Option<&str>, host: Option<&str>, uri: Option<&str>) -> Option<String> {
    match (proto, host, uri) {
        (Some(proto), Some(host), Some(uri)) if uri.starts_with('/') => Some(format!("{proto}://{host}{uri}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_entry_is_the_nearest_proxys() {
        assert_eq!(client_ip("10.0.0.1, 192.0.2.7"), "192.0.2.7".parse().ok());
        assert_eq!(client_ip("192.0.2.7, nonsense"), None);
        assert_eq!(client_ip("::1"), "::1".parse().ok());
        assert_eq!(
            original_url(Some("https"), Some("app.test"), Some("/a?b")).as_deref(),
            Some("https://app.test/a?b")
        );
        assert_eq!(original_url(Some("https"), Some("app.test"), Some("evil.test")), None);
        assert_eq!(original_url(None, Some("app.test"), Some("/")), None);
    }
}
