//! Rate limits: failed sign-ins, registrations and e-mail changes, counted in fixed windows.
//!
//! Sign-in counts only failures, per (account, client address), per client address, and per
//! account from everywhere together. The last limit sits far above the first (100 against 5 by
//! default), so an attacker guessing from one address locks out only themselves, and the owner
//! keeps signing in from their own address; a success clears its (account, address) counter.
//! Unknown accounts are counted exactly like known ones, so the limiter reveals nothing about
//! which addresses exist. IPv6 clients are counted by their /64, the block one host usually
//! holds.
//!
//! Registrations and e-mail changes count every attempt, whatever its outcome, so the answer to
//! "is this address taken?" cannot be read from which attempts were throttled.
//!
//! The counters live in process memory, which is all one node needs. Several nodes also count
//! in [`SharedCounters`] (PostgreSQL), where an attempt is counted before it is worked on, by
//! one atomic take that refuses it above the limit: a burst spread over any number of nodes
//! gets no more than the limit (a failed sign-in stays counted; a correct password, or a check
//! that could not be made, is given back).

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

/// How many failed sign-ins are allowed per window, and how many registrations and e-mail
/// changes per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub max_failures_per_account_and_ip: u32,
    pub max_failures_per_ip: u32,
    pub max_failures_per_account: u32,
    pub window: Duration,
    pub register_max_per_ip: u32,
    pub register_max_per_email: u32,
    pub email_change_max_per_account: u32,
    pub email_change_max_per_target: u32,
    pub password_reset_max_per_ip: u32,
    /// Per (e-mail address, client address): one client cannot use up the owner's requests.
    pub password_reset_max_per_email: u32,
    /// Per e-mail address from every client together: an inbox cannot be flooded.
    pub password_reset_max_per_mailbox: u32,
}

impl ThrottlePolicy {
    /// Every limit `n`, failures counted over `window`: for tests and tools that are not about
    /// throttling (the server's defaults are its config registry's).
    pub fn uniform(n: u32, window: Duration) -> Self {
        Self {
            max_failures_per_account_and_ip: n,
            max_failures_per_ip: n,
            max_failures_per_account: n,
            window,
            register_max_per_ip: n,
            register_max_per_email: n,
            email_change_max_per_account: n,
            email_change_max_per_target: n,
            password_reset_max_per_ip: n,
            password_reset_max_per_email: n,
            password_reset_max_per_mailbox: n,
        }
    }
}

/// Every limit of the authority.
#[derive(Debug)]
pub struct Limits {
    pub login: LoginThrottle,
    /// Registrations by client address and by target e-mail.
    pub register_ip: Limit,
    pub register_email: Limit,
    /// E-mail changes by account, whatever their outcome.
    pub email_change: Limit,
    /// E-mail changes to one target address (each mails it a link), from any account.
    pub email_change_target: Limit,
    /// Password reset requests by client address, by (target e-mail, client address) and by
    /// target e-mail from everywhere (known or not).
    pub reset_ip: Limit,
    pub reset_email: Limit,
    pub reset_mailbox: Limit,
    /// At most one stored `register_existing` event per account per hour.
    pub register_existing: Limit,
    /// Shared Signals verification requests per stream (`min_verification_interval`).
    pub ssf_verification: Limit,
}

/// The least time between two verification requests of one Shared Signals stream, in seconds.
pub const MIN_VERIFICATION_INTERVAL: i64 = 15;

impl Limits {
    pub fn new(p: ThrottlePolicy) -> Self {
        let hour = Duration::hours(1);
        Self {
            login: LoginThrottle::new(p),
            register_ip: Limit::new(p.register_max_per_ip, hour),
            register_email: Limit::new(p.register_max_per_email, hour),
            email_change: Limit::new(p.email_change_max_per_account, hour),
            email_change_target: Limit::new(p.email_change_max_per_target, hour),
            reset_ip: Limit::new(p.password_reset_max_per_ip, hour),
            reset_email: Limit::new(p.password_reset_max_per_email, hour),
            reset_mailbox: Limit::new(p.password_reset_max_per_mailbox, hour),
            register_existing: Limit::new(1, hour),
            ssf_verification: Limit::new(1, Duration::seconds(MIN_VERIFICATION_INTERVAL)),
        }
    }
}

