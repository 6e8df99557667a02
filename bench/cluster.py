#!/usr/bin/env python3
"""Revocation latency across nodes: N `signoff` processes (release build) on one fresh
PostgreSQL database, with Redis or without. Each round signs a user in, warms the session
cookie on every node, then times `POST /auth/logout` (scope global) through one node and checks
that every node refuses the cookie right after. Prints p50/p99/max per setting, plus the worst
case with a node paused (SIGSTOP) for longer than its lease, and last the store's own commit
latency in the same run (pgbench, a one-row UPDATE a transaction), the floor a logout stands on,
and one round trip to it (pgbench, a one-row SELECT), the unit its statements cost. With
`--via gtr` the revocation is a registered client's Global Token Revocation of the user
(`POST /global-token-revocation`, HTTP Basic, the user by e-mail) instead.

Usage: bench/cluster.py [ROUNDS] [--bin PATH] [--pause-rounds N] [--warmup N] [--via logout|gtr]
(needs PostgreSQL at $SIGNOFF_TEST_POSTGRES_URL, redis-server; without --bin it builds the
release binary first). The server processes share core 1 and this client runs on core 0
(taskset), as in bench/run.sh. A cookie accepted after its logout fails the run.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import (ORIGIN, Conn, check, database_url, free_port, postgres_commit, postgres_round_trip, psql,
                      wait_ready)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "correct horse battery staple"
_args = argparse.ArgumentParser()
_args.add_argument("rounds", nargs="?", type=int, default=200)
_args.add_argument("--bin")
_args.add_argument("--pause-rounds", type=int, default=3)
_args.add_argument("--warmup", type=int, default=20)
_args.add_argument("--via", choices=["logout", "gtr"], default="logout")
ARGS = _args.parse_args()
BIN = ARGS.bin or os.path.join(ROOT, "target/release/signoff")
ROUNDS = ARGS.rounds
# Rounds before the measured ones, checked alike but not timed: each pooled connection prepares
# a statement the first time it runs it (a round trip more), so a fresh node's first logouts
# take twice as long (7-8 ms against 3 here). Measured are the logouts of a node in service.
WARMUP = ARGS.warmup
if WARMUP < 0 or ROUNDS < 1:
    _args.error("ROUNDS must be at least 1 and --warmup at least 0")
ADMIN = "bench-admin-key-0123456789abcdef0123456789abcdef"


def run(n_nodes, redis, pause_rounds=0):
    db = "signoff_bench_" + str(time.time_ns())
    psql(f"CREATE DATABASE {db}")
    db_url = database_url(db)
    procs, ports = [], []
    rport = None
    tmp = tempfile.mkdtemp()
    try:
        if redis:
            rport = free_port()
            procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no"], stdout=subprocess.DEVNULL))
            time.sleep(0.3)
        for i in range(n_nodes):
            port = free_port()
            env = dict(os.environ, SIGNOFF_LISTEN=f"127.0.0.1:{port}", SIGNOFF_PUBLIC_URL=ORIGIN,
                       SIGNOFF_DATABASE_URL=db_url, SIGNOFF_LOG_LEVEL="warn", SIGNOFF_REGISTER_MAX_PER_IP="100000",
                       SIGNOFF_ADMIN_TOKEN=ADMIN)
            if redis:
                env["SIGNOFF_REDIS_URL"] = f"redis://127.0.0.1:{rport}"
            log = open(os.path.join(tmp, f"node{i}.log"), "w")
            procs.append(subprocess.Popen(["taskset", "-c", "1", BIN, "serve"], env=env, stderr=log))
            ports.append(port)
        wait_ready(*ports)
        conns = [Conn(p) for p in ports]
        email = f"bench{time.time_ns()}@example.com"
        check(conns[0].req("POST", "/auth/register", {"email": email, "password": PASSWORD})[0] == 201, "register")
        basic = None
        if ARGS.via == "gtr":
            st, _, body = conns[0].req("POST", "/admin/clients", {"name": "idp", "global_token_revocation": True},
                                       authorization=f"Bearer {ADMIN}")
            check(st == 201, body)
            client = json.loads(body)
            pair = f"{client['client_id']}:{client['client_secret']}".encode()
            basic = "Basic " + base64.b64encode(pair).decode()
        lat, worst_pause, holes = [], [], 0
        for r in range(-WARMUP, ROUNDS + pause_rounds):
            st, sc, body = conns[r % n_nodes].req("POST", "/auth/login", {"email": email, "password": PASSWORD})
            check(st == 200, body)
            cookie = sc.split(";")[0]
            csrf = json.loads(body)["csrf_token"]
            for c in conns:
                check(c.req("GET", "/api/me", cookie=cookie)[0] == 200, "a fresh session is refused")
            revoker = conns[(r + 1) % n_nodes]
            paused = None
            if r >= ROUNDS:
                paused = procs[len(procs) - n_nodes + (r + 2) % n_nodes]
                paused.send_signal(signal.SIGSTOP)
            t = time.perf_counter()
            if basic:
                st, _, body = revoker.req("POST", "/global-token-revocation",
                                          {"sub_id": {"format": "email", "email": email}}, authorization=basic)
            else:
                st, _, body = revoker.req("POST", "/auth/logout", {"scope": "global"}, cookie=cookie, csrf=csrf)
            ms = (time.perf_counter() - t) * 1000
            check(st == (204 if basic else 200), body)
            if paused:
                paused.send_signal(signal.SIGCONT)
                worst_pause.append(ms)
                conns = [Conn(p) for p in ports]
            elif r >= 0:
                lat.append(ms)
            for c in conns:
                if c.req("GET", "/api/me", cookie=cookie)[0] == 200:
                    holes += 1
        lat.sort()
        pct = lambda p: lat[min(len(lat) - 1, int(round((len(lat) - 1) * p)))]
        label = f"{n_nodes} nodes, {'PostgreSQL + Redis' if redis else 'PostgreSQL only'}"
        line = f"| {label} | {len(lat)} | {pct(0.5):.2f} | {pct(0.99):.2f} | {lat[-1]:.2f} |"
        if worst_pause:
            line += f" {max(worst_pause):.0f} |"
        else:
            line += " |"
        print(line, flush=True)
        if holes:
            print(f"cluster: a cookie was accepted after its logout ({holes} times)", file=sys.stderr)
            sys.exit(1)
    finally:
        for p in procs:
            try:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
            except OSError:
                pass
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if not ARGS.bin:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "signoff"], cwd=ROOT, check=True)
    os.sched_setaffinity(0, {0})
    what = "Global Token Revocation" if ARGS.via == "gtr" else "Global logout"
    print(f"{what} latency (ms), {ROUNDS} rounds each; cookie warmed on every node first.")
    print("| setting | n | p50 | p99 | max | worst with a node paused |")
    print("|---|---|---|---|---|---|")
    run(1, False)
    for redis in (False, True):
        run(2, redis, pause_rounds=ARGS.pause_rounds)
        run(3, redis, pause_rounds=ARGS.pause_rounds)
    n = max(100, min(2000, ROUNDS * 10))
    p50, p99, worst = postgres_commit(n)
    print(f"| the store's own commit (pgbench from this core: a one-row UPDATE a transaction) | {n} | {p50:.2f} | {p99:.2f} | {worst:.2f} | |")
    p50, p99, worst = postgres_round_trip(n)
    print(f"| one round trip to the store (pgbench from this core: a one-row SELECT by key) | {n} | {p50:.2f} | {p99:.2f} | {worst:.2f} | |")
