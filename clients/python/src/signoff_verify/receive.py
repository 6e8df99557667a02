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
from typing import Any, Iterable, Literal, Mapping, Optional, Union

import jwt

from ._http import Base
from ._jwks import KeySet, KeysUnavailable
from ._metadata import Expectations, mismatch
from ._options import seconds

log = logging.getLogger("signoff_verify")

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
LOGOUT_REQUIRED = ["iss", "aud", "iat", "exp", "jti", "events", "sid"]
# A logout token older than this is refused (it is made when it is sent).
MAX_LOGOUT_AGE = 300
MAX_LOGOUT_TOKEN = 8192
TIMESTAMP = re.compile(r"[0-9]{1,12}")
# The shortest webhook key taken (Standard Webhooks: 24 to 64 bytes; signoff's are 32).
MIN_WEBHOOK_KEY = 24

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


def _secret_key(secret: object) -> bytes:
    """The key of a ``whsec_`` secret, decoded strictly. Leniently, ``whsec_`` alone would be an
    empty key (anyone can sign with it) and stray characters would be dropped. Raises
    ``ValueError``, never showing the secret."""
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise ValueError("a webhook secret is a string starting with whsec_")
    try:
        key = base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ and base64, without other characters") from None
    if len(key) < MIN_WEBHOOK_KEY:
        raise ValueError(f"a webhook secret holds at least {MIN_WEBHOOK_KEY} bytes of key, this one {len(key)}")
    return key


def _signatures(header: str) -> list[bytes]:
    out = []
    for part in header.split(" "):
        if part.startswith("v1,"):
            try:
                out.append(base64.b64decode(part[3:]))
            except (binascii.Error, ValueError):
                continue
    return out


class WebhookVerifier:
    """Checks Standard Webhooks signatures with ``secrets``: one ``whsec_…`` secret, or several
    (a list, a tuple, any iterable, read once: during a rotation, the old and the new, as
    signoff signs with both for the overlap). The secrets are checked when it is made (a
    ``ValueError``: at start, not at the first delivery). ``tolerance``: how far the
    ``webhook-timestamp`` may be from the receiver's clock, in seconds. Call it with the
    headers (any mapping; names matched without regard to case) and the raw body, exactly as
    received; it returns the parsed payload or raises ``ReceiveError("invalid", …)``.
    """

    def __init__(self, secrets: Union[str, Iterable[str]], *, tolerance: float = 300) -> None:
        listed = [secrets] if isinstance(secrets, str) else list(secrets)
        if not listed:
            raise ValueError("no webhook secret")
        self._keys = [_secret_key(s) for s in listed]
        self._tolerance = seconds("tolerance", tolerance, positive=True)

    def __call__(
        self, headers: Mapping[str, Any], body: Union[bytes, str], now: Optional[float] = None
    ) -> dict[str, Any]:
        """``now`` is Unix seconds (default: the clock)."""
        id_ = _header(headers, "webhook-id")
        timestamp = _header(headers, "webhook-timestamp")
        signature = _header(headers, "webhook-signature")
        if not id_ or not timestamp or not signature:
            raise ReceiveError("invalid", "missing webhook headers")
        if not TIMESTAMP.fullmatch(timestamp):
            raise ReceiveError("invalid", "bad webhook-timestamp")
        if abs((time.time() if now is None else now) - int(timestamp)) > self._tolerance:
            raise ReceiveError("invalid", "webhook-timestamp outside the tolerance")
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        signed = f"{id_}.{timestamp}.".encode() + raw
        presented = _signatures(signature)
        expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in self._keys]
        if not any(hmac.compare_digest(p, e) for e in expected for p in presented):
            raise ReceiveError("invalid", "no valid signature")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except ValueError:
            raise ReceiveError("invalid", "the body is not JSON") from None
        if not isinstance(payload, dict):
            raise ReceiveError("invalid", "the body is not a JSON object")
        return payload


def verify_webhook(
    secrets: Union[str, Iterable[str]],
    headers: Mapping[str, Any],
    body: Union[bytes, str],
    *,
    tolerance: float = 300,
    now: Optional[float] = None,
) -> dict[str, Any]:
    """Checks a Standard Webhooks signature and returns the parsed payload: a
    ``WebhookVerifier(secrets, tolerance=tolerance)`` made for one call (``ValueError`` for bad
    secrets, ``ReceiveError("invalid", …)`` for a webhook that does not verify)."""
    return WebhookVerifier(secrets, tolerance=tolerance)(headers, body, now)


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
    answered 503 and retried by signoff); the key set is also fetched again before use once it
    is 10 minutes old (a key may have been withdrawn). The issuer is learned from signoff unless
    given, so ``url`` may be an internal address. Call it with the token; it returns the claims.
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
        self._leeway = seconds("leeway", leeway)
        cooldown = seconds("jwks_cooldown", jwks_cooldown)
        base = Base.parse(url)
        base.warn_if_plain()
        self._client_id = client_id
        self._expect = Expectations(base, issuer, client_id)
        self._keys = KeySet(base, LOGOUT_ALGORITHMS, cooldown)

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
