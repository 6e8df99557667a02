"""signoff's signing keys (``GET /.well-known/jwks.json``), cached here.

Not PyJWT's ``PyJWKClient``: that one fetches the key set again for every unknown ``kid``, so a
stream of forged tokens would become a stream of requests to signoff. Here an unknown ``kid``
refetches at most every ``cooldown`` seconds (and the revocation feed asks for a refetch when
the keys change). Each key is used only under its own ``alg`` and key type; a key the feed
said was withdrawn is never trusted again, whatever a key set fetched later still lists.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

import jwt

from ._http import Base, Unreachable

log = logging.getLogger("signoff_verify")

PATH = "/.well-known/jwks.json"

# The key type (and curve) each algorithm's keys must have.
KEY_TYPES: dict[str, tuple[str, Optional[str]]] = {
    "EdDSA": ("OKP", "Ed25519"),
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
}


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
    def __init__(self, base: Base, algorithms: frozenset[str], cooldown: float, timeout: float = 5.0) -> None:
        self._base = base
        self._algorithms = algorithms
        self._cooldown = cooldown
        self._timeout = timeout
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], Any] = {}
        self._withdrawn: set[str] = set()
        # When the key set was last fetched (time.monotonic()), successfully.
        self._fetched_at: Optional[float] = None
        # One fetch at a time: callers that waited for one do not repeat it.
        self._fetching = threading.Lock()

    def key(self, kid: str, alg: str) -> Optional[Any]:
        """The public key for ``kid`` under ``alg``, fetching the key set if it is not known and
        the cooldown allows; None if there is none. Raises ``KeysUnavailable``."""
        asked = time.monotonic()
        with self._lock:
            if kid in self._withdrawn:
                return None
            found = self._keys.get((kid, alg))
            cooling = self._fetched_at is not None and asked - self._fetched_at < self._cooldown
        if found is not None or cooling:
            return found
        self._fetch(unless_fetched_since=asked)
        with self._lock:
            return None if kid in self._withdrawn else self._keys.get((kid, alg))

    def reload(self) -> None:
        """Fetches the key set now (the feed said the keys changed); a failure is only logged: an
        unknown ``kid`` fetches again."""
        try:
            self._fetch(unless_fetched_since=None)
        except KeysUnavailable as e:
            log.warning("cannot fetch the key set after a key change: %s", e)

    def withdraw(self, kid: str) -> None:
        with self._lock:
            self._withdrawn.add(kid)
            self._keys = {k: v for k, v in self._keys.items() if k[0] != kid}

    def withdrawn(self, kid: str) -> bool:
        with self._lock:
            return kid in self._withdrawn

    def _fetch(self, unless_fetched_since: Optional[float]) -> None:
        with self._fetching:
            with self._lock:
                if (
                    unless_fetched_since is not None
                    and self._fetched_at is not None
                    and self._fetched_at > unless_fetched_since
                ):
                    return
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
            with self._lock:
                self._keys = {k: v for k, v in keys.items() if k[0] not in self._withdrawn}
                self._fetched_at = time.monotonic()
