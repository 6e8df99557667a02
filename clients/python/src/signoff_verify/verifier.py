"""Verifying signoff access tokens inside a Python service, revocations included.

A JWT library alone accepts a revoked token until it expires. A ``Verifier`` also follows
signoff's revocation feed (``GET /revocations/stream``, as a registered client) in a background
thread and keeps its state in memory: revoked ``jti``, ended ``sid``, each user's minimum
``tv``. It fails closed: once the feed has been silent past ``stale_after``, every token is
refused with code ``"stale"`` until the feed is back and caught up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType
from typing import Any, Literal, Optional

import jwt

from ._feed import FeedState, Follower, KeyChange, basic_auth
from ._http import Base
from ._jwks import KeySet, KeysUnavailable
from ._metadata import Expectations, Expected, Mismatch, mismatch
from ._options import seconds

log = logging.getLogger("signoff_verify")

Code = Literal["invalid_token", "revoked", "stale"]

MAX_TOKEN = 4096
REQUIRED = ["sub", "exp", "iat", "jti", "sid", "tv"]
# Distinct issuer/audience mismatches warned about (each once): a misconfiguration is logged
# without letting a flood of forged tokens flood the log.
MAX_WARNINGS = 16
# The longest stale_after taken: past an hour of silence, "fails closed" would mean little.
MAX_STALE_AFTER = 3600.0
# The longest a verify waits for what the feed has already sent to be applied (it takes well
# under a millisecond unless the process is starved).
SETTLE_LIMIT = 0.05

# Taken by the first thread of a forked process that finds a verifier made in its parent, to
# start following the feed here; made anew in each child (it may be inherited held).
_forked = threading.Lock()


def _new_fork_lock() -> None:
    global _forked
    _forked = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_fork_lock)


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


def stale_after_seconds(value: object, name: str = "stale_after") -> float:
    """``stale_after`` checked: above 0 (0 would refuse every token) and at most an hour."""
    return seconds(name, value, positive=True, at_most=MAX_STALE_AFTER)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Verifier:
    """Follows signoff's revocation feed from construction until ``close()``.

    ``url`` is signoff's public URL or an internal address of it (keys and the feed are read
    from there). The issuer and audience are learned from signoff
    (``/.well-known/signoff-configuration``) unless given. ``stale_after``: past this many
    seconds of silence from the feed every token is refused as stale (keep it above signoff's
    1 s heartbeat; at most 3600). ``leeway``: clock skew tolerated on ``exp``, ``nbf`` and
    ``iat``. ``retain``: how long ended sessions and token versions are kept, which must exceed
    the access-token lifetime and twice the leeway (longer-lived tokens are refused).
    ``jwks_cooldown``: the key set is fetched again for an unknown ``kid`` at most this often.
    A bad option is a ``ValueError`` naming it.

    The constructor returns once the verifier has caught up with the feed, or after
    ``stale_after`` seconds without that (tokens are then refused as stale until it has).
    Thread-safe: one verifier per process serves every request thread. A verifier made before a
    fork (gunicorn ``--preload``, uWSGI without ``lazy-apps``) follows the feed anew in each
    child, from the child's first ``verify`` on.
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
        self._stale_after = stale_after_seconds(stale_after)
        self._leeway = seconds("leeway", leeway)
        self._retain = seconds("retain", retain, positive=True)
        self._jwks_cooldown = seconds("jwks_cooldown", jwks_cooldown)
        self._base = Base.parse(url)
        self._base.warn_if_plain()
        self._issuer = issuer
        self._audience = audience
        self._authorization = basic_auth(client_id, client_secret)
        self._warned: set[str] = set()
        self._closed = False
        self._settle_warned = False
        self._follow()

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or ``VerifyError``. May fetch signoff's configuration or key set
        (blocking, at most 5 s each): call it from a worker thread, not an event loop."""
        self._here()
        self._check_fresh()
        kid = self._kid(token)
        expected = self._expect.known or self._expect.learn()
        if expected is None:
            raise VerifyError("stale", "signoff's configuration cannot be read")
        try:
            key = self._keys.key(kid, "EdDSA")
        except KeysUnavailable:
            raise VerifyError("stale", "the signing keys cannot be fetched") from None
        if key is None:
            raise VerifyError("invalid_token", "unknown key")
        claims = self._decode(token, key, expected)
        self._check_claims(claims)
        # A key withdrawn, or the feed gone silent, while this call waited for the key set.
        if self._keys.withdrawn(kid):
            raise VerifyError("invalid_token", "unknown key")
        self._check_fresh()
        # What signoff has sent down the feed is applied before the token is judged: it answers
        # a revocation once sent, so the revoker's next request finds it here.
        if not self._follower.settle(SETTLE_LIMIT) and not self._settle_warned:
            self._settle_warned = True
            log.warning(
                "the revocation feed still had bytes to apply after %g s; judged with what was applied (said once)",
                SETTLE_LIMIT,
            )
        if self._feed.revokes(claims):
            raise VerifyError("revoked", "token revoked")
        return claims

    def held(self) -> int:
        """How many revocation events are held (for metrics and tests)."""
        self._here()
        return self._feed.held()

    def close(self) -> None:
        """Stops following the feed; every later ``verify`` is refused as stale. In a forked
        process that has not followed the feed itself there is nothing of its own to stop (the
        stream there is the parent's: shutting its socket down from here would end it)."""
        self._closed = True
        if self._pid == os.getpid():
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

    def _follow(self) -> None:
        """Starts following the feed in this process, with state of its own, and waits for it to
        catch up (at most ``stale_after``). Run by the constructor, and again in a process
        forked since: a child has none of its parent's threads (its feed would stay silent: 503
        for ever), and may have the parent's locks held by threads it does not have."""
        self._warned_lock = threading.Lock()
        self._expect = Expectations(self._base, self._issuer, self._audience)
        self._keys = KeySet(self._base, frozenset({"EdDSA"}), self._jwks_cooldown)
        self._feed = FeedState()
        self._follower = Follower(
            self._base,
            self._authorization,
            self._feed,
            retain=self._retain,
            leeway=self._leeway,
            on_keys=self._keys_changed,
            before_connect=self._expect.learn,
        )
        self._follower.start()
        self._follower.wait_synced(self._stale_after)
        # Last: the other threads of a forked child wait (on _forked) until all of the above is
        # this process's.
        self._pid = os.getpid()

    def _here(self) -> None:
        """Follows the feed in this process first if it is not the one that made the verifier
        (once, whichever thread comes first; the others wait for it)."""
        if self._pid == os.getpid():
            return
        with _forked:
            if self._pid != os.getpid() and not self._closed:
                self._follow()

    def _check_fresh(self) -> None:
        if self._closed or not self._feed.fresh(self._stale_after):
            raise VerifyError("stale", "the revocation feed is stale")

    def _kid(self, token: str) -> str:
        """The ``kid`` of a token's header, if it names a key not withdrawn."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
            raise VerifyError("invalid_token", "malformed")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except Exception:
            # PyJWT's errors, and what its parsing lets through (PyJWT 2.10.1 lets the
            # RecursionError of a header of nested brackets out): a token that cannot be read.
            raise VerifyError("invalid_token", "malformed") from None
        if not isinstance(kid, str) or self._keys.withdrawn(kid):
            raise VerifyError("invalid_token", "unknown key")
        return kid

    def _decode(self, token: str, key: Any, expected: Expected) -> dict[str, Any]:
        """The claims of a token signed with ``key``, for the issuer and audience expected."""
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
            return claims
        except (jwt.InvalidIssuerError, jwt.InvalidAudienceError) as e:
            # The signature was checked first: the claims are signoff's, the expectation is off.
            payload = jwt.decode(token, options={"verify_signature": False})
            wrong = mismatch("iss" if isinstance(e, jwt.InvalidIssuerError) else "aud", payload, expected)
            message = f"its {wrong.describe('verifier')}"
            self._warn_once(message)
            raise VerifyError("invalid_token", f"invalid token: {message}", wrong) from None
        except jwt.PyJWTError as e:
            raise VerifyError("invalid_token", f"invalid token: {e}") from None
        except Exception:
            # As in _kid: an error of decoding that PyJWT lets through.
            raise VerifyError("invalid_token", "malformed") from None

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """What PyJWT does not check: the types of the claims, ``iat`` not in the future, and a
        lifetime within what the verifier retains."""
        if not (_number(claims["exp"]) and _number(claims["iat"]) and isinstance(claims["sid"], str)):
            raise VerifyError("invalid_token", "invalid token: exp, iat or sid of the wrong type")
        if not isinstance(claims["tv"], int) or isinstance(claims["tv"], bool):
            raise VerifyError("invalid_token", "invalid token: tv must be an integer")
        if claims["iat"] > time.time() + self._leeway:
            raise VerifyError("invalid_token", "not yet valid")
        # What the feed said about a token is kept for `retain` from when it was heard, and a
        # token is taken from leeway before its iat until leeway after its exp: a longer-lived
        # token could outlive its revocation here.
        if claims["exp"] - claims["iat"] + 2 * self._leeway > self._retain:
            raise VerifyError("invalid_token", "lifetime longer than the verifier retains revocations")

    def _keys_changed(self, change: KeyChange) -> None:
        """Called on the feed's thread, which must go on reading: the key set is told at once
        (before the next frame), and fetched beside it."""
        keys = self._keys
        if change.kid is None:
            keys.outdate()
        elif change.withdrawn:
            keys.withdraw(change.kid)
        threading.Thread(target=keys.refresh, name="signoff-verify-jwks", daemon=True).start()

    def _warn_once(self, message: str) -> None:
        with self._warned_lock:
            if message in self._warned or len(self._warned) >= MAX_WARNINGS:
                return
            self._warned.add(message)
        log.warning("refused a token: %s (check the verifier's issuer and audience)", message)
