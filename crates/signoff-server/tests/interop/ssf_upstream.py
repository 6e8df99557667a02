#!/usr/bin/env python3
"""An upstream Shared Signals transmitter for the tests, independent of signoff: its own RSA key
(`cryptography`), its SETs signed RS256 by PyJWT.

Usage:
  ssf_upstream.py keygen KEYFILE          writes a new RSA 2048 private key (PEM)
  ssf_upstream.py jwks KEYFILE KID        prints the public key as a JWK Set
  ssf_upstream.py sign KEYFILE KID TYP    reads the claims (JSON) on stdin, prints the SET
"""
import json
import sys

import jwt  # PyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def main() -> None:
    command, keyfile = sys.argv[1:3]
    if command == "keygen":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        open(keyfile, "wb").write(pem)
        return
    pem = open(keyfile, "rb").read()
    kid = sys.argv[3]
    if command == "jwks":
        key = serialization.load_pem_private_key(pem, password=None)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
        print(json.dumps({"keys": [jwk]}))
    elif command == "sign":
        claims = json.load(sys.stdin)
        print(jwt.encode(claims, pem, algorithm="RS256", headers={"typ": sys.argv[4], "kid": kid}))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
