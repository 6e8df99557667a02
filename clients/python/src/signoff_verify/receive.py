"""Receiving signoff's logout notifications: OIDC Back-Channel Logout tokens and Standard
Webhooks. Both are checked before anything is believed.

A check raises ``ReceiveError``: ``"invalid"`` for a notification that does not verify (answer
400: signoff fails the delivery and stops), ``"unavailable"`` when there is no verdict now (the
key set or signoff's configuration cannot be had: answer 503, and signoff tries again later).
The Django and FastAPI receivers (``signoff_verify.django``, ``signoff_verify.fastapi``) answer
so, and recognise repeats.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Sequence, Union

import jwt

from ._http import Base
from ._jwks import KeySet, KeysUnavailable
from ._metadata import Expectations, mismatch

log = logging.getLogger("signoff_verify")

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
LOGOUT_REQUIRED = ["iss", "aud", "iat", "exp", "jti", "events", "sid"]
# A logout token older than this is refused (it is made when it is sent).
MAX_LOGOUT_AGE = 300
MAX_LOGOUT_TOKEN = 8192
TIMESTAMP = re.compile(r"[0-9]{1,12}")

ReceiveCode = Literal["invalid", "unavailable"]


class ReceiveError(Exception):
    """Why a notification was refused: ``code`` is ``"invalid"`` (answer 400) or
    ``"unavailable"`` (answer 503)."""

    def __init__(self, code: ReceiveCode, message: str) -> None:
        super().__init__(message)
        self.code: ReceiveCode = code
        self.message = message


@dataclass(frozen=True)
class Logout:
    """A verified logout: end your own sessions for ``sid``. ``sub`` is present for a service
    that signs nobody in; an app that signs users in is told only the ``sid`` of the sign-in its
    ID token named."""

    sid: str
    jti: str
    sub: Optional[str]
    claims: dict[str, Any]


def _header(headers: Mapping[str, Any], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == name), None)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def _secret_key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise TypeError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len("whsec_") :])


def _signatures(header: str) -> list[bytes]:
    out = []
    for part in header.split(" "):
        if part.startswith("v1,"):
            try:
                out.append(base64.b64decode(part[3:]))
            except (binascii.Error, ValueError):
                continue
    return out


def verify_webhook(
    secrets: Union[str, Sequence[str]],
    headers: Mapping[str, Any],
    body: Union[bytes, str],
    *,
    tolerance: float = 300,
    now: Optional[float] = None,
) -> dict[str, Any]:
    """Checks a Standard Webhooks signature and returns the parsed payload.

    ``secrets`` is one ``whsec_…`` secret or several (during a rotation, the old and the new:
    signoff signs with both for the overlap). ``headers`` is any mapping (names matched without
    regard to case); ``body`` the raw body, exactly as received. ``now`` is Unix seconds
    (default: the clock). Raises ``ReceiveError("invalid", …)``.
    """
    id_ = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")
    if not id_ or not timestamp or not signature:
        raise ReceiveError("invalid", "missing webhook headers")
    if not TIMESTAMP.fullmatch(timestamp):
        raise ReceiveError("invalid", "bad webhook-timestamp")
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        raise ReceiveError("invalid", "webhook-timestamp outside the tolerance")
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    keys = [_secret_key(s) for s in ([secrets] if isinstance(secrets, str) else list(secrets))]
    if not keys:
        raise TypeError("no webhook secret")
    signed = f"{id_}.{timestamp}.".encode() + raw
    presented = _signatures(signature)
    expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in keys]
    if not any(hmac.compare_digest(p, e) for e in expected for p in presented):
        raise ReceiveError("invalid", "no valid signature")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise ReceiveError("invalid", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise ReceiveError("invalid", "the body is not a JSON object")
    return payload


def _normal_typ(typ: object) -> Optional[str]:
    """A ``typ`` as JOSE compares it: without case, ``application/`` implied."""
    if not isinstance(typ, str):
        return None
    typ = typ.lower()
    return typ[len("application/") :] if typ.startswith("application/") else typ


class LogoutTokenVerifier:
    """Checks OIDC Back-Channel Logout tokens from signoff: the signature (RS256, ES256 or
    EdDSA, as the client registered its ``id_token_signed_response_alg``; each key of signoff's
    key set verifies only under its own ``alg``), ``typ: logout+jwt``, ``iss``, ``aud`` = your
    client id, ``iat`` (at most 300 s old), ``exp``, ``jti``, the back-channel logout event,
    ``sid``, no ``nonce``, and ``sub`` when present.

    A token signed with a key not seen yet makes it fetch the key set again, at most every
    ``jwks_cooldown`` seconds (5 s: logout tokens are rare, and until then such a token is
    answered 503 and retried by signoff). The issuer is learned from signoff unless given, so
    ``url`` may be an internal address. Call it with the token; it returns the claims.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        issuer: Optional[str] = None,
        leeway: float = 10,
        jwks_cooldown: float = 5.0,
    ) -> None:
        if not client_id:
            raise ValueError("client_id is required")
        base = Base.parse(url)
        self._client_id = client_id
        self._leeway = leeway
        self._expect = Expectations(base, issuer, client_id)
        self._keys = KeySet(base, LOGOUT_ALGORITHMS, jwks_cooldown)

    def __call__(self, token: Any) -> dict[str, Any]:
        if not isinstance(token, str) or not 0 < len(token) <= MAX_LOGOUT_TOKEN:
            raise ReceiveError("invalid", "no logout token")
        expected = self._expect.known or self._expect.learn()
        # Without knowing the issuer there is no verdict: 503, and signoff tries again.
        if expected is None:
            raise ReceiveError("unavailable", "signoff's configuration cannot be read now")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise ReceiveError("invalid", "malformed logout token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in LOGOUT_ALGORITHMS:
            raise ReceiveError("invalid", "algorithm not allowed")
        if _normal_typ(header.get("typ")) != "logout+jwt":
            raise ReceiveError("invalid", "not a logout token (typ)")
        if not isinstance(kid, str):
            raise ReceiveError("invalid", "no kid")
        # No verdict without the key: a key signoff began to sign with since the last fetch,
        # or a key set that cannot be had. Answered 503, so signoff tries again rather than
        # dropping the logout.
        try:
            key = self._keys.key(kid, alg)
        except KeysUnavailable:
            raise ReceiveError("unavailable", "the signing key cannot be had now") from None
        if key is None:
            raise ReceiveError("unavailable", "the signing key cannot be had now")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=expected.issuer,
                audience=self._client_id,
                leeway=self._leeway,
                options={"require": LOGOUT_REQUIRED},
            )
        except (jwt.InvalidIssuerError, jwt.InvalidAudienceError) as e:
            payload = jwt.decode(token, options={"verify_signature": False})
            wrong = mismatch("iss" if isinstance(e, jwt.InvalidIssuerError) else "aud", payload, expected)
            message = f"the logout token's {wrong.describe('receiver')}"
            log.warning("refused a logout token: %s (check the receiver's url, issuer and client_id)", message)
            raise ReceiveError("invalid", message) from None
        except jwt.PyJWTError as e:
            raise ReceiveError("invalid", f"invalid logout token: {e}") from None
        iat = claims["iat"]
        if not isinstance(iat, (int, float)) or isinstance(iat, bool):
            raise ReceiveError("invalid", "iat must be a number")
        age = time.time() - iat
        if age - self._leeway > MAX_LOGOUT_AGE:
            raise ReceiveError("invalid", "the logout token is too old (iat)")
        if age < -self._leeway:
            raise ReceiveError("invalid", "the logout token is issued in the future (iat)")
        events = claims["events"]
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
            raise ReceiveError("invalid", "not a back-channel logout event")
        if "nonce" in claims:
            raise ReceiveError("invalid", "a logout token carries no nonce")
        if (
            not isinstance(claims["sid"], str)
            or not isinstance(claims["jti"], str)
            or ("sub" in claims and not isinstance(claims["sub"], str))
        ):
            raise ReceiveError("invalid", "sid, jti and sub (when present) must be strings")
        return claims
