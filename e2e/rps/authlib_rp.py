"""A relying party as people write one with Authlib's Flask client: sign-in by the code flow with
PKCE S256 and client_secret_post, the ID token checked by Authlib (signature, iss, aud, nonce),
and RP-initiated logout. Authlib has no back-channel logout: this app only signs in and out.

Started by e2e/tests/relying-parties.test.mjs with its settings in the environment; prints
"ready" on stdout once it listens.
"""

import os
import secrets
import sys
from urllib.parse import urlencode

from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, request, session, url_for
from markupsafe import escape
from werkzeug.serving import make_server

ISSUER = os.environ["RP_ISSUER"]
HOST = os.environ.get("RP_HOST", "127.0.0.1")
PORT = int(os.environ["RP_PORT"])
BASE = f"http://{HOST}:{PORT}"

app = Flask(__name__)
app.secret_key = secrets.token_bytes(32)
# Its own cookie name, should another app of the suite share its host.
app.config["SESSION_COOKIE_NAME"] = "authlib_rp"

oauth = OAuth(app)
oauth.register(
    "signoff",
    client_id=os.environ["RP_CLIENT_ID"],
    client_secret=os.environ["RP_CLIENT_SECRET"],
    server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
    client_kwargs={
        "scope": "openid email",
        "code_challenge_method": "S256",
        "token_endpoint_auth_method": "client_secret_post",
    },
)


@app.get("/")
def home():
    user = session.get("user")
    if not user:
        return '<main><p>Not signed in.</p><a id="login" href="/login">Sign in</a></main>'
    return (
        f'<main><p id="who">Signed in as {escape(user["email"])} (sid {escape(user["sid"])})</p>'
        '<a id="logout" href="/logout">Log out</a></main>'
    )


@app.get("/login")
def login():
    return oauth.signoff.authorize_redirect(f"{BASE}/callback")


@app.get("/callback")
def callback():
    token = oauth.signoff.authorize_access_token()
    claims = token["userinfo"]  # the ID token's claims, verified by Authlib
    session["user"] = {"email": claims["email"], "sid": claims["sid"], "sub": claims["sub"]}
    session["id_token"] = token["id_token"]
    return redirect(url_for("home"))


@app.get("/logout")
def logout():
    id_token = session.pop("id_token", None)
    session.clear()
    state = secrets.token_urlsafe(16)
    session["logout_state"] = state
    end_session = oauth.signoff.load_server_metadata()["end_session_endpoint"]
    query = {"post_logout_redirect_uri": f"{BASE}/logged-out", "state": state}
    if id_token:
        query["id_token_hint"] = id_token
    return redirect(f"{end_session}?{urlencode(query)}")


@app.get("/logged-out")
def logged_out():
    expected = session.pop("logout_state", None)
    ok = expected is not None and secrets.compare_digest(expected, request.args.get("state", ""))
    return f'<main><p id="bye">Signed out{"" if ok else " (state did not match)"}.</p></main>'


if __name__ == "__main__":
    server = make_server(HOST, PORT, app, threaded=True)
    print("ready", flush=True)
    sys.stdout.flush()
    server.serve_forever()
