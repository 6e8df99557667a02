"""Following signoff's revocation feed (``GET /revocations/stream``) and holding its state.

The stream starts with the whole state (after a ``: reset <head>`` comment) or, resuming with
``Last-Event-ID``, with what came after; then ``: current``; then each event as it happens and a
comment every second. The verifier is *fresh* while it hears from a stream that has reached
``: current``; a reset state is built aside and swapped in at ``: current`` (its events also
count against tokens at once: they are revocations all the same).
"""

from __future__ import annotations

import base64
import codecs
import http.client
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import quote

from ._http import Base
from ._stream import BadResponse, Response, Unread

log = logging.getLogger("signoff_verify")

# signoff sends a comment every second; this long without a byte and the stream is dead.
READ_TIMEOUT = 3.0
# A frame this large is not one of signoff's: the connection is given up.
MAX_BUFFER = 1 << 20
# Reconnection backoff: from the first, doubling to the last; back to the first after a
# connection that reached ": current".
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 2.0


@dataclass(frozen=True)
class Frame:
    """A ``revocation`` event (``id`` and ``data``) or a comment (``comment``)."""

    id: Optional[str] = None
    data: Optional[str] = None
    comment: Optional[str] = None


def parse_frames(buf: str) -> tuple[list[Frame], str]:
    """Splits complete server-sent-event frames off the front of ``buf`` (carriage returns
    already removed): the comments and ``revocation`` events among them, and the rest."""
    frames: list[Frame] = []
    while True:
        end = buf.find("\n\n")
        if end == -1:
            return frames, buf
        block, buf = buf[:end], buf[end + 2 :]
        id_: Optional[str] = None
        event: Optional[str] = None
        comment: Optional[str] = None
        data = ""
        for line in block.split("\n"):
            if line.startswith(":"):
                comment = line[1:].strip()
                continue
            key, colon, value = line.partition(":")
            if not colon:
                continue
            if value.startswith(" "):
                value = value[1:]
            if key == "id":
                id_ = value
            elif key == "event":
                event = value
            elif key == "data":
                data += value
        if event == "revocation":
            frames.append(Frame(id=id_, data=data))
        elif event is None and comment is not None and data == "":
            frames.append(Frame(comment=comment))


class UnreadableEvent(Exception):
    """An event of the feed that cannot be read: the stream is given up (and resumed from the
    last position), never passed over, since it may be a revocation."""


class KeyChange(NamedTuple):
    """What the feed said about signoff's keys: ``kid`` added, or withdrawn; or, ``kid`` None
    (``RESET``), that it restarts from a ``: reset``, which does not repeat the withdrawals made
    before (the feed keeps events only for the access-token lifetime and 2 minutes): after a
    long disconnection, every key in hand is in doubt."""

    kid: Optional[str]
    withdrawn: bool = False


RESET = KeyChange(None)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_event(data: str) -> dict[str, Any]:
    """One event's JSON, checked against the contract for the types known here; an event of a
    type not known here is passed over (the contract lets signoff add types)."""
    try:
        event = json.loads(data)
    except ValueError as e:
        raise UnreadableEvent(f"not JSON: {e}") from e
    if not isinstance(event, dict):
        raise UnreadableEvent("not a JSON object")
    kind = event.get("type")
    if not isinstance(kind, str):
        # Every event of the contract has one: this is not an event of a type to pass over.
        raise UnreadableEvent("an event without a type")
    if kind == "token":
        ok = isinstance(event.get("jti"), str) and _integer(event.get("exp"))
    elif kind == "session":
        ok = isinstance(event.get("sid"), str)
    elif kind == "user":
        ok = isinstance(event.get("sub"), str) and _integer(event.get("tv"))
    elif kind == "keys":
        ok = isinstance(event.get("kid"), str) and isinstance(event.get("withdrawn", False), bool)
    else:
        ok = True
    if not ok:
        raise UnreadableEvent(f"a {kind!r} event without its fields")
    return event