/// One counter as every node sees it: a key (a SHA-256 digest of the limit's tag and what it
/// counts: the table holds no e-mail address or client address in the clear, though a known
/// one can be matched by hashing it), its window and its maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub key: String,
    pub window: Duration,
    pub max: u32,
}

impl Counted {
    pub fn new(tag: &str, key: &str, limit: &Limit) -> Self {
        let digest = Sha256::new().chain_update(tag).chain_update([0]).chain_update(key).finalize();
        let key = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self { key, window: limit.window, max: limit.max }
    }
}

/// What a successful [`SharedCounters::take`] counted: each counter's key and the start of the
/// window it was counted in, so settling it touches that window only (a window that ended and
/// started again meanwhile is left alone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken {
    pub windows: Vec<(String, OffsetDateTime)>,
}

/// Why a shared take was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedRefusal {
    /// Limits are reached by settled events alone: wait this long (the rest of the longest
    /// window); `full` are the positions, in the `counted` asked for, of the full counters with
    /// the rest of each one's window (so a node can refuse the next attempts from memory, each
    /// limit for as long as it is full).
    Throttled { wait: Duration, full: Vec<(usize, Duration)> },
    /// A limit is reached only with attempts still in flight, which may yet be given back:
    /// try again in a moment.
    Busy,
}

/// Fixed-window counters shared by every node.
///
/// An attempt is counted *before* the work it limits (a password hash, a mail), in one atomic
/// step that also refuses it: otherwise a burst spread over N nodes passes N checks made
/// before any of them counted, and gets N times the limit.
#[async_trait]
pub trait SharedCounters: Send + Sync + 'static {
    /// Counts one event in every counter, unless that would take any of them above its
    /// maximum: then nothing is counted. A counter whose window ended starts a new one at
    /// `now`. Atomic across nodes: of any number of racing takes, at most `max` per window
    /// succeed. `in_flight` marks the event as not yet settled (see [`settle`](Self::settle)):
    /// a refusal caused only by such events is `Busy`, not `Throttled`.
    async fn take(
        &self,
        counted: &[Counted],
        now: OffsetDateTime,
        in_flight: bool,
    ) -> Result<Result<Taken, SharedRefusal>, crate::StoreError>;
    /// Settles an in-flight take: `keep` leaves it counted (a failed sign-in), otherwise it is
    /// taken back (a correct password, a check that could not be made).
    async fn settle(&self, taken: &Taken, keep: bool) -> Result<(), crate::StoreError>;
    async fn clear(&self, counted: &Counted) -> Result<(), crate::StoreError>;
    /// Forgets counters whose window ended before `now`.
    async fn purge(&self, now: OffsetDateTime) -> Result<u64, crate::StoreError>;
}

/// Entries beyond this count trigger a purge of expired windows.
const PURGE_ABOVE: usize = 50_000;

/// Counters of `max` events per `window`, by key.
#[derive(Debug)]
pub struct Limit {
    max: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (OffsetDateTime, u32)>>,
}

impl Limit {
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max, window, counts: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (OffsetDateTime, u32)>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Events counted for `key` in its current window.
    pub fn count(&self, key: &str, now: OffsetDateTime) -> u32 {
        self.lock().get(key).filter(|(started, _)| now < *started + self.window).map_or(0, |(_, n)| *n)
    }

    /// `Some(wait)` when `key` has used up its window.
    pub fn over(&self, key: &str, now: OffsetDateTime) -> Option<Duration> {
        let counts = self.lock();
        let (started, n) = counts.get(key)?;
        (*n >= self.max && now < *started + self.window).then(|| *started + self.window - now)
    }

