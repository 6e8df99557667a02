#!/usr/bin/env python3
"""Verifies signoff's Security Event Tokens with an independent implementation (PyJWT).

Usage: ssf_interop.py JWKS_URL ISSUER AUDIENCE < sets.json

sets.json is a list of compact SETs as a receiver got them (pushed or polled). Each is checked
as a Shared Signals 1.0 receiver must: header `typ` `secevent+jwt`, signed RS256 with a key of
the JWKS (its `kid`), `iss` and `aud` as given, `iat`, `jti`, `sub_id` and exactly one event in
`events`, and neither `sub` nor `exp`. Prints the verified claims as a JSON list; exits non-zero
with a message on the first failure.
"""
import json
import sys

import jwt  # PyJWT


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    jwks_url, issuer, audience = sys.argv[1:4]
    sets = json.load(sys.stdin)
    keys = jwt.PyJWKClient(jwks_url)
    verified = []
    for token in sets:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "secevent+jwt":
            fail(f"header typ {header.get('typ')!r}")
        if header.get("alg") != "RS256" or not header.get("kid"):
            fail(f"header {header}")
        key = keys.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["iss", "aud", "iat", "jti", "sub_id", "events"]},
        )
        if "sub" in claims or "exp" in claims:
            fail(f"a SET carries sub or exp: {claims}")
        if not isinstance(claims["events"], dict) or len(claims["events"]) != 1:
            fail(f"events {claims['events']}")
        if not isinstance(claims["sub_id"], dict) or "format" not in claims["sub_id"]:
            fail(f"sub_id {claims['sub_id']}")
        verified.append(claims)
    print(json.dumps(verified))


if __name__ == "__main__":
    main()
