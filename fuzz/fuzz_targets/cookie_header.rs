//! `Cookie` headers (one per input line) as the server reads them: the session and remember-me
//! values found, each parsed as a credential (a remember-me cookie only when its name is
//! mentioned), and the header rewritten without signoff's own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signoff_core::SessionSecret;
use signoff_core::remember::RememberSecret;
use signoff_wire::cookie;

const SESSION: &str = "__Host-signoff_session";
const REMEMBER: &str = "__Host-signoff_remember";

fuzz_target!(|data: &[u8]| {
    let headers: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    for value in cookie::values(headers.iter().copied(), SESSION) {
        assert!(!value.contains(';'), "a value never spans pairs");
        if let Some(secret) = SessionSecret::parse(value) {
            // Only the canonical form of a secret is accepted: one cookie, one session.
            assert_eq!(secret.expose(), value);
        }
    }
    // The search that spares most requests reading the pairs never misses a cookie.
    let mentioned = cookie::mentions(headers.iter().copied(), REMEMBER);
    for value in cookie::values(headers.iter().copied(), REMEMBER) {
        assert!(mentioned, "a cookie found was not mentioned");
        if let Some(token) = RememberSecret::parse(value) {
            assert_eq!(token.expose(), value);
        }
    }
    let ours = [SESSION, REMEMBER];
    for pair in cookie::others(headers.iter().copied(), &ours) {
        let name = pair.split('=').next().unwrap_or_default().trim();
        assert!(!ours.contains(&name), "a rewritten header keeps none of signoff's cookies");
    }
});
