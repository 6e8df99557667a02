//! The `Authorization` request header: `Bearer` tokens (RFC 6750) and `Basic` client
//! credentials (RFC 7617, each part form-urlencoded as RFC 6749 section 2.3.1 asks).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Longest `Basic` credentials read (encoded); longer ones are refused unread.
pub const MAX_BASIC: usize = 512;

/// The token of a `Bearer` value, if it is one and not empty.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The `(id, secret)` of a `Basic` value, each form-urldecoded; `None` for anything else.
pub fn basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > MAX_BASIC {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|s| s.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_told_apart() {
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Basic abc"), None);
        let encoded = STANDARD.encode("my%20id:s+e%3Acret");
        assert_eq!(basic(&format!("Basic {encoded}")), Some(("my id".into(), "s e:cret".into())));
        assert_eq!(basic(&format!("Bearer {encoded}")), None);
        assert_eq!(basic(&format!("Basic {}", "A".repeat(MAX_BASIC + 4))), None);
    }
}
