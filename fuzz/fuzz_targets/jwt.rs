//! Access tokens. Half the inputs are tokens as sent (never accepted: nobody here holds the
//! key); the other half are a header and claims of the fuzzer's choosing, signed with the
//! keyring's key, so the JSON decoding and the checks of time, issuer and audience behind the
//! signature are reached too. Whatever is accepted keeps every rule signoff signs by.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use signoff_core::token::{Keyring, LEEWAY, SigningKeyPair};
use time::{Duration, OffsetDateTime};

const PRIVATE: [u8; 32] = [7; 32];
const ISS: &str = "https://auth.example";
const AUD: &str = "https://auth.example";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
    let ttl = Duration::minutes(15);
    let keyring = Keyring::new(vec![SigningKeyPair::from_parts("k1".into(), PRIVATE, now, None)]);
    let token = if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else { return };
        let _ = signoff_jwt::kid(token);
        assert!(keyring.verify(token, ISS, AUD, now, ttl).is_err(), "a token nobody signed is refused");
        return;
    } else {
        // `header` NUL `claims`, each as JSON text, signed for real.
        let mut parts = rest.splitn(2, |b| *b == 0);
        let (header, claims) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let sig = SigningKey::from_bytes(&PRIVATE).sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    };
    let _ = signoff_jwt::kid(&token);
    let _ = keyring.verify_ignoring_time(&token, ISS, AUD, now, ttl);
    if let Ok(claims) = keyring.verify(&token, ISS, AUD, now, ttl) {
        let (t, leeway) = (now.unix_timestamp(), LEEWAY.whole_seconds());
        assert!(claims.iss == ISS && claims.aud == AUD);
        assert!(claims.exp > t - leeway, "not expired");
        assert!(claims.iat <= t + leeway, "not issued in the future");
        assert!(claims.exp - claims.iat <= ttl.whole_seconds() + leeway, "no longer a lifetime than signoff signs");
    }
});