    /// Counts one event for `key`.
    pub fn hit(&self, key: &str, now: OffsetDateTime) {
        let mut counts = self.lock();
        if counts.len() > PURGE_ABOVE {
            let window = self.window;
            counts.retain(|_, (started, _)| now < *started + window);
        }
        let w = counts.entry(key.to_owned()).or_insert((now, 0));
        if now >= w.0 + self.window {
            *w = (now, 0);
        }
        w.1 += 1;
    }

    /// Counts an attempt unless `key` is over its limit already (then `Err(wait)`).
    pub fn take(&self, key: &str, now: OffsetDateTime) -> Result<(), Duration> {
        match self.over(key, now) {
            Some(wait) => Err(wait),
            None => {
                self.hit(key, now);
                Ok(())
            }
        }
    }

    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Marks `key` as full for `wait` from `now` (another node's count, learnt from the shared
    /// counters), so this node refuses it from memory until then.
    pub fn saturate(&self, key: &str, now: OffsetDateTime, wait: Duration) {
        let started = now + wait.min(self.window) - self.window;
        let mut counts = self.lock();
        let w = counts.entry(key.to_owned()).or_insert((started, 0));
        *w = (started, w.1.max(self.max));
    }

    /// This limit's counter for `key`, as shared between nodes (`tag` names the limit).
    pub fn counted(&self, tag: &str, key: &str) -> Counted {
        Counted::new(tag, key, self)
    }
}

/// Checks several limits and counts in all of them only when none is over: `Err(wait)` with
/// the longest wait otherwise.
pub fn take_all(limits: &[(&Limit, &str)], now: OffsetDateTime) -> Result<(), Duration> {
    if let Some(wait) = limits.iter().filter_map(|(l, k)| l.over(k, now)).max() {
        return Err(wait);
    }
    for (l, k) in limits {
        l.hit(k, now);
    }
    Ok(())
}

/// The key a client address is counted under: IPv4 as is, IPv6 by its /64.
pub fn address_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        _ => ip.to_owned(),
    }
}

/// Failed sign-in limits.
///
/// Attempts in flight count against the limits as if they will fail: otherwise a burst of
/// parallel guesses would all pass the check before the first failure is recorded, and one
/// address would get as many guesses as the server can hash, not five. An attempt that would
/// only fit once others finish is refused as busy (`503`, retry in a second), not throttled:
/// successful sign-ins never count.
#[derive(Debug)]
pub struct LoginThrottle {
    per_account_and_ip: Limit,
    per_ip: Limit,
    per_account: Limit,
    /// Attempts started and not finished, by the same keys (tagged per limit).
    pending: Mutex<HashMap<String, u32>>,
}

/// Why a sign-in attempt may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures: wait this long.
    Throttled(Duration),
    /// Too many attempts in flight to stay within the limits if they all fail.
    Busy,
}

/// A sign-in attempt in flight: ends as `Unchecked` when dropped without
/// [`Attempt::finish`] (a panic, a cancelled task), so the in-flight count never leaks.
#[derive(Debug)]
pub struct Attempt {
    limits: std::sync::Arc<Limits>,
    account: String,
    ip: String,
    now: OffsetDateTime,
    done: bool,
}

impl Attempt {
    /// Starts an attempt under `limits.login` (see [`LoginThrottle::begin`]).
    pub fn begin(
        limits: &std::sync::Arc<Limits>,
        account: &str,
        ip: &str,
        now: OffsetDateTime,
    ) -> Result<Self, Refusal> {
        limits.login.begin(account, ip, now)?;
        Ok(Self { limits: limits.clone(), account: account.to_owned(), ip: ip.to_owned(), now, done: false })
    }

