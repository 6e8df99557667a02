"""The few HTTP requests made to signoff, with the standard library.

``http.client`` rather than ``urllib.request``: no proxy is taken from the environment (a
verifier talks to signoff directly, as the Node verifier's ``fetch`` does), and the sockets are
at hand, so that closing a verifier, or a deadline, can interrupt a blocked read.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

log = logging.getLogger("signoff_verify")

# The largest answer read from the configuration and key-set endpoints (each is a few KiB).
MAX_DOCUMENT = 1 << 20
# A failed request for a document is not repeated sooner than this: every token waiting on it
# would otherwise make its own, one after the other, while signoff is out of reach.
RETRY_AFTER = 1.0


class Unreachable(Exception):
    """signoff could not be asked, or answered something other than the expected JSON."""


@dataclass(frozen=True)
class Base:
    """Where signoff is: its URL, without a trailing slash, split for ``http.client``."""

    url: str
    https: bool
    host: str
    port: Optional[int]
    path: str

    @classmethod
    def parse(cls, url: str) -> Base:
        url = str(url).rstrip("/")
        parts = urlsplit(url)
        # Checked before any message shows the URL (without a scheme, "user:pw@host" has no
        # netloc), and the URL not shown: it would show the password, and so would every log
        # line naming signoff's URL. The client's credentials are given apart.
        if "@" in parts.netloc or "@" in url.partition("/")[0]:
            raise ValueError("signoff's URL takes no user or password (user:password@): give the client's apart")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"signoff's URL must be http(s)://host[:port][/path], not {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"signoff's URL takes no query or fragment: {url!r}")
        return cls(url, parts.scheme == "https", parts.hostname, parts.port, parts.path)

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def warn_if_plain(self) -> None:
        """Client credentials and keys must not cross a network in the clear."""
        if not self.https and not self.loopback:
            log.warning("%s is plain http: client credentials and keys travel unprotected", self.url)

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A new connection (not yet opened); ``timeout`` bounds the connect and every read."""
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get_json(self, path: str, headers: Mapping[str, str], timeout: float = 5.0) -> Any:
        """``GET`` a JSON document; raises ``Unreachable`` unless it is answered 200 with JSON
        within ``timeout`` seconds in all (a socket timeout alone bounds each read, and a server
        sending a byte at a time would hold the caller for as long as it likes)."""
        conn = self.connection(timeout)
        started = time.monotonic()
        deadline = threading.Timer(timeout, _cut, (conn,))
        deadline.daemon = True
        deadline.start()
        try:
            conn.request("GET", self.path + path, headers={"accept": "application/json", **headers})
            res = conn.getresponse()
            body = res.read(MAX_DOCUMENT + 1)
            if res.status != 200:
                raise Unreachable(f"{path} answered {res.status}")
            if len(body) > MAX_DOCUMENT:
                raise Unreachable(f"{path} answered more than {MAX_DOCUMENT} bytes")
            return json.loads(body)
        except (OSError, http.client.HTTPException, ValueError) as e:
            if time.monotonic() - started >= timeout:
                raise Unreachable(f"{path}: no complete answer within {timeout:g} s") from e
            raise Unreachable(f"{path}: {e}") from e
        finally:
            deadline.cancel()
            conn.close()


def _cut(conn: http.client.HTTPConnection) -> None:
    """Ends a connection whose time is up: a read blocked on it returns at once."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
