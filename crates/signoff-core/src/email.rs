//! E-mail normalisation: one account per address, whatever case or spacing was typed.

/// Longest address we accept (RFC 5321's path limit).
const MAX_LEN: usize = 254;

/// Trims and lower-cases an address and checks its shape: a dot-atom local part of RFC 5322's
/// `atext` (no quoted strings, comments or display names), one `@`, and a dotted domain of
/// letters, digits and inner hyphens (an internationalised domain in its `xn--` form). Plain
/// ASCII only: no two accepted addresses look alike, and what is stored is exactly the address
/// mail goes to. Returns `None` when it is not an address we accept.
pub fn normalize(raw: &str) -> Option<String> {
    let email = raw.trim().to_ascii_lowercase();
    if email.is_empty() || email.len() > MAX_LEN || !email.is_ascii() {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = local.len() <= 64 && local.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !local_ok || !domain.contains('.') || !domain.split('.').all(label_ok) {
        return None;
    }
    Some(email)
}

/// The rule addresses were accepted under before [`normalize`] became strict (trimmed,
/// lower-cased, one `@`, a dotted domain, no whitespace or control characters): accounts made
/// then are still found by it, though no new address may take that form.
fn normalize_legacy(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() || email.len() > MAX_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return None;
    }
    let labels_ok = domain.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    (domain.contains('.') && labels_ok).then_some(email)
}

const NOT_AN_ADDRESS: &str = "not-an-address:";

/// Whether an [`account_key`] is an address (and may name an account).
pub fn is_address_key(key: &str) -> bool {
    !key.starts_with(NOT_AN_ADDRESS)
}

/// What a sign-in attempt (or a reset request) is looked up and counted under: the normalised
/// address (by the strict rule, or the rule older accounts were made under), or for input that
/// is no address (it matches no account), a fixed-size digest of it, so any input costs the
/// same and the limiter's keys stay small.
pub fn account_key(raw: &str) -> String {
    normalize(raw).or_else(|| normalize_legacy(raw)).unwrap_or_else(|| {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(raw.trim().to_lowercase().as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{NOT_AN_ADDRESS}{hex}")
    })
}

#[cfg(test)]
mod tests {
    use super::{account_key, is_address_key, normalize};

    #[test]
    fn account_keys_are_addresses_or_small_digests() {
        assert_eq!(account_key(" Ada@Example.com"), "ada@example.com");
        let junk = account_key(&"x".repeat(60_000));
        assert!(junk.starts_with("not-an-address:") && junk.len() < 64, "{junk}");
        assert_eq!(account_key("NOPE"), account_key("nope"));
        assert!(!is_address_key(&account_key("nope")) && is_address_key(&account_key("a@example.com")));
        // An account made under the old, looser rule is still found.
        assert_eq!(account_key(" José@Example.com"), "josé@example.com");
        assert_eq!(normalize("josé@example.com"), None, "though no new one may be made");
    }

    #[test]
    fn normalises_and_validates() {
        assert_eq!(normalize("  Alice@Example.COM "), Some("alice@example.com".into()));
        for good in ["a.b+tag@example.com", "o'brien@example.co.uk", "x@xn--bcher-kva.example", "a_b-c@sub-1.example"] {
            assert_eq!(normalize(good).as_deref(), Some(good), "{good}");
        }
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
            // Display names, comments and quoting would make the mail go elsewhere.
            "foo<bar@evil.com>@example.com",
            "x@(corp.com)evil.com",
            "\"a@b\"@example.com",
            "a,b@example.com",
            "a;b@example.com",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "alice@exa_mple.com",
            // Look-alikes: only ASCII.
            "аlice@example.com",
            "alice@exаmple.com",
            "jose\u{301}@example.com",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
        assert_eq!(normalize(&format!("{}@example.com", "a".repeat(250))), None);
    }
}