    pub fn finish(mut self, outcome: Outcome) {
        self.done = true;
        self.limits.login.finish(&self.account, &self.ip, outcome, self.now);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            self.limits.login.finish(&self.account, &self.ip, Outcome::Unchecked, self.now);
        }
    }
}

/// How a started attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Failed,
    Succeeded,
    /// It could not be checked (the store or the hashing pool refused).
    Unchecked,
}

impl LoginThrottle {
    pub fn new(p: ThrottlePolicy) -> Self {
        Self {
            per_account_and_ip: Limit::new(p.max_failures_per_account_and_ip, p.window),
            per_ip: Limit::new(p.max_failures_per_ip, p.window),
            per_account: Limit::new(p.max_failures_per_account, p.window),
            pending: Mutex::default(),
        }
    }

    /// The three limits with the key each counts this attempt under.
    fn keyed(&self, account: &str, ip: &str) -> [(&Limit, String, String); 3] {
        let pair = Self::pair(account, ip);
        let ip = address_key(ip);
        [
            (&self.per_account_and_ip, format!("p\n{pair}"), pair),
            (&self.per_ip, format!("i\n{ip}"), ip),
            (&self.per_account, format!("a\n{account}"), account.to_owned()),
        ]
    }

    /// Marks the limits at `full` (positions in [`counted`](Self::counted), each with how long
    /// it stays full) as reached: the shared counters said so.
    pub fn saturate(&self, account: &str, ip: &str, full: &[(usize, Duration)], now: OffsetDateTime) {
        let keyed = self.keyed(account, ip);
        for (i, wait) in full {
            if let Some((limit, _, key)) = keyed.get(*i) {
                limit.saturate(key, now, *wait);
            }
        }
    }

    /// The three counters of an attempt as shared between nodes, the (account, address) pair's
    /// first.
    pub fn counted(&self, account: &str, ip: &str) -> Vec<Counted> {
        self.keyed(account, ip).iter().map(|(limit, tag, _)| Counted::new(tag, "", limit)).collect()
    }

    /// Starts an attempt, unless the failures so far, or those plus the attempts in flight,
    /// reach a limit. Every `Ok` must be followed by one [`finish`](Self::finish).
    pub fn begin(&self, account: &str, ip: &str, now: OffsetDateTime) -> Result<(), Refusal> {
        if let Some(wait) = self.check(account, ip, now) {
            return Err(Refusal::Throttled(wait));
        }
        let keyed = self.keyed(account, ip);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (limit, tag, key) in &keyed {
            if limit.count(key, now) + pending.get(tag).copied().unwrap_or(0) >= limit.max {
                return Err(Refusal::Busy);
            }
        }
        for (_, tag, _) in keyed {
            *pending.entry(tag).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Ends an attempt started by [`begin`](Self::begin) and counts its outcome. The outcome
    /// is recorded before the attempt leaves the in-flight count, under the same lock, so no
    /// [`begin`](Self::begin) sees it in neither.
    pub fn finish(&self, account: &str, ip: &str, outcome: Outcome, now: OffsetDateTime) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Outcome::Failed => self.record_failure(account, ip, now),
            Outcome::Succeeded => self.record_success(account, ip),
            Outcome::Unchecked => {}
        }
        for (_, tag, _) in self.keyed(account, ip) {
            if let Some(n) = pending.get_mut(&tag) {
                *n -= 1;
                if *n == 0 {
                    pending.remove(&tag);
                }
            }
        }
    }

    fn pair(account: &str, ip: &str) -> String {
        format!("{}\n{account}", address_key(ip))
    }

