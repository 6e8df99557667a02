"""Real processes for the tests: signoff (``SIGNOFF_BIN`` names the binary; the tests that need
it fail without it), the example Django and FastAPI apps, and two loopback helpers: a relay for
the revocation feed that can cut or refuse connections, and a forwarder that records what
signoff delivers to an app. Everything a test starts is stopped by that test's fixtures, and
nothing else is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

ADMIN = "python-verifier-tests-admin-key-0123456789abcdef"
PASSWORD = "correct horse battery staple"
HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: Optional[dict[str, str]] = None,
    body: Optional[bytes] = None,
    headers: Optional[dict[str, str]] = None,
    bearer: Optional[str] = None,
    timeout: float = 10,
) -> Reply:
    """One request with http.client (no proxy from the environment: loopback only)."""
    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost"), url
    h = {"accept": "application/json", **(headers or {})}
    if json_body is not None:
        body, h["content-type"] = json.dumps(json_body).encode(), "application/json"
    if form is not None:
        body, h["content-type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
    if bearer is not None:
        h["authorization"] = f"Bearer {bearer}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=h)
        res = conn.getresponse()
        return Reply(res.status, {k.lower(): v for k, v in res.getheaders()}, res.read())
    finally:
        conn.close()


def until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Polls ``check`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def sign(secret: str, id_: str, ts: int, body: bytes) -> str:
    """A Standard Webhooks signature (``v1,…``) of ``body`` under a ``whsec_`` secret."""
    key = base64.b64decode(secret[len("whsec_") :])
    mac = hmac.new(key, f"{id_}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def claims_of(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def header_of(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Signoff:
    """A ``signoff serve`` on a free loopback port, with its sqlite database in a temp dir. The
    public URL names localhost, as by default; the libraries are given the internal address
    (127.0.0.1) and learn the issuer."""

    def __init__(self, env: dict[str, str]) -> None:
        binary = os.environ.get("SIGNOFF_BIN")
        assert binary, "SIGNOFF_BIN must name the signoff binary (cargo build --bin signoff)"
        assert os.access(binary, os.X_OK), f"SIGNOFF_BIN={binary} is not an executable"
        self.binary = binary
        self.dir = tempfile.TemporaryDirectory(prefix="signoff-python-")
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.public = f"http://localhost:{port}"
        self.env = {
            **os.environ,
            "SIGNOFF_DATABASE_URL": f"sqlite://{self.dir.name}/p.db",
            "SIGNOFF_PUBLIC_URL": self.public,
            "SIGNOFF_LOG_LEVEL": "warn",
        }
        self.proc = subprocess.Popen(
            [binary, "serve"],
            env={**self.env, "SIGNOFF_LISTEN": f"127.0.0.1:{port}", "SIGNOFF_ADMIN_TOKEN": ADMIN, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        until(self._ready, 30, "signoff's /readyz")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"signoff exited with {self.proc.returncode}"
        try:
            return request("GET", f"{self.base}/readyz", timeout=1).status == 200
        except OSError:
            return False

    def cli(self, *args: str) -> Any:
        """The signoff CLI on the same database (another process: the server reads its changes
        from the revocation feed)."""
        out = subprocess.run([self.binary, *args], env=self.env, check=True, capture_output=True, timeout=30)
        return json.loads(out.stdout)

    def post(self, path: str, body: Any, bearer: Optional[str] = None) -> Reply:
        return request("POST", self.base + path, json_body=body, bearer=bearer)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def client(self, **registration: Any) -> dict[str, Any]:
        r = self.post("/admin/clients", {"name": "python", **registration}, ADMIN)
        assert r.status == 201, r.body
        return dict(r.json())

    def user(self, email: str) -> None:
        r = self.post("/auth/register", {"email": email, "password": PASSWORD})
        assert r.status == 201, r.body

    def grant(self, email: str) -> dict[str, Any]:
        r = self.post("/auth/token", {"grant_type": "password", "email": email, "password": PASSWORD})
        assert r.status == 200, r.body
        return dict(r.json())

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        r = self.post("/auth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token})
        assert r.status == 200, r.body
        return dict(r.json())

    def deliveries(self, client_id: str) -> list[dict[str, Any]]:
        r = request("GET", f"{self.base}/admin/clients/{client_id}/deliveries", bearer=ADMIN)
        assert r.status == 200, r.body
        return list(r.json()["deliveries"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.resume()
            self.proc.kill()
        self.proc.wait(10)
        self.dir.cleanup()


@pytest.fixture
def start_signoff() -> Iterator[Callable[..., Signoff]]:
    """Starts signoff (environment overrides as keyword arguments); stopped after the test."""
    started: list[Signoff] = []

    def start(**env: str) -> Signoff:
        s = Signoff(env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class App:
    """One of the example apps, as its README says to run it, on a free loopback port."""

    def __init__(self, framework: str, signoff_url: str, client: dict[str, Any], port: int, workdir: Path) -> None:
        self.framework = framework
        self.base = f"http://127.0.0.1:{port}"
        self.received_path = workdir / f"{framework}-{port}.jsonl"
        self.log_path = workdir / f"{framework}-{port}.log"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SIGNOFF_URL": signoff_url,
            "SIGNOFF_CLIENT_ID": client["client_id"],
            "SIGNOFF_CLIENT_SECRET": client["client_secret"],
            "SIGNOFF_WEBHOOK_SECRET": client["webhook_secret"],
            "EXAMPLE_RECEIVED": str(self.received_path),
        }
        if framework == "django":
            cmd = [sys.executable, "django_app.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        else:
            cmd = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1", "--port", str(port)]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=EXAMPLES, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )

    def wait_ready(self) -> None:
        def answering() -> bool:
            assert self.proc.poll() is None, f"{self.framework} app exited: {self.log()}"
            try:
                return request("GET", f"{self.base}/whoami", timeout=2).status == 401
            except OSError:
                return False

        until(answering, 30, f"the {self.framework} app")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def received(self) -> list[dict[str, Any]]:
        """What the example's handlers were told (one JSON line each)."""
        if not self.received_path.exists():
            return []
        return [json.loads(line) for line in self.received_path.read_text().splitlines() if line]

    def whoami(self, token: Optional[str]) -> Reply:
        return request("GET", f"{self.base}/whoami", bearer=token)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@dataclass
