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

pub use keys::{KEYS, unknown_variables, variable};
use keys::{Settings, known};
pub use values::{AdminKey, Cidr, LogFormat, SecretUrl};
use values::{invalid, scalar};

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
    /// How long RP-initiated logout waits for the apps' back-channel logouts.
    pub oidc_logout_wait: std::time::Duration,
    /// Concurrent password hashes (resolved: never 0).
    pub password_hash_concurrency: usize,
    pub password_hash_queue: std::time::Duration,
    pub max_connections: usize,
    pub header_read_timeout: std::time::Duration,
    pub keepalive_timeout: std::time::Duration,
    pub write_timeout: std::time::Duration,
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

    /// The sections from every setting's checked value, and what depends on several settings.
    fn from_values(v: &BTreeMap<&'static str, String>) -> Result<Self, ConfigError> {
        let s = Settings::parse(v)?;
        let public_url = s.public_url;
        let public_origin = public_url.origin().ascii_serialization();
        let local = matches!(public_url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let cookie_secure = public_url.scheme() == "https" || local;
        if !cookie_secure && !s.insecure_dev {
            return Err(invalid(
                "public_url",
                "plain http is only allowed for localhost; set SIGNOFF_INSECURE_DEV=true for other development hosts",
            ));
        }
        let cookie_name = |k: &'static str, name: &str| -> Result<String, ConfigError> {
            let name = if cookie_secure { name } else { name.trim_start_matches("__Host-") };
            let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token_char) {
                return Err(invalid(k, "not a valid cookie name"));
            }
            Ok(name.to_owned())
        };
        let session_cookie = cookie_name("session_cookie", &s.session_cookie)?;
        let remember_cookie = cookie_name("remember_cookie", &s.remember_cookie)?;
        if session_cookie == remember_cookie {
            return Err(invalid("remember_cookie", "must differ from session_cookie"));
        }
        let public_host = public_url.host_str().unwrap_or("localhost").to_owned();
        Ok(Self {
            sessions: SessionPolicy {
                idle_timeout: s.session_idle_timeout_seconds,
                absolute_lifetime: s.session_lifetime_seconds,
                remember_lifetime: s.remember_me_seconds,
                race_grace: s.remember_reuse_grace_seconds,
                max_sessions_per_user: s.max_sessions_per_user,
            },
            throttle: ThrottlePolicy {
                max_failures_per_account_and_ip: s.login_max_failures_per_account_and_ip,
                max_failures_per_ip: s.login_max_failures_per_ip,
                max_failures_per_account: s.login_max_failures_per_account,
                window: s.login_failure_window_seconds,
                register_max_per_ip: s.register_max_per_ip,
                register_max_per_email: s.register_max_per_email,
                email_change_max_per_account: s.email_change_max_per_account,
                email_change_max_per_target: s.email_change_max_per_target,
                password_reset_max_per_ip: s.password_reset_max_per_ip,
                password_reset_max_per_email: s.password_reset_max_per_email,
                password_reset_max_per_mailbox: s.password_reset_max_per_mailbox,
            },
            tokens: TokenPolicy {
                issuer: public_origin.clone(),
                audience: s.token_audience.unwrap_or_else(|| public_origin.clone()),
                access_ttl: s.access_token_ttl_seconds,
                refresh_ttl: s.refresh_token_ttl_seconds,
                reuse_grace: s.refresh_reuse_grace_seconds,
            },
            streams: StreamLimits {
                per_session: s.max_event_streams_per_session,
                per_user: s.max_event_streams_per_user,
                per_address: s.max_event_streams_per_address,
                total: s.max_event_streams,
            },
            listen: s.listen,
            redirect_allowlist: std::iter::once(public_origin.clone()).chain(s.redirect_allowlist).collect(),
            public_url,
            public_origin,
            database_url: s.database_url,
            redis_url: s.redis_url,
            redis_key_prefix: s.redis_key_prefix,
            database_max_connections: s.database_max_connections,
            database_acquire_timeout: s.database_acquire_timeout_millis,
            node_lease: s.node_lease_millis,
            node_ack_wait: s.node_ack_wait_millis,
            admin_token: s.admin_token,
            metrics_token: s.metrics_token,
            cookie_secure,
            session_cookie,
            remember_cookie,
            events_keepalive: s.events_keepalive_seconds,
            revocation_poll: s.revocation_poll_millis,
            oidc_logout_wait: s.oidc_logout_wait_millis,
            password_hash_concurrency: match s.password_hash_concurrency {
                0 => 2 * std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
            password_hash_queue: s.password_hash_queue_millis,
            max_connections: s.max_connections,
            header_read_timeout: s.header_read_timeout_seconds.unsigned_abs(),
            keepalive_timeout: s.keepalive_timeout_seconds.unsigned_abs(),
            write_timeout: s.write_timeout_seconds.unsigned_abs(),
            clear_site_data: s.clear_site_data,
            trust_proxy: s.trust_proxy,
            trusted_proxies: s.trusted_proxies,
            allow_private_callbacks: s.allow_private_callbacks,
            smtp_url: s.smtp_url,
            mail_from: s.mail_from.unwrap_or_else(|| format!("signoff <no-reply@{public_host}>")),
            mail_dir: s.mail_dir,
            mail_token_ttl: s.mail_token_ttl_seconds,
            max_feed_waits_per_client: s.max_feed_waits_per_client,
            max_feed_waits: s.max_feed_waits,
            delivery_claim: s.delivery_claim_seconds.unsigned_abs(),
            max_body_bytes: s.max_body_bytes,
            log_format: s.log_format,
            log_level: s.log_level,
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

    /// The README's table is the registry's, row for row (`scripts/config-table.py` writes it).
    #[test]
    fn readme_documents_every_key_as_the_registry_says() {
        let readme = include_str!("../../../../README.md");
        for (key, default, meaning) in KEYS {
            let default = if default.is_empty() { "(none)".to_owned() } else { format!("`{default}`") };
            let row = format!("| `{}` | `{key}` | {default} | {meaning} |", variable(key));
            assert!(readme.contains(&row), "README.md lacks {row}: run scripts/config-table.py");
        }
    }

    /// Every default in the registry passes its own parser, and every parser refuses what it
    /// should, naming the variable.
    #[test]
    fn every_default_parses_and_bounds_are_enforced() {
        let c = Config::defaults();
        assert_eq!(
            (c.node_lease, c.delivery_claim),
            (std::time::Duration::from_secs(2), std::time::Duration::from_secs(60))
        );
        assert_eq!(c.sessions.idle_timeout, Duration::minutes(30));
        for (key, bad) in [
            ("SIGNOFF_NODE_LEASE_MILLIS", "399"),
            ("SIGNOFF_NODE_LEASE_MILLIS", "600001"),
            ("SIGNOFF_DELIVERY_CLAIM_SECONDS", "3601"),
            ("SIGNOFF_MAX_SESSIONS_PER_USER", "0"),
            ("SIGNOFF_SESSION_IDLE_TIMEOUT_SECONDS", "59"),
            ("SIGNOFF_REVOCATION_POLL_MILLIS", "-5"),
            ("SIGNOFF_TRUST_PROXY", "maybe"),
            ("SIGNOFF_TRUSTED_PROXIES", "10.0.0.0/8, nonsense"),
            ("SIGNOFF_REDIRECT_ALLOWLIST", "mailto:a@b"),
            ("SIGNOFF_ADMIN_TOKEN", "short"),
            ("SIGNOFF_LOG_FORMAT", "xml"),
            ("SIGNOFF_REDIS_KEY_PREFIX", "has space"),
        ] {
            let e = Config::load(None, env(&[(key, bad)])).expect_err(bad);
            assert!(e.to_string().starts_with(key), "{key}={bad}: {e}");
        }
        let edge = Config::load(
            None,
            env(&[("SIGNOFF_NODE_LEASE_MILLIS", "600000"), ("SIGNOFF_DELIVERY_CLAIM_SECONDS", "20")]),
        )
        .expect("bounds are inclusive");
        assert_eq!(edge.node_lease, std::time::Duration::from_secs(600));
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
