"""Django glue: a middleware that verifies the bearer token of every request, a decorator that
refuses a view to requests without a valid one, and views receiving signoff's logout
notifications.

Settings::

    MIDDLEWARE = [..., "signoff_verify.django.SignoffMiddleware"]
    SIGNOFF = {"URL": ..., "CLIENT_ID": ..., "CLIENT_SECRET": ..., "STALE_AFTER": 3.0}
    # optional: "ISSUER", "AUDIENCE" (learned from signoff otherwise)

One ``Verifier`` per process, made when the middleware is loaded (Django loads it once per
process, before the first request): it follows the feed in a thread, and serves every request
thread.

Synchronous only: the middleware, ``signoff_required`` and the receivers' handlers run in
Django's synchronous request path (an ``async def`` view or handler is refused when it is
wrapped). Under ASGI Django runs the middleware in a thread; async views are not supported.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any, Callable, Iterable, Optional, Union

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ._web import (
    MAX_BODY,
    Answer,
    Seen,
    bearer_token,
    handled,
    logout_token_of,
    receiver_refused,
    refused,
    too_large,
    unexpected,
)
from .receive import Logout, LogoutTokenVerifier, ReceiveError, WebhookVerifier
from .verifier import Verifier, VerifyError, stale_after_seconds

_lock = threading.Lock()
_verifier: Optional[Verifier] = None


def verifier() -> Verifier:
    """This process's verifier, made from ``settings.SIGNOFF`` on first use."""
    global _verifier
    with _lock:
        if _verifier is None:
            _verifier = Verifier(**_options())
        return _verifier


def _options() -> dict[str, Any]:
    config = getattr(settings, "SIGNOFF", None)
    if not isinstance(config, dict):
        raise ImproperlyConfigured(
            'signoff_verify needs settings.SIGNOFF = {"URL": ..., "CLIENT_ID": ..., "CLIENT_SECRET": ...}'
        )
    missing = [k for k in ("URL", "CLIENT_ID", "CLIENT_SECRET") if not isinstance(config.get(k), str) or not config[k]]
    if missing:
        raise ImproperlyConfigured(f"settings.SIGNOFF lacks {', '.join(missing)} (signoff's URL, a registered client)")
    unknown = set(config) - {"URL", "CLIENT_ID", "CLIENT_SECRET", "STALE_AFTER", "ISSUER", "AUDIENCE"}
    if unknown:
        raise ImproperlyConfigured(f"settings.SIGNOFF has unknown keys: {', '.join(sorted(unknown))}")
    options: dict[str, Any] = {
        "url": config["URL"],
        "client_id": config["CLIENT_ID"],
        "client_secret": config["CLIENT_SECRET"],
        "issuer": config.get("ISSUER"),
        "audience": config.get("AUDIENCE"),
    }
    if "STALE_AFTER" in config:
        try:
            options["stale_after"] = stale_after_seconds(config["STALE_AFTER"], "settings.SIGNOFF STALE_AFTER")
        except ValueError as e:
            raise ImproperlyConfigured(str(e)) from None
    return options


def _response(answer: Answer) -> HttpResponse:
    if answer.body is None:
        response = HttpResponse(status=answer.status)
    else:
        response = JsonResponse(answer.body, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response


class SignoffMiddleware:
    """Sets ``request.signoff`` to the claims of the request's bearer token, or None; when
    None, ``request.signoff_error`` is the ``VerifyError`` saying why (``signoff_required``
    answers with it). It refuses nothing itself: views without the decorator are served."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.verifier = verifier()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.signoff = None
        request.signoff_error = None
        try:
            token = bearer_token(request.headers.get("Authorization"))
            request.signoff = self.verifier.verify(token)
        except VerifyError as e:
            request.signoff_error = e
        except Exception as e:
            request.signoff_error = unexpected(e)
        return self.get_response(request)


def signoff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Serves the view only to a request with a valid token: otherwise 401 (missing, invalid or
    revoked; ``WWW-Authenticate: Bearer error="invalid_token"``) or 503 while the verifier is
    stale (``Retry-After: 1``), with ``{"error": code, "message": ...}``. Sync views only."""
    _refuse_async(view, "signoff_required")

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not hasattr(request, "signoff"):
            raise ImproperlyConfigured("signoff_required needs signoff_verify.django.SignoffMiddleware in MIDDLEWARE")
        if request.signoff is None:
            return _response(refused(request.signoff_error))
        return view(request, *args, **kwargs)

    return wrapped


def _refuse_async(handler: Callable[..., Any], taker: str) -> None:
    """A coroutine function here would never be awaited (Django calls these synchronously):
    refused when it is wrapped, at start, rather than at each request."""
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
        raise TypeError(f"{taker} takes a sync function: async ones are not supported with Django here")


def _run(handler: Callable[..., object], *args: Any) -> None:
    """Runs a handler. An awaitable it returns (a lambda returning a coroutine) would never
    run: that is the handler failing (503, logged, not marked handled: signoff retries)."""
    result = handler(*args)
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()  # no "never awaited" warning besides the error
        raise TypeError(f"{handler!r} returned an awaitable: Django's receivers take sync handlers")


def _body(request: HttpRequest) -> bytes:
    if too_large(request.META.get("CONTENT_LENGTH")):
        raise ReceiveError("invalid", "body too large")
    body = request.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise ReceiveError("invalid", "body too large")
    return body


def backchannel_logout_view(
    on_logout: Callable[[Logout], object],
    *,
    url: str,
    client_id: str,
    issuer: Optional[str] = None,
) -> Callable[[HttpRequest], HttpResponse]:
    """A view for the client's ``backchannel_logout_uri``. Calls ``on_logout(logout)`` once per
    logout token (end your own sessions for ``logout.sid`` there); answers 200 when done or for
    a repeat, 400 for a token that does not verify, 503 if ``on_logout`` raised or the key set
    cannot be had (signoff retries). ``on_logout`` is a sync function (``TypeError``
    otherwise)."""
    _refuse_async(on_logout, "backchannel_logout_view")
    verify = LogoutTokenVerifier(url, client_id, issuer=issuer)
    seen = Seen()

    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> HttpResponse:
        try:
            claims = verify(logout_token_of(request.content_type, _body(request)))
            if not seen.has(claims["jti"]):
                _run(on_logout, Logout(claims["sid"], claims["jti"], claims.get("sub"), claims))
                seen.add(claims["jti"])
            return _response(handled(200))
        except Exception as e:
            return _response(receiver_refused(e))

    return view


def webhook_view(
    on_event: Callable[[dict[str, Any], str], object],
    *,
    secrets: Union[str, Iterable[str]],
    tolerance: float = 300,
) -> Callable[[HttpRequest], HttpResponse]:
    """A view for the client's ``webhook_url``. Calls ``on_event(event, webhook_id)`` once per
    ``webhook-id`` with the verified ``{"type", "timestamp", "data"}``; answers 204 when done or
    for a repeat, 400 for one that does not verify, 503 if ``on_event`` raised (signoff
    retries). ``secrets``: the client's ``webhook_secret``, or both during a rotation, checked
    here (``ValueError``). ``on_event`` is a sync function (``TypeError`` otherwise)."""
    _refuse_async(on_event, "webhook_view")
    verify = WebhookVerifier(secrets, tolerance=tolerance)
    seen = Seen()

    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> HttpResponse:
        try:
            event = verify(request.headers, _body(request))
            id_ = request.headers["webhook-id"]
            if not seen.has(id_):
                _run(on_event, event, id_)
                seen.add(id_)
            return _response(handled(204))
        except Exception as e:
            return _response(receiver_refused(e))

    return view
