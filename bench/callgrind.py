#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind (repeatable where wall-clock figures
on a shared machine are not): callgrind.py SERVER_BIN N MODE

MODE is `cookie` or `bearer` (signoff, GET /api/me with a session cookie or an access token, in
its default configuration: SQLite, access log on) or `bare` (the bare axum baseline). The server
runs under callgrind on core 1; after signing in and N/10 warm-up requests the counters are
zeroed, N requests are sent on one keep-alive connection, the counters dumped, and the total
divided by N is printed. Background work in that time (the feed follower, timers) is counted
too, as it would be in production. With CALLGRIND_KEEP=PATH the dump is kept there, for
`callgrind_annotate PATH`.
"""
import glob
import http.client
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
PASSWORD = "correct horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
work = tempfile.mkdtemp(prefix="signoff-callgrind-")
env = dict(os.environ)
args = [binary, "serve"]
if mode == "bare":
    args = [binary, f"127.0.0.1:{port}"]
else:
    env.update(
        SIGNOFF_LISTEN=f"127.0.0.1:{port}",
        SIGNOFF_PUBLIC_URL=f"http://127.0.0.1:{port}",
        SIGNOFF_DATABASE_URL=f"sqlite://{work}/cg.db",
    )
    env.pop("SIGNOFF_LOG_LEVEL", None)
log = open(os.path.join(work, "server.log"), "w")
server = subprocess.Popen(
    ["taskset", "-c", "1", "valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.out.%p"] + args,
    env=env,
    stdout=log,
    stderr=log,
)


def connect():
    deadline = time.time() + 120
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", "/api/me")
            c.getresponse().read()
            return c
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                sys.exit(f"callgrind.py: the server did not start:\n{open(log.name).read()[-2000:]}")
            time.sleep(0.5)


def call(c, method, path, body=None, headers=None):
    c.request(method, path, body, headers or {})
    res = c.getresponse()
    return res, res.read()


try:
    conn = connect()
    headers = {}
    if mode != "bare":
        account = json.dumps({"email": "cg@example.com", "password": PASSWORD})
        js = {"content-type": "application/json", "accept": "application/json"}
        call(conn, "POST", "/auth/register", account, js)
        res, _ = call(conn, "POST", "/auth/login", account, js)
        cookie = res.getheader("set-cookie").split(";")[0]
        if mode == "cookie":
            headers = {"cookie": cookie}
        else:
            form = urllib.parse.urlencode({"grant_type": "password", "email": "cg@example.com", "password": PASSWORD})
            _, body = call(conn, "POST", "/auth/token", form, {"content-type": "application/x-www-form-urlencoded"})
            headers = {"authorization": "Bearer " + json.loads(body)["access_token"]}
    for _ in range(max(n // 10, 10)):
        res, _ = call(conn, "GET", "/api/me", None, headers)
        assert res.status == 200, res.status
    subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
    for _ in range(n):
        res, _ = call(conn, "GET", "/api/me", None, headers)
        assert res.status == 200, res.status
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
