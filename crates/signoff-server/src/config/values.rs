//! The kinds of values settings hold, and how each is read and checked: numbers with their
//! bounds, booleans, durations, address blocks, secrets that never show.

use time::Duration;
use url::Url;

use super::{ConfigError, MIN_ADMIN_KEY_CHARS};

/// The value of `Clear-Site-Data`: a comma-separated list of the directives browsers know, each
/// quoted (quotes may be left out here: they are added); empty sends none.
pub(super) fn clear_site_data(value: &str) -> Result<String, ConfigError> {
    const KNOWN: &[&str] =
        &["cache", "cookies", "storage", "executionContexts", "clientHints", "prefetchCache", "prerenderCache", "*"];
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bare = item.strip_prefix('"').and_then(|i| i.strip_suffix('"')).unwrap_or(item);
        if !KNOWN.contains(&bare) {
            return Err(invalid(
                "clear_site_data",
                format!(
                    "`{item}` is not a Clear-Site-Data directive (use a comma-separated list of \"cache\", \"cookies\", \"storage\", \"executionContexts\" or \"*\")"
                ),
            ));
        }
        out.push(format!("\"{bare}\""));
    }
    // Empty: no header (signoff.js then cleans up the browser alone).
    Ok(out.join(", "))
}

/// The admin bearer key; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminKey(pub String);

impl AdminKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

/// An address block (`10.0.0.0/8`, `::1/128`; a bare address is its own block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        // An IPv4 peer seen as an IPv4-mapped IPv6 address is the same peer.
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(ip, V4),
            v4 => v4,
        };
        let keep = |bits: u32, total: u32| if self.prefix == 0 { 0 } else { u128::MAX << (total - bits.min(total)) };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => {
                let mask = keep(u32::from(self.prefix), 32) as u32;
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let mask = keep(u32::from(self.prefix), 128);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: std::net::IpAddr = addr.parse().map_err(|_| format!("`{s}` is not an address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix =
            if prefix.is_empty() { max } else { prefix.parse().map_err(|_| format!("bad prefix in `{s}`"))? };
        if prefix > max {
            return Err(format!("prefix too long in `{s}`"));
        }
        Ok(Self { addr, prefix })
    }
}

/// A database or Redis URL: `Debug` and `Display` hide its password.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(pub String);

impl SecretUrl {
    /// The URL itself, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match Url::parse(&self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("redacted"));
                }
                // Drivers take secrets as query parameters too (`password`, `sslpassword`, …).
                if url.query_pairs().any(|(k, _)| k.to_ascii_lowercase().contains("password")) {
                    let pairs: Vec<(String, String)> = url
                        .query_pairs()
                        .map(|(k, v)| {
                            let secret = k.to_ascii_lowercase().contains("password");
                            (k.into_owned(), if secret { "redacted".to_owned() } else { v.into_owned() })
                        })
                        .collect();
                    url.query_pairs_mut().clear().extend_pairs(pairs);
                }
                f.write_str(url.as_str())
            }
            // Unparsable: it might still hold a secret, so show only the scheme.
            Err(_) => write!(f, "{}:<redacted>", self.0.split(':').next().unwrap_or_default()),
        }
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretUrl({self})")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A TOML scalar as the string an environment variable would carry.
pub(super) fn scalar(key: &'static str, v: toml::Value) -> Result<String, ConfigError> {
    match v {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(invalid(key, "expected a string, number, boolean or list of those")),
    }
}

/// A bearer key setting: none when empty, refused when too short to be a real secret.
pub(super) fn bearer_key(key: &'static str, value: Option<String>) -> Result<Option<AdminKey>, ConfigError> {
    match value {
        Some(v) if v.chars().count() < MIN_ADMIN_KEY_CHARS => Err(invalid(
            key,
            format!("must be at least {MIN_ADMIN_KEY_CHARS} characters (e.g. `openssl rand -hex 32`)"),
        )),
        v => Ok(v.map(AdminKey)),
    }
}

pub(super) fn invalid(key: &'static str, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid { key, problem: problem.to_string() }
}

pub(super) fn parse_bool(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(invalid(key, format!("`{v}` is not a boolean"))),
    }
}

pub(super) fn number<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| invalid(key, e))
}

/// A whole number of at least 1.
pub(super) fn positive<'a, T>(key: &'static str, get: &impl Fn(&'static str) -> &'a str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    let n: T = number(key, get(key))?;
    if n < T::from(1u8) {
        return Err(invalid(key, "must be at least 1"));
    }
    Ok(n)
}

pub(super) fn seconds(key: &'static str, v: &str, min: i64) -> Result<Duration, ConfigError> {
    let n: i64 = number(key, v)?;
    if n < min {
        return Err(invalid(key, format!("must be at least {min}")));
    }
    Ok(Duration::seconds(n))
}
