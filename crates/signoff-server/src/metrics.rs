//! What `/metrics` shows operators, kept by `prometheus-client`: counters, latency histograms
//! (validation, sign-in, logout including its propagation to every node, the node's reads of
//! the revocation feed, outbox deliveries) and gauges read when scraped (connections, event
//! streams, caches, the node's state, the outbox).
//!
//! Every handle is created once, here; the hot path only increments an atomic or observes into
//! a histogram (an uncontended lock and a scan of a dozen bounds). BENCHMARKS.md has the cost.

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Latency bounds in seconds: from 100 µs (a validation answered from memory) to 10 s (a
/// delivery to a slow receiver, a logout waiting out a stopped node's lease).
const BOUNDS: [f64; 15] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// What a request did, for its latency histogram (chosen by route in the edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A credential checked: `/api/me`, `/auth/session`, the gateway endpoints, introspection.
    Validation,
    /// `/auth/login` and `/auth/token` (password and refresh grants).
    SignIn,
    /// Anything that ends sessions or tokens, answered once every node has applied it.
    Logout,
}

impl Operation {
    /// The operation a matched route performs, if it is one of those timed.
    pub fn of(method: &axum::http::Method, route: &str) -> Option<Self> {
        match route {
            "/api/me" | "/auth/session" | "/authz/auth-request" | "/authz/forward-auth" | "/auth/introspect" => {
                Some(Self::Validation)
            }
            "/auth/login" | "/auth/token" => Some(Self::SignIn),
            // `GET /auth/logout` is the confirmation page, not a logout.
            "/auth/logout" if method == axum::http::Method::POST => Some(Self::Logout),
            "/auth/revoke"
            | "/auth/sessions/{id}"
            | "/auth/sessions/{id}/revoke"
            | "/auth/security-report"
            | "/admin/users/{user_id}/revoke" => Some(Self::Logout),
            _ => None,
        }
    }
}

/// Read when scraped: how big the caches are and what the node knows.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    pub event_stream_sessions: usize,
    pub caches: signoff_core::authority::CacheSizes,
    /// `None` on a single process.
    pub node_vouches: Option<bool>,
    pub jeopardy: Option<Duration>,
    pub feed_head: i64,
}

pub struct Metrics {
    registry: Registry,
    /// The outbox gauges, encoded only when the store was read.
    outbox: Registry,
    /// Responses by status class: index 0 = 1xx … 4 = 5xx.
    responses: [Counter; 5],
    pub logins: Counter,
    pub login_failures: Counter,
    pub logouts: Counter,
    pub sessions_ended: Counter,
    pub csrf_refusals: Counter,
    pub panics: Counter,
    /// `429` answers: a limit was reached (sign-in failures, registrations, streams, …).
    pub throttled: Counter,
    /// `503` answers: load shed (hashing slots, attempts in flight, a saturated store).
    pub busy: Counter,
    validation: Histogram,
    sign_in: Histogram,
    logout: Histogram,
    /// This node's reads of the revocation feed (catching up before it vouches, following).
    pub feed_read: Histogram,
    /// Outbox deliveries to registered clients, by outcome.
    deliveries_sent: Family<[(&'static str, &'static str); 1], Histogram>,
    /// Mail rows processed (sent or skipped alike), by letter.
    mail_processed: Family<[(&'static str, &'static str); 1], Counter>,
    /// Client connections open now (kept by the listener).
    pub open_connections: Arc<AtomicU64>,
    /// Deliveries pending and failed, read from the store at most once a second.
    pub deliveries: Cached<(i64, i64)>,
    gauges: Gauges,
}

/// Set from a [`Snapshot`] just before each scrape is encoded.
#[derive(Default)]
struct Gauges {
    open_connections: Gauge,
    event_stream_sessions: Gauge,
    cached_sessions: Gauge,
    denied_tokens: Gauge,
    verified_tokens: Gauge,
    node_vouches: Gauge,
    jeopardy_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    feed_head: Gauge,
    deliveries_pending: Gauge,
    deliveries_failed: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn histogram() -> Histogram {
    Histogram::new(BOUNDS)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let classes = Family::<[(&'static str, &'static str); 1], Counter>::default();
        // Handles on the family's counters (a clone shares the atomic): no label look-up per
        // response.
        let responses =
            ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| classes.get_or_create(&[("class", class)]).clone());
        registry.register("signoff_http_responses", "HTTP responses by status class", classes);
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let logins = counter(&mut registry, "signoff_logins", "Successful sign-ins");
        let login_failures = counter(&mut registry, "signoff_login_failures", "Failed or throttled sign-ins");
        let logouts = counter(&mut registry, "signoff_logouts", "Logout requests answered");
        let sessions_ended = counter(&mut registry, "signoff_sessions_ended", "Sessions ended by logout or revocation");
        let csrf_refusals = counter(&mut registry, "signoff_csrf_refusals", "Requests refused by the cross-site check");
        let panics = counter(&mut registry, "signoff_panics", "Handler panics turned into 500");
        let throttled =
            counter(&mut registry, "signoff_throttled", "Requests refused with 429 (a rate or resource limit)");
        let busy = counter(&mut registry, "signoff_busy", "Requests refused with 503 (load shed)");

