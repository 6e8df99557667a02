//! Password hashing (argon2id with OWASP's parameters) and the password policy.
//!
//! Hashing takes tens of milliseconds of CPU and 19 MiB on purpose, so it runs on threads of
//! its own, never on a runtime worker: a bounded number at a time, each in memory it reuses, at
//! a lower CPU priority (nice 10) so that a flood of sign-ins slows validation down less.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use time::Duration;
use tokio::sync::Semaphore;

use crate::error::CoreError;

/// Passwords shorter than this are refused.
pub const MIN_LEN: usize = 8;
/// Longer inputs are refused before hashing, so nobody can make us hash megabytes.
pub const MAX_BYTES: usize = 1024;

/// zxcvbn scores 0 (guessable in under 10^3 tries) to 4 (over 10^10); below this is refused.
const MIN_SCORE: u8 = 3;
/// zxcvbn's work grows quickly with length; a strong start makes a strong password anyway.
const SCORED_CHARS: usize = 100;

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    TooShort,
    TooLong,
    /// Only white space, or one character repeated.
    NoVariety,
    /// Easy to guess: common words, keyboard patterns, dates, predictable substitutions
    /// (zxcvbn's estimate, the user's own e-mail counted as known to the attacker).
    Guessable,
    SameAsEmail,
}

impl Weakness {
    pub fn message(self) -> &'static str {
        match self {
            Weakness::TooShort => "password must be at least 8 characters",
            Weakness::TooLong => "password must be at most 1024 bytes",
            Weakness::NoVariety => "password must not be one character repeated or only spaces",
            Weakness::Guessable => {
                "password is too easy to guess (common words, names, keyboard patterns or dates); \
                 a passphrase of four or more unrelated words works well"
            }
            Weakness::SameAsEmail => "password must not be the e-mail address",
        }
    }
}

/// Checks a new password against the policy (NIST SP 800-63B: at least 8 characters, no
/// composition rules, refused when it is known or easily guessed).
pub fn check_policy(password: &str, email: &str) -> Result<(), Weakness> {
    if password.len() > MAX_BYTES {
        return Err(Weakness::TooLong);
    }
    if password.chars().count() < MIN_LEN {
        return Err(Weakness::TooShort);
    }
    let mut chars = password.chars();
    let first = chars.next();
    if password.trim().is_empty() || chars.all(|c| Some(c) == first) {
        return Err(Weakness::NoVariety);
    }
    if password.to_lowercase() == email.to_lowercase() {
        return Err(Weakness::SameAsEmail);
    }
    let scored: String = password.chars().take(SCORED_CHARS).collect();
    let local = email.split('@').next().unwrap_or_default();
    let score = zxcvbn::zxcvbn(&scored, &[email, local]).score();
    if (score as u8) < MIN_SCORE {
        return Err(Weakness::Guessable);
    }
    Ok(())
}

/// argon2's working memory for one hash (19 MiB with the default parameters).
type Memory = Vec<Block>;

/// Work for a hashing thread, run in that thread's memory.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// The nice value of the hashing threads. A runtime worker that wakes to validate a request
/// preempts a hash at once, and hashes still get every cycle validation leaves and about a
/// tenth of a core against each busy worker (not the 1.5 % of nice 19: a flood of other
/// requests slows sign-ins down, it does not stop them).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const HASHING_NICE: i32 = 10;

/// A hash not answered within this (the CPU saturated by other work) is given up as busy; the
/// job still holds its slot until it ends, so hashing stays bounded.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Hashes and verifies passwords, a bounded number at a time, each in working memory that is
/// allocated once and reused. argon2id touches 19 MiB per hash: unbounded parallel sign-ins
/// would exhaust memory and starve everything else, and even a bounded number of fresh 19 MiB
/// allocations fragments the allocator's heaps until the process holds many times that (64
/// sign-ins through four slots measured 830 MiB). So there are `concurrency` threads sharing a
/// pool of working memories (no more than the most hashes ever run at once), and a request
/// that cannot get a thread within the queue deadline is refused with [`CoreError::Busy`] (503
/// with `Retry-After`).
#[derive(Clone)]
pub struct Passwords {
    /// A hash of a random password, verified against when the account does not exist so that
    /// "no such account" costs the same time as "wrong password".
    dummy_hash: Arc<str>,
    /// One permit per hashing thread: a job is sent only with a permit, so none waits in the
    /// channel.
    slots: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    queue: std::time::Duration,
}

impl Passwords {
    /// `concurrency` hashes at once (at least one); a request waits at most `queue` for a slot.
    pub async fn new(concurrency: usize, queue: std::time::Duration) -> Result<Self, CoreError> {
        let concurrency = concurrency.max(1);
        let (jobs, inbox) = mpsc::channel::<Job>();
        let inbox = Arc::new(Mutex::new(inbox));
        let memories: Arc<Mutex<Vec<Memory>>> = Arc::default();
        for n in 0..concurrency {
            let (inbox, memories) = (inbox.clone(), memories.clone());
            std::thread::Builder::new()
                .name(format!("signoff-hash-{n}"))
                .spawn(move || hashing_thread(&inbox, &memories))
                .map_err(|e| CoreError::Internal(format!("cannot start a hashing thread: {e}")))?;
        }
        let mut passwords =
            Self { dummy_hash: Arc::from(""), slots: Arc::new(Semaphore::new(concurrency)), jobs, queue };
        passwords.dummy_hash = passwords.hash(&crate::secret::random_id()).await?.into();
        Ok(passwords)
    }