@dataclass
class Tables:
    # Revoked jti -> its exp (Unix seconds).
    jti: dict[str, int] = field(default_factory=dict)
    # Ended sid -> when it was heard of (time.monotonic()).
    sid: dict[str, float] = field(default_factory=dict)
    # sub -> (the minimum token version, when it was heard of).
    tv: dict[str, tuple[int, float]] = field(default_factory=dict)

    def apply(self, e: dict[str, Any], now: float) -> None:
        kind = e.get("type")
        if kind == "token":
            self.jti[e["jti"]] = e["exp"]
        elif kind == "session":
            self.sid[e["sid"]] = now
        elif kind == "user":
            held = self.tv.get(e["sub"])
            if held is None or e["tv"] >= held[0]:
                self.tv[e["sub"]] = (e["tv"], now)

    def prune(self, retain: float, leeway: float) -> None:
        """What can no longer matter: a revoked token past its exp (and the leeway), ended
        sessions and token versions heard of longer than ``retain`` ago (tokens live less)."""
        now_unix, now = time.time(), time.monotonic()
        self.jti = {k: exp for k, exp in self.jti.items() if exp + leeway > now_unix}
        self.sid = {k: at for k, at in self.sid.items() if now - at < retain}
        self.tv = {k: held for k, held in self.tv.items() if now - held[1] < retain}

    def __len__(self) -> int:
        return len(self.jti) + len(self.sid) + len(self.tv)


