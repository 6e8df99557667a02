"""Verifying signoff access tokens inside a Python service, revocations included.

A JWT library alone accepts a revoked token until it expires. A ``Verifier`` also follows
signoff's revocation feed (``GET /revocations/stream``, as a registered client) in a background
thread and keeps its state in memory: revoked ``jti``, ended ``sid``, each user's minimum
``tv``. It fails closed: once the feed has been silent past ``stale_after``, every token is
refused with code ``"stale"`` until the feed is back and caught up.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any, Literal, Optional

import jwt

from ._feed import FeedState, Follower, KeyChange, basic_auth
from ._http import Base
from ._jwks import KeySet, KeysUnavailable
from ._metadata import Expectations, Mismatch, mismatch

log = logging.getLogger("signoff_verify")

Code = Literal["invalid_token", "revoked", "stale"]

MAX_TOKEN = 4096
REQUIRED = ["sub", "exp", "iat", "jti", "sid", "tv"]
# Distinct issuer/audience mismatches warned about (each once): a misconfiguration is logged
# without letting a flood of forged tokens flood the log.
MAX_WARNINGS = 16


class VerifyError(Exception):
    """Why a token was refused: ``code`` is ``"invalid_token"``, ``"revoked"`` or ``"stale"``.
    A token whose ``iss`` or ``aud`` is not the one expected also has ``claim``, ``found`` and
    ``expected``."""

    def __init__(self, code: Code, message: str, wrong: Optional[Mismatch] = None) -> None:
        super().__init__(message)
        self.code: Code = code
        self.message = message
        self.claim: Optional[str] = wrong.claim if wrong else None
        self.found: Optional[str] = wrong.found if wrong else None
        self.expected: Optional[str] = wrong.expected if wrong else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Verifier:
    """Follows signoff's revocation feed from construction until ``close()``.

    ``url`` is signoff's public URL or an internal address of it (keys and the feed are read
    from there). The issuer and audience are learned from signoff
    (``/.well-known/signoff-configuration``) unless given. ``stale_after``: past this many
    seconds of silence from the feed every token is refused as stale (keep it above signoff's
    1 s heartbeat). ``leeway``: clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    ``retain``: how long ended sessions and token versions are kept, which must exceed the
    access-token lifetime (longer-lived tokens are refused). ``jwks_cooldown``: the key set is
    fetched again for an unknown ``kid`` at most this often.

    The constructor returns once the verifier has caught up with the feed, or after
    ``stale_after`` seconds without that (tokens are then refused as stale until it has).
    Thread-safe: one verifier per process serves every request thread.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: str,
        *,
        stale_after: float = 3.0,
        issuer: Optional[str] = None,
        audience: Optional[str] = None,
        leeway: float = 10,
        retain: float = 3600.0,
        jwks_cooldown: float = 30.0,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        base = Base.parse(url)
        base.warn_if_plain()
        self._stale_after = stale_after
        self._leeway = leeway
        self._retain = retain
        self._expect = Expectations(base, issuer, audience)
        self._keys = KeySet(base, frozenset({"EdDSA"}), jwks_cooldown)
        self._feed = FeedState()
        self._warned: set[str] = set()
        self._warned_lock = threading.Lock()
        self._follower = Follower(
            base,
            basic_auth(client_id, client_secret),
            self._feed,
            retain=retain,
            leeway=leeway,
            on_keys=self._keys_changed,
            before_connect=self._expect.learn,
        )
        self._follower.start()
        self._follower.wait_synced(stale_after)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or ``VerifyError``. May fetch signoff's configuration or key set
        (blocking, at most 5 s): call it from a worker thread, not an event loop."""
        self._check_fresh()
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
            raise VerifyError("invalid_token", "malformed")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise VerifyError("invalid_token", "malformed") from None
        if not isinstance(kid, str) or self._keys.withdrawn(kid):
            raise VerifyError("invalid_token", "unknown key")
        expected = self._expect.known or self._expect.learn()
        if expected is None:
            raise VerifyError("stale", "signoff's configuration cannot be read")
        try:
            key = self._keys.key(kid, "EdDSA")
        except KeysUnavailable:
            raise VerifyError("stale", "the signing keys cannot be fetched") from None
        if key is None:
            raise VerifyError("invalid_token", "unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                issuer=expected.issuer,
                audience=expected.audience,
                leeway=self._leeway,
                options={"require": REQUIRED},
            )
        except (jwt.InvalidIssuerError, jwt.InvalidAudienceError) as e:
            # The signature was checked first: the claims are signoff's, the expectation is off.
            payload = jwt.decode(token, options={"verify_signature": False})
            wrong = mismatch("iss" if isinstance(e, jwt.InvalidIssuerError) else "aud", payload, expected)
            message = f"its {wrong.describe('verifier')}"
            self._warn_once(message)
            raise VerifyError("invalid_token", f"invalid token: {message}", wrong) from None
        except jwt.PyJWTError as e:
            raise VerifyError("invalid_token", f"invalid token: {e}") from None
        if not (_number(claims["exp"]) and _number(claims["iat"]) and isinstance(claims["sid"], str)):
            raise VerifyError("invalid_token", "invalid token: exp, iat or sid of the wrong type")
        if not isinstance(claims["tv"], int) or isinstance(claims["tv"], bool):
            raise VerifyError("invalid_token", "invalid token: tv must be an integer")
        if claims["iat"] > time.time() + self._leeway:
            raise VerifyError("invalid_token", "not yet valid")
        # A key withdrawn, or the feed gone silent, while this call waited for the key set.
        if self._keys.withdrawn(kid):
            raise VerifyError("invalid_token", "unknown key")
        self._check_fresh()
        # What the feed said about a token is kept for `retain`: a longer-lived token could
        # outlive its revocation here.
        if claims["exp"] - claims["iat"] > self._retain:
            raise VerifyError("invalid_token", "lifetime longer than the verifier retains revocations")
        if self._feed.revokes(claims):
            raise VerifyError("revoked", "token revoked")
        return claims

    def held(self) -> int:
        """How many revocation events are held (for metrics and tests)."""
        return self._feed.held()

    def close(self) -> None:
        """Stops following the feed; every later ``verify`` is refused as stale."""
        self._feed.close()
        self._follower.stop()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def _check_fresh(self) -> None:
        if not self._feed.fresh(self._stale_after):
            raise VerifyError("stale", "the revocation feed is stale")

    def _keys_changed(self, change: KeyChange) -> None:
        # Called on the feed's thread, which must go on reading: the refetch runs beside it.
        if change.withdrawn:
            self._keys.withdraw(change.kid)
        threading.Thread(target=self._keys.reload, name="signoff-verify-jwks", daemon=True).start()

    def _warn_once(self, message: str) -> None:
        with self._warned_lock:
            if message in self._warned or len(self._warned) >= MAX_WARNINGS:
                return
            self._warned.add(message)
        log.warning("refused a token: %s (check the verifier's issuer and audience)", message)
