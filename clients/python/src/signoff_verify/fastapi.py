"""FastAPI glue: a dependency that verifies the request's bearer token, and endpoints receiving
signoff's logout notifications.

(No ``from __future__ import annotations`` here: FastAPI reads the annotations of the
dependency and the endpoints at run time.)
"""

import inspect
from typing import Any, Awaitable, Callable, Iterable, Optional, Union

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

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
from .verifier import Verifier, VerifyError

Endpoint = Callable[[Request], Awaitable[Response]]


class SignoffBearer:
    """A dependency giving the claims of the request's bearer token, or raising
    ``HTTPException``: 401 for a missing, invalid or revoked token (``WWW-Authenticate: Bearer
    error="invalid_token"``), 503 while the verifier is stale (``Retry-After: 1``); the
    ``detail`` is ``{"error": code, "message": ...}``.

    ``__call__`` is synchronous on purpose: FastAPI runs it in its thread pool, and ``verify``
    may block on signoff's key set."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier

    def __call__(self, request: Request) -> dict[str, Any]:
        try:
            return self.verifier.verify(bearer_token(request.headers.get("authorization")))
        except VerifyError as e:
            answer = refused(e)
        except Exception as e:
            answer = refused(unexpected(e))
        raise HTTPException(answer.status, detail=answer.body, headers=answer.headers)


def _response(answer: Answer) -> Response:
    if answer.body is None:
        return Response(status_code=answer.status, headers=answer.headers)
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


async def _body(request: Request) -> bytes:
    if too_large(request.headers.get("content-length")):
        raise ReceiveError("invalid", "body too large")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ReceiveError("invalid", "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _run(handler: Callable[..., Any], *args: Any) -> None:
    """Runs a handler: an ``async def`` function here, any other in the thread pool; and awaits
    what it returns if that is awaitable (an object with an ``async def __call__``, a lambda
    returning a coroutine): left un-awaited, the handler would not have run, and the
    notification would be answered as handled all the same."""
    if inspect.iscoroutinefunction(handler):
        result = handler(*args)
    else:
        result = await run_in_threadpool(handler, *args)
    if inspect.isawaitable(result):
        await result


def logout_receiver(
    on_logout: Callable[[Logout], Any],
    *,
    url: str,
    client_id: str,
    issuer: Optional[str] = None,
) -> Endpoint:
    """An endpoint for the client's ``backchannel_logout_uri``
    (``app.add_api_route(path, logout_receiver(...), methods=["POST"])``). Calls
    ``on_logout(logout)`` (sync or async) once per logout token; answers 200 when done or for a
    repeat, 400 for a token that does not verify, 503 if ``on_logout`` raised or the key set
    cannot be had (signoff retries)."""
    verify = LogoutTokenVerifier(url, client_id, issuer=issuer)
    seen = Seen()

    async def endpoint(request: Request) -> Response:
        try:
            token = logout_token_of(request.headers.get("content-type"), await _body(request))
            claims = await run_in_threadpool(verify, token)
            if not seen.has(claims["jti"]):
                await _run(on_logout, Logout(claims["sid"], claims["jti"], claims.get("sub"), claims))
                seen.add(claims["jti"])
            return _response(handled(200))
        except Exception as e:
            return _response(receiver_refused(e))

    return endpoint


def webhook_receiver(
    on_event: Callable[[dict[str, Any], str], Any],
    *,
    secrets: Union[str, Iterable[str]],
    tolerance: float = 300,
) -> Endpoint:
    """An endpoint for the client's ``webhook_url``. Calls ``on_event(event, webhook_id)`` (sync
    or async) once per ``webhook-id`` with the verified ``{"type", "timestamp", "data"}``;
    answers 204 when done or for a repeat, 400 for one that does not verify, 503 if
    ``on_event`` raised (signoff retries). ``secrets``: the client's ``webhook_secret``, or both
    during a rotation, checked here (``ValueError``)."""
    verify = WebhookVerifier(secrets, tolerance=tolerance)
    seen = Seen()

    async def endpoint(request: Request) -> Response:
        try:
            event = verify(request.headers, await _body(request))
            id_ = request.headers["webhook-id"]
            if not seen.has(id_):
                await _run(on_event, event, id_)
                seen.add(id_)
            return _response(handled(204))
        except Exception as e:
            return _response(receiver_refused(e))

    return endpoint
