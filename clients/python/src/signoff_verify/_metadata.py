"""What signoff says its tokens carry (``GET /.well-known/signoff-configuration``), so that a
verifier or a receiver needs only a URL of signoff: the issuer and the audience to expect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, NamedTuple, Optional

from ._http import Base, Unreachable

log = logging.getLogger("signoff_verify")

PATH = "/.well-known/signoff-configuration"
# A failed read is not tried again sooner than this (every token would otherwise wait on it).
RETRY_AFTER = 1.0


class Expected(NamedTuple):
    issuer: str
    audience: str


class Mismatch(NamedTuple):
    """A token's ``iss`` or ``aud`` that is not the one expected (most often a configuration
    fault: the verifier's issuer or audience, or signoff's public URL)."""

    claim: str
    found: str
    expected: str

    def describe(self, who: str) -> str:
        """``iss is "a", this verifier expects "b"``"""
        return f"{self.claim} is {json.dumps(self.found)}, this {who} expects {json.dumps(self.expected)}"


def mismatch(claim: str, payload: dict[str, Any], expected: Expected) -> Mismatch:
    raw = payload.get(claim)
    found = " ".join(str(a) for a in raw) if isinstance(raw, list) else str(raw)
    return Mismatch(claim, found, expected.issuer if claim == "iss" else expected.audience)


class Expectations:
    """The issuer and audience to expect: what was set, the rest learned from signoff at
    ``base`` (the first successful read is kept; a failed one is tried again on a later call,
    at most once a second)."""

    def __init__(self, base: Base, issuer: Optional[str], audience: Optional[str]) -> None:
        self._base = base
        self._issuer = issuer
        self._audience = audience
        self._known = Expected(issuer, audience) if issuer is not None and audience is not None else None
        self._failed_at = -float("inf")
        # One read at a time; a caller that waited for another's failed read does not repeat it.
        self._reading = threading.Lock()

    @property
    def known(self) -> Optional[Expected]:
        """The expectations if known now, else None."""
        return self._known

    def learn(self) -> Optional[Expected]:
        """The expectations, or None if signoff cannot be asked now."""
        if self._known is not None:
            return self._known
        with self._reading:
            if self._known is not None or time.monotonic() - self._failed_at < RETRY_AFTER:
                return self._known
            try:
                meta = self._base.get_json(PATH, {})
                if (
                    not isinstance(meta, dict)
                    or not isinstance(meta.get("issuer"), str)
                    or not isinstance(meta.get("token_audience"), str)
                ):
                    raise Unreachable(f"{PATH} names no issuer or token_audience")
            except Unreachable as e:
                self._failed_at = time.monotonic()
                log.warning("cannot read %s%s yet (%s); refusing tokens until it can", self._base.url, PATH, e)
                return None
            self._known = Expected(
                self._issuer if self._issuer is not None else meta["issuer"],
                self._audience if self._audience is not None else meta["token_audience"],
            )
            return self._known
