//! E-mail addresses as typed at registration, sign-in, e-mail change and password reset. An
//! accepted address is plain lower-case ASCII of a small alphabet (so no two accounts can look
//! alike), normalising is idempotent, and every input has a lookup key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signoff_core::email::{account_key, is_address_key, normalize};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let key = account_key(raw);
    match normalize(raw) {
        Some(address) => {
            assert!(address.len() <= 254 && address.matches('@').count() == 1);
            assert!(
                address.chars().all(|c| c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || "@.!#$%&'*+/=?^_`{|}~-".contains(c)),
                "{address:?}"
            );
            assert_eq!(normalize(&address).as_deref(), Some(address.as_str()), "idempotent");
            assert_eq!(key, address, "an address is looked up as itself");
        }
        None => {
            assert!(key.len() <= 254 + 40, "keys stay small");
            if is_address_key(&key) {
                // Only an address older rules accepted names an account.
                assert_eq!(key, raw.trim().to_lowercase());
            }
        }
    }
});
