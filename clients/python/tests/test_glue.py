"""The Django and FastAPI glue in this process, for what the example apps never do: a handler
that raises (503, logged, and signoff's retry handled), an async handler or one returning an
awaitable, signoff out of reach (503), a method other than POST, bad webhook secrets, a verifier
that fails unexpectedly, and a Django project configured wrong. Fed with real logout tokens and
webhooks that signoff delivered, and with webhooks signed here."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from typing import Any, Callable, Coroutine

import django
import pytest
from conftest import HOOKS, LOGOUT, World, delivered, free_port, sign
from django.conf import settings
from fastapi import HTTPException, Request
from fastapi.responses import Response

settings.configure(ALLOWED_HOSTS=["testserver"])
django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import RequestFactory, override_settings  # noqa: E402

from signoff_verify import Logout, Verifier, _web  # noqa: E402
from signoff_verify import django as glue_django  # noqa: E402
from signoff_verify import fastapi as glue_fastapi  # noqa: E402

FORM = "application/x-www-form-urlencoded"
SECRET = "whsec_" + base64.b64encode(b"glue-test" * 4).decode()
# A token whose header is 3000 nested brackets: JSON parsers recurse on it.
NESTED = base64.urlsafe_b64encode(b"[" * 3000).rstrip(b"=").decode() + ".e30.AAAA"


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


def signed(id_: str, body: bytes) -> dict[str, str]:
    """The headers of a webhook signed here with ``SECRET``."""
    now = int(time.time())
    return {"webhook-id": id_, "webhook-timestamp": str(now), "webhook-signature": sign(SECRET, id_, now, body)}


def django_post(view: Callable[..., HttpResponse], id_: str) -> HttpResponse:
    body = json.dumps({"type": "session.ended", "timestamp": "t", "data": {}}).encode()
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signed(id_, body).items()}
    return view(RequestFactory().post(HOOKS, data=body, content_type="application/json", **headers))


def fastapi_post(endpoint: Callable[[Request], Any], id_: str) -> int:
    body = json.dumps({"type": "session.ended", "timestamp": "t", "data": {}}).encode()
    return asgi_post(endpoint, body, {"content-type": "application/json", **signed(id_, body)}).status_code


class AsyncHandler:
    """An object whose ``__call__`` is ``async def`` (not a coroutine function to ``inspect``);
    raises while ``fail`` is above zero."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.told: list[str] = []

    async def __call__(self, event: dict[str, Any], webhook_id: str) -> None:
        await asyncio.sleep(0)
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("the app's session store is down")
        self.told.append(webhook_id)


def test_fastapi_receivers_await_what_a_handler_returns(caplog: pytest.LogCaptureFixture) -> None:
    obj = AsyncHandler()
    told: list[str] = []

    async def record(webhook_id: str) -> None:
        told.append(webhook_id)

    def returns_a_coroutine(event: dict[str, Any], webhook_id: str) -> Coroutine[Any, Any, None]:
        return record(webhook_id)

    for handler, id_ in ((obj, "msg_object"), (returns_a_coroutine, "msg_lambda")):
        endpoint = glue_fastapi.webhook_receiver(handler, secrets=SECRET)
        assert [fastapi_post(endpoint, id_) for _ in range(2)] == [204, 204]
    assert (obj.told, told) == (["msg_object"], ["msg_lambda"]), "each ran, once"
    flaky = AsyncHandler(fail=1)
    endpoint = glue_fastapi.webhook_receiver(flaky, secrets=SECRET)
    with caplog.at_level(logging.ERROR, "signoff_verify"):
        assert fastapi_post(endpoint, "msg_flaky") == 503
    assert any(rec.exc_info and "session store is down" in str(rec.exc_info[1]) for rec in caplog.records)
    assert [fastapi_post(endpoint, "msg_flaky") for _ in range(2)] == [204, 204], "not marked seen when it failed"
    assert flaky.told == ["msg_flaky"]


