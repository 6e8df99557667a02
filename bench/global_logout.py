#!/usr/bin/env python3
"""Scenario 4b: `POST /auth/logout` with `scope=global` for a user with 1, 100, 10,000 and
100,000 sessions, on SQLite and on PostgreSQL.

One signoff process per store (pinned to core 1; this client on core 0). For each size the user
signs in (one real session and its cookie), the other sessions are written straight into the
store (as many sign-ins would leave them, without hashing a password for each), then the global
logout is timed through HTTP and the store is checked: no session of the user is left.
Three rounds per size; prints the median and the worst.

Usage: bench/global_logout.py BIN [SIZES]   (SIZES comma-separated, default 1,100,10000,100000)
Needs PostgreSQL at $SIGNOFF_TEST_POSTGRES_URL (a database is created and dropped).
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from benchlib import ORIGIN, Conn, check, database_url, free_port, psql

PASSWORD = "correct horse battery staple"
ROUNDS = 3


def request(port, method, path, body=None, cookie=None, csrf=None):
    """One request on a connection of its own (a global logout may take seconds)."""
    return Conn(port, timeout=600).req(method, path, body, cookie, csrf)


# The extra sessions: ids and secret hashes unique and random, alive for a day.
SQLITE_SEED = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent)
SELECT 'seed' || hex(randomblob(8)) || i, randomblob(32), ?, ?, ?, ?, '127.0.0.1', 'bench' FROM n
"""
PG_SEED = """
INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent)
SELECT 'seed' || md5(random()::text) || g, sha256(md5(random()::text || g)::bytea), '{user}', {now}, {now}, {end},
       '127.0.0.1', 'bench'
FROM generate_series(1, {n}) g
"""


class Store:
    def __init__(self, kind, tmp):
        self.kind = kind
        if kind == "sqlite":
            self.path = os.path.join(tmp, "global.db")
            self.url = f"sqlite://{self.path}"
        else:
            self.db = "signoff_bench_global_" + str(time.time_ns())
            psql(f"CREATE DATABASE {self.db}")
            self.url = database_url(self.db)

    def seed(self, user, n):
        if n <= 0:
            return
        # Times in the store's own units: those of the real session.
        if self.kind == "sqlite":
            db = sqlite3.connect(self.path, timeout=30)
            now = db.execute("SELECT max(created_at) FROM sessions WHERE user_id = ?", (user,)).fetchone()[0]
            end = db.execute("SELECT max(expires_at) FROM sessions WHERE user_id = ?", (user,)).fetchone()[0]
            db.execute(SQLITE_SEED, (n, user, now, now, end))
            db.commit()
            db.close()
        else:
            now = psql(f"SELECT max(created_at) FROM sessions WHERE user_id = '{user}'", self.db)
            end = psql(f"SELECT max(expires_at) FROM sessions WHERE user_id = '{user}'", self.db)
            psql(PG_SEED.format(user=user, now=now, end=end, n=n), self.db)

    def left(self, user):
        if self.kind == "sqlite":
            db = sqlite3.connect(self.path, timeout=30)
            n = db.execute("SELECT count(*) FROM sessions WHERE user_id = ?", (user,)).fetchone()[0]
            db.close()
            return n
        return int(psql(f"SELECT count(*) FROM sessions WHERE user_id = '{user}'", self.db))

    def drop(self):
        if self.kind == "postgres":
            psql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")


def run(binary, kind, sizes, tmp):
    store = Store(kind, tmp)
    port = free_port()
    env = dict(os.environ, SIGNOFF_LISTEN=f"127.0.0.1:{port}", SIGNOFF_PUBLIC_URL=ORIGIN,
               SIGNOFF_DATABASE_URL=store.url, SIGNOFF_LOG_LEVEL="warn")
    log = open(os.path.join(tmp, f"{kind}.log"), "w")
    proc = subprocess.Popen(["taskset", "-c", "1", binary, "serve"], env=env, stderr=log)
    try:
        for _ in range(300):
            try:
                if request(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        email = f"global{time.time_ns()}@example.com"
        st, _, body = request(port, "POST", "/auth/register", {"email": email, "password": PASSWORD})
        check(st == 201, body)
        user = json.loads(body)["user"]["id"] if "user" in json.loads(body) else json.loads(body)["id"]
        for n in sizes:
            took = []
            for _ in range(ROUNDS):
                st, sc, body = request(port, "POST", "/auth/login", {"email": email, "password": PASSWORD})
                check(st == 200, body)
                cookie, csrf = sc.split(";")[0], json.loads(body)["csrf_token"]
                store.seed(user, n - 1)
                check(store.left(user) == n, f"{store.left(user)} sessions seeded, not {n}")
                t = time.perf_counter()
                st, _, body = request(port, "POST", "/auth/logout", {"scope": "global"}, cookie=cookie, csrf=csrf)
                took.append((time.perf_counter() - t) * 1000)
                check(st == 200, body)
                left = store.left(user)
                check(left == 0, f"{left} sessions outlived a global logout")
                check(request(port, "GET", "/api/me", cookie=cookie)[0] == 401, "the cookie still works")
            took.sort()
            print(f"| {kind} | {n:,} | {took[len(took) // 2]:.1f} | {took[-1]:.1f} |", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        store.drop()


if __name__ == "__main__":
    binary = sys.argv[1]
    sizes = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "1,100,10000,100000").split(",")]
    os.sched_setaffinity(0, {0})
    print(f"Global logout (ms, median and worst of {ROUNDS}): one request ends every session of the user.")
    print("| store | sessions | p50 | max |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "postgres"):
            run(binary, kind, sizes, tmp)
