//! The registry of settings: every key once, with the parser of its value, its default and its
//! meaning. From it come the README's table (`scripts/config-table.py`) and `serve --help`
//! ([`KEYS`]), and the typed, checked values `Config::load` assembles its sections from
//! ([`Settings`]: one field per key, so a key misspelt in the code does not compile). What a
//! setting's environment variable is called, and the unknown ones, are here too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::ConfigError;
use super::values::*;

/// `key: Parser = "default", "meaning";` for every setting; the environment variable is
/// `SIGNOFF_` + the key in upper case. A parser is a [`Kind`]: it reads the text (trimmed) and
/// checks it, naming the variable in its error.
macro_rules! settings {
    ($($key:ident: $kind:ty = $default:literal, $meaning:literal;)*) => {
        /// `(key, default, meaning)` of every setting, in the registry's order.
        pub const KEYS: &[(&str, &str, &str)] = &[$((stringify!($key), $default, $meaning)),*];

        /// Every setting's value, read by its parser; what depends on several settings is
        /// decided in `Config::load`.
        pub(super) struct Settings {
            $(pub $key: <$kind as Kind>::Value,)*
        }

        impl Settings {
            /// Reads every key of `values` (which holds every key: defaults, then the file and
            /// the environment over them).
            pub(super) fn parse(values: &BTreeMap<&'static str, String>) -> Result<Self, ConfigError> {
                let text = |key: &str| values.get(key).map_or("", |v| v.trim());
                Ok(Self { $($key: <$kind as Kind>::parse(stringify!($key), text(stringify!($key)))?,)* })
            }
        }
    };
}

