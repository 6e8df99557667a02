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

#[cfg(test)]
mod tests {
    use super::normalize;

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
