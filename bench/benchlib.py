"""What the Python parts of the benchmark share: checks that fail the run, free loopback
ports, and psql against $SIGNOFF_TEST_POSTGRES_URL."""
import http.client
import json
import os
import socket
import subprocess
import sys
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
