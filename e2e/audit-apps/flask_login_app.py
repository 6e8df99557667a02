"""A Flask-Login app as its documentation builds one: Flask's default session (a signed cookie,
nothing kept on the server), `login_user(user, remember=True)` and `logout_user()`. Its logout
clears both cookies, yet the old session cookie and the remember-me cookie both still sign in:
`signoff audit` must find both (e2e/tests/audit.test.mjs). Nobody here wrote its logout.

Usage: python3 flask_login_app.py PORT (prints "ready" once it listens).
"""

import sys

from flask import Flask, redirect, request
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from markupsafe import escape
from werkzeug.serving import WSGIRequestHandler, make_server

PORT = int(sys.argv[1])
app = Flask(__name__)
app.secret_key = "audit-test-" + "y" * 40
login_manager = LoginManager(app)
login_manager.login_view = "login"
PASSWORDS = {"ada": "correct horse battery staple"}


class User(UserMixin):
    def __init__(self, name):
        self.id = name


@login_manager.user_loader
def load_user(user_id):
    return User(user_id) if user_id in PASSWORDS else None


@app.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        name = request.form.get("username", "")
        if PASSWORDS.get(name) == request.form.get("password"):
            login_user(User(name), remember=bool(request.form.get("remember")))
            return redirect("/account")
        return "Wrong username or password", 401
    return (
        "<!doctype html><title>Sign in</title><form method=post><input name=username>"
        "<input name=password type=password><label><input type=checkbox name=remember value=1> Remember me</label>"
        "<button type=submit>Sign in</button></form>"
    )


@app.get("/account")
@login_required
def account():
    return (
        f"<!doctype html><title>Account</title><p>Signed in as {escape(current_user.id)}</p>"
        '<form method=post action="/logout"><button id=logout type=submit>Log out</button></form>'
    )


@app.post("/logout")
def logout():
    logout_user()
    return redirect("/login")


class Quiet(WSGIRequestHandler):
    def log_request(self, *args):
        pass


if __name__ == "__main__":
    server = make_server("127.0.0.1", PORT, app, threaded=True, request_handler=Quiet)
    print("ready", flush=True)
    server.serve_forever()
