//! E-mail normalisation: one account per address, whatever case or spacing was typed.

/// Longest address we accept (RFC 5321's path limit).
const MAX_LEN: usize = 254;

/// Trims and lower-cases an address and checks its shape: one `@`, a non-empty local part,
/// a dotted domain, no whitespace or control characters. Returns `None` when it is not an
/// address we accept.
pub fn normalize(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() || email.len() > MAX_LEN {
        return None;
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return None;
    }
    let labels_ok = domain.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if !domain.contains('.') || !labels_ok {
        return None;
    }
    Some(email)
}

/// What a sign-in attempt is looked up and counted under: the normalised address, or for
/// input that is no address (it matches no account), a fixed-size digest of it, so any input
/// costs the same and the limiter's keys stay small.
pub fn account_key(raw: &str) -> String {
    normalize(raw).unwrap_or_else(|| {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(raw.trim().to_lowercase().as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("not-an-address:{hex}")
    })
}

#[cfg(test)]
mod tests {
    use super::{account_key, normalize};

    #[test]
    fn account_keys_are_addresses_or_small_digests() {
        assert_eq!(account_key(" Ada@Example.com"), "ada@example.com");
        let junk = account_key(&"x".repeat(60_000));
        assert!(junk.starts_with("not-an-address:") && junk.len() < 64, "{junk}");
        assert_eq!(account_key("NOPE"), account_key("nope"));
    }

    #[test]
    fn normalises_and_validates() {
        assert_eq!(normalize("  Alice@Example.COM "), Some("alice@example.com".into()));
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@@example.com",
            "alice@exa mple.com",
            "alice@.example.com",
            "alice@example..com",
            "al\u{0}ice@example.com",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
        assert_eq!(normalize(&format!("{}@example.com", "a".repeat(250))), None);
    }
}
