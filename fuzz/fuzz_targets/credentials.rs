//! The credential formats a client presents outside cookies: refresh tokens, mailed-link
//! tokens, `Authorization: Bearer` and `Basic`, logout scopes, and the hex fingerprints read
//! back from outbox rows. Whatever parses is canonical: it prints back to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signoff_core::LogoutScope;
use signoff_core::mail::MailSecret;
use signoff_core::secret::{Secret, SecretHash};
use signoff_wire::authorization;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(s) = Secret::parse(text) {
        assert_eq!(s.expose(), text);
    }
    if let Some(s) = MailSecret::parse(text) {
        assert_eq!(s.expose(), text);
    }
    if let Some(h) = SecretHash::from_hex(text) {
        assert_eq!(h.hex(), text);
    }
    if let Some(scope) = LogoutScope::parse(text) {
        assert_eq!(scope.as_str(), text);
    }
    if let Some(token) = authorization::bearer(text) {
        assert!(!token.is_empty() && token.len() < text.len());
    }
    if let Some((id, secret)) = authorization::basic(text) {
        assert!(id.len() + secret.len() <= text.len() * 3 / 4 + 3, "decoding never grows the input");
    }
});
