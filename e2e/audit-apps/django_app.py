"""A Django 5 app as its documentation builds one: `django.contrib.auth`'s own LoginView and
LogoutView (POST-only since 5.0, with its CSRF token), database sessions, and one page only a
signed-in user sees. `signoff audit` is tried against it (e2e/tests/audit.test.mjs): nobody here
wrote its logout.

Its account page also gets API tokens, as a single-page app would, from a small token API
that ties each token to the Django session it was issued in: when the logout flushes that
session, the tokens die with it (what the audit's bearer and refresh checks must see pass).

Usage: python3 django_app.py PORT (prints "ready" once it listens; its database is a file in a
temporary folder, removed when it stops).
"""

import atexit
import shutil
import sys
import tempfile

import django
from django.conf import settings

PORT = int(sys.argv[1])
DATA = tempfile.mkdtemp(prefix="audit-django-")
atexit.register(shutil.rmtree, DATA, ignore_errors=True)
settings.configure(
    DEBUG=False,
    SECRET_KEY="audit-test-" + "x" * 40,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{DATA}/db.sqlite3"}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "OPTIONS": {
        "loaders": [("django.template.loaders.locmem.Loader", {
            "registration/login.html": (
                "<!doctype html><title>Sign in</title><form method=post>{% csrf_token %}{{ form.as_p }}"
                "<button type=submit>Sign in</button></form>"
            ),
            "account.html": (
                "<!doctype html><title>Account</title><p>Signed in as {{ user.username }}</p>"
                "<form method=post action=\"/logout/\">{% csrf_token %}<button id=logout type=submit>Log out</button></form>"
                "<p id=api></p><script>(async () => {"
                "const t = await (await fetch('/api/token/', { method: 'POST' })).json();"
                "await fetch('/api/me/', { headers: { Authorization: 'Bearer ' + t.access_token } });"
                "const n = await (await fetch('/api/refresh/', { method: 'POST', headers: { 'Content-Type': 'application/json' },"
                " body: JSON.stringify({ refresh_token: t.refresh_token }) })).json();"
                "const me = await (await fetch('/api/me/', { headers: { Authorization: 'Bearer ' + n.access_token } })).json();"
                "document.getElementById('api').textContent = 'API: ' + me.user;"
                "})();</script>"
            ),
            "registration/logged_out.html": "<!doctype html><title>Signed out</title><p>You are signed out.</p>",
        })],
        "context_processors": ["django.template.context_processors.request", "django.contrib.auth.context_processors.auth"],
    }}],
    LOGIN_URL="/login/",
    LOGIN_REDIRECT_URL="/account/",
    USE_TZ=True,
)
django.setup()

import json  # noqa: E402
import secrets  # noqa: E402

from django.contrib.auth import views as auth_views  # noqa: E402
from django.contrib.auth.decorators import login_required  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.urls import path  # noqa: E402


@login_required
def account(request):
    return render(request, "account.html")


# Token -> (user, the session it was issued in). A token lives while that session does.
ACCESS, REFRESH = {}, {}


def _alive(entry):
    return entry is not None and SessionStore().exists(entry[1])


@csrf_exempt
def token(request):
    if request.method != "POST" or not request.user.is_authenticated:
        return JsonResponse({"error": "not signed in"}, status=401)
    access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    ACCESS[access] = REFRESH[refresh] = (request.user.username, request.session.session_key)
    return JsonResponse({"access_token": access, "refresh_token": refresh})


@csrf_exempt
def refresh(request):
    try:
        entry = REFRESH.get(json.loads(request.body or b"{}").get("refresh_token"))
    except ValueError:
        entry = None
    if request.method != "POST" or not _alive(entry):
        return JsonResponse({"error": "invalid refresh token"}, status=401)
    access = secrets.token_urlsafe(32)
    ACCESS[access] = entry
    return JsonResponse({"access_token": access})


def me(request):
    entry = ACCESS.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
    if not _alive(entry):
        return JsonResponse({"error": "invalid token"}, status=401)
    return JsonResponse({"user": entry[0]})


urlpatterns = [
    path("api/token/", token),
    path("api/refresh/", refresh),
    path("api/me/", me),
    path("login/", auth_views.LoginView.as_view()),
    path("logout/", auth_views.LogoutView.as_view()),
    path("account/", account),
]

if __name__ == "__main__":
    import signal
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0, interactive=False)
    User.objects.create_user("ada", password="correct horse battery staple")

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    # A thread per connection, as `runserver` does: a browser's idle preconnection must not hold
    # up everyone else.
    class Threaded(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    # SIGTERM ends it through `sys.exit`, so the database folder is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = make_server("127.0.0.1", PORT, get_wsgi_application(), server_class=Threaded, handler_class=Quiet)
    print("ready", flush=True)
    server.serve_forever()
