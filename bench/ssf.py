#!/usr/bin/env python3
"""Shared Signals latency: a logout, then its CAEP session-revoked SET pushed to a receiver on
loopback (RFC 8935), and the same SET answered to a waiting long poll (RFC 8936).

One signoff process (pinned to core 1 by bench/run.sh's taskset; this client on core 0) on
SQLite, then on PostgreSQL. A registered client has a push stream to a receiver in this process
(answering 202) and a poll stream a thread long-polls (acknowledging what it got). Each round the
user signs in and logs out; timed from just before the logout request is sent: the logout's
answer, the push's arrival, the poll's answer. Every SET is checked to be this round's logout
(its event type and its user). Prints p50 / p99 / max in ms for each store.

Usage: bench/ssf.py BIN [ROUNDS]   (default 200)
Needs PostgreSQL at $SIGNOFF_TEST_POSTGRES_URL (a database is created and dropped).
"""
import base64
import http.server
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import ORIGIN, Conn, check, database_url, free_port, postgres_commit, psql, sqlite_commit, wait_ready

PASSWORD = "correct horse battery staple"
ADMIN = "bench-admin-key-0123456789abcdef0123456789abcdef"
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


def claims_of(set_):
    """The SET's claims, unverified (the HTTP tests verify them with PyJWT; this only matches)."""
    body = set_.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def percentiles(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2], xs[min(len(xs) - 1, int(len(xs) * 0.99))], xs[-1]


def receiver(arrivals):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.put((time.perf_counter(), body.decode()))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(bin_, store, rounds):
    tmp = tempfile.mkdtemp()
    db = None
    if store == "sqlite":
        url = f"sqlite://{tmp}/ssf.db"
    else:
        db = "signoff_bench_ssf_" + str(time.time_ns())
        psql(f"CREATE DATABASE {db}")
        url = database_url(db)
    port = free_port()
    env = dict(os.environ, SIGNOFF_LISTEN=f"127.0.0.1:{port}", SIGNOFF_PUBLIC_URL=ORIGIN,
               SIGNOFF_DATABASE_URL=url, SIGNOFF_LOG_LEVEL="warn", SIGNOFF_ADMIN_TOKEN=ADMIN,
               SIGNOFF_ALLOW_PRIVATE_CALLBACKS="true", SIGNOFF_REGISTER_MAX_PER_IP="100000")
    proc = subprocess.Popen(["taskset", "-c", "1", bin_, "serve"], env=env, stderr=open(f"{tmp}/server.log", "w"))
    pushed, polled = queue.Queue(), queue.Queue()
    recv = receiver(pushed)
    stop = threading.Event()
    try:
        wait_ready(port)
        c = Conn(port)
        st, _, body = c.req("POST", "/admin/clients", {"name": "receiver", "shared_signals": True}, authorization=f"Bearer {ADMIN}")
        check(st == 201, body)
        client = json.loads(body)
        basic = "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
        endpoint = f"http://127.0.0.1:{recv.server_address[1]}/ssf"
        st, _, body = c.req("POST", "/ssf/streams", {"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": endpoint},
                                                     "events_requested": [SESSION_REVOKED]}, authorization=basic)
        check(st == 201, body)
        st, _, body = c.req("POST", "/ssf/streams", {"delivery": {"method": "urn:ietf:rfc:8936"},
                                                     "events_requested": [SESSION_REVOKED]}, authorization=basic)
        check(st == 201, body)
        poll_id = json.loads(body)["stream_id"]

        def long_poll():
            p, ack = Conn(port, timeout=60), []
            while not stop.is_set():
                try:
                    st, _, body = p.req("POST", f"/ssf/poll/{poll_id}", {"maxEvents": 10, "ack": ack},
                                        authorization=basic)
                except OSError:
                    if stop.is_set():
                        return  # the server stopped at the end of the run
                    raise
                at = time.perf_counter()
                check(st == 200, body)
                sets = json.loads(body)["sets"]
                ack = list(sets)
                for s in sets.values():
                    polled.put((at, s))

        threading.Thread(target=long_poll, daemon=True).start()
        email = f"ssf{time.time_ns()}@example.com"
        st, _, body = c.req("POST", "/auth/register", {"email": email, "password": PASSWORD})
        check(st == 201, f"register: {st} {body}")
        answer, push, poll = [], [], []
        for _ in range(rounds):
            st, sc, body = c.req("POST", "/auth/login", {"email": email, "password": PASSWORD})
            check(st == 200, body)
            cookie, csrf = sc.split(";")[0], json.loads(body)["csrf_token"]
            t = time.perf_counter()
            st, _, body = c.req("POST", "/auth/logout", {}, cookie=cookie, csrf=csrf)
            answered = time.perf_counter()
            check(st == 200, body)
            for q, into in ((pushed, push), (polled, poll)):
                at, set_ = q.get(timeout=30)
                claims = claims_of(set_)
                check(list(claims["events"]) == [SESSION_REVOKED], f"not a session-revoked: {claims}")
                check(claims["sub_id"]["user"]["email"] == email, f"another user's: {claims}")
                into.append((at - t) * 1000)
            answer.append((answered - t) * 1000)
        check(pushed.empty() and polled.empty(), "a SET more than the logouts")
        return percentiles(answer), percentiles(push), percentiles(poll)
    finally:
        stop.set()
        proc.terminate()
        proc.wait()
        recv.shutdown()
        if db:
            time.sleep(0.2)
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def main():
    bin_ = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    print(f"Shared Signals: logout to SET, {rounds} rounds; p50 / p99 / max in ms from the logout request")
    print("| store | logout answered | SET pushed (arrived) | SET polled (long poll answered) |")
    print("|---|---|---|---|")
    fmt = lambda x: " / ".join(f"{v:.2f}" for v in x)  # noqa: E731
    for store in ("sqlite", "postgres"):
        a, p, q = run(bin_, store, rounds)
        print(f"| {store} | {fmt(a)} | {fmt(p)} | {fmt(q)} |")
    # The floor the logouts stand on, in the same run: each store's own commit.
    n = max(100, min(2000, rounds * 10))
    tmp = tempfile.mkdtemp()
    try:
        lite = sqlite_commit(tmp, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"The stores' own commit, a one-row UPDATE a transaction ({n}), p50 / p99 / max in ms: "
          f"SQLite (WAL, synchronous=FULL, in a temporary folder on the server's file system) {fmt(lite)}; "
          f"PostgreSQL (pgbench) {fmt(postgres_commit(n))}")


if __name__ == "__main__":
    main()
