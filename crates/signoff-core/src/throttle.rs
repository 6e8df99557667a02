//! Limits on failed sign-in attempts, per account and per client address.
//!
//! Only failures count: a correct password is never throttled by its own success, and a
//! success clears the account's counter. Once a key reaches its limit inside the window,
//! further attempts for it are refused without checking the password until the window ends.
//! Unknown accounts are counted exactly like known ones, so the limiter reveals nothing about
//! which addresses exist.
//!
//! The counters live in process memory: right for the embedded single-node default. A
//! multi-node deployment shares them through the distributed store later; the interface is
//! this type's three methods.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

/// How many failures are allowed per window.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures_per_account: u32,
    pub max_failures_per_ip: u32,
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self { max_failures_per_account: 5, max_failures_per_ip: 50, window: Duration::minutes(15) }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: OffsetDateTime,
    failures: u32,
}

/// Keys are tagged so an address and an e-mail can never collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Ip(String),
}

/// Entries beyond this count trigger a purge of expired windows.
const PURGE_ABOVE: usize = 50_000;

#[derive(Debug, Default)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    windows: Mutex<HashMap<Key, Window>>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self { policy, windows: Mutex::default() }
    }

    /// `Some(wait)` when either the account or the address is over its limit.
    pub fn check(&self, account: &str, ip: &str, now: OffsetDateTime) -> Option<Duration> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let over = |key: Key, max: u32| {
            windows
                .get(&key)
                .filter(|w| w.failures >= max && now < w.started + self.policy.window)
                .map(|w| w.started + self.policy.window - now)
        };
        let a = over(Key::Account(account.to_owned()), self.policy.max_failures_per_account);
        let i = over(Key::Ip(ip.to_owned()), self.policy.max_failures_per_ip);
        a.into_iter().chain(i).max()
    }

    pub fn record_failure(&self, account: &str, ip: &str, now: OffsetDateTime) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() > PURGE_ABOVE {
            let window = self.policy.window;
            windows.retain(|_, w| now < w.started + window);
        }
        for key in [Key::Account(account.to_owned()), Key::Ip(ip.to_owned())] {
            let w = windows.entry(key).or_insert(Window { started: now, failures: 0 });
            if now >= w.started + self.policy.window {
                *w = Window { started: now, failures: 0 };
            }
            w.failures += 1;
        }
    }

    pub fn record_success(&self, account: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows.remove(&Key::Account(account.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit_and_reopens_after_window() {
        let t = LoginThrottle::new(ThrottlePolicy {
            max_failures_per_account: 2,
            max_failures_per_ip: 3,
            window: Duration::minutes(10),
        });
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(t.check("a", "ip", now).is_none());
        t.record_failure("a", "ip", now);
        t.record_failure("a", "ip", now);
        assert_eq!(t.check("a", "ip", now + Duration::minutes(1)), Some(Duration::minutes(9)));
        assert!(t.check("b", "other", now).is_none());
        t.record_failure("b", "ip", now);
        assert!(t.check("c", "ip", now).is_some(), "address limit reached");
        assert!(t.check("a", "ip2", now + Duration::minutes(10)).is_none());
        t.record_success("a");
        assert!(t.check("a", "ip2", now).is_none());
    }
}
