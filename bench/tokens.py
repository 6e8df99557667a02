#!/usr/bin/env python3
"""Prints N distinct valid access tokens of one user of a signoff server: tokens.py BASE N [EMAIL]
(the user bench@example.com unless EMAIL is given, with the bench's password).
One password grant, then refresh grants (each rotates the refresh token and issues a new access
token, with no password hash to compute)."""
import http.client
import json
import sys
import urllib.parse

base, n = sys.argv[1], int(sys.argv[2])
email = sys.argv[3] if len(sys.argv) > 3 else "bench@example.com"
url = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(url.hostname, url.port)


def grant(fields):
    body = urllib.parse.urlencode(fields)
    conn.request("POST", "/auth/token", body, {"content-type": "application/x-www-form-urlencoded"})
    res = conn.getresponse()
    data = res.read()
    if res.status != 200:
        sys.exit(f"tokens.py: /auth/token answered {res.status}: {data[:200]!r}")
    return json.loads(data)


t = grant({"grant_type": "password", "email": email, "password": "correct horse battery staple"})
out = [t["access_token"]]
while len(out) < n:
    t = grant({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]})
    out.append(t["access_token"])
print("\n".join(out))