class FeedState:
    """What the feed said, and whether it can be trusted now. Thread-safe: the feed's thread
    writes, request threads read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live = Tables()
        # A reset state being received, swapped in at ": current".
        self._building: Optional[Tables] = None
        # The last seq received (Last-Event-ID of the next connection).
        self._position: Optional[int] = None
        # When a stream that had reached ": current" was last heard from (time.monotonic()).
        self._fresh_at: Optional[float] = None
        # Whether the open stream has reached ": current".
        self._synced = False

    def fresh(self, stale_after: float) -> bool:
        with self._lock:
            return self._fresh_at is not None and time.monotonic() - self._fresh_at <= stale_after

    def revokes(self, claims: dict[str, Any]) -> bool:
        with self._lock:
            t = self._live
            held = t.tv.get(claims["sub"])
            return claims["jti"] in t.jti or claims["sid"] in t.sid or (held is not None and claims["tv"] < held[0])

    def held(self) -> int:
        with self._lock:
            return len(self._live)

    @property
    def position(self) -> Optional[int]:
        with self._lock:
            return self._position

    def disconnected(self) -> None:
        with self._lock:
            self._synced = False
            self._building = None

    def frame(self, frame: Frame, retain: float, leeway: float) -> Optional[KeyChange]:
        """Takes one frame; what it means for the keys, if anything. Raises ``UnreadableEvent``."""
        now = time.monotonic()
        event = read_event(frame.data or "") if frame.comment is None else None
        with self._lock:
            if event is None:
                comment = frame.comment or ""
                if comment.startswith("reset"):
                    self._building = Tables()
                    self._position = None
                    return RESET
                if comment == "current":
                    if self._building is not None:
                        self._live = self._building
                    self._building = None
                    self._synced = True
                    self._fresh_at = now
                    self._live.prune(retain, leeway)
                elif self._synced:
                    self._fresh_at = now
                    self._live.prune(retain, leeway)
                return None
            self._live.apply(event, now)
            if self._building is not None:
                self._building.apply(event, now)
            if frame.id is not None and frame.id.isascii() and frame.id.strip().isdigit():
                self._position = int(frame.id)
            if self._synced:
                self._fresh_at = now
        if event.get("type") != "keys":
            return None
        return KeyChange(event["kid"], event.get("withdrawn") is True)


def basic_auth(client_id: str, client_secret: str) -> str:
    """HTTP Basic with each part form-encoded first (RFC 6749 2.3.1), as signoff decodes it."""
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class Follower:
    """A daemon thread following the feed into ``state`` for as long as it is not stopped:
    it reconnects (resuming by position) whenever the stream ends, fails or goes silent."""

    def __init__(
        self,
        base: Base,
        authorization: str,
        state: FeedState,
        *,
        retain: float,
        leeway: float,
        on_keys: Callable[[KeyChange], None],
        before_connect: Callable[[], object],
    ) -> None:
        self._base = base
        self._authorization = authorization
        self._state = state
        self._retain = retain
        self._leeway = leeway
        self._on_keys = on_keys
        self._before_connect = before_connect
        self._stop = threading.Event()
        self._synced_once = threading.Event()
        self._lock = threading.Lock()
        # The open connection's socket, shut down by stop() to interrupt a blocked read.
        self._sock: Optional[socket.socket] = None
        # Whether the open stream has bytes not yet applied (see settle).
        self._unread = Unread()
        self._thread = threading.Thread(target=self._follow, name="signoff-verify-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def settle(self, timeout: float) -> bool:
        """Waits, at most ``timeout`` seconds, until what the feed has sent is applied."""
        return self._unread.settle(timeout)

    def wait_synced(self, timeout: float) -> bool:
        """Waits for the first ``: current``, for at most ``timeout`` seconds."""
        return self._synced_once.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _follow(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                self._before_connect()
                synced = not self._stop.is_set() and self._stream_once()
            except Exception:
                # A fault of this code must not end the thread: the verifier would stay stale.
                log.exception("following the revocation feed failed; reconnecting")
                synced = False
            self._state.disconnected()
            if synced:
                backoff = BACKOFF_FIRST
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _attach(self, sock: Optional[socket.socket]) -> bool:
        with self._lock:
            self._sock = sock
        return not self._stop.is_set()

    def _stream_once(self) -> bool:
        """One connection; whether it reached ``: current``."""
        conn = self._base.connection(READ_TIMEOUT)
        synced = False
        try:
            conn.connect()
            if not self._attach(conn.sock):
                return False
            headers = {"authorization": self._authorization, "accept": "text/event-stream"}
            position = self._state.position
            if position is not None:
                headers["last-event-id"] = str(position)
            conn.request("GET", self._base.path + "/revocations/stream", headers=headers)
            # The answer is read off the socket here, not by http.client (see _stream), followed
            # from its first read: the head's read may bring the first events too.
            self._unread.watch(conn.sock)
            res = Response(conn.sock, self._unread, READ_TIMEOUT)
            status = res.head()
            if status != 200:
                log.warning("the revocation feed answered %s (check the client id and secret)", status)
                return False
            # Each read follows a poll that saw something to read: never blocked while busy.
            conn.sock.setblocking(False)
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            buf = ""
            while True:
                chunk = res.body()
                if not chunk:
                    return synced
                buf += decoder.decode(chunk).replace("\r", "")
                frames, buf = parse_frames(buf)
                for f in frames:
                    if f.comment == "current":
                        synced = True
                    change = self._state.frame(f, self._retain, self._leeway)
                    if change is not None:
                        self._on_keys(change)
                    if f.comment == "current":
                        self._synced_once.set()
                if len(buf) > MAX_BUFFER:
                    log.warning("a revocation-feed frame over %d bytes; reconnecting", MAX_BUFFER)
                    return synced
        except UnreadableEvent as e:
            log.warning("a revocation-feed event this verifier cannot read (%s); reconnecting", e)
            return synced
        except socket.timeout:
            if not self._stop.is_set():
                log.warning("signoff's revocation feed went silent; reconnecting")
            return synced
        except (OSError, http.client.HTTPException, BadResponse) as e:
            if not self._stop.is_set():
                log.info("the revocation feed connection ended: %s", e)
            return synced
        finally:
            self._unread.watch(None)
            self._attach(None)
            conn.close()
