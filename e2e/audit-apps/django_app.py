"""A Django 5 app as its documentation builds one: `django.contrib.auth`'s own LoginView and
LogoutView (POST-only since 5.0, with its CSRF token), database sessions, and one page only a
signed-in user sees. `signoff audit` is tried against it (e2e/tests/audit.test.mjs): nobody here
wrote its logout.

Usage: python3 django_app.py PORT (prints "ready" once it listens; its database is in memory).
"""

import sys

import django
from django.conf import settings

PORT = int(sys.argv[1])
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
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "file:audit?mode=memory&cache=shared"}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "OPTIONS": {
        "loaders": [("django.template.loaders.locmem.Loader", {
            "registration/login.html": (
                "<!doctype html><title>Sign in</title><form method=post>{% csrf_token %}{{ form.as_p }}"
                "<button type=submit>Sign in</button></form>"
            ),
            "account.html": (
                "<!doctype html><title>Account</title><p>Signed in as {{ user.username }}</p>"
                "<form method=post action=\"/logout/\">{% csrf_token %}<button id=logout type=submit>Log out</button></form>"
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

from django.contrib.auth import views as auth_views  # noqa: E402
from django.contrib.auth.decorators import login_required  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.urls import path  # noqa: E402


@login_required
def account(request):
    return render(request, "account.html")


urlpatterns = [
    path("login/", auth_views.LoginView.as_view()),
    path("logout/", auth_views.LogoutView.as_view()),
    path("account/", account),
]

if __name__ == "__main__":
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from django.core.wsgi import get_wsgi_application

    # The in-memory database lives as long as one connection holds it.
    from django.db import connection

    connection.ensure_connection()
    call_command("migrate", verbosity=0, interactive=False)
    User.objects.create_user("ada", password="correct horse battery staple")

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", PORT, get_wsgi_application(), handler_class=Quiet)
    print("ready", flush=True)
    server.serve_forever()
