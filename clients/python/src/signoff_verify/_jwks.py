"""signoff's signing keys (``GET /.well-known/jwks.json``), cached here.

Not PyJWT's ``PyJWKClient``: that one fetches the key set again for every unknown ``kid``, so a
stream of forged tokens would become a stream of requests to signoff. Here:

- an unknown ``kid`` refetches at most every ``cooldown`` seconds after a successful fetch, and
  never within ``RETRY_AFTER`` (1 s) of a failed one; one fetch runs at a time, and the callers
  that waited for it take its outcome rather than making their own;
- the set is used for ``max_age`` seconds (600, as jose's ``cacheMaxAge``), then fetched again
  before any key of it is trusted: a key may have been withdrawn while the feed could not tell
  (a failed fetch is then no verdict, never "trust the old set");
- the feed's word is taken at once: a withdrawn key is never trusted again, whatever a key set
  fetched later still lists; a key change makes it fetch; a feed rebuilt from a reset (which
  does not repeat past withdrawals) outdates the whole set until a fetch sent after it succeeds.

Each key is used only under its own ``alg`` and key type.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

import jwt

from ._http import RETRY_AFTER, Base, Unreachable

log = logging.getLogger("signoff_verify")

PATH = "/.well-known/jwks.json"
# How long a fetched key set is used before it is fetched again.
MAX_AGE = 600.0

# The key type (and curve) each algorithm's keys must have.
KEY_TYPES: dict[str, tuple[str, Optional[str]]] = {
    "EdDSA": ("OKP", "Ed25519"),
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
}

NEVER = -float("inf")


class KeysUnavailable(Exception):
    """The key set could not be fetched: no verdict on the token."""


def usable(jwk: Any, algorithms: frozenset[str]) -> Optional[tuple[str, str, Any]]:
    """``(kid, alg, public key)`` for a JWK of one of ``algorithms`` with that algorithm's key
    type, else None."""
    if not isinstance(jwk, dict):
        return None
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not isinstance(alg, str) or alg not in algorithms or jwk.get("use", "sig") != "sig":
        return None
    kty, crv = KEY_TYPES[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return None
    try:
        return kid, alg, jwt.PyJWK(jwk, alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as e:
        log.debug("skipping key %s of the key set: %s", kid, e)
        return None


class KeySet:
    """The key set of signoff at ``base``, as described above. Thread-safe."""

    def __init__(
        self,
        base: Base,
        algorithms: frozenset[str],
        cooldown: float,
        *,
        max_age: float = MAX_AGE,
        timeout: float = 5.0,
    ) -> None:
        self._base = base
        self._algorithms = algorithms
        self._cooldown = cooldown
        self._max_age = max_age
        self._timeout = timeout
        # Guards what follows; never held during a fetch.
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], Any] = {}
        self._withdrawn: set[str] = set()
        # When the request of the last successful fetch was sent (time.monotonic()): the set
        # is as new as that.
        self._fetched_at: Optional[float] = None
        # The last fetch finished: when its request was sent, its failure (None if it
        # succeeded), when it failed.
        self._last_sent_at = NEVER
        self._failure: Optional[str] = None
        self._failed_at = NEVER
        # When the fetch under way was sent, if one is.
        self._inflight_at: Optional[float] = None
        # A set fetched before this is not used (the feed restarted from a reset).
        self._outdated_at = NEVER
        # A set fetched before this may lack a key (the feed said the keys changed): an unknown
        # kid does not wait for the cooldown.
        self._changed_at = NEVER
        # One fetch at a time.
        self._fetching = threading.Lock()

    def key(self, kid: str, alg: str) -> Optional[Any]:
        """The public key for ``kid`` under ``alg``, fetching the key set if it is too old, or
        does not have it and the cooldown allows; None if there is none. Raises
        ``KeysUnavailable`` when a key set to judge by cannot be had."""
        with self._lock:
            if kid in self._withdrawn:
                return None
            now = time.monotonic()
            if self._current(now):
                found = self._keys.get((kid, alg))
                if found is not None or self._cooling(now):
                    return found
            since = self._taken_since(now)
        self._fetch(since)
        with self._lock:
            if not self._current(time.monotonic()):
                raise KeysUnavailable("the key set fetched is outdated already; fetching again")
            return None if kid in self._withdrawn else self._keys.get((kid, alg))

    def refresh(self) -> None:
        """The feed said the keys changed: fetches the key set now, in the caller's thread. A
        failure is only logged: until a set sent for after now is in hand, an unknown ``kid``
        fetches again without waiting for the cooldown."""
        with self._lock:
            self._changed_at = now = time.monotonic()
        try:
            self._fetch(now)
        except KeysUnavailable as e:
            log.warning("cannot fetch the key set after a key change: %s", e)

    def outdate(self) -> None:
        """No key of the set in hand is used until a set sent for after now is in hand (the
        feed restarted from a reset, and a key withdrawn meanwhile may no longer be told)."""
        with self._lock:
            self._outdated_at = time.monotonic()

    def withdraw(self, kid: str) -> None:
        with self._lock:
            self._withdrawn.add(kid)
            self._keys = {k: v for k, v in self._keys.items() if k[0] != kid}

    def withdrawn(self, kid: str) -> bool:
        with self._lock:
            return kid in self._withdrawn

    def _current(self, now: float) -> bool:
        """Whether the set in hand may be used (under the lock)."""
        at = self._fetched_at
        return at is not None and at >= self._outdated_at and now - at < self._max_age

    def _cooling(self, now: float) -> bool:
        """Whether an unknown kid must wait for the cooldown (under the lock, the set current)."""
        at = self._fetched_at
        return at is not None and at >= self._changed_at and now - at < self._cooldown

    def _taken_since(self, now: float) -> float:
        """For a caller asking at ``now`` (under the lock): the earliest send time of a fetch
        whose outcome it takes. The fetch under way, unless it was sent before the feed's
        latest word on the keys (it may not reflect it); else one sent from now on."""
        at = self._inflight_at
        if at is not None and at >= self._outdated_at and at >= self._changed_at:
            return at
        return now

    def _fetch(self, since: float) -> None:
        """Fetches the key set, unless a fetch sent at ``since`` or later has finished while the
        caller waited for its turn, or one failed within ``RETRY_AFTER``: that one's outcome
        stands. Raises ``KeysUnavailable``."""
        with self._fetching:
            with self._lock:
                if self._last_sent_at >= since or time.monotonic() - self._failed_at < RETRY_AFTER:
                    if self._failure is not None:
                        raise KeysUnavailable(self._failure)
                    return
                self._inflight_at = sent_at = time.monotonic()
            try:
                keys = self._download()
            except KeysUnavailable as e:
                with self._lock:
                    self._failure, self._failed_at = str(e), time.monotonic()
                raise
            else:
                with self._lock:
                    self._keys = {k: v for k, v in keys.items() if k[0] not in self._withdrawn}
                    self._fetched_at, self._failure, self._failed_at = sent_at, None, NEVER
            finally:
                with self._lock:
                    self._inflight_at, self._last_sent_at = None, sent_at

    def _download(self) -> dict[tuple[str, str], Any]:
        """The usable keys of signoff's key set, by ``(kid, alg)``; within ``timeout`` in all."""
        try:
            # A cache between here and signoff must ask signoff again.
            doc = self._base.get_json(PATH, {"cache-control": "no-cache"}, self._timeout)
        except Unreachable as e:
            raise KeysUnavailable(str(e)) from e
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise KeysUnavailable(f"{PATH} is not a key set")
        keys = {}
        for jwk in doc["keys"]:
            got = usable(jwk, self._algorithms)
            if got is not None:
                keys[(got[0], got[1])] = got[2]
        return keys
