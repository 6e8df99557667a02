"""What the Python parts of the benchmark share: checks that fail the run, free loopback
ports, psql against $SIGNOFF_TEST_POSTGRES_URL, and the stores' own commit latency."""
import http.client
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

ORIGIN = "http://localhost:8080"
PG = os.environ.get("SIGNOFF_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def check(ok, why):
    """A failed check fails the run (unlike `assert`, never optimised away)."""
    if not ok:
        print(f"bench: {why}", file=sys.stderr)
        sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql, db="postgres"):
    """Runs `sql` in database `db` of the server $SIGNOFF_TEST_POSTGRES_URL names; its output."""
    u = urllib.parse.urlparse(PG)
    out = subprocess.run(["psql", "-qtA", "-h", u.hostname, "-p", str(u.port or 5432), "-U", u.username or "postgres",
                          "-d", db, "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def database_url(db):
    """The URL of database `db` on the same server."""
    u = urllib.parse.urlparse(PG)
    return f"postgres://{u.username or 'postgres'}@{u.hostname}:{u.port or 5432}/{db}"


def wait_ready(*ports):
    """Waits (up to 10 s each) until the signoff servers on `ports` answer `/readyz` with 200."""
    for port in ports:
        for _ in range(200):
            try:
                if Conn(port).req("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)


class Conn:
    """One keep-alive connection to a signoff server, speaking JSON as a browser page would
    (with its `Origin`; `csrf` for changes made with a cookie)."""

    def __init__(self, port, timeout=None):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def req(self, method, path, body=None, cookie=None, csrf=None, authorization=None):
        """-> (status, Set-Cookie, body bytes)"""
        h = {"Accept": "application/json", "Origin": ORIGIN}
        if authorization:
            h["Authorization"] = authorization
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body)
        if cookie:
            h["Cookie"] = cookie
        if csrf:
            h["X-CSRF-Token"] = csrf
        self.c.request(method, path, body=body, headers=h)
        r = self.c.getresponse()
        return r.status, r.getheader("set-cookie") or "", r.read()


def _spread(lat):
    """-> (p50, p99, max) of latencies."""
    lat = sorted(lat)
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(round((len(lat) - 1) * 0.99)))], lat[-1]


def postgres_commit(transactions=2000):
    """The store's own commit latency on PostgreSQL, the floor a logout stands on: pgbench
    sending a one-row UPDATE (each its own transaction, committed) over one connection from the
    caller's core, the latency of every transaction logged. -> (p50, p99, max) in ms."""
    return _pgbench("UPDATE r SET n = n + 1 WHERE id = 1;", transactions)


def postgres_round_trip(transactions=2000):
    """One round trip to PostgreSQL and nothing else: pgbench reading that row by its key
    (nothing written, nothing flushed), the unit a logout's statements are counted in.
    -> (p50, p99, max) in ms."""
    return _pgbench("SELECT n FROM r WHERE id = 1;", transactions)


def _pgbench(sql, transactions):
    """pgbench running `sql` (on a one-row table `r`) `transactions` times over one connection,
    each its own transaction. -> (p50, p99, max) in ms."""
    db = "signoff_bench_commit_" + str(time.time_ns())
    psql(f"CREATE DATABASE {db}")
    tmp = tempfile.mkdtemp()
    try:
        psql("CREATE TABLE r (id INT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO r VALUES (1, 0)", db)
        script = os.path.join(tmp, "script.sql")
        with open(script, "w") as f:
            f.write(sql + "\n")
        u = urllib.parse.urlparse(PG)
        subprocess.run(["pgbench", "-n", "-h", u.hostname, "-p", str(u.port or 5432), "-U", u.username or "postgres",
                        "-c", "1", "-t", str(transactions), "-f", script, "-l", "--log-prefix", os.path.join(tmp, "log"), db],
                       check=True, capture_output=True)
        lat = []
        for name in os.listdir(tmp):
            if name.startswith("log"):
                with open(os.path.join(tmp, name)) as f:
                    lat += [int(line.split()[2]) / 1000 for line in f if line.strip()]
        check(len(lat) == transactions, f"pgbench logged {len(lat)} transactions, not {transactions}")
        return _spread(lat)
    finally:
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)


def sqlite_commit(folder, transactions=2000):
    """The same on SQLite, as signoff opens it (WAL, synchronous=FULL): a one-row UPDATE a
    transaction, each committed, in a file in `folder` (beside the server's). -> (p50, p99,
    max) in ms."""
    path = os.path.join(folder, "commit.db")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        db.execute("INSERT INTO r VALUES (1, 0)")
        lat = []
        for _ in range(transactions):
            t = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE r SET n = n + 1 WHERE id = 1")
            db.execute("COMMIT")
            lat.append((time.perf_counter() - t) * 1000)
        return _spread(lat)
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
