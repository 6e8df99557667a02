"""The example Django and FastAPI apps (run as their README says) against a real signoff: a
valid token passes, a revoked one is refused (within milliseconds: see the revocation test), a
missing or garbage one gets 401, and while signoff is paused past the staleness budget every
token gets 503."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import FRAMEWORKS, Reply, World, claims_of

# The examples' STALE_AFTER.
BUDGET = 3.0


def error_of(reply: Reply) -> Any:
    """The error code of a refusal: Django answers {"error", "message"}; FastAPI's
    HTTPException puts that object under "detail"."""
    body = reply.json()
    return body.get("detail", body)["error"]


def assert_unauthorized(reply: Reply, code: str) -> None:
    assert reply.status == 401, reply.body
    assert reply.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert reply.headers["cache-control"] == "no-store"
    assert error_of(reply) == code


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_valid_token_passes_and_a_revoked_one_is_refused(
    bearer_world: World, framework: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """signoff answers the revocation and pushes it down the feed independently: the app
    usually has it before the next request arrives, but not always (the feed event may follow
    the answer by a few milliseconds). Each round asks right after the answer, then until
    refused; how many were refused at once, and the longest wait, are printed."""
    s, app = bearer_world.signoff, bearer_world.apps[(framework, "EdDSA")].app
    email = f"bearer-{framework}@example.com"
    s.user(email)
    rt = s.grant(email)["refresh_token"]
    rounds, at_once, lags = 20, 0, []
    for _ in range(rounds):
        pair = s.refresh(rt)
        rt = pair["refresh_token"]
        r = app.whoami(pair["access_token"])
        assert r.status == 200, r.body
        assert r.json() == {"sub": claims_of(pair["access_token"])["sub"]}
        assert s.post("/auth/revoke", {"token": pair["access_token"]}).status == 200
        answered = time.monotonic()
        r = app.whoami(pair["access_token"])
        at_once += r.status == 401
        while r.status == 200 and time.monotonic() - answered < 1:
            r = app.whoami(pair["access_token"])
        lags.append((time.monotonic() - answered) * 1000)
        assert_unauthorized(r, "revoked")
    with capsys.disabled():
        print(
            f"\n{framework} app: revoked token refused on the very next request in {at_once}/{rounds} rounds,"
            f" every one within {max(lags):.1f} ms of the revoke response"
        )


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_missing_or_garbage_token_gets_401(bearer_world: World, framework: str) -> None:
    app = bearer_world.apps[(framework, "EdDSA")].app
    assert_unauthorized(app.whoami(None), "invalid_token")
    assert_unauthorized(app.whoami("garbage"), "invalid_token")
    assert_unauthorized(app.whoami("eyJhbGciOiJub25lIn0.e30."), "invalid_token")


def test_while_signoff_is_paused_the_apps_answer_503_then_200_once_it_resumes(
    bearer_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    s = bearer_world.signoff
    s.user("stop@example.com")
    token = s.grant("stop@example.com")["access_token"]
    apps = {f: bearer_world.apps[(f, "EdDSA")].app for f in FRAMEWORKS}
    for app in apps.values():
        assert app.whoami(token).status == 200
    stale_after: dict[str, float] = {}
    s.pause()
    try:
        stopped = time.monotonic()
        deadline = stopped + BUDGET + 5
        while len(stale_after) < len(apps) and time.monotonic() < deadline:
            for framework, app in apps.items():
                if framework not in stale_after:
                    r = app.whoami(token)
                    if r.status == 503:
                        stale_after[framework] = time.monotonic() - stopped
                        assert r.headers["retry-after"] == "1"
                        assert r.headers["cache-control"] == "no-store"
                        assert error_of(r) == "stale"
                    else:
                        assert r.status == 200, r.body
            time.sleep(0.05)
        assert set(stale_after) == set(apps), f"still accepting {BUDGET + 5} s after the pause: {stale_after}"
        for framework, after in stale_after.items():
            # The last heartbeat came up to 1 s before the pause.
            assert BUDGET - 1.1 <= after <= BUDGET + 0.5, f"{framework}: refused after {after:.2f} s"
        time.sleep(1)
        for app in apps.values():
            assert app.whoami(token).status == 503, "still stale while the feed is silent"
    finally:
        s.resume()
    resumed = time.monotonic()
    for framework, app in apps.items():
        deadline = resumed + 10
        while (r := app.whoami(token)).status != 200:
            assert r.status == 503, r.body
            assert time.monotonic() < deadline, f"{framework}: still 503 10 s after signoff resumed"
            time.sleep(0.05)
    with capsys.disabled():
        took = ", ".join(f"{f} {t:.2f} s" for f, t in stale_after.items())
        print(f"\napps: signoff paused -> 503 after {took}; resumed -> 200 after {time.monotonic() - resumed:.3f} s")