settings! {
    listen: Parsed<SocketAddr> = "127.0.0.1:8080",
        "address to bind";
    public_url: HttpUrl = "http://localhost:8080",
        "the origin browsers use; cookie security and the origin check derive from it";
    database_url: Secret = "sqlite://signoff.db",
        "sqlite://PATH (created and migrated on start) or postgres://…";
    redis_url: OptionalSecret = "",
        "optional Redis (redis://[:password@]host:port) carrying revocation hints between nodes; without it PostgreSQL LISTEN/NOTIFY does";
    redis_key_prefix: Printable = "signoff",
        "prefix of the Redis channel (`PREFIX:revocations`), so deployments can share a Redis";
    database_max_connections: Count<u32> = "16",
        "PostgreSQL connections per node for requests (the node protocol keeps up to 8 more)";
    database_acquire_timeout_millis: Millis<1> = "2000",
        "how long a request waits for a PostgreSQL connection before 503 with Retry-After";
    node_lease_millis: Millis<400, 600_000> = "2000",
        "PostgreSQL: a node's lease; renewed every quarter of it. A node that stops (paused, cut off) is waited out for at most this long";
    node_ack_wait_millis: Millis<1> = "100",
        "PostgreSQL: how long a revocation waits for every node's acknowledgement before fencing the late ones";
    admin_token: BearerKey = "",
        "bearer key of the admin API and introspection; empty turns the admin API off";
    metrics_token: BearerKey = "",
        "bearer key that GET /metrics requires; empty leaves /metrics open (then expose it only where scrapers alone reach it)";
    refresh_reuse_grace_seconds: Seconds<0> = "5",
        "how long the immediate predecessor of a rotated refresh token is honoured; 0 turns it off";
    remember_reuse_grace_seconds: Seconds<0> = "5",
        "how long the previous remember-me validator is honoured, once, for a tab racing its rotation; 0 turns it off";
    access_token_ttl_seconds: Seconds<30> = "900",
        "lifetime of access tokens (JWT, EdDSA)";
    refresh_token_ttl_seconds: Seconds<60> = "2592000",
        "lifetime of a refresh token (never beyond its session's)";
    token_audience: Optional = "",
        "the aud claim of access tokens; empty means the public origin";
    insecure_dev: Flag = "false",
        "allow a plain-http public URL other than localhost (cookies lose Secure and the __Host- prefix)";
    session_cookie: Text = "__Host-signoff_session",
        "name of the session cookie";
    remember_cookie: Text = "__Host-signoff_remember",
        "name of the remember-me cookie";
    session_idle_timeout_seconds: Seconds<60> = "1800",
        "a session unused this long ends";
    session_lifetime_seconds: Seconds<60> = "36000",
        "a session ends this long after sign-in, however busy";
    remember_me_seconds: Seconds<60> = "2592000",
        "how long a remember-me token lasts (30 days)";
    events_keepalive_seconds: Seconds<1> = "15",
        "interval of keep-alive comments on /auth/events";
    revocation_poll_millis: Millis<10> = "250",
        "how often this process reads the revocation feed without a hint (on SQLite the only way other processes' revocations arrive; on PostgreSQL the backstop)";
    oidc_logout_wait_millis: Millis<0, 30_000> = "2000",
        "how long an app's logout (RP-initiated) waits for the other apps' back-channel logouts before it redirects (those left keep retrying)";
    login_max_failures_per_account_and_ip: Count<u32> = "5",
        "failed sign-ins per account from one client address (IPv6: its /64) per window before 429";
    login_max_failures_per_ip: Count<u32> = "50",
        "failed sign-ins per client address (IPv6: its /64) per window before 429";
    login_max_failures_per_account: Count<u32> = "100",
        "failed sign-ins per account from all addresses together per window before 429";
    login_failure_window_seconds: Seconds<1> = "900",
        "the window of the three limits above";
    register_max_per_ip: Count<u32> = "10",
        "registrations per client address (IPv6: its /64) per hour";
    register_max_per_email: Count<u32> = "3",
        "registration attempts per e-mail address per hour";
    email_change_max_per_account: Count<u32> = "5",
        "e-mail change attempts per account per hour, whatever their outcome";
    email_change_max_per_target: Count<u32> = "3",
        "e-mail change attempts to one new address per hour, from any account";
    password_reset_max_per_ip: Count<u32> = "10",
        "password reset requests per client address (IPv6: its /64) per hour";
    password_reset_max_per_email: Count<u32> = "3",
        "password reset requests for one e-mail address from one client address (IPv6: its /64) per hour, with or without an account";
    password_reset_max_per_mailbox: Count<u32> = "20",
        "password reset requests for one e-mail address from all client addresses together per hour (so an inbox cannot be flooded)";
    max_sessions_per_user: Count<u32> = "100",
        "live sessions per user; signing in beyond it ends the oldest";
    max_event_streams_per_session: Count<usize> = "8",
        "open /auth/events streams per session; more are refused with 429";
    max_event_streams_per_user: Count<usize> = "32",
        "open /auth/events streams per user, all sessions together";
    max_event_streams_per_address: Count<usize> = "64",
        "open /auth/events streams per client address (IPv6: its /64), all accounts together";
    max_event_streams: Count<usize> = "512",
        "open /auth/events streams in all; keep it well below max_connections so streams cannot take every slot";
    password_hash_concurrency: Number<usize> = "0",
        "password hashes (argon2id, 19 MiB each) computed at once; 0 means twice the number of cores";
    password_hash_queue_millis: Millis<1> = "2000",
        "how long a sign-in waits for a hashing slot before 503 with Retry-After";
    max_connections: Count<usize> = "1024",
        "open client connections; further ones wait in the listen backlog";
    header_read_timeout_seconds: Seconds<1, 86400> = "10",
        "a client must send a request's headers within this time (counted from when the connection is ready)";
    keepalive_timeout_seconds: Seconds<1, 86400> = "5",
        "an idle keep-alive connection is closed after this long (or the header timeout, if shorter)";
    write_timeout_seconds: Seconds<1, 86400> = "30",
        "a connection whose client takes none of what the server sends for this long is closed";
    redirect_allowlist: Origins = "",
        "comma-separated origins that return_to may point to besides the public URL";
    clear_site_data: ClearSiteData = "\"cache\", \"cookies\", \"storage\"",
        "value of Clear-Site-Data on logout: a comma-separated list of \"cache\", \"cookies\", \"storage\", \"executionContexts\" or \"*\"; empty sends none";
    trust_proxy: Flag = "false",
        "take the client address from the last X-Forwarded-For entry";
    trusted_proxies: List<Cidr> = "127.0.0.0/8,::1/128",
        "comma-separated CIDRs whose X-Forwarded-*/X-Original-* headers the forward-auth endpoints believe";
    smtp_url: SmtpUrl = "",
        "SMTP server for mail: smtp://[user:password@]host:port (STARTTLS required, except on a loopback server without credentials) or smtps://…; empty writes .eml files to mail_dir";
    mail_from: Mailbox = "",
        "the From of mail; empty means signoff <no-reply@HOST of the public URL>";
    mail_dir: Parsed<PathBuf> = "mail",
        "where mail is written as .eml files when there is no smtp_url (the development inbox)";
    mail_token_ttl_seconds: Seconds<60, 604_800> = "3600",
        "how long a mailed link (e-mail confirmation, password reset) works (60 to 604800)";
    allow_private_callbacks: Flag = "false",
        "let registered clients' callback URLs name private, loopback or link-local addresses (development and tests only)";
    max_feed_waits_per_client: Count<usize> = "16",
        "open /revocations/stream streams and waiting /revocations and /ssf/poll long polls per registered client; more are refused with 429";
    max_feed_waits: Count<usize> = "256",
        "open revocation-feed streams and waiting long-polls in all";
    delivery_claim_seconds: Seconds<20, 3_600> = "60",
        "how long a node holds the logout notifications it took to send (20 to 3600); one it died holding is sent by another node after this";
    max_body_bytes: Number<usize> = "65536",
        "largest request body accepted";
    log_format: Parsed<LogFormat> = "text",
        "text or json";
    log_level: LogLevel = "info",
        "error, warn, info, debug or trace";
}

