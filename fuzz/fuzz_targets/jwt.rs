//! Access tokens. Half the inputs are tokens as sent (never accepted: nobody here holds the
//! key); the other half are a header and claims of the fuzzer's choosing, signed with the
//! keyring's key, so the JSON decoding and the checks of time, issuer and audience behind the
//! signature are reached too. Whatever is accepted keeps every rule signoff signs by. The
//! keyring also holds an RSA and a P-256 key (the ID-token keys): no token verifies with them as
//! an access token, and tokens as sent verify under no algorithm.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use signoff_core::clients::SigningAlg;
use signoff_core::token::{Keyring, LEEWAY, SigningKeyPair};
use std::sync::LazyLock;
use time::{Duration, OffsetDateTime};

const PRIVATE: [u8; 32] = [7; 32];
const ISS: &str = "https://auth.example";
const AUD: &str = "https://auth.example";

static KEYS: LazyLock<Vec<SigningKeyPair>> = LazyLock::new(|| {
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
    // Fixed kids, so the fuzzer can name them.
    let other = |kid: &str, alg| {
        let key = SigningKeyPair::generate_for(alg, now).expect("a key");
        SigningKeyPair::from_parts(kid.into(), alg, &key.private_bytes().expect("bytes"), now, None).expect("read back")
    };
    vec![
        SigningKeyPair::from_parts("k1".into(), SigningAlg::EdDsa, &PRIVATE, now, None).expect("an Ed25519 seed"),
        other("r1", SigningAlg::Rs256),
        other("e1", SigningAlg::Es256),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
    let ttl = Duration::minutes(15);
    let keyring = Keyring::new(KEYS.clone());
    let token = if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else { return };
        let _ = signoff_jwt::kid(token);
        assert!(keyring.verify(token, ISS, AUD, now, ttl).is_err(), "a token nobody signed is refused");
        let any = |kid: &str| KEYS.iter().find(|k| k.kid == kid).map(SigningKeyPair::public);
        assert!(signoff_jwt::keys::verify_with::<serde_json::Value>(token, any).is_err(), "under any algorithm");
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
