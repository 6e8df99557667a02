//! `return_to` validation: the open-redirect defence.
//!
//! Accepted: a path that starts with exactly one `/`, or an absolute http(s) URL whose origin is
//! allow-listed and that carries no credentials. Refused (the caller falls back to its
//! default): everything else, including raw whitespace, and backslashes or control characters
//! raw or after percent-decoding, since browsers strip or reinterpret those.

use url::Url;

/// Longer values are refused outright.
pub const MAX_LEN: usize = 2048;

/// Where redirects may go.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The server's public URL, which paths are resolved against.
    pub public_url: &'a Url,
    /// Its origin (`scheme://host[:port]`).
    pub public_origin: &'a str,
    /// Origins absolute targets may have (the public origin among them).
    pub allowlist: &'a [String],
}

/// The target to redirect to, if `raw` is one that may be followed.
pub fn accept(raw: &str, policy: Policy<'_>) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_LEN || raw.chars().any(char::is_whitespace) || suspicious(raw) {
        return None;
    }
    // Decode repeatedly: a target may be decoded again by whoever handles it next.
    let mut decoded = raw.to_owned();
    if dot_segments(&decoded) {
        return None;
    }
    for _ in 0..3 {
        let next = percent_encoding::percent_decode_str(&decoded).decode_utf8_lossy().into_owned();
        if suspicious(&next) || next.starts_with("//") || dot_segments(&next) {
            return None;
        }
        if next == decoded {
            break;
        }
        decoded = next;
    }
    if raw.starts_with('/') {
        if raw.starts_with("//") {
            return None;
        }
        // Belt and braces: resolved against our origin, it must stay on our origin.
        let resolved = policy.public_url.join(raw).ok()?;
        return (resolved.origin().ascii_serialization() == policy.public_origin).then(|| raw.to_owned());
    }
    let lower = raw.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    policy.allowlist.contains(&origin).then(|| url.to_string())
}

/// A path with `.` or `..` segments: resolved, `/..//evil.com` becomes `//evil.com`, which
/// browsers and proxies may read as another host. No page of ours needs them.
fn dot_segments(s: &str) -> bool {
    let path = s.split(['?', '#']).next().unwrap_or_default();
    path.split('/').any(|seg| seg == "." || seg == "..")
}

/// Characters browsers strip or reinterpret inside URLs: backslashes (read as `/`) and
/// control characters (tabs and newlines are removed, joining what they separated).
fn suspicious(s: &str) -> bool {
    s.chars().any(|c| c == '\\' || c.is_control())
}
