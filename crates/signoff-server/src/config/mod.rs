//! Configuration: documented defaults, overridden by a TOML file, overridden by `SIGNOFF_*`
//! environment variables. Every key is listed once, in [`KEYS`]; unknown keys in the file are
//! an error, so a typo never silently falls back to a default.

use signoff_core::revocation::StreamLimits;
use signoff_core::throttle::ThrottlePolicy;
use signoff_core::{SessionPolicy, TokenPolicy};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use time::Duration;
use url::Url;

mod keys;
mod values;

use keys::known;
pub use keys::{KEYS, unknown_variables, variable};
pub use values::{AdminKey, Cidr, LogFormat, SecretUrl};
use values::{bearer_key, clear_site_data, invalid, number, parse_bool, positive, scalar, seconds};

/// A shorter admin key could be guessed; 32 characters of hex are 128 bits.
pub const MIN_ADMIN_KEY_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file: {0}")]
    Parse(String),
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    #[error("{} (file key `{key}`): {problem}", variable(key))]
    Invalid { key: &'static str, problem: String },
}

/// The server's settings, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: Url,
    /// `scheme://host[:port]` of `public_url`, as browsers send it in `Origin`.
    pub public_origin: String,
    pub database_url: SecretUrl,
    pub redis_url: Option<SecretUrl>,
    pub redis_key_prefix: String,
    pub database_max_connections: u32,
    pub database_acquire_timeout: std::time::Duration,
    pub node_lease: std::time::Duration,
    pub node_ack_wait: std::time::Duration,
    pub admin_token: Option<AdminKey>,
    pub metrics_token: Option<AdminKey>,
    // The core's policies, as sections of the configuration: what the settings named for them
    // say, handed to the authority whole.
    /// How long sessions and remember-me series live (`session_*`, `remember_*`,
    /// `max_sessions_per_user`).
    pub sessions: SessionPolicy,
    /// Sign-in, registration, e-mail change and reset limits (`login_*`, `register_*`,
    /// `email_change_*`, `password_reset_*`).
    pub throttle: ThrottlePolicy,
    /// Access and refresh tokens: `iss` is always the public origin ([`Config::serve_at`] keeps
    /// it so), `aud` is `token_audience` (the public origin when empty).
    pub tokens: TokenPolicy,
    /// Event streams open at once (`max_event_streams*`).
    pub streams: StreamLimits,
    /// Whether cookies carry `Secure` (false only with `insecure_dev` on plain http).
    pub cookie_secure: bool,
    pub session_cookie: String,
    pub remember_cookie: String,
    pub events_keepalive: Duration,
    pub revocation_poll: std::time::Duration,
    /// Concurrent password hashes (resolved: never 0).
    pub password_hash_concurrency: usize,
    pub password_hash_queue: std::time::Duration,
    pub max_connections: usize,
    pub header_read_timeout: std::time::Duration,
    pub keepalive_timeout: std::time::Duration,
    /// Origins `return_to` may name, the public origin included.
    pub redirect_allowlist: Vec<String>,
    pub clear_site_data: String,
    pub trust_proxy: bool,
    /// Peers whose forwarding headers the gateway endpoints believe.
    pub trusted_proxies: Vec<Cidr>,
    pub allow_private_callbacks: bool,
    /// Mail through SMTP when set (the URL may hold a password); `.eml` files in `mail_dir`
    /// otherwise.
    pub smtp_url: Option<SecretUrl>,
    /// The `From` of mail, checked to be one address.
    pub mail_from: String,
    pub mail_dir: std::path::PathBuf,
    pub mail_token_ttl: Duration,
    pub max_feed_waits_per_client: usize,
    pub max_feed_waits: usize,
    /// How long a node's outbox worker holds what it claimed (another node takes over after).
    pub delivery_claim: std::time::Duration,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    pub log_level: String,
}

