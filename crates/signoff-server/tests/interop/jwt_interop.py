#!/usr/bin/env python3
"""Interoperability check of signoff's access tokens with an independent JWT implementation.

Usage: jwt_interop.py BASE_URL ACCESS_TOKEN

1. Verifies ACCESS_TOKEN with PyJWT against the server's JWKS (EdDSA only).
2. Forges tokens signoff must refuse -- alg none, HMAC keyed with the public key, an unknown
   kid, a foreign key under the real kid, a tampered payload -- and checks /api/me answers 401
   with the bearer challenge for each, while the genuine token gets 200.
Exits non-zero with a message on the first failure.
"""
import base64
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.request

import jwt  # PyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def get(url: str, token: str | None = None):
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def fail(msg: str):
    print(f"FAIL: {msg}")
    sys.exit(1)


def main():
    base, token = sys.argv[1], sys.argv[2]
    status, _, body = get(f"{base}/.well-known/jwks.json")
    if status != 200:
        fail(f"jwks answered {status}")
    jwks = json.loads(body)
    header = jwt.get_unverified_header(token)
    if header.get("alg") != "EdDSA":
        fail(f"alg is {header.get('alg')}")
    jwk = next((k for k in jwks["keys"] if k["kid"] == header["kid"]), None)
    if jwk is None or jwk["kty"] != "OKP" or jwk["crv"] != "Ed25519":
        fail(f"kid {header['kid']} not an Ed25519 key in the JWKS: {jwks}")
    unverified = jwt.decode(token, options={"verify_signature": False})
    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=["EdDSA"],
        audience=unverified["aud"],
        issuer=unverified["iss"],
        options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
    )
    for claim in ("sid", "tv"):
        if claim not in claims:
            fail(f"claim {claim} missing")
    if claims["exp"] - claims["iat"] != 900:
        fail(f"lifetime is {claims['exp'] - claims['iat']}s, not 900")
    print(f"PyJWT verified the token: sub={claims['sub']} sid={claims['sid']} kid={header['kid']}")

    status, _, _ = get(f"{base}/api/me", token)
    if status != 200:
        fail(f"the genuine token got {status}")

    h, p, s = token.split(".")
    public_raw = unb64(jwk["x"])
    attacker = Ed25519PrivateKey.generate()
    attacker_pem = attacker.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    def hs256(header_obj, secret: bytes) -> str:
        signing_input = f"{b64(json.dumps(header_obj).encode())}.{p}"
        sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(sig)}"

    tampered_claims = dict(claims, sub="someone-else")
    forged = {
        "alg none": f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{p}.",
        "alg none, kept signature": f"{b64(json.dumps({'alg': 'none', 'kid': header['kid']}).encode())}.{p}.{s}",
        "HS256 keyed with the raw public key": hs256({"alg": "HS256", "kid": header["kid"]}, public_raw),
        "HS256 keyed with the JWK x": hs256({"alg": "HS256", "kid": header["kid"]}, jwk["x"].encode()),
        "unknown kid": jwt.encode(claims, attacker_pem, algorithm="EdDSA", headers={"kid": "not-a-signoff-key"}),
        "foreign key under the real kid": jwt.encode(claims, attacker_pem, algorithm="EdDSA", headers={"kid": header["kid"]}),
        "jku pointing elsewhere": jwt.encode(
            claims, attacker_pem, algorithm="EdDSA", headers={"kid": header["kid"], "jku": "http://127.0.0.1:9/jwks"}
        ),
        "tampered payload": f"{h}.{b64(json.dumps(tampered_claims).encode())}.{s}",
        "padded signature": f"{h}.{p}.{s}==",
    }
    for name, bad in forged.items():
        status, headers, _ = get(f"{base}/api/me", bad)
        challenge = headers.get("WWW-Authenticate") or headers.get("www-authenticate")
        if status != 401 or challenge != 'Bearer error="invalid_token"':
            fail(f"{name}: got {status} {challenge!r}")
        print(f"refused as it should: {name}")
    print("interop ok")


if __name__ == "__main__":
    main()