    /// `Some(wait)` when any of the three limits is reached.
    pub fn check(&self, account: &str, ip: &str, now: OffsetDateTime) -> Option<Duration> {
        [
            self.per_account_and_ip.over(&Self::pair(account, ip), now),
            self.per_ip.over(&address_key(ip), now),
            self.per_account.over(account, now),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    pub fn record_failure(&self, account: &str, ip: &str, now: OffsetDateTime) {
        self.per_account_and_ip.hit(&Self::pair(account, ip), now);
        self.per_ip.hit(&address_key(ip), now);
        self.per_account.hit(account, now);
    }

    /// A correct password from this address clears this address's count for the account.
    pub fn record_success(&self, account: &str, ip: &str) {
        self.per_account_and_ip.clear(&Self::pair(account, ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_lock_the_owner_out_and_the_account_limit_sits_above() {
        let t = LoginThrottle::new(ThrottlePolicy {
            max_failures_per_account_and_ip: 2,
            max_failures_per_ip: 3,
            max_failures_per_account: 4,
            window: Duration::minutes(10),
            ..ThrottlePolicy::uniform(100, Duration::minutes(15))
        });
        let now = OffsetDateTime::UNIX_EPOCH;
        t.record_failure("a", "1.1.1.1", now);
        t.record_failure("a", "1.1.1.1", now);
        assert_eq!(t.check("a", "1.1.1.1", now + Duration::minutes(1)), Some(Duration::minutes(9)));
        assert!(t.check("a", "2.2.2.2", now).is_none(), "the owner elsewhere is not locked out");
        t.record_failure("b", "1.1.1.1", now);
        assert!(t.check("c", "1.1.1.1", now).is_some(), "address limit reached");
        t.record_failure("a", "3.3.3.3", now);
        t.record_failure("a", "4.4.4.4", now);
        assert!(t.check("a", "5.5.5.5", now).is_some(), "account-wide limit reached");
        assert!(t.check("a", "5.5.5.5", now + Duration::minutes(10)).is_none(), "windows end");
    }

    #[test]
    fn attempts_in_flight_count_until_they_finish() {
        let t = LoginThrottle::new(ThrottlePolicy {
            max_failures_per_account_and_ip: 2,
            ..ThrottlePolicy::uniform(100, Duration::minutes(15))
        });
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(t.begin("a", "1.1.1.1", now), Ok(()));
        assert_eq!(t.begin("a", "1.1.1.1", now), Ok(()));
        assert_eq!(t.begin("a", "1.1.1.1", now), Err(Refusal::Busy), "two in flight could both fail");
        assert_eq!(t.begin("a", "2.2.2.2", now), Ok(()), "another address is not held up");
        t.finish("a", "1.1.1.1", Outcome::Succeeded, now);
        assert_eq!(t.begin("a", "1.1.1.1", now), Ok(()), "a success frees its place");
        t.finish("a", "1.1.1.1", Outcome::Failed, now);
        t.finish("a", "1.1.1.1", Outcome::Failed, now);
        assert!(matches!(t.begin("a", "1.1.1.1", now), Err(Refusal::Throttled(_))));
        t.finish("a", "2.2.2.2", Outcome::Unchecked, now);
        assert_eq!(t.begin("a", "2.2.2.2", now), Ok(()));
    }

    #[test]
    fn ipv6_counts_by_slash_64() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), address_key("2001:db8:1:2:bbbb::2"));
        assert_ne!(address_key("2001:db8:1:2::1"), address_key("2001:db8:1:3::1"));
        assert_eq!(address_key("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(address_key("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn take_counts_every_attempt_and_refuses_over_the_limit() {
        let l = Limit::new(2, Duration::hours(1));
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(l.take("k", now).is_ok());
        assert!(l.take("k", now).is_ok());
        assert_eq!(l.take("k", now + Duration::minutes(30)), Err(Duration::minutes(30)));
        assert!(l.take("k", now + Duration::hours(1)).is_ok());
        let other = Limit::new(1, Duration::hours(1));
        assert!(take_all(&[(&l, "x"), (&other, "y")], now).is_ok());
        assert!(take_all(&[(&l, "x"), (&other, "y")], now).is_err());
        assert!(l.over("x", now).is_none(), "a refused attempt is not counted in the other limits");
    }
}