impl Config {
    /// Whether this is a development setup whose mail goes to the `.eml` inbox: no SMTP server,
    /// a public URL on this machine, and listening on loopback only (nobody else can connect).
    /// Only then is the inbox shown at `/dev/mail`.
    pub fn dev_inbox(&self) -> bool {
        self.smtp_url.is_none()
            && self.listen.ip().is_loopback()
            && matches!(self.public_url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    }

    /// Serves at `url` (an origin: scheme, host and port): the public URL and origin, the
    /// tokens' issuer, the first allowed redirect origin, and the audience when it was the old
    /// origin, all follow. What was derived from the URL at load does not: whether cookies are
    /// `Secure` (and their `__Host-` names), the default `mail_from`, the plain-http check.
    pub fn serve_at(&mut self, url: Url) {
        let origin = url.origin().ascii_serialization();
        if self.tokens.audience == self.public_origin {
            self.tokens.audience = origin.clone();
        }
        if let Some(first) = self.redirect_allowlist.first_mut().filter(|o| **o == self.public_origin) {
            *first = origin.clone();
        }
        self.tokens.issuer = origin.clone();
        self.public_origin = origin;
        self.public_url = url;
    }

    /// Reads the optional file, then the environment (which wins).
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut values: BTreeMap<&'static str, String> = KEYS.iter().map(|(k, d, _)| (*k, (*d).to_owned())).collect();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
            for (k, v) in table {
                let key = known(&k).ok_or(ConfigError::UnknownKey(k))?;
                let v = match v {
                    toml::Value::Array(items) => {
                        items.into_iter().map(|i| scalar(key, i)).collect::<Result<Vec<_>, _>>()?.join(",")
                    }
                    other => scalar(key, other)?,
                };
                values.insert(key, v);
            }
        }
        for (name, v) in env {
            if let Some(k) = name.strip_prefix("SIGNOFF_")
                && let Some(key) = known(&k.to_ascii_lowercase())
            {
                values.insert(key, v);
            }
        }
        Self::from_values(&values)
    }

    /// Defaults only; tests adjust the fields they need.
    pub fn defaults() -> Self {
        Self::load(None, std::iter::empty()).unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }

    fn from_values(v: &BTreeMap<&'static str, String>) -> Result<Self, ConfigError> {
        let get = |k: &'static str| v.get(k).map(|s| s.trim()).unwrap_or_default();
        let opt = |k: &'static str| Some(get(k).to_owned()).filter(|s| !s.is_empty());
        let public_url = Url::parse(get("public_url")).map_err(|e| invalid("public_url", e))?;
        let public_origin = public_url.origin().ascii_serialization();
        if !matches!(public_url.scheme(), "http" | "https") || public_origin == "null" {
            return Err(invalid("public_url", "must be an http or https URL"));
        }
        let insecure_dev = parse_bool("insecure_dev", get("insecure_dev"))?;
        let local = matches!(public_url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let cookie_secure = public_url.scheme() == "https" || local;
        if !cookie_secure && !insecure_dev {
            return Err(invalid(
                "public_url",
                "plain http is only allowed for localhost; set SIGNOFF_INSECURE_DEV=true for other development hosts",
            ));
        }
        let cookie_name = |k: &'static str| -> Result<String, ConfigError> {
            let name = get(k);
            let name = if cookie_secure { name.to_owned() } else { name.trim_start_matches("__Host-").to_owned() };
            let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token_char) {
                return Err(invalid(k, "not a valid cookie name"));
            }
            Ok(name)
        };
        let mut redirect_allowlist = vec![public_origin.clone()];
        for item in get("redirect_allowlist").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let origin = Url::parse(item).map_err(|e| invalid("redirect_allowlist", e))?.origin().ascii_serialization();
            if origin == "null" {
                return Err(invalid("redirect_allowlist", format!("`{item}` is not an http(s) origin")));
            }
            redirect_allowlist.push(origin);
        }
        let session_cookie = cookie_name("session_cookie")?;
        let remember_cookie = cookie_name("remember_cookie")?;
        if session_cookie == remember_cookie {
            return Err(invalid("remember_cookie", "must differ from session_cookie"));
        }
        let token_audience = opt("token_audience").unwrap_or_else(|| public_origin.clone());
        let public_host = public_url.host_str().unwrap_or("localhost").to_owned();
        let sessions = SessionPolicy {
            idle_timeout: seconds("session_idle_timeout_seconds", get("session_idle_timeout_seconds"), 60)?,
            absolute_lifetime: seconds("session_lifetime_seconds", get("session_lifetime_seconds"), 60)?,
            remember_lifetime: seconds("remember_me_seconds", get("remember_me_seconds"), 60)?,
            race_grace: seconds("remember_reuse_grace_seconds", get("remember_reuse_grace_seconds"), 0)?,
            max_sessions_per_user: positive("max_sessions_per_user", &get)?,
        };
        let throttle = ThrottlePolicy {
            max_failures_per_account_and_ip: positive("login_max_failures_per_account_and_ip", &get)?,
            max_failures_per_ip: positive("login_max_failures_per_ip", &get)?,
            max_failures_per_account: positive("login_max_failures_per_account", &get)?,
            window: seconds("login_failure_window_seconds", get("login_failure_window_seconds"), 1)?,
            register_max_per_ip: positive("register_max_per_ip", &get)?,
            register_max_per_email: positive("register_max_per_email", &get)?,
            email_change_max_per_account: positive("email_change_max_per_account", &get)?,
            email_change_max_per_target: positive("email_change_max_per_target", &get)?,
            password_reset_max_per_ip: positive("password_reset_max_per_ip", &get)?,
            password_reset_max_per_email: positive("password_reset_max_per_email", &get)?,
            password_reset_max_per_mailbox: positive("password_reset_max_per_mailbox", &get)?,
        };
        let tokens = TokenPolicy {
            issuer: public_origin.clone(),
            audience: token_audience,
            access_ttl: seconds("access_token_ttl_seconds", get("access_token_ttl_seconds"), 30)?,
            refresh_ttl: seconds("refresh_token_ttl_seconds", get("refresh_token_ttl_seconds"), 60)?,
            reuse_grace: seconds("refresh_reuse_grace_seconds", get("refresh_reuse_grace_seconds"), 0)?,
        };
        let streams = StreamLimits {
            per_session: positive::<usize>("max_event_streams_per_session", &get)?,
            per_user: positive::<usize>("max_event_streams_per_user", &get)?,
            per_address: positive::<usize>("max_event_streams_per_address", &get)?,
            total: positive::<usize>("max_event_streams", &get)?,
        };
        Ok(Self {
            sessions,
            throttle,
            tokens,
            streams,
            listen: get("listen").parse().map_err(|e| invalid("listen", e))?,
            public_url,
            public_origin,
            database_url: SecretUrl(get("database_url").to_owned()),
            redis_url: opt("redis_url").map(SecretUrl),
            redis_key_prefix: match get("redis_key_prefix") {
                p if !p.is_empty() && p.chars().all(|c| c.is_ascii_graphic()) => p.to_owned(),
                _ => return Err(invalid("redis_key_prefix", "must be non-empty printable ASCII without spaces")),
            },
            database_max_connections: positive("database_max_connections", &get)?,
            database_acquire_timeout: std::time::Duration::from_millis(positive(
                "database_acquire_timeout_millis",
                &get,
            )?),
            node_lease: match number::<u64>("node_lease_millis", get("node_lease_millis"))? {
                ms @ 400..=600_000 => std::time::Duration::from_millis(ms),
                _ => return Err(invalid("node_lease_millis", "must be between 400 and 600000")),
            },
            node_ack_wait: std::time::Duration::from_millis(positive("node_ack_wait_millis", &get)?),
            admin_token: bearer_key("admin_token", opt("admin_token"))?,
            metrics_token: bearer_key("metrics_token", opt("metrics_token"))?,
            cookie_secure,
            session_cookie,
            remember_cookie,
            events_keepalive: seconds("events_keepalive_seconds", get("events_keepalive_seconds"), 1)?,
            revocation_poll: match number::<u64>("revocation_poll_millis", get("revocation_poll_millis"))? {
                ms @ 10.. => std::time::Duration::from_millis(ms),
                _ => return Err(invalid("revocation_poll_millis", "must be at least 10")),
            },
            password_hash_concurrency: match number::<usize>(
                "password_hash_concurrency",
                get("password_hash_concurrency"),
            )? {
                0 => 2 * std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
            password_hash_queue: std::time::Duration::from_millis(positive("password_hash_queue_millis", &get)?),
            max_connections: positive("max_connections", &get)?,
            header_read_timeout: seconds("header_read_timeout_seconds", get("header_read_timeout_seconds"), 1)?
                .unsigned_abs(),
            keepalive_timeout: seconds("keepalive_timeout_seconds", get("keepalive_timeout_seconds"), 1)?
                .unsigned_abs(),
            redirect_allowlist,
            clear_site_data: clear_site_data(get("clear_site_data"))?,
            trust_proxy: parse_bool("trust_proxy", get("trust_proxy"))?,
            trusted_proxies: get("trusted_proxies")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map_err(|e| invalid("trusted_proxies", e)))
                .collect::<Result<_, _>>()?,
            allow_private_callbacks: parse_bool("allow_private_callbacks", get("allow_private_callbacks"))?,
            smtp_url: match opt("smtp_url") {
                Some(u) if u.starts_with("smtp://") || u.starts_with("smtps://") => Some(SecretUrl(u)),
                Some(_) => return Err(invalid("smtp_url", "must be an smtp:// or smtps:// URL")),
                None => None,
            },
            mail_from: match opt("mail_from") {
                Some(from) => match from.parse::<lettre::message::Mailbox>() {
                    Ok(_) => from,
                    Err(e) => return Err(invalid("mail_from", e)),
                },
                None => format!("signoff <no-reply@{public_host}>"),
            },
            mail_dir: get("mail_dir").into(),
            mail_token_ttl: match seconds("mail_token_ttl_seconds", get("mail_token_ttl_seconds"), 60)? {
                d if d > Duration::days(7) => return Err(invalid("mail_token_ttl_seconds", "must be at most 604800")),
                d => d,
            },
            max_feed_waits_per_client: positive::<usize>("max_feed_waits_per_client", &get)?,
            max_feed_waits: positive::<usize>("max_feed_waits", &get)?,
            delivery_claim: match seconds("delivery_claim_seconds", get("delivery_claim_seconds"), 20)? {
                d if d > Duration::hours(1) => return Err(invalid("delivery_claim_seconds", "must be at most 3600")),
                d => d.try_into().map_err(|_| invalid("delivery_claim_seconds", "out of range"))?,
            },
            max_body_bytes: number("max_body_bytes", get("max_body_bytes"))?,
            log_format: match get("log_format") {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(invalid("log_format", format!("`{other}` is not text or json"))),
            },
            log_level: match get("log_level") {
                l @ ("error" | "warn" | "info" | "debug" | "trace") => l.to_owned(),
                other => return Err(invalid("log_level", format!("`{other}` is not a level"))),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn mail_settings_are_checked() {
        let c = Config::load(None, env(&[("SIGNOFF_PUBLIC_URL", "https://auth.example.com")])).unwrap();
        assert_eq!(c.mail_from, "signoff <no-reply@auth.example.com>");
        assert_eq!((c.smtp_url.is_none(), c.mail_token_ttl), (true, Duration::hours(1)));
        for (key, bad) in [
            ("SIGNOFF_SMTP_URL", "http://mail.example.com"),
            ("SIGNOFF_MAIL_FROM", "not an address"),
            ("SIGNOFF_MAIL_TOKEN_TTL_SECONDS", "59"),
            ("SIGNOFF_MAIL_TOKEN_TTL_SECONDS", "604801"),
        ] {
            assert!(Config::load(None, env(&[(key, bad)])).is_err(), "{key}={bad}");
        }
        let c = Config::load(None, env(&[("SIGNOFF_SMTP_URL", "smtps://u:secret-pw@mail.example.com:465")])).unwrap();
        assert!(!format!("{c:?}").contains("secret-pw"), "the SMTP password never shows");
        let mailer = crate::backend::mailer(&c);
        assert!(mailer.is_ok(), "an smtps URL makes a transport");
    }

    #[test]
    fn a_bad_setting_is_refused_naming_its_variable_and_a_misspelt_one_is_named() {
        let e = Config::load(None, env(&[("SIGNOFF_CLEAR_SITE_DATA", "bogus")])).expect_err("bogus");
        let text = e.to_string();
        assert!(text.starts_with("SIGNOFF_CLEAR_SITE_DATA (file key `clear_site_data`): `bogus`"), "{text}");
        let c = Config::load(None, env(&[("SIGNOFF_CLEAR_SITE_DATA", "cookies, \"storage\"")])).expect("valid");
        assert_eq!(c.clear_site_data, "\"cookies\", \"storage\"");
        assert_eq!(Config::defaults().clear_site_data, "\"cache\", \"cookies\", \"storage\"");
        let none = Config::load(None, env(&[("SIGNOFF_CLEAR_SITE_DATA", "")])).expect("empty is allowed");
        assert_eq!(none.clear_site_data, "", "no header");
        let e = Config::load(None, env(&[("SIGNOFF_LOG_LEVEL", "loud")])).expect_err("level");
        assert!(e.to_string().contains("SIGNOFF_LOG_LEVEL"), "{e}");

        let unknown = unknown_variables(env(&[
            ("SIGNOFF_LISTN", "x"),
            ("SIGNOFF_PUBLIC_URL", "x"),
            ("SIGNOFF_TEST_POSTGRES_URL", "x"),
            ("SIGNOFF_CONFIG", "x"),
            ("SIGNOFF_DATABASE", "x"),
            ("SIGNOFF_ZZZZZZZZZZZZZ", "x"),
            ("HOME", "x"),
        ]));
        assert_eq!(
            unknown,
            vec![
                ("SIGNOFF_LISTN".to_owned(), Some("SIGNOFF_LISTEN".to_owned())),
                ("SIGNOFF_DATABASE".to_owned(), Some("SIGNOFF_DATABASE_URL".to_owned())),
                ("SIGNOFF_ZZZZZZZZZZZZZ".to_owned(), None),
            ]
        );
    }

    #[test]
    fn readme_documents_every_key() {
        let readme = include_str!("../../../../README.md");
        for (key, _, _) in KEYS {
            let var = format!("`SIGNOFF_{}`", key.to_ascii_uppercase());
            assert!(readme.contains(&var), "README.md does not document {var}");
        }
    }

    #[test]
    fn cidr_blocks_contain_what_they_should() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "an IPv4-mapped peer is the IPv4 peer");
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()) && !one.contains("::2".parse().unwrap()));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("192.0.2.1".parse().unwrap()) && !any.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "nonsense".parse::<Cidr>().is_err());
        let c = Config::defaults();
        assert!(c.trusted_proxies.iter().any(|n| n.contains("127.0.0.1".parse().unwrap())));
        assert!(!c.trusted_proxies.iter().any(|n| n.contains("192.0.2.1".parse().unwrap())));
    }

    #[test]
    fn database_and_redis_passwords_never_show() {
        let c = Config::load(
            None,
            env(&[
                ("SIGNOFF_DATABASE_URL", "postgres://signoff:hunter2-secret@db.internal:5432/signoff"),
                ("SIGNOFF_REDIS_URL", "redis://:r3dis-secret@cache:6379/0"),
            ]),
        )
        .unwrap();
        let shown = format!("{c:?} {} {}", c.database_url, c.redis_url.as_ref().unwrap());
        assert!(!shown.contains("hunter2-secret") && !shown.contains("r3dis-secret"), "{shown}");
        assert!(shown.contains("postgres://signoff:redacted@db.internal:5432/signoff"), "{shown}");
        assert_eq!(c.database_url.expose(), "postgres://signoff:hunter2-secret@db.internal:5432/signoff");
        let query = SecretUrl("postgres://db/x?sslmode=require&password=q-secret&sslpassword=k-secret".into());
        assert_eq!(query.to_string(), "postgres://db/x?sslmode=require&password=redacted&sslpassword=redacted");
        let odd = SecretUrl("postgres://u:p@[bad".into());
        assert_eq!(odd.to_string(), "postgres:<redacted>");
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_origin, "http://localhost:8080");
        assert_eq!(c.database_url.expose(), "sqlite://signoff.db");
        assert_eq!(c.session_cookie, "__Host-signoff_session");
        assert!(c.cookie_secure);
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn environment_wins_over_file_and_unknown_file_keys_fail() {
        let dir = std::env::temp_dir().join(format!("signoff-config-{}", signoff_core::secret::random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("signoff.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\nredirect_allowlist = [\"https://app.example.com\"]\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), env(&[("SIGNOFF_LISTEN", "127.0.0.1:9100")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.redirect_allowlist, vec!["http://localhost:8080", "https://app.example.com"]);
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(matches!(Config::load(Some(&file), env(&[])), Err(ConfigError::UnknownKey(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_delivery_claim_is_bounded() {
        for bad in ["19", "3601", "99999999999999", "-1", "soon"] {
            let e = Config::load(None, env(&[("SIGNOFF_DELIVERY_CLAIM_SECONDS", bad)]));
            assert!(matches!(e, Err(ConfigError::Invalid { key: "delivery_claim_seconds", .. })), "{bad:?}");
        }
        let c = Config::load(None, env(&[("SIGNOFF_DELIVERY_CLAIM_SECONDS", "20")])).unwrap();
        assert_eq!(c.delivery_claim, std::time::Duration::from_secs(20));
        assert_eq!(Config::load(None, env(&[])).unwrap().delivery_claim, std::time::Duration::from_secs(60));
    }

    #[test]
    fn a_short_admin_key_is_refused() {
        for short in ["k", "0123456789abcdef0123456789abcde"] {
            let e = Config::load(None, env(&[("SIGNOFF_ADMIN_TOKEN", short)]));
            assert!(matches!(e, Err(ConfigError::Invalid { key: "admin_token", .. })), "{short:?}");
        }
        let c = Config::load(None, env(&[("SIGNOFF_ADMIN_TOKEN", &"k".repeat(32))])).unwrap();
        assert!(c.admin_token.is_some());
        assert!(Config::load(None, env(&[("SIGNOFF_ADMIN_TOKEN", "")])).unwrap().admin_token.is_none());
    }

    #[test]
    fn plain_http_elsewhere_needs_the_insecure_switch() {
        let e = Config::load(None, env(&[("SIGNOFF_PUBLIC_URL", "http://example.test")]));
        assert!(matches!(e, Err(ConfigError::Invalid { key: "public_url", .. })));
        let c =
            Config::load(None, env(&[("SIGNOFF_PUBLIC_URL", "http://example.test"), ("SIGNOFF_INSECURE_DEV", "1")]))
                .unwrap();
        assert!(!c.cookie_secure);
        assert_eq!(c.session_cookie, "signoff_session");
        let c = Config::load(None, env(&[("SIGNOFF_PUBLIC_URL", "https://auth.example.com")])).unwrap();
        assert!(c.cookie_secure);
        assert!(Config::load(None, env(&[("SIGNOFF_SESSION_IDLE_TIMEOUT_SECONDS", "abc")])).is_err());
    }
}
