"""The feed's HTTP response read straight off its socket, and whether any of it is unread.

``http.client`` buffers what it reads, so nobody can tell whether bytes signoff has sent are
still waiting in that buffer. A revocation is answered once signoff has sent it down the feed:
for it to be refused on the very next request, a request must be able to see that the feed has
something unread and wait until it is applied. So the stream is read here, with the buffering in
view: the status line and headers, then the body (chunked, or up to the connection's end).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import Optional

# The longest status line and headers taken.
MAX_HEAD = 64 * 1024
# The longest chunk-size line taken (hex digits and extensions).
MAX_CHUNK_LINE = 4096


class BadResponse(Exception):
    """The answer is not an HTTP/1.1 response this reader understands."""


def readable(sock: socket.socket, timeout: float) -> bool:
    """Whether ``sock`` has something to read (bytes, or its end) within ``timeout`` seconds."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    # select() where poll() is missing (Windows), whose sets take any socket there.
    return bool(select.select([sock], [], [], timeout)[0])


class Unread:
    """Whether the stream holds bytes not yet applied: in the socket, or taken from it and still
    being applied. The reader marks itself ``busy`` before it takes bytes and ``idle`` once they
    are applied; ``settle`` waits for both conditions to clear."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._sock: Optional[socket.socket] = None
        self._busy = False

    def watch(self, sock: Optional[socket.socket]) -> None:
        """Follows ``sock`` from before its first read (None: no stream, nothing unread)."""
        with self._cond:
            self._sock = sock
            self._busy = False
            self._cond.notify_all()

    def busy(self) -> None:
        with self._cond:
            self._busy = True

    def idle(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def settle(self, timeout: float) -> bool:
        """Waits, at most ``timeout`` seconds, until nothing received is left unapplied; whether
        that happened."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._sock is not None and (self._busy or readable(self._sock, 0)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True


class Response:
    """One response read off ``sock``: ``head()`` reads the status and headers, then ``body()``
    gives what arrived of the body (``b""`` at its end), each call one read of the socket
    unless bytes are already at hand."""

    def __init__(self, sock: socket.socket, unread: Unread, timeout: float) -> None:
        self._sock = sock
        self._unread = unread
        self._timeout = timeout
        self._buf = bytearray()
        self._chunked = False
        # Bytes of the current chunk still to come (chunked), or None before a size line.
        self._chunk_left: Optional[int] = None
        self._ended = False

    def _receive(self) -> bool:
        """One read: whether anything came. Marks the stream busy first, so a request never
        sees an empty socket while bytes taken from it are still unapplied, and idle while it
        waits (whatever it gave before has been applied: callers apply what ``body()`` gives
        before they ask again)."""
        self._unread.idle()
        if not readable(self._sock, self._timeout):
            raise socket.timeout("no byte within the read timeout")
        self._unread.busy()
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            # Nothing to take after all (part of a TLS record, or a record that carries no
            # data): the next round marks the stream idle and waits again.
            return True
        if not data:
            return False
        self._buf += data
        return True

    def head(self) -> int:
        """Reads the status line and headers; the status."""
        while (end := self._buf.find(b"\r\n\r\n")) == -1:
            if len(self._buf) > MAX_HEAD:
                raise BadResponse("headers too large")
            if not self._receive():
                raise BadResponse("the connection ended before the headers")
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[: end + 4]
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        code = parts[1] if len(parts) >= 2 else ""
        if not parts[0].startswith("HTTP/1.") or not (len(code) == 3 and code.isascii() and code.isdigit()):
            raise BadResponse(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        for line in lines:
            name, colon, value = line.partition(":")
            if colon and name.strip().lower() == "transfer-encoding":
                # Identity was asked for: chunked is the only coding taken.
                if value.strip().lower() != "chunked":
                    raise BadResponse(f"a transfer coding this reader does not take: {value.strip()[:40]!r}")
                self._chunked = True
        return int(code)

    def body(self) -> bytes:
        """What of the body is at hand, reading the socket once when nothing is; ``b""`` at the
        body's end. What it gave must be applied before it is called again."""
        while not self._ended:
            if self._chunked:
                got = self._dechunk()
                if got is not None:
                    return got
            elif self._buf:
                got = bytes(self._buf)
                self._buf.clear()
                return got
            if not self._ended and not self._receive():
                if self._chunked:
                    raise BadResponse("the connection ended inside a chunked body")
                self._ended = True
        return b""

    def _dechunk(self) -> Optional[bytes]:
        """Data of the current chunk at hand, ``b""`` at the last chunk, or None to read more."""
        if self._chunk_left is None:
            end = self._buf.find(b"\r\n")
            if end == -1:
                if len(self._buf) > MAX_CHUNK_LINE:
                    raise BadResponse("a chunk size line too long")
                return None
            size = bytes(self._buf[:end]).split(b";", 1)[0].strip()
            if not size or size.strip(b"0123456789abcdefABCDEF"):
                raise BadResponse(f"a chunk size that is not hex: {size[:20]!r}")
            left = int(size, 16)
            del self._buf[: end + 2]
            if left == 0:
                # The last chunk (trailers, if any, are not read: the body has ended).
                self._ended = True
                return b""
            self._chunk_left = left
        if self._chunk_left > 0:
            if not self._buf:
                return None
            got = bytes(self._buf[: self._chunk_left])
            del self._buf[: len(got)]
            self._chunk_left -= len(got)
            return got
        # The chunk's data is all here: its closing CRLF.
        if len(self._buf) < 2:
            return None
        if self._buf[:2] != b"\r\n":
            raise BadResponse("a chunk not followed by CRLF")
        del self._buf[:2]
        self._chunk_left = None
        return self._dechunk()