pub(super) fn known(key: &str) -> Option<&'static str> {
    KEYS.iter().map(|(k, _, _)| *k).find(|k| *k == key)
}

/// The environment variable of a key: `SIGNOFF_` + the key in upper case.
pub fn variable(key: &str) -> String {
    format!("SIGNOFF_{}", key.to_ascii_uppercase())
}

/// `SIGNOFF_*` variables that are no setting (a misspelling, most likely), each with the
/// setting it most resembles. Variables of signoff's tools and tests are not settings and are
/// left alone.
pub fn unknown_variables(env: impl IntoIterator<Item = (String, String)>) -> Vec<(String, Option<String>)> {
    const NOT_SETTINGS: &[&str] = &["CONFIG", "BIN", "URL", "CLIENT_ID", "CLIENT_SECRET", "ISSUER", "AUDIENCE"];
    env.into_iter()
        .filter_map(|(name, _)| {
            let rest = name.strip_prefix("SIGNOFF_")?;
            let key = rest.to_ascii_lowercase();
            if known(&key).is_some()
                || NOT_SETTINGS.contains(&rest)
                || rest.starts_with("TEST_")
                || rest.starts_with("SOAK_")
                || rest.starts_with("STALE_")
            {
                return None;
            }
            // A few letters off, or the start of a setting's name.
            let closest = KEYS
                .iter()
                .map(|(k, _, _)| {
                    let d = if key.len() >= 4 && k.starts_with(&key) { 0 } else { edit_distance(&key, k) };
                    (d, k.len(), *k)
                })
                .min()
                .filter(|(d, _, k)| *d <= 2.max(k.len() / 4))
                .map(|(_, _, k)| variable(k));
            Some((name, closest))
        })
        .collect()
}

/// Levenshtein distance (settings' names are short).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
