//! `return_to` targets: whatever is accepted leads to an allow-listed origin, resolved the way
//! a browser resolves a `Location` against our page, and carries nothing a browser strips or
//! reinterprets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signoff_wire::return_to::{Policy, accept};
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let public_url = Url::parse("https://auth.example/").expect("a URL");
    let allowlist = ["https://auth.example".to_owned(), "https://app.example:8443".to_owned()];
    let policy = Policy { public_url: &public_url, public_origin: "https://auth.example", allowlist: &allowlist };
    let Some(target) = accept(raw, policy) else { return };
    assert!(!target.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\'), "{target:?}");
    assert!(!target.starts_with("//"), "{target:?}");
    let resolved = public_url.join(&target).expect("an accepted target resolves");
    assert!(allowlist.contains(&resolved.origin().ascii_serialization()), "{target:?} leaves the allow-list");
    assert!(resolved.username().is_empty() && resolved.password().is_none(), "{target:?} carries credentials");
});