class Delivery:
    port: int
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class Forwarder:
    """An HTTP server on loopback that forwards each POST ``/<port>/<path>`` to
    ``127.0.0.1:<port>/<path>`` and answers with the app's answer, recording what came in: what
    signoff delivered, exactly, for the tests to replay, alter, and check with other code."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                port, _, rest = self.path.lstrip("/").partition("/")
                headers = {k.lower(): v for k, v in self.headers.items()}
                forwarded = {k: v for k, v in headers.items() if k not in ("host", "connection", "content-length")}
                reply = request("POST", f"http://127.0.0.1:{int(port)}/{rest}", body=body, headers=forwarded)
                with outer._lock:
                    outer.deliveries.append(Delivery(int(port), "/" + rest, headers, body, reply.status))
                self.send_response(reply.status)
                for k in ("content-type", "cache-control"):
                    if k in reply.headers:
                        self.send_header(k, reply.headers[k])
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, app_port: int, path: str) -> str:
        return f"{self.base}/{app_port}{path}"

    def of(self, port: int, path: str) -> list[Delivery]:
        """What was delivered to the app on ``port`` at ``path``, in order."""
        with self._lock:
            return [d for d in self.deliveries if d.port == port and d.path == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Relay:
    """A TCP relay on loopback to ``target`` (host, port): what each connection sent and got
    is recorded; ``cut()`` ends the open connections; with ``refuse`` set, new connections are
    closed at once (signoff unreachable for new requests while an open stream goes on)."""

    target: tuple[str, int]
    refuse: bool = False
    connections: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            record: dict[str, Any] = {"sent": bytearray(), "got": bytearray(), "socks": (client, upstream)}
            with self._lock:
                self.connections.append(record)
            threading.Thread(target=self._pump, args=(client, upstream, record["sent"]), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, record["got"]), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, into: bytearray) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    into.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def streams(self) -> list[tuple[str, str]]:
        """(request, answer) of each connection that asked for the revocation stream."""
        with self._lock:
            out = [(bytes(c["sent"]).decode(), bytes(c["got"]).decode()) for c in self.connections]
        return [(req, got) for req, got in out if "/revocations/stream" in req]

    def cut(self) -> None:
        with self._lock:
            socks = [s for c in self.connections for s in c["socks"]]
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self._listener.close()
        self.cut()
        with self._lock:
            for c in self.connections:
                for s in c["socks"]:
                    s.close()


FRAMEWORKS = ("django", "fastapi")
ALGORITHMS = ("EdDSA", "RS256", "ES256")
# For apps registered without a webhook_url: nothing is delivered to them, but the examples
# read a secret.
UNUSED_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"unused" * 6).decode()


@dataclass
class Deployed:
    """An example app and the client registered for it."""

    framework: str
    alg: str
    app: App
    client: dict[str, Any]
    port: int


@dataclass
class World:
    signoff: Signoff
    apps: dict[tuple[str, str], Deployed]
    forwarder: Optional[Forwarder] = None

    def stop(self) -> None:
        # signoff first: nothing is delivered to what is stopped next.
        self.signoff.stop()
        if self.forwarder is not None:
            self.forwarder.stop()
        for d in self.apps.values():
            d.app.stop()


def deploy(workdir: Path, algorithms: tuple[str, ...], notify: bool) -> World:
    """One signoff and each example app once per algorithm, started together."""
    world = World(Signoff({"SIGNOFF_ALLOW_PRIVATE_CALLBACKS": "true"}), {})
    try:
        if notify:
            world.forwarder = Forwarder()
        for framework in FRAMEWORKS:
            for alg in algorithms:
                port = free_port()
                registration: dict[str, Any] = {"name": f"{framework} {alg}", "id_token_signed_response_alg": alg}
                if world.forwarder is not None:
                    registration["backchannel_logout_uri"] = world.forwarder.url(port, "/signoff/backchannel-logout")
                    registration["webhook_url"] = world.forwarder.url(port, "/signoff/webhooks")
                client = world.signoff.client(**registration)
                client.setdefault("webhook_secret", UNUSED_WEBHOOK_SECRET)
                app = App(framework, world.signoff.base, client, port, workdir)
                world.apps[(framework, alg)] = Deployed(framework, alg, app, client, port)
        for d in world.apps.values():
            d.app.wait_ready()
    except BaseException:
        world.stop()
        raise
    return world


@pytest.fixture(scope="session")
def bearer_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A signoff and the two example apps, registered without notifications (every revocation
    would otherwise also be a webhook to each app, beside the feed)."""
    world = deploy(tmp_path_factory.mktemp("bearer"), ("EdDSA",), notify=False)
    yield world
    world.stop()


