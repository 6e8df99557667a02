"""The example apps' receivers against what a real signoff delivers: back-channel logout tokens
signed RS256, ES256 and EdDSA (a client each, per framework) and Standard Webhooks, checked here
and by the reference package (``standardwebhooks``) both ways."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

import pytest
from conftest import (
    ALGORITHMS,
    FRAMEWORKS,
    HOOKS,
    LOGOUT,
    Deployed,
    World,
    claims_of,
    delivered,
    header_of,
    request,
    until,
)
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from signoff_verify import ReceiveError, verify_webhook

APPS = [(f, a) for f in FRAMEWORKS for a in ALGORITHMS]


def post(d: Deployed, path: str, body: bytes, headers: dict[str, str]) -> Any:
    return request("POST", d.app.base + path, body=body, headers=headers)


def form(token: str) -> bytes:
    return f"logout_token={token}".encode()


FORM = {"content-type": "application/x-www-form-urlencoded"}


def handled(d: Deployed, via: str, sid: str) -> list[dict[str, Any]]:
    return [r for r in d.app.received() if r["via"] == via and r["sid"] == sid]


@pytest.mark.parametrize("framework,alg", APPS)
def test_the_logout_token_reaches_the_handler_once(
    receiver_world: World, logout: dict[str, Any], framework: str, alg: str
) -> None:
    d = receiver_world.apps[(framework, alg)]
    sid = logout["sid"]
    (record,) = handled(d, "backchannel", sid)
    assert (record["sid"], record["sub"]) == (sid, logout["sub"])
    x = delivered(receiver_world, d, LOGOUT, sid)
    assert x.status == 200 and x.headers["content-type"] == "application/x-www-form-urlencoded"
    token = parse_qs(x.body.decode())["logout_token"][0]
    assert header_of(token)["alg"] == alg, "signed as the client registered"
    assert header_of(token)["typ"] == "logout+jwt"
    claims = claims_of(token)
    assert (claims["aud"], claims["jti"], claims["iss"]) == (
        d.client["client_id"],
        record["jti"],
        receiver_world.signoff.public,
    )

    def recorded_delivered() -> list[dict[str, Any]]:
        mine = [
            x
            for x in receiver_world.signoff.deliveries(d.client["client_id"])
            if x["event"] in ("backchannel_logout", "session.ended")
        ]
        return mine if len(mine) == 2 and all(x["status"] == "delivered" for x in mine) else []

    by_kind = {x["kind"]: x for x in until(recorded_delivered, 5, "signoff recording both deliveries")}
    assert by_kind["backchannel_logout"]["last_status_code"] == 200
    assert by_kind["webhook"]["last_status_code"] == 204
    assert by_kind["backchannel_logout"]["attempts"] == 1 and by_kind["backchannel_logout"]["last_error"] is None


@pytest.mark.parametrize("framework,alg", APPS)
def test_a_replayed_logout_token_is_200_once_handled_and_an_altered_or_foreign_one_is_400(
    receiver_world: World, logout: dict[str, Any], framework: str, alg: str
) -> None:
    d = receiver_world.apps[(framework, alg)]
    sid = logout["sid"]
    token = parse_qs(delivered(receiver_world, d, LOGOUT, sid).body.decode())["logout_token"][0]
    r = post(d, LOGOUT, form(token), FORM)
    assert r.status == 200 and r.headers["cache-control"] == "no-store"
    assert len(handled(d, "backchannel", sid)) == 1, "a repeat does not run the handler again"

    head, payload, signature = token.split(".")
    at = len(signature) // 2
    forged = f"{head}.{payload}.{signature[:at]}{'B' if signature[at] == 'A' else 'A'}{signature[at + 1 :]}"
    other = receiver_world.apps[(framework, ALGORITHMS[(ALGORITHMS.index(alg) + 1) % len(ALGORITHMS)])]
    foreign = parse_qs(delivered(receiver_world, other, LOGOUT, sid).body.decode())["logout_token"][0]
    for body, headers, why in (
        (form(forged), FORM, "Signature verification failed"),
        (form(logout["access_token"]), FORM, "not a logout token (typ)"),
        (form(foreign), FORM, f'aud is "{other.client["client_id"]}", this receiver expects "{d.client["client_id"]}"'),
        (form(token), {"content-type": "application/json"}, "not a form"),
        (b"logout_token=", FORM, "no logout token"),
        (form("a" * 70_000), FORM, "too large"),
    ):
        r = post(d, LOGOUT, body, headers)
        assert r.status == 400, (why, r.body)
        assert r.json()["error"] == "invalid_request"
        assert why in r.json()["error_description"], r.json()
    assert len(handled(d, "backchannel", sid)) == 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_real_webhook_verifies_here_and_with_the_reference_package_and_repeats_run_once(
    receiver_world: World, logout: dict[str, Any], framework: str
) -> None:
    d = receiver_world.apps[(framework, "EdDSA")]
    secret = d.client["webhook_secret"]
    sid = logout["sid"]
    x = delivered(receiver_world, d, HOOKS, sid)
    assert x.status == 204
    (record,) = handled(d, "webhook", sid)
    assert record["id"] == x.headers["webhook-id"]
    event = json.loads(x.body)
    assert event["data"] == {"user_id": logout["sub"], "session_id": sid, "reason": "logout"}
    # Theirs verifies what was received; so does ours; both refuse it altered.
    assert Webhook(secret).verify(x.body, x.headers) == event
    assert verify_webhook(secret, x.headers, x.body) == event
    altered = x.body.replace(b"logout", b"lagout")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(altered, x.headers)
    with pytest.raises(ReceiveError):
        verify_webhook(secret, x.headers, altered)

    sent = {k: v for k, v in x.headers.items() if k.startswith("webhook-") or k == "content-type"}
    r = post(d, HOOKS, x.body, sent)
    assert r.status == 204, r.body
    assert len(handled(d, "webhook", sid)) == 1, "a repeat does not run the handler again"
    r = post(d, HOOKS, altered, sent)
    assert r.status == 400 and r.json()["error"] == "invalid_request", r.body
    assert len(handled(d, "webhook", sid)) == 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_webhook_the_reference_package_signs_is_accepted_once(receiver_world: World, framework: str) -> None:
    d = receiver_world.apps[(framework, "EdDSA")]
    reference = Webhook(d.client["webhook_secret"])
    sid = f"ref-{framework}-{time.time_ns()}"
    body = json.dumps(
        {
            "type": "session.ended",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {"user_id": "u", "session_id": sid, "reason": "logout"},
        }
    )
    at = datetime.now(timezone.utc)
    id_ = f"msg_ref_{framework}"
    headers = {
        "content-type": "application/json",
        "webhook-id": id_,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": reference.sign(id_, at, body),
    }
    assert verify_webhook(d.client["webhook_secret"], headers, body) == json.loads(body)
    for _ in range(2):
        r = post(d, HOOKS, body.encode(), headers)
        assert r.status == 204, r.body
    assert [r["id"] for r in handled(d, "webhook", sid)] == [id_], "handled once"
    stale = {**headers, "webhook-timestamp": str(int(at.timestamp()) - 600)}
    stale["webhook-signature"] = reference.sign(
        id_ + "x", datetime.fromtimestamp(int(at.timestamp()) - 600, timezone.utc), body
    )
    stale["webhook-id"] = id_ + "x"
    r = post(d, HOOKS, body.encode(), stale)
    assert r.status == 400 and "tolerance" in r.json()["error_description"]
    unsigned = {k: v for k, v in headers.items() if k != "webhook-signature"}
    assert post(d, HOOKS, body.encode(), unsigned).status == 400
    assert len(handled(d, "webhook", sid)) == 1
