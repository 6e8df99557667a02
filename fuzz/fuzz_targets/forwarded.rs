//! What proxies forward: `X-Forwarded-For`, the forward-auth request's `X-Forwarded-Proto`,
//! `-Host` and `-Uri` (NUL-separated in the input), and the feed's positions (`Last-Event-ID`,
//! `?after=`, `?wait=`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use signoff_wire::{forwarded, position};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(ip) = forwarded::client_ip(text) {
        assert!(text.trim_end().ends_with(&ip.to_string()) || text.contains(':'), "the last entry: {text:?}");
    }
    let mut parts = text.split('\0');
    let (proto, host, uri) = (parts.next(), parts.next(), parts.next());
    if let Some(url) = forwarded::original_url(proto, host, uri) {
        assert!(url.ends_with(uri.unwrap_or_default()) && uri.is_some_and(|u| u.starts_with('/')));
    }
    if let Ok(Some(n)) = position::parse(Some(text)) {
        assert!(n >= 0 && text.bytes().all(|b| b.is_ascii_digit()), "{text:?} read as {n}");
    }
});
