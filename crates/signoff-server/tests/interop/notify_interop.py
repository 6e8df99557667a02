#!/usr/bin/env python3
"""Checks signoff's logout notifications with independent implementations.

Usage: notify_interop.py JWKS_URL ISSUER CLIENT_ID WEBHOOK_SECRET [KINDS [ALG]] < received.json

received.json is a list of {"path", "headers", "body"} as a receiver got them:
- a back-channel logout (form body `logout_token=...`) is verified with PyJWT against the JWKS
  with ALG only (default EdDSA; RS256 and ES256 for clients registered so), with the claims
  OIDC Back-Channel Logout 1.0 requires;
- a webhook is verified with the Standard Webhooks reference package (`standardwebhooks`).
KINDS (default "backchannel,webhook") are the kinds that must all be among what was received.
Exits non-zero with a message on the first failure; prints "notify interop ok".
"""
import json
import sys
import urllib.parse

import jwt  # PyJWT
from standardwebhooks.webhooks import Webhook

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def fail(message: str) -> None:
    print(f"FAIL: {message}")
    sys.exit(1)


def main() -> None:
    jwks_url, issuer, client_id, secret = sys.argv[1:5]
    expected = set((sys.argv[5] if len(sys.argv) > 5 else "backchannel,webhook").split(","))
    alg = sys.argv[6] if len(sys.argv) > 6 else "EdDSA"
    received = json.load(sys.stdin)
    kinds = set()
    for got in received:
        headers = {k.lower(): v for k, v in got["headers"].items()}
        if headers.get("content-type") == "application/x-www-form-urlencoded":
            form = urllib.parse.parse_qs(got["body"], strict_parsing=True)
            token = form["logout_token"][0]
            header = jwt.get_unverified_header(token)
            if header.get("typ") != "logout+jwt":
                fail(f"logout token header {header}")
            # PyJWT itself refuses a token whose header names another algorithm.
            key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=client_id,
                issuer=issuer,
                options={"require": ["iss", "aud", "iat", "exp", "jti", "sub", "sid", "events"]},
            )
            if claims["events"] != {EVENT: {}}:
                fail(f"events {claims['events']}")
            if "nonce" in claims:
                fail("a logout token must not carry a nonce")
            if not 0 < claims["exp"] - claims["iat"] <= 120:
                fail(f"lifetime {claims['exp'] - claims['iat']} s")
            kinds.add("backchannel")
        else:
            payload = Webhook(secret).verify(got["body"], headers)
            if payload.get("type") not in ("session.ended", "user.token_version", "token.revoked"):
                fail(f"webhook type {payload.get('type')}")
            if not isinstance(payload.get("data"), dict) or "timestamp" not in payload:
                fail(f"webhook body {payload}")
            kinds.add("webhook")
    if kinds != expected:
        fail(f"expected {expected}, got {kinds}")
    print("notify interop ok")


main()
