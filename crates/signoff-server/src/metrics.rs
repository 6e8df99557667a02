//! A few process counters, rendered in the Prometheus text format at `/metrics`.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by status class: index 0 = 1xx … 4 = 5xx.
    responses: [AtomicU64; 5],
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub logouts: AtomicU64,
    pub sessions_ended: AtomicU64,
    pub csrf_refusals: AtomicU64,
    pub panics: AtomicU64,
    /// `429` answers: a limit was reached (sign-in failures, registrations, streams, …).
    pub throttled: AtomicU64,
    /// `503` answers: load shed (hashing slots, attempts in flight, a saturated store).
    pub busy: AtomicU64,
    /// Client connections open now (kept by the listener).
    pub open_connections: Arc<AtomicU64>,
    /// Deliveries pending and failed, read from the store at most once a second.
    pub deliveries: Cached<(i64, i64)>,
}

impl Metrics {
    /// Counts a response; `retry_after` tells a shed 503 (busy) from another.
    pub fn response(&self, status: u16, retry_after: bool) {
        if let Some(c) = self.responses.get(usize::from(status / 100).saturating_sub(1)) {
            c.fetch_add(1, Relaxed);
        }
        match status {
            429 => Self::inc(&self.throttled),
            503 if retry_after => Self::inc(&self.busy),
            _ => {}
        }
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// The Prometheus text; `event_streams` is the number of sessions with open event streams.
    pub fn render(&self, event_streams: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP signoff_event_stream_sessions Sessions with an open /auth/events stream.\n");
        out.push_str("# TYPE signoff_event_stream_sessions gauge\n");
        let _ = writeln!(out, "signoff_event_stream_sessions {event_streams}");
        out.push_str("# HELP signoff_open_connections Client connections open now.\n");
        out.push_str("# TYPE signoff_open_connections gauge\n");
        let _ = writeln!(out, "signoff_open_connections {}", self.open_connections.load(Relaxed));
        out.push_str("# HELP signoff_http_responses_total HTTP responses by status class.\n");
        out.push_str("# TYPE signoff_http_responses_total counter\n");
        for (i, c) in self.responses.iter().enumerate() {
            let _ = writeln!(out, "signoff_http_responses_total{{class=\"{}xx\"}} {}", i + 1, c.load(Relaxed));
        }
        for (name, help, c) in [
            ("signoff_logins_total", "Successful sign-ins.", &self.logins),
            ("signoff_login_failures_total", "Failed or throttled sign-ins.", &self.login_failures),
            ("signoff_logouts_total", "Logout requests answered.", &self.logouts),
            ("signoff_sessions_ended_total", "Sessions ended by logout or revocation.", &self.sessions_ended),
            ("signoff_csrf_refusals_total", "Requests refused by the cross-site check.", &self.csrf_refusals),
            ("signoff_panics_total", "Handler panics turned into 500.", &self.panics),
            ("signoff_throttled_total", "Requests refused with 429 (a rate or resource limit).", &self.throttled),
            ("signoff_busy_total", "Requests refused with 503 (load shed).", &self.busy),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", c.load(Relaxed));
        }
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
