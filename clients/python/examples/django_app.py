"""A Django service in one file: GET /whoami for signoff's access tokens, and the receivers of
signoff's logout notifications. Run: python django_app.py runserver --noreload 127.0.0.1:8000

Configured from the environment: SIGNOFF_URL, and the client registered for this service:
SIGNOFF_CLIENT_ID, SIGNOFF_CLIENT_SECRET, SIGNOFF_WEBHOOK_SECRET (its webhook_secret).
"""

import json
import os
import secrets
import sys

from django.conf import settings

settings.configure(
    ROOT_URLCONF=__name__,
    SECRET_KEY=secrets.token_hex(32),  # nothing this example signs outlives the process
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=["signoff_verify.django.SignoffMiddleware"],
    SIGNOFF={
        "URL": os.environ["SIGNOFF_URL"],
        "CLIENT_ID": os.environ["SIGNOFF_CLIENT_ID"],
        "CLIENT_SECRET": os.environ["SIGNOFF_CLIENT_SECRET"],
        "STALE_AFTER": 3.0,
    },
)

from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from signoff_verify.django import backchannel_logout_view, signoff_required, webhook_view  # noqa: E402


@signoff_required
def whoami(request):
    return JsonResponse({"sub": request.signoff["sub"]})


def end_sessions(record):
    # Your code here: end this app's own sessions for record["sid"]. This example appends what
    # it was told to the file named by EXAMPLE_RECEIVED (the tests read it).
    with open(os.environ["EXAMPLE_RECEIVED"], "a") as f:
        f.write(json.dumps(record) + "\n")


def on_logout(logout):
    end_sessions({"via": "backchannel", "sid": logout.sid, "sub": logout.sub, "jti": logout.jti})


def on_event(event, webhook_id):
    if event["type"] == "session.ended":
        end_sessions({"via": "webhook", "sid": event["data"]["session_id"], "id": webhook_id})


urlpatterns = [
    path("whoami", whoami),
    path(
        "signoff/backchannel-logout",
        backchannel_logout_view(on_logout, url=os.environ["SIGNOFF_URL"], client_id=os.environ["SIGNOFF_CLIENT_ID"]),
    ),
    path("signoff/webhooks", webhook_view(on_event, secrets=[os.environ["SIGNOFF_WEBHOOK_SECRET"]])),
]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
