"""The Django and FastAPI glue in this process, for what the example apps never do: a handler
that raises (503, logged, and signoff's retry handled), signoff out of reach (503), a method
other than POST, and a Django project configured wrong. Fed with real logout tokens and
webhooks that signoff delivered."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

import django
import pytest
from conftest import HOOKS, LOGOUT, World, delivered, free_port
from django.conf import settings
from fastapi import HTTPException, Request
from fastapi.responses import Response

settings.configure(ALLOWED_HOSTS=["testserver"])
django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import RequestFactory, override_settings  # noqa: E402

from signoff_verify import Logout, Verifier  # noqa: E402
from signoff_verify import django as glue_django  # noqa: E402
from signoff_verify import fastapi as glue_fastapi  # noqa: E402

FORM = "application/x-www-form-urlencoded"


class Handler:
    """Records what it is told; raises while ``fail`` is above zero."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.told: list[Any] = []

    def __call__(self, *args: Any) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("the app's session store is down")
        self.told.append(args)


def asgi_post(endpoint: Callable[[Request], Any], body: bytes, headers: dict[str, str]) -> Response:
    """Calls a FastAPI endpoint as the server would, with one POST request."""

    async def run() -> Response:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "query_string": b"",
        }
        response: Response = await endpoint(Request(scope, receive))
        return response

    return asyncio.run(run())


def test_django_logout_view_answers_503_while_the_handler_fails_and_200_once_it_ran(
    receiver_world: World, logout: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    d = receiver_world.apps[("django", "RS256")]
    body = delivered(receiver_world, d, LOGOUT, logout["sid"]).body
    handler = Handler(fail=1)
    view = glue_django.backchannel_logout_view(
        handler, url=receiver_world.signoff.base, client_id=d.client["client_id"]
    )
    rf = RequestFactory()
    with caplog.at_level(logging.ERROR, "signoff_verify"):
        r = view(rf.post(LOGOUT, data=body, content_type=FORM))
    assert (r.status_code, json.loads(r.content)) == (503, {"error": "temporarily_unavailable"})
    assert any(rec.exc_info and "session store is down" in str(rec.exc_info[1]) for rec in caplog.records)
    for _ in range(2):
        r = view(rf.post(LOGOUT, data=body, content_type=FORM))
        assert r.status_code == 200
    ((told,),) = handler.told
    assert isinstance(told, Logout) and told.sid == logout["sid"] and told.sub == logout["sub"]
    assert view(rf.get(LOGOUT)).status_code == 405
    assert view(rf.put(LOGOUT, data=body, content_type=FORM)).status_code == 405

    nowhere = glue_django.backchannel_logout_view(
        handler, url=f"http://127.0.0.1:{free_port()}", client_id=d.client["client_id"]
    )
    r = nowhere(rf.post(LOGOUT, data=body, content_type=FORM))
    assert (r.status_code, json.loads(r.content)) == (503, {"error": "temporarily_unavailable"}), (
        "no verdict: signoff retries"
    )
    assert len(handler.told) == 1


def test_django_webhook_view_answers_503_while_the_handler_fails(receiver_world: World, logout: dict[str, Any]) -> None:
    d = receiver_world.apps[("django", "EdDSA")]
    x = delivered(receiver_world, d, HOOKS, logout["sid"])
    handler = Handler(fail=1)
    view = glue_django.webhook_view(handler, secrets=d.client["webhook_secret"])
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in x.headers.items() if k.startswith("webhook-")}
    rf = RequestFactory()
    assert view(rf.post(HOOKS, data=x.body, content_type="application/json", **headers)).status_code == 503
    for _ in range(2):
        assert view(rf.post(HOOKS, data=x.body, content_type="application/json", **headers)).status_code == 204
    assert handler.told == [(json.loads(x.body), x.headers["webhook-id"])]


def test_fastapi_receivers_answer_503_while_the_handler_fails_and_run_it_once(
    receiver_world: World, logout: dict[str, Any]
) -> None:
    d = receiver_world.apps[("fastapi", "ES256")]
    body = delivered(receiver_world, d, LOGOUT, logout["sid"]).body
    handler = Handler(fail=1)
    endpoint = glue_fastapi.logout_receiver(handler, url=receiver_world.signoff.base, client_id=d.client["client_id"])
    assert asgi_post(endpoint, body, {"content-type": FORM}).status_code == 503
    assert [asgi_post(endpoint, body, {"content-type": FORM}).status_code for _ in range(2)] == [200, 200]
    assert [t[0].sid for t in handler.told] == [logout["sid"]]

    told: list[str] = []

    async def on_event(event: dict[str, Any], webhook_id: str) -> None:
        told.append(webhook_id)

    x = delivered(receiver_world, d, HOOKS, logout["sid"])
    hooks = glue_fastapi.webhook_receiver(on_event, secrets=[d.client["webhook_secret"]])
    headers = {k: v for k, v in x.headers.items() if k.startswith("webhook-")}
    assert [asgi_post(hooks, x.body, headers).status_code for _ in range(2)] == [204, 204]
    assert told == [x.headers["webhook-id"]], "an async handler is awaited, once"
    r = asgi_post(hooks, x.body + b" ", headers)
    assert r.status_code == 400 and json.loads(bytes(r.body))["error"] == "invalid_request"


def test_fastapi_bearer_dependency_raises_401_and_503_with_their_headers(
    receiver_world: World, logout: dict[str, Any]
) -> None:
    d = receiver_world.apps[("fastapi", "EdDSA")]
    v = Verifier(receiver_world.signoff.base, d.client["client_id"], d.client["client_secret"])
    bearer = glue_fastapi.SignoffBearer(v)

    def call(authorization: str) -> HTTPException:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(b"authorization", authorization.encode())],
            "query_string": b"",
        }
        with pytest.raises(HTTPException) as e:
            bearer(Request(scope))
        return e.value

    e = call("Bearer not-a-token")
    assert (e.status_code, e.detail["error"]) == (401, "invalid_token")
    assert e.headers == {"cache-control": "no-store", "www-authenticate": 'Bearer error="invalid_token"'}
    v.close()
    e = call("Bearer not-a-token")
    assert (e.status_code, e.detail["error"]) == (503, "stale")
    assert e.headers == {"cache-control": "no-store", "retry-after": "1"}


def test_django_configured_wrong_is_refused_at_start_with_a_clear_message() -> None:
    with override_settings(SIGNOFF={"URL": "http://127.0.0.1:9"}):
        with pytest.raises(ImproperlyConfigured, match="CLIENT_ID, CLIENT_SECRET"):
            glue_django.SignoffMiddleware(lambda request: HttpResponse())
    with pytest.raises(ImproperlyConfigured, match="settings.SIGNOFF"):
        glue_django.SignoffMiddleware(lambda request: HttpResponse())
    with override_settings(SIGNOFF={"URL": "u", "CLIENT_ID": "i", "CLIENT_SECRET": "s", "STALE": 3}):
        with pytest.raises(ImproperlyConfigured, match="unknown keys: STALE"):
            glue_django.SignoffMiddleware(lambda request: HttpResponse())
    view = glue_django.signoff_required(lambda request: HttpResponse())
    with pytest.raises(ImproperlyConfigured, match="SignoffMiddleware"):
        view(RequestFactory().get("/"))
