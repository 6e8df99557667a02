//! Password hashing (argon2id with OWASP's parameters) and the password policy.
//!
//! Hashing takes tens of milliseconds of CPU on purpose, so it runs on tokio's blocking pool,
//! never on a runtime worker.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use std::sync::Arc;
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

/// Hashes and verifies passwords, a bounded number at a time: argon2id takes 19 MiB and tens of
/// milliseconds per hash, so unbounded parallel sign-ins would exhaust memory and starve
/// everything else. A request that cannot get a slot within the queue deadline is refused
/// with [`CoreError::Busy`] (503 with `Retry-After`).
#[derive(Clone)]
pub struct Passwords {
    /// A hash of a random password, verified against when the account does not exist so that
    /// "no such account" costs the same time as "wrong password".
    dummy_hash: Arc<str>,
    slots: Arc<Semaphore>,
    queue: std::time::Duration,
}

impl Passwords {
    /// `concurrency` hashes at once (at least one); a request waits at most `queue` for a slot.
    pub async fn new(concurrency: usize, queue: std::time::Duration) -> Result<Self, CoreError> {
        let random = crate::secret::random_id();
        let dummy_hash = Self::hash_blocking(random).await?;
        Ok(Self { dummy_hash: dummy_hash.into(), slots: Arc::new(Semaphore::new(concurrency.max(1))), queue })
    }

    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, CoreError> {
        match tokio::time::timeout(self.queue, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(CoreError::Internal("password hashing closed".into())),
            Err(_) => Err(CoreError::Busy(Duration::seconds(1))),
        }
    }

    pub async fn hash(&self, password: &str) -> Result<String, CoreError> {
        let _slot = self.slot().await?;
        Self::hash_blocking(password.to_owned()).await
    }

    async fn hash_blocking(password: String) -> Result<String, CoreError> {
        tokio::task::spawn_blocking(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| CoreError::Internal(format!("argon2 hash: {e}")))
        })
        .await
        .map_err(|e| CoreError::Internal(format!("hashing task: {e}")))?
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
        let _slot = self.slot().await?;
        let ok = tokio::task::spawn_blocking(move || {
            Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
        })
        .await
        .map_err(|e| CoreError::Internal(format!("verify task: {e}")))?;
        Ok(real && ok)
    }
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
