//! Callback URLs of registered clients, and the guard that keeps them off internal networks.
//!
//! signoff will POST to these URLs (back-channel logout, webhooks), so a URL an admin key can
//! register must not turn signoff into a way into its own network (SSRF). A URL is accepted
//! only with scheme `http` or `https`, no credentials, and a host whose every address is
//! globally routable; `allow_private_callbacks` lifts the address rule for development and
//! tests. Deliveries check the addresses again when they connect (DNS may have changed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Why a callback URL was refused (the `message` of a `422`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("not an absolute URL")]
    Unparsable,
    #[error("only http and https URLs can be called back")]
    Scheme,
    #[error("a callback URL must not carry credentials")]
    Credentials,
    #[error("the host does not resolve")]
    Unresolvable,
    #[error("the host resolves to a private, loopback or link-local address")]
    Private,
}

/// The longest callback URL stored.
const MAX_URL_LEN: usize = 2048;

/// Checks `raw` and returns it normalised.
pub async fn check(raw: &str, allow_private: bool) -> Result<Url, CallbackError> {
    checked(raw, allow_private).await.map(|(url, _)| url)
}

/// Checks `raw` and returns it with the addresses it resolved to (empty when private addresses
/// are allowed or the host is an IP literal): a delivery connects only to these, so a DNS
/// answer that changes between the check and the connection cannot reach a private address.
pub async fn checked(raw: &str, allow_private: bool) -> Result<(Url, Vec<std::net::SocketAddr>), CallbackError> {
    if raw.len() > MAX_URL_LEN {
        return Err(CallbackError::Unparsable);
    }
    let url = Url::parse(raw).map_err(|_| CallbackError::Unparsable)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CallbackError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CallbackError::Credentials);
    }
    let host = url.host().ok_or(CallbackError::Unparsable)?;
    if allow_private {
        return Ok((url, Vec::new()));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let mut pinned = Vec::new();
    let addresses: Vec<IpAddr> = match host {
        Host::Ipv4(a) => vec![IpAddr::V4(a)],
        Host::Ipv6(a) => vec![IpAddr::V6(a)],
        Host::Domain(name) => {
            let resolved = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::net::lookup_host((name.trim_end_matches('.'), port)),
            )
            .await
            .map_err(|_| CallbackError::Unresolvable)?
            .map_err(|_| CallbackError::Unresolvable)?;
            pinned = resolved.collect::<Vec<_>>();
            pinned.iter().map(|a| a.ip()).collect()
        }
    };
    if addresses.is_empty() {
        return Err(CallbackError::Unresolvable);
    }
    if addresses.iter().any(|a| !is_public(*a)) {
        return Err(CallbackError::Private);
    }
    Ok((url, pinned))
}

/// An HTTP client for a URL [`checked`] just now: it connects only to the addresses the check
/// resolved (none pinned when private addresses are allowed or the host is an IP literal),
/// follows no redirect, and gives up after `timeout`.
pub fn pinned_client(
    url: &Url,
    pinned: &[std::net::SocketAddr],
    timeout: std::time::Duration,
) -> Option<reqwest::Client> {
    let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(timeout);
    if let Some(host) = url.host_str()
        && !pinned.is_empty()
    {
        http = http.resolve_to_addrs(host, pinned);
    }
    http.build().ok()
}

/// Whether an address is globally routable: not private, loopback, link-local, shared,
/// reserved, documentation, benchmarking, multicast or unspecified (IPv4 embedded in IPv6
/// is judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => is_public_v6(a),
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let [b0, b1, b2, _] = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || b0 == 0
        || (b0 == 100 && (64..128).contains(&b1)) // shared address space (CGNAT)
        || (b0 == 192 && b1 == 0 && b2 == 0) // IETF protocol assignments
        || (b0 == 198 && (b1 == 18 || b1 == 19)) // benchmarking
        || b0 >= 240) // reserved
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    if let Some(v4) = a.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = a.segments();
    // IPv4-translated (::ffff:0:0/96, RFC 2765) is an IPv4 address too, judged alike.
    if s[..5] == [0, 0, 0, 0, 0xffff] && s[5] == 0 {
        return is_public_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach IPv4 addresses: judge those.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    // Local-use NAT64 (64:ff9b:1::/48), Teredo (2001::/32) and discard-only (100::/64) reach
    // addresses that cannot be judged from here.
    if (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
        || (s[0] == 0x2001 && s[1] == 0)
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
    {
        return false;
    }
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0 && s[1..6] == [0, 0, 0, 0, 0])) // IPv4-compatible and other ::/80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_public_http_urls_are_accepted() {
        for ok in [
            "https://93.184.216.34/hook",
            "http://8.8.8.8:8080/x?y=1",
            "https://[2606:4700::1111]/bc",
            "http://[::ffff:0:808:808]/",
        ] {
            assert!(check(ok, false).await.is_ok(), "{ok}");
        }
        let refused = [
            ("ftp://8.8.8.8/", CallbackError::Scheme),
            ("javascript:alert(1)", CallbackError::Scheme),
            ("not a url", CallbackError::Unparsable),
            ("https://user:pw@8.8.8.8/", CallbackError::Credentials),
            ("http://127.0.0.1/", CallbackError::Private),
            ("http://2130706433/", CallbackError::Private),
            ("http://0x7f.1/", CallbackError::Private),
            ("http://10.1.2.3/", CallbackError::Private),
            ("http://172.16.0.1/", CallbackError::Private),
            ("http://192.168.1.1/", CallbackError::Private),
            ("http://169.254.169.254/latest/meta-data", CallbackError::Private),
            ("http://100.64.0.1/", CallbackError::Private),
            ("http://0.0.0.0/", CallbackError::Private),
            ("http://[::1]/", CallbackError::Private),
            ("http://[::ffff:127.0.0.1]/", CallbackError::Private),
            ("http://[::ffff:10.0.0.1]/", CallbackError::Private),
            ("http://[::ffff:0:7f00:1]/", CallbackError::Private),
            ("http://[::ffff:0:a9fe:a9fe]/", CallbackError::Private),
            ("http://[::ffff:0:a00:1]/", CallbackError::Private),
            ("http://[::7f00:1]/", CallbackError::Private),
            ("http://[::a9fe:a9fe]/", CallbackError::Private),
            ("http://[fd00::1]/", CallbackError::Private),
            ("http://[fe80::1]/", CallbackError::Private),
            ("http://[64:ff9b::a9fe:a9fe]/", CallbackError::Private),
            ("http://[2002:7f00:1::]/", CallbackError::Private),
            ("http://[64:ff9b:1::a00:1]/", CallbackError::Private),
            ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", CallbackError::Private),
            ("http://[100::1]/", CallbackError::Private),
            ("http://localhost/", CallbackError::Private),
        ];
        for (url, why) in refused {
            assert_eq!(check(url, false).await.err(), Some(why), "{url}");
        }
        assert!(check("http://127.0.0.1:9/", true).await.is_ok(), "allowed for development");
        assert_eq!(check("ftp://127.0.0.1/", true).await.err(), Some(CallbackError::Scheme), "never another scheme");
    }
}
