//! Remember-me tokens: `selector:validator`, the selector public and stable for the series, the
//! validator 256 random bits that change on every use and are stored only as a hash.
//!
//! A validator that was already used coming back means the cookie was copied: the whole
//! series dies, with its session. The one exception is the immediate predecessor presented
//! within a few seconds of its rotation, which is two tabs racing on the same cookie.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;

use crate::secret::{ENCODED_SECRET_LEN, SecretHash, random_bytes};

/// Length of a 16-byte selector in unpadded base64url.
const ENCODED_SELECTOR_LEN: usize = 22;

/// The cookie value of a remember-me token.
#[derive(Clone)]
pub struct RememberSecret {
    selector: String,
    validator: [u8; 32],
}

impl RememberSecret {
    /// A new series.
    pub fn generate() -> Self {
        Self { selector: URL_SAFE_NO_PAD.encode(random_bytes::<16>()), validator: random_bytes() }
    }

    /// The next validator of the same series.
    pub fn rotated(&self) -> Self {
        Self { selector: self.selector.clone(), validator: random_bytes() }
    }

    /// Parses `selector:validator`; anything else is `None`.
    pub fn parse(cookie: &str) -> Option<Self> {
        let (selector, validator) = cookie.split_once(':')?;
        if selector.len() != ENCODED_SELECTOR_LEN || validator.len() != ENCODED_SECRET_LEN {
            return None;
        }
        URL_SAFE_NO_PAD.decode(selector).ok()?;
        let validator = URL_SAFE_NO_PAD.decode(validator).ok()?.try_into().ok()?;
        Some(Self { selector: selector.to_owned(), validator })
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    pub fn validator_hash(&self) -> SecretHash {
        SecretHash::of(b"signoff/remember/v1", &self.validator)
    }

    /// The cookie form. Only the HTTP edge should call this.
    pub fn expose(&self) -> String {
        format!("{}:{}", self.selector, URL_SAFE_NO_PAD.encode(self.validator))
    }
}

impl fmt::Debug for RememberSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RememberSecret({}:<redacted>)", self.selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_rotation_and_garbage() {
        let r = RememberSecret::generate();
        let back = RememberSecret::parse(&r.expose()).unwrap();
        assert_eq!(back.validator_hash(), r.validator_hash());
        let next = r.rotated();
        assert_eq!(next.selector(), r.selector());
        assert_ne!(next.validator_hash(), r.validator_hash());
        for bad in ["", "x:y", &r.expose().replace(':', ""), &format!("{}:", r.selector()), &format!("{}x", r.expose())]
        {
            assert!(RememberSecret::parse(bad).is_none(), "{bad}");
        }
        assert!(!format!("{r:?}").contains(&r.expose()[23..]));
    }
}