        let timed = |registry: &mut Registry, name: &str, help: &str| {
            let h = histogram();
            registry.register_with_unit(name, help, Unit::Seconds, h.clone());
            h
        };
        let validation = timed(
            &mut registry,
            "signoff_validation",
            "Requests that check a credential (/api/me, /auth/session, the gateway, introspection), answered",
        );
        let sign_in =
            timed(&mut registry, "signoff_sign_in", "Sign-ins and token grants, answered (argon2id included)");
        let logout = timed(
            &mut registry,
            "signoff_logout",
            "Logouts and revocations, answered once every node has applied them (propagation included)",
        );
        let feed_read = timed(&mut registry, "signoff_feed_read", "This node's reads of the revocation feed");
        let deliveries_sent = Family::<[(&'static str, &'static str); 1], Histogram>::new_with_constructor(histogram);
        registry.register_with_unit(
            "signoff_delivery",
            "Logout notifications sent to registered clients, by outcome",
            Unit::Seconds,
            deliveries_sent.clone(),
        );
        let mail_processed = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "signoff_mail_processed",
            "Mail to users processed by the outbox worker, sent or skipped alike (an address without an account is skipped), by letter",
            mail_processed.clone(),
        );

        let gauges = Gauges::default();
        for (name, help, g) in [
            ("signoff_open_connections", "Client connections open now", &gauges.open_connections),
            (
                "signoff_event_stream_sessions",
                "Sessions with an open /auth/events stream",
                &gauges.event_stream_sessions,
            ),
            ("signoff_cached_sessions", "Sessions in this process's validation cache", &gauges.cached_sessions),
            ("signoff_denied_tokens", "Access-token ids denied in memory until they expire", &gauges.denied_tokens),
            (
                "signoff_verified_tokens",
                "Access tokens whose signature this process remembers",
                &gauges.verified_tokens,
            ),
            (
                "signoff_node_vouches",
                "1 while this node may answer from memory (always 1 on a single process)",
                &gauges.node_vouches,
            ),
            ("signoff_feed_head", "The last revocation-feed position this process applied", &gauges.feed_head),
        ] {
            registry.register(name, help, g.clone());
        }
        // Shown only when the store answered: no stale figure passes for a current one.
        let mut outbox = Registry::default();
        outbox.register(
            "signoff_deliveries_pending",
            "Logout notifications waiting to be delivered",
            gauges.deliveries_pending.clone(),
        );
        outbox.register(
            "signoff_deliveries_failed",
            "Logout notifications that failed for good (kept a week)",
            gauges.deliveries_failed.clone(),
        );
        registry.register_with_unit(
            "signoff_node_jeopardy",
            "How long this node has not vouched for its caches (0 while it does)",
            Unit::Seconds,
            gauges.jeopardy_seconds.clone(),
        );
        Self {
            registry,
            outbox,
            responses,
            logins,
            login_failures,
            logouts,
            sessions_ended,
            csrf_refusals,
            panics,
            throttled,
            busy,
            validation,
            sign_in,
            logout,
            feed_read,
            deliveries_sent,
            mail_processed,
            open_connections: Arc::default(),
            deliveries: Cached::default(),
            gauges,
        }
    }
}

impl Metrics {
    /// Counts a response; `retry_after` tells a shed 503 (busy) from another.
    pub fn response(&self, status: u16, retry_after: bool) {
        if let Some(c) = self.responses.get(usize::from(status / 100).saturating_sub(1)) {
            c.inc();
        }
        match status {
            429 => {
                self.throttled.inc();
            }
            503 if retry_after => {
                self.busy.inc();
            }
            _ => {}
        }
    }

    /// Times a request that performed `op`.
    pub fn observe(&self, op: Operation, took: Duration) {
        let h = match op {
            Operation::Validation => &self.validation,
            Operation::SignIn => &self.sign_in,
            Operation::Logout => &self.logout,
        };
        h.observe(took.as_secs_f64());
    }

    /// Times one delivery attempt; `outcome` is `delivered`, `refused` or `unreachable`.
    pub fn delivery(&self, outcome: &'static str, took: Duration) {
        self.deliveries_sent.get_or_create(&[("outcome", outcome)]).observe(took.as_secs_f64());
    }

    /// Counts one mail row processed, whether it was sent or skipped.
    pub fn mail_processed(&self, letter: &'static str) {
        self.mail_processed.get_or_create(&[("letter", letter)]).inc();
    }

    /// The exposition (OpenMetrics text, which Prometheus's text parser reads too).
    /// `deliveries` are the outbox's pending and failed counts, when the store answered.
    pub fn render(&self, s: Snapshot, deliveries: Option<(i64, i64)>) -> String {
        let g = &self.gauges;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        g.open_connections.set(i64::try_from(self.open_connections.load(Relaxed)).unwrap_or(i64::MAX));
        g.event_stream_sessions.set(count(s.event_stream_sessions));
        g.cached_sessions.set(count(s.caches.sessions));
        g.denied_tokens.set(count(s.caches.denied_tokens));
        g.verified_tokens.set(count(s.caches.verified_tokens));
        g.node_vouches.set(i64::from(s.node_vouches.unwrap_or(true)));
        g.jeopardy_seconds.set(s.jeopardy.map_or(0.0, |d| d.as_secs_f64()));
        g.feed_head.set(s.feed_head);
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        if let Some((pending, failed)) = deliveries {
            g.deliveries_pending.set(pending);
            g.deliveries_failed.set(failed);
            let _ = encode_registry(&mut out, &self.outbox);
        }
        out.push_str("# EOF\n");
        out
    }
}

/// A value read from the store, kept for a second so scrapes cannot turn into load.
#[derive(Debug, Default)]
pub struct Cached<T: Copy> {
    value: tokio::sync::Mutex<Option<(std::time::Instant, Option<T>)>>,
}

impl<T: Copy> Cached<T> {
    pub async fn get_or_refresh<F, Fut>(&self, read: F) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let mut value = self.value.lock().await;
        if let Some((at, v)) = *value
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return v;
        }
        let v = read().await;
        *value = Some((std::time::Instant::now(), v));
        v
    }
}
