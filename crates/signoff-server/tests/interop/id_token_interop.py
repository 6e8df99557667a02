#!/usr/bin/env python3
"""Checks an ID token of signoff's OpenID provider with an independent implementation (PyJWT).

Usage: id_token_interop.py JWKS_URL ISSUER CLIENT_ID ALG NONCE < id_token

Verifies the token against the JWKS with ALG only (RS256, ES256 or EdDSA), the issuer, the
audience (CLIENT_ID) and the claims OpenID Connect Core 1.0 section 2 and the logout
specifications ask of it: iss, sub, aud, exp, iat, auth_time, nonce (= NONCE), sid, email,
email_verified; a JWT type if the header names one. Exits non-zero with a message on the first
failure; prints "id token interop ok".
"""
import sys

import jwt  # PyJWT


def fail(message: str) -> None:
    print(f"FAIL: {message}")
    sys.exit(1)


def main() -> None:
    jwks_url, issuer, client_id, alg, nonce = sys.argv[1:6]
    token = sys.stdin.read().strip()
    header = jwt.get_unverified_header(token)
    if header.get("typ", "JWT") != "JWT":
        fail(f"header {header}")
    key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[alg],
        audience=client_id,
        issuer=issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time", "sid"]},
    )
    if claims.get("nonce") != nonce:
        fail(f"nonce {claims.get('nonce')!r}, expected {nonce!r}")
    if not isinstance(claims.get("email"), str) or not isinstance(claims.get("email_verified"), bool):
        fail(f"email claims {claims}")
    if not claims["auth_time"] <= claims["iat"] < claims["exp"]:
        fail(f"times {claims['auth_time']} {claims['iat']} {claims['exp']}")
    print("id token interop ok")


main()