def test_django_receivers_refuse_async_handlers_and_an_awaitable_result_is_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def on_event(event: dict[str, Any], webhook_id: str) -> None:
        pass

    for handler in (on_event, AsyncHandler()):
        with pytest.raises(TypeError, match="sync"):
            glue_django.webhook_view(handler, secrets=SECRET)
        with pytest.raises(TypeError, match="sync"):
            glue_django.backchannel_logout_view(handler, url="http://127.0.0.1:9", client_id="c")
        with pytest.raises(TypeError, match="sync"):
            glue_django.signoff_required(handler)

    told: list[str] = []

    async def record(webhook_id: str) -> None:
        told.append(webhook_id)

    results: list[Any] = [record("never")]

    def returns_a_coroutine_once(event: dict[str, Any], webhook_id: str) -> Any:
        return results.pop() if results else told.append(webhook_id)

    view = glue_django.webhook_view(returns_a_coroutine_once, secrets=SECRET)
    with caplog.at_level(logging.ERROR, "signoff_verify"):
        r = django_post(view, "msg_django")
    assert (r.status_code, json.loads(r.content)) == (503, {"error": "temporarily_unavailable"})
    assert any(rec.exc_info and "returned an awaitable" in str(rec.exc_info[1]) for rec in caplog.records)
    assert [django_post(view, "msg_django").status_code for _ in range(2)] == [204, 204]
    assert told == ["msg_django"], "run again after the failure (not marked seen), then once"


def test_receivers_check_their_webhook_secrets_when_made() -> None:
    for make in (glue_django.webhook_view, glue_fastapi.webhook_receiver):
        for secrets, why in (("whsec_", "at least 24 bytes"), ([], "no webhook secret"), ("whsec_AA!A", "base64")):
            with pytest.raises(ValueError, match=why):
                make(Handler(), secrets=secrets)
        with pytest.raises(ValueError, match="tolerance"):
            make(Handler(), secrets=SECRET, tolerance=math.nan)
    other = "whsec_" + base64.b64encode(b"other-key" * 4).decode()
    handler = Handler()
    view = glue_django.webhook_view(handler, secrets=(s for s in (other, SECRET)))
    assert [django_post(view, id_).status_code for id_ in ("msg_a", "msg_b")] == [204, 204]
    endpoint = glue_fastapi.webhook_receiver(handler, secrets=(s for s in (other, SECRET)))
    assert [fastapi_post(endpoint, id_) for id_ in ("msg_c", "msg_d")] == [204, 204]
    assert [t[1] for t in handler.told] == ["msg_a", "msg_b", "msg_c", "msg_d"], "the secrets were read once"


class Brittle:
    """A verifier whose JSON parsing lets the RecursionError of nested brackets out, as
    PyJWT 2.10.1's does (the verifier now catches it itself: the glue must not rely on that)."""

    def verify(self, token: str) -> dict[str, Any]:
        header = token.split(".")[0]
        return dict(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))))


def test_an_unexpected_failure_of_verify_is_a_401_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_web, "_logged", set())
    monkeypatch.setattr(glue_django, "_verifier", Brittle())
    middleware = glue_django.SignoffMiddleware(glue_django.signoff_required(lambda request: HttpResponse()))
    bearer = glue_fastapi.SignoffBearer(Brittle())  # type: ignore[arg-type]
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b""}
    with caplog.at_level(logging.ERROR, "signoff_verify"):
        for _ in range(2):
            r = middleware(RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {NESTED}"))
            assert (r.status_code, json.loads(r.content)["error"]) == (401, "invalid_token")
            assert r["www-authenticate"] == 'Bearer error="invalid_token"'
            with pytest.raises(HTTPException) as e:
                bearer(Request({**scope, "headers": [(b"authorization", f"Bearer {NESTED}".encode())]}))
            assert (e.value.status_code, e.value.detail["error"]) == (401, "invalid_token")
    (logged,) = [rec for rec in caplog.records if "unexpectedly" in rec.getMessage()]
    assert logged.name == "signoff_verify" and logged.exc_info and isinstance(logged.exc_info[1], RecursionError)


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
    for bad in (0, -1, math.nan, math.inf, 7200, "3", True):
        # (A URL of nothing: one let through fails on it at once, not after a wait of 7200 s.)
        config = {"URL": "not a URL", "CLIENT_ID": "i", "CLIENT_SECRET": "s", "STALE_AFTER": bad}
        with override_settings(SIGNOFF=config):
            with pytest.raises(ImproperlyConfigured, match="^settings.SIGNOFF STALE_AFTER must be a finite number"):
                glue_django.SignoffMiddleware(lambda request: HttpResponse())
    view = glue_django.signoff_required(lambda request: HttpResponse())
    with pytest.raises(ImproperlyConfigured, match="SignoffMiddleware"):
        view(RequestFactory().get("/"))