@pytest.fixture(scope="session")
def receiver_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A signoff and each example app three times (a client per logout-token algorithm), their
    notifications delivered through the forwarder. Every logout notifies every client, so one
    logout reaches all six."""
    world = deploy(tmp_path_factory.mktemp("receivers"), ALGORITHMS, notify=True)
    yield world
    world.stop()


LOGOUT = "/signoff/backchannel-logout"
HOOKS = "/signoff/webhooks"


@pytest.fixture(scope="session")
def logout(receiver_world: World) -> dict[str, Any]:
    """A user signed in with the password grant and logged out (bearer): every app is told."""
    s = receiver_world.signoff
    s.user("receivers@example.com")
    token = s.grant("receivers@example.com")["access_token"]
    assert s.post("/auth/logout", {}, token).status == 200
    sid, sub = claims_of(token)["sid"], claims_of(token)["sub"]

    def everyone_told() -> bool:
        for d in receiver_world.apps.values():
            vias = {r["via"] for r in d.app.received() if r["sid"] == sid}
            if vias != {"backchannel", "webhook"}:
                return False
        return True

    until(everyone_told, 15, "the logout at all six apps, by both routes")
    return {"sid": sid, "sub": sub, "access_token": token}


def delivered(world: World, d: Deployed, path: str, sid: str) -> Delivery:
    """What signoff delivered to the app at ``path`` about ``sid`` (exactly one)."""
    assert world.forwarder is not None
    found = [x for x in world.forwarder.of(d.port, path) if told_sid(x) == sid]
    assert len(found) == 1, f"{len(found)} deliveries of {path} for {sid}, answered {[x.status for x in found]}"
    return found[0]


def told_sid(x: Delivery) -> str:
    if x.path == LOGOUT:
        return str(claims_of(parse_qs(x.body.decode())["logout_token"][0])["sid"])
    event = json.loads(x.body)
    return str(event["data"].get("session_id", "")) if event["type"] == "session.ended" else ""
