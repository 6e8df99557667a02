//! Password hashing (argon2id with OWASP's parameters) and the password policy.
//!
//! Hashing takes tens of milliseconds of CPU on purpose, so it runs on tokio's blocking pool,
//! never on a runtime worker.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use std::sync::Arc;

use crate::error::CoreError;

/// Passwords shorter than this are refused.
pub const MIN_LEN: usize = 8;
/// Longer inputs are refused before hashing, so nobody can make us hash megabytes.
pub const MAX_BYTES: usize = 1024;

/// A handful of the most common passwords, refused outright.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty123",
    "qwertyuiop",
    "iloveyou",
    "11111111",
    "00000000",
    "abc12345",
    "letmein1",
    "welcome1",
    "passw0rd",
    "admin123",
    "sunshine",
    "football",
    "baseball",
    "trustno1",
];

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    TooShort,
    TooLong,
    TooCommon,
    SameAsEmail,
}

impl Weakness {
    pub fn message(self) -> &'static str {
        match self {
            Weakness::TooShort => "password must be at least 8 characters",
            Weakness::TooLong => "password must be at most 1024 bytes",
            Weakness::TooCommon => "password is too common",
            Weakness::SameAsEmail => "password must not be the e-mail address",
        }
    }
}

/// Checks a new password against the policy.
pub fn check_policy(password: &str, email: &str) -> Result<(), Weakness> {
    if password.len() > MAX_BYTES {
        return Err(Weakness::TooLong);
    }
    if password.chars().count() < MIN_LEN {
        return Err(Weakness::TooShort);
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err(Weakness::TooCommon);
    }
    if lower == email.to_lowercase() {
        return Err(Weakness::SameAsEmail);
    }
    Ok(())
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    /// A hash of a random password, verified against when the account does not exist so that
    /// "no such account" costs the same time as "wrong password".
    dummy_hash: Arc<str>,
}

impl Passwords {
    pub async fn new() -> Result<Self, CoreError> {
        let random = crate::secret::random_id();
        let dummy_hash = Self::hash_blocking(random).await?;
        Ok(Self { dummy_hash: dummy_hash.into() })
    }

    pub async fn hash(&self, password: &str) -> Result<String, CoreError> {
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
        assert_eq!(check_policy("Password123", "a@b.c"), Err(Weakness::TooCommon));
        assert_eq!(check_policy("someone@example.com", "someone@example.com"), Err(Weakness::SameAsEmail));
        assert_eq!(check_policy(&"x".repeat(1025), "a@b.c"), Err(Weakness::TooLong));
        assert_eq!(check_policy("correct horse battery", "a@b.c"), Ok(()));
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let p = Passwords::new().await.unwrap();
        let h = p.hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse battery", Some(&h)).await.unwrap());
        assert!(!p.verify("wrong horse battery", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse battery", None).await.unwrap());
    }
}
