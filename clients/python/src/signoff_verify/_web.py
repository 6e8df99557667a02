"""What the Django and FastAPI glue share: the bearer token of a request, the answers, and the
receivers' memory of notifications already handled.

Receivers answer 2xx once handled (or for a repeat of one handled); 400 for a notification that
does not verify (signoff fails the delivery and stops); 503 when this side cannot decide or act
right now (the key set cannot be had, the handler raised), so signoff tries again later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, NamedTuple, Optional
from urllib.parse import parse_qs

from .receive import ReceiveError
from .verifier import VerifyError

log = logging.getLogger("signoff_verify")

# Largest notification body read; signoff's are a few hundred bytes.
MAX_BODY = 64 * 1024
# Ids remembered to recognise repeats; the oldest go first past this.
MAX_SEEN = 100_000
# How long an id is remembered: signoff retries a delivery for 26 hours after it was written.
REMEMBER = 27 * 3600.0
NO_STORE = {"cache-control": "no-store"}
# Kinds of unexpected failure of verify logged (each once).
MAX_LOGGED = 16

_logged_lock = threading.Lock()
_logged: set[str] = set()


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: Optional[dict[str, Any]]


def bearer_token(authorization: Optional[str]) -> str:
    """The token of an ``Authorization: Bearer …`` header, or ``VerifyError``."""
    parts = (authorization or "").split(" ")
    token = parts[1].strip() if len(parts) > 1 else ""
    if parts[0].lower() != "bearer" or not token:
        raise VerifyError("invalid_token", "no bearer token")
    return token


def unexpected(e: Exception) -> VerifyError:
    """What ``verify`` raising something other than a ``VerifyError`` means for the request: a
    token that cannot be judged is refused as invalid (401), not a 500. The first failure of
    each kind is logged with its traceback; a client repeating one does not flood the log."""
    kind = f"{type(e).__module__}.{type(e).__qualname__}"
    with _logged_lock:
        first = kind not in _logged and len(_logged) < MAX_LOGGED
        if first:
            _logged.add(kind)
    if first:
        log.error("verifying a bearer token failed unexpectedly; refused as invalid (logged once)", exc_info=e)
    return VerifyError("invalid_token", "invalid token")


def refused(err: VerifyError) -> Answer:
    """401 for a missing, invalid or revoked token; 503 while the verifier is stale (the
    client may try again in a second)."""
    if err.code == "stale":
        return Answer(503, {**NO_STORE, "retry-after": "1"}, {"error": err.code, "message": err.message})
    headers = {**NO_STORE, "www-authenticate": 'Bearer error="invalid_token"'}
    return Answer(401, headers, {"error": err.code, "message": err.message})


def handled(status: int) -> Answer:
    return Answer(status, dict(NO_STORE), None)


def receiver_refused(e: BaseException) -> Answer:
    """OAuth's error form (OIDC Back-Channel Logout 2.8): signoff shows the description in its
    deliveries view, so a configuration fault is seen where it is sent from."""
    if isinstance(e, ReceiveError) and e.code == "invalid":
        return Answer(400, dict(NO_STORE), {"error": "invalid_request", "error_description": e.message})
    if not isinstance(e, ReceiveError):
        log.error("a logout notification handler failed", exc_info=e)
    return Answer(503, dict(NO_STORE), {"error": "temporarily_unavailable"})


def too_large(declared_length: Optional[str]) -> bool:
    return declared_length is not None and declared_length.isdigit() and int(declared_length) > MAX_BODY


def logout_token_of(content_type: Optional[str], body: bytes) -> str:
    """The ``logout_token`` of a form body, or ``ReceiveError``."""
    if len(body) > MAX_BODY:
        raise ReceiveError("invalid", "body too large")
    if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise ReceiveError("invalid", "not a form")
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ReceiveError("invalid", "the form is not UTF-8") from None
    tokens = form.get("logout_token")
    if not tokens or not tokens[0]:
        raise ReceiveError("invalid", "no logout token")
    return tokens[0]


class Seen:
    """Ids already handled, each remembered for ``REMEMBER`` seconds; at most ``MAX_SEEN``
    (the oldest go first). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: OrderedDict[str, float] = OrderedDict()

    def has(self, id_: str) -> bool:
        with self._lock:
            until = self._until.get(id_)
            return until is not None and until > time.time()

    def add(self, id_: str) -> None:
        now = time.time()
        with self._lock:
            while self._until:
                oldest, until = next(iter(self._until.items()))
                if until > now and len(self._until) < MAX_SEEN:
                    break
                del self._until[oldest]
            self._until[id_] = now + REMEMBER