    /// Runs `work` on a hashing thread. The slot is held by the job itself: a caller that goes
    /// away (a client hanging up) does not free it while the hash still runs.
    async fn in_slot<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, CoreError> {
        let slot = match tokio::time::timeout(self.queue, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(CoreError::Internal("password hashing closed".into())),
            Err(_) => return Err(CoreError::Busy(Duration::seconds(1))),
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _slot = slot;
            let _ = done.send(work(memory));
        });
        self.jobs.send(job).map_err(|_| CoreError::Internal("the hashing threads are gone".into()))?;
        match tokio::time::timeout(ANSWER_WITHIN, answer).await {
            Ok(answer) => answer.map_err(|_| CoreError::Internal("a hashing job failed".into())),
            Err(_) => Err(CoreError::Busy(Duration::seconds(1))),
        }
    }

    /// A PHC string of argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1) and a random
    /// 128-bit salt.
    pub async fn hash(&self, password: &str) -> Result<String, CoreError> {
        let password = password.to_owned();
        let salt = crate::secret::random_bytes::<16>();
        self.in_slot(move |memory| {
            let params = Params::default();
            let mut out = [0u8; 32];
            let blocks = memory.get_mut(..params.block_count()).ok_or_else(|| internal("memory"))?;
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
                .map_err(internal)?;
            let phc = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).map_err(internal)?,
                salt: Some(Salt::new(&salt).map_err(internal)?),
                hash: Some(Output::new(&out).map_err(internal)?),
            };
            Ok(phc.to_string())
        })
        .await?
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no account.
    /// Returns `true` only for a real hash that matches.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, CoreError> {
        if password.len() > MAX_BYTES {
            return Ok(false);
        }
        let real = hash.is_some();
        let hash: String = hash.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.to_owned();
        let ok = self.in_slot(move |memory| matches(&password, &hash, memory)).await??;
        Ok(real && ok)
    }
}

/// A hashing thread: lowers its own priority, then runs jobs until every [`Passwords`] is gone,
/// each in a working memory taken from `memories` (made when none is free) and given back.
/// A job that panics is dropped (its caller hears of it) and the thread goes on.
fn hashing_thread(inbox: &Mutex<mpsc::Receiver<Job>>, memories: &Mutex<Vec<Memory>>) {
    // PRIO_PROCESS with a thread id sets that thread's nice value (Linux); best effort.
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), HASHING_NICE) {
        tracing::warn!(error = %e, "could not lower the priority of a password-hashing thread");
    }
    loop {
        let job = inbox.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let taken = memories.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut memory = taken.unwrap_or_else(|| vec![Block::default(); Params::default().block_count()]);
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
            tracing::error!("a password-hashing job panicked");
        }
        memories.lock().unwrap_or_else(PoisonError::into_inner).push(memory);
    }
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(format!("argon2: {e}"))
}

/// Recomputes a stored PHC hash over `password` in `memory` (or fresh memory, for stronger
/// parameters than ours) and compares in constant time.
fn matches(password: &str, stored: &str, memory: &mut Memory) -> Result<bool, CoreError> {
    let phc = PasswordHash::new(stored).map_err(internal)?;
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return Err(internal("stored hash without salt or output"));
    };
    let params = Params::try_from(&phc).map_err(internal)?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str()).map_err(internal)?;
    let version = phc.version.map(Version::try_from).transpose().map_err(internal)?.unwrap_or_default();
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    match memory.get_mut(..params.block_count()) {
        Some(blocks) => argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks),
        None => argon2.hash_password_into(password.as_bytes(), salt, &mut out),
    }
    .map_err(internal)?;
    // `Output` compares in constant time.
    Ok(Output::new(&out).map_err(internal)? == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(check_policy("short", "a@b.c"), Err(Weakness::TooShort));
        assert_eq!(check_policy("someone@example.com", "someone@example.com"), Err(Weakness::SameAsEmail));
        assert_eq!(check_policy(&"x".repeat(1025), "a@b.c"), Err(Weakness::TooLong));
        for weak in ["aaaaaaaa", "        ", "qwertyui", "Password1!", "Password123", "iloveyou", "12345678"] {
            assert!(check_policy(weak, "a@b.c").is_err(), "{weak:?} must be refused");
        }
        assert_eq!(check_policy("ada.lovelace1815", "ada.lovelace@example.com"), Err(Weakness::Guessable));
        assert_eq!(check_policy("correct horse battery staple", "a@b.c"), Ok(()));
        assert_eq!(check_policy("vivid-otter-marble-42", "a@b.c"), Ok(()));
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let p = Passwords::new(2, std::time::Duration::from_secs(5)).await.unwrap();
        let h = p.hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse battery", Some(&h)).await.unwrap());
        assert!(!p.verify("wrong horse battery", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse battery", None).await.unwrap());
    }
}
