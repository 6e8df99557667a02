#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind (repeatable where wall-clock figures
on a shared machine are not): callgrind.py SERVER_BIN N MODE [POOL]

MODE is one of (signoff in its default configuration: SQLite, access log on)
  cookie  GET /api/me with a session cookie
  bearer  GET /api/me with one access token, reused
  pool    GET /api/me with a pool of POOL distinct access tokens (10,000 unless a fifth argument
          says), the next one each request, as the wrk scenario sends them: the warm-up sends
          every token once (each verifies a signature), the counted requests go round the pool
          again; the tokens are minted by a run of the server outside valgrind on the same
          database, which the measured run then opens (they live 15 minutes: minting, start-up
          and the warm-up must fit). Every counted request finds its token in the signature
          memo, so this differs from `bearer` by a larger map only: instructions do not show
          the cache misses that cost the pool its time under wrk
  authz   GET /authz/auth-request (forward authentication) with a session cookie
  bare    the bare axum baseline's GET /api/me
  tower   the tower-sessions baseline's GET /api/me (its MemoryStore) with the cookie its /login set
The server runs under callgrind on core 1; after signing in and N/10 warm-up requests the
counters are zeroed, N requests are sent on one keep-alive connection, the counters dumped, and
the total divided by N is printed. Background work in that time (the feed follower, timers) is counted
too, as it would be in production. With CALLGRIND_KEEP=PATH the dump is kept there, for
`callgrind_annotate PATH`.
"""
import glob
import http.client
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

binary, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pool_size = int(sys.argv[4]) if len(sys.argv) > 4 else 10_000
PASSWORD = "correct horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
work = tempfile.mkdtemp(prefix="signoff-callgrind-")
env = dict(os.environ)
args = [binary, "serve"]
if mode in ("bare", "tower"):
    args = [binary, f"127.0.0.1:{port}"]
else:
    env.update(
        SIGNOFF_LISTEN=f"127.0.0.1:{port}",
        SIGNOFF_PUBLIC_URL=f"http://127.0.0.1:{port}",
        SIGNOFF_DATABASE_URL=f"sqlite://{work}/cg.db",
    )
    env.pop("SIGNOFF_LOG_LEVEL", None)
log = open(os.path.join(work, "server.log"), "w")


def connect(process, wait):
    """A keep-alive connection to the server `process`, once it answers (within `wait` s)."""
    deadline = time.time() + wait
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", "/api/me")
            c.getresponse().read()
            return c
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                sys.exit(f"callgrind.py: the server did not start:\n{open(log.name).read()[-2000:]}")
            time.sleep(0.2)


def mint_pool(count):
    """Signs in and mints `count` distinct access tokens with a server run outside valgrind."""
    native = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    try:
        c = connect(native, 60)
        account = json.dumps({"email": "cg@example.com", "password": PASSWORD})
        call(c, "POST", "/auth/register", account, {"content-type": "application/json"})
        out = subprocess.run(
            [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokens.py"),
             f"http://127.0.0.1:{port}", str(count), "cg@example.com"],
            check=True, capture_output=True, text=True,
        ).stdout.split()
        if len(set(out)) != count:
            sys.exit(f"callgrind.py: {len(set(out))} distinct tokens, not {count}")
        return out
    finally:
        native.terminate()
        native.wait(timeout=30)


def call(c, method, path, body=None, headers=None):
    c.request(method, path, body, headers or {})
    res = c.getresponse()
    return res, res.read()


pool = mint_pool(pool_size) if mode == "pool" else None
server = subprocess.Popen(
    ["taskset", "-c", "1", "valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.out.%p"] + args,
    env=env,
    stdout=log,
    stderr=log,
)


try:
    conn = connect(server, 120)
    headers = {}
    path = "/authz/auth-request" if mode == "authz" else "/api/me"
    if mode == "pool":
        tokens = itertools.cycle(pool)
    elif mode == "tower":
        res, _ = call(conn, "GET", "/login", None, {})
        headers = {"cookie": res.getheader("set-cookie").split(";")[0]}
    elif mode != "bare":
        account = json.dumps({"email": "cg@example.com", "password": PASSWORD})
        js = {"content-type": "application/json", "accept": "application/json"}
        call(conn, "POST", "/auth/register", account, js)
        res, _ = call(conn, "POST", "/auth/login", account, js)
        cookie = res.getheader("set-cookie").split(";")[0]
        if mode in ("cookie", "authz"):
            headers = {"cookie": cookie}
        else:
            form = urllib.parse.urlencode({"grant_type": "password", "email": "cg@example.com", "password": PASSWORD})
            _, body = call(conn, "POST", "/auth/token", form, {"content-type": "application/x-www-form-urlencoded"})
            headers = {"authorization": "Bearer " + json.loads(body)["access_token"]}

    def request():
        if mode == "pool":
            headers["authorization"] = "Bearer " + next(tokens)
        res, _ = call(conn, "GET", path, None, headers)
        assert res.status == 200, res.status

    for _ in range(pool_size if mode == "pool" else max(n // 10, 10)):
        request()
    subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
    for _ in range(n):
        request()
    before = set(glob.glob(f"{work}/cg.out.{server.pid}*"))
    subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True)
    dumps = set(glob.glob(f"{work}/cg.out.{server.pid}*")) - before
    if not dumps:
        sys.exit("callgrind.py: no dump written")
    text = open(sorted(dumps)[-1]).read()
    if os.environ.get("CALLGRIND_KEEP"):
        # For callgrind_annotate: the dump of the counted requests.
        subprocess.run(["cp", sorted(dumps)[-1], os.environ["CALLGRIND_KEEP"]], check=True)
    total = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
    print(total // n)
finally:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    subprocess.run(["rm", "-rf", work])
