#!/usr/bin/env python3
"""Two builds' logout latency, paired round by round: for comparing a change on this machine,
whose speed moves by more than a change is worth within minutes. Starts a cluster of each build
(N nodes on a fresh PostgreSQL database each, with their own Redis when asked), then in every
round times a global logout on each, in alternating order, after the same steps as
bench/cluster.py (sign in through one node, the cookie warmed on every node, the logout through
the next, every node checked to refuse the cookie after it; a cookie accepted fails the run).
Prints each build's p50/p90/p99 and the median of the per-round differences.

Usage: bench/logout_pair.py BIN_A BIN_B [--nodes N] [--rounds R] [--warmup W] [--redis]
(needs PostgreSQL at $SIGNOFF_TEST_POSTGRES_URL; servers on core 1, this client on core 0).
"""
import argparse
import json
import os
import subprocess
import time

from benchlib import ORIGIN, Conn, check, database_url, free_port, psql, wait_ready

PASSWORD = "correct horse battery staple"
_args = argparse.ArgumentParser()
_args.add_argument("bins", nargs=2)
_args.add_argument("--nodes", type=int, default=2)
_args.add_argument("--rounds", type=int, default=400)
_args.add_argument("--warmup", type=int, default=20)
_args.add_argument("--redis", action="store_true")
ARGS = _args.parse_args()
if ARGS.nodes < 1 or ARGS.rounds < 1 or ARGS.warmup < 0:
    _args.error("--nodes and --rounds must be at least 1, --warmup at least 0")
procs, dbs = [], []


def start(binary):
    """A cluster of `binary` with a registered user: -> (connections, e-mail)."""
    db = "signoff_pair_" + str(time.time_ns())
    psql(f"CREATE DATABASE {db}")
    dbs.append(db)
    env = dict(os.environ, SIGNOFF_PUBLIC_URL=ORIGIN, SIGNOFF_DATABASE_URL=database_url(db), SIGNOFF_LOG_LEVEL="warn",
               SIGNOFF_REGISTER_MAX_PER_IP="100000")
    if ARGS.redis:
        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL))
        env["SIGNOFF_REDIS_URL"] = f"redis://127.0.0.1:{rport}"
        time.sleep(0.3)
    ports = []
    for _ in range(ARGS.nodes):
        port = free_port()
        procs.append(subprocess.Popen(["taskset", "-c", "1", binary, "serve"],
                                      env=dict(env, SIGNOFF_LISTEN=f"127.0.0.1:{port}"), stderr=subprocess.DEVNULL))
        ports.append(port)
    wait_ready(*ports)
    conns = [Conn(p) for p in ports]
    email = f"pair{time.time_ns()}@example.com"
    check(conns[0].req("POST", "/auth/register", {"email": email, "password": PASSWORD})[0] == 201, "register")
    return conns, email


def one_round(conns, email, r):
    """One round on one cluster: -> the logout's latency in ms."""
    n = len(conns)
    st, sc, body = conns[r % n].req("POST", "/auth/login", {"email": email, "password": PASSWORD})
    check(st == 200, body)
    cookie, csrf = sc.split(";")[0], json.loads(body)["csrf_token"]
    for c in conns:
        check(c.req("GET", "/api/me", cookie=cookie)[0] == 200, "a fresh session is refused")
    t = time.perf_counter()
    st, _, body = conns[(r + 1) % n].req("POST", "/auth/logout", {"scope": "global"}, cookie=cookie, csrf=csrf)
    ms = (time.perf_counter() - t) * 1000
    check(st == 200, body)
    for c in conns:
        check(c.req("GET", "/api/me", cookie=cookie)[0] == 401, "a cookie was accepted after its logout")
    return ms


def spread(lat):
    s = sorted(lat)
    return " ".join(f"p{int(q * 100)} {s[min(len(s) - 1, round((len(s) - 1) * q))]:.2f}" for q in (0.5, 0.9, 0.99))


if __name__ == "__main__":
    os.sched_setaffinity(0, {0})
    try:
        a, b = start(ARGS.bins[0]), start(ARGS.bins[1])
        la, lb = [], []
        for r in range(-ARGS.warmup, ARGS.rounds):
            if r % 2:
                x, y = one_round(*a, r), one_round(*b, r)
            else:
                y, x = one_round(*b, r), one_round(*a, r)
            if r >= 0:
                la.append(x)
                lb.append(y)
        d = sorted(y - x for x, y in zip(la, lb))
        label = f"{ARGS.nodes} node{'s' if ARGS.nodes > 1 else ''}, PostgreSQL{' + Redis' if ARGS.redis else ' only'}"
        print(f"| {label} | {ARGS.rounds} | {spread(la)} | {spread(lb)} | {d[len(d) // 2]:+.2f} | "
              f"{sum(1 for v in d if v < 0)} |", flush=True)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for db in dbs:
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
