//! The kinds of values settings hold, each the parser the registry names for a key: numbers
//! with their bounds, booleans, durations, address blocks, secrets that never show.

use std::marker::PhantomData;
use std::str::FromStr;

use time::Duration;
use url::Url;

use super::{ConfigError, MIN_ADMIN_KEY_CHARS};

/// How a setting's text (trimmed; empty when unset and without a default) becomes its value.
pub(super) trait Kind {
    type Value;
    fn parse(key: &'static str, text: &str) -> Result<Self::Value, ConfigError>;
}

/// Text as it is.
pub(super) struct Text;
impl Kind for Text {
    type Value = String;
    fn parse(_: &'static str, text: &str) -> Result<String, ConfigError> {
        Ok(text.to_owned())
    }
}

/// Text, or none when empty.
pub(super) struct Optional;
impl Kind for Optional {
    type Value = Option<String>;
    fn parse(_: &'static str, text: &str) -> Result<Option<String>, ConfigError> {
        Ok(Some(text.to_owned()).filter(|t| !t.is_empty()))
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`; empty is false).
pub(super) struct Flag;
impl Kind for Flag {
    type Value = bool;
    fn parse(key: &'static str, text: &str) -> Result<bool, ConfigError> {
        match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(invalid(key, format!("`{text}` is not a boolean"))),
        }
    }
}

/// Whatever `T` parses from the text.
pub(super) struct Parsed<T>(PhantomData<T>);
impl<T: FromStr> Kind for Parsed<T>
where
    T::Err: std::fmt::Display,
{
    type Value = T;
    fn parse(key: &'static str, text: &str) -> Result<T, ConfigError> {
        text.parse().map_err(|e| invalid(key, e))
    }
}

/// A whole number, 0 included.
pub(super) type Number<T> = Parsed<T>;

/// A whole number of at least 1.
pub(super) struct Count<T>(PhantomData<T>);
impl<T: FromStr + PartialOrd + From<u8>> Kind for Count<T>
where
    T::Err: std::fmt::Display,
{
    type Value = T;
    fn parse(key: &'static str, text: &str) -> Result<T, ConfigError> {
        let n: T = Parsed::<T>::parse(key, text)?;
        if n < T::from(1u8) {
            return Err(invalid(key, "must be at least 1"));
        }
        Ok(n)
    }
}

/// A whole number between `min` and `max`, or the error that says so.
fn bounded(key: &'static str, text: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let n: i64 = Parsed::<i64>::parse(key, text)?;
    if n < min || n > max {
        return Err(invalid(
            key,
            if max == i64::MAX {
                format!("must be at least {min}")
            } else {
                format!("must be between {min} and {max}")
            },
        ));
    }
    Ok(n)
}

/// A number of seconds from `MIN` to `MAX`.
pub(super) struct Seconds<const MIN: i64, const MAX: i64 = { i64::MAX }>;
impl<const MIN: i64, const MAX: i64> Kind for Seconds<MIN, MAX> {
    type Value = Duration;
    fn parse(key: &'static str, text: &str) -> Result<Duration, ConfigError> {
        Ok(Duration::seconds(bounded(key, text, MIN, MAX)?))
    }
}

/// A number of milliseconds from `MIN` to `MAX`.
pub(super) struct Millis<const MIN: i64, const MAX: i64 = { i64::MAX }>;
impl<const MIN: i64, const MAX: i64> Kind for Millis<MIN, MAX> {
    type Value = std::time::Duration;
    fn parse(key: &'static str, text: &str) -> Result<std::time::Duration, ConfigError> {
        Ok(std::time::Duration::from_millis(bounded(key, text, MIN.max(0), MAX)?.unsigned_abs()))
    }
}

/// A comma-separated list of what `T` parses (empty items skipped).
pub(super) struct List<T>(PhantomData<T>);
impl<T: FromStr> Kind for List<T>
where
    T::Err: std::fmt::Display,
{
    type Value = Vec<T>;
    fn parse(key: &'static str, text: &str) -> Result<Vec<T>, ConfigError> {
        text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Parsed::<T>::parse(key, s)).collect()
    }
}

/// An `http` or `https` URL.
pub(super) struct HttpUrl;
impl Kind for HttpUrl {
    type Value = Url;
    fn parse(key: &'static str, text: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(text).map_err(|e| invalid(key, e))?;
        if !matches!(url.scheme(), "http" | "https") || url.origin().ascii_serialization() == "null" {
            return Err(invalid(key, "must be an http or https URL"));
        }
        Ok(url)
    }
}

/// Comma-separated origins (`scheme://host[:port]` of each URL).
pub(super) struct Origins;
impl Kind for Origins {
    type Value = Vec<String>;
    fn parse(key: &'static str, text: &str) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let origin = Url::parse(item).map_err(|e| invalid(key, e))?.origin().ascii_serialization();
            if origin == "null" {
                return Err(invalid(key, format!("`{item}` is not an http(s) origin")));
            }
            out.push(origin);
        }
        Ok(out)
    }
}

/// A non-empty word of printable ASCII.
pub(super) struct Printable;
impl Kind for Printable {
    type Value = String;
    fn parse(key: &'static str, text: &str) -> Result<String, ConfigError> {
        match text {
            p if !p.is_empty() && p.chars().all(|c| c.is_ascii_graphic()) => Ok(p.to_owned()),
            _ => Err(invalid(key, "must be non-empty printable ASCII without spaces")),
        }
    }
}

/// A URL that may hold a password (never shown).
pub(super) struct Secret;
impl Kind for Secret {
    type Value = SecretUrl;
    fn parse(_: &'static str, text: &str) -> Result<SecretUrl, ConfigError> {
        Ok(SecretUrl(text.to_owned()))
    }
}

/// [`Secret`], or none when empty.
pub(super) struct OptionalSecret;
impl Kind for OptionalSecret {
    type Value = Option<SecretUrl>;
    fn parse(_: &'static str, text: &str) -> Result<Option<SecretUrl>, ConfigError> {
        Ok(Some(text).filter(|t| !t.is_empty()).map(|t| SecretUrl(t.to_owned())))
    }
}

/// An SMTP server's URL (`smtp://` or `smtps://`, which may hold a password), or none.
pub(super) struct SmtpUrl;
impl Kind for SmtpUrl {
    type Value = Option<SecretUrl>;
    fn parse(key: &'static str, text: &str) -> Result<Option<SecretUrl>, ConfigError> {
        match text {
            "" => Ok(None),
            u if u.starts_with("smtp://") || u.starts_with("smtps://") => Ok(Some(SecretUrl(u.to_owned()))),
            _ => Err(invalid(key, "must be an smtp:// or smtps:// URL")),
        }
    }
}

/// One mail address (`Name <user@host>` or `user@host`), or none.
pub(super) struct Mailbox;
impl Kind for Mailbox {
    type Value = Option<String>;
    fn parse(key: &'static str, text: &str) -> Result<Option<String>, ConfigError> {
        match text {
            "" => Ok(None),
            from => match from.parse::<lettre::message::Mailbox>() {
                Ok(_) => Ok(Some(from.to_owned())),
                Err(e) => Err(invalid(key, e)),
            },
        }
    }
}

/// A bearer key: none when empty, refused when too short to be a real secret.
pub(super) struct BearerKey;
impl Kind for BearerKey {
    type Value = Option<AdminKey>;
    fn parse(key: &'static str, text: &str) -> Result<Option<AdminKey>, ConfigError> {
        match text {
            "" => Ok(None),
            v if v.chars().count() < MIN_ADMIN_KEY_CHARS => Err(invalid(
                key,
                format!("must be at least {MIN_ADMIN_KEY_CHARS} characters (e.g. `openssl rand -hex 32`)"),
            )),
            v => Ok(Some(AdminKey(v.to_owned()))),
        }
    }
}

/// A log level of `tracing`.
pub(super) struct LogLevel;
impl Kind for LogLevel {
    type Value = String;
    fn parse(key: &'static str, text: &str) -> Result<String, ConfigError> {
        match text {
            l @ ("error" | "warn" | "info" | "debug" | "trace") => Ok(l.to_owned()),
            other => Err(invalid(key, format!("`{other}` is not a level"))),
        }
    }
}

/// The value of `Clear-Site-Data`: a comma-separated list of the directives browsers know, each
/// quoted (quotes may be left out here: they are added); empty sends none.
pub(super) struct ClearSiteData;
impl Kind for ClearSiteData {
    type Value = String;
    fn parse(_: &'static str, value: &str) -> Result<String, ConfigError> {
        clear_site_data(value)
    }
}

fn clear_site_data(value: &str) -> Result<String, ConfigError> {
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

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("`{other}` is not text or json")),
        }
    }
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

pub(super) fn invalid(key: &'static str, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid { key, problem: problem.to_string() }
}
