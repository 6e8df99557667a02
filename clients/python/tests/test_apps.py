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
    """signoff answers a revocation once its feed streams have sent it, and the verifier applies
    what its stream has received before it judges a token: the very next request after the
    answer is refused, in every round."""
    s, app = bearer_world.signoff, bearer_world.apps[(framework, "EdDSA")].app
    email = f"bearer-{framework}@example.com"
    s.user(email)
    rt = s.grant(email)["refresh_token"]
    rounds, answered_in = 50, []
    for i in range(rounds):
        pair = s.refresh(rt)
        rt = pair["refresh_token"]
        r = app.whoami(pair["access_token"])
        assert r.status == 200, r.body
        assert r.json() == {"sub": claims_of(pair["access_token"])["sub"]}
        asked = time.monotonic()
        assert s.post("/auth/revoke", {"token": pair["access_token"]}).status == 200
        answered_in.append((time.monotonic() - asked) * 1000)
        r = app.whoami(pair["access_token"])
        assert r.status == 401, f"round {i + 1}: the request right after the revocation was answered {r.status}"
        assert_unauthorized(r, "revoked")
    answered_in.sort()
    with capsys.disabled():
        print(
            f"\n{framework} app: the revoked token refused on the very next request in {rounds}/{rounds} rounds;"
            f" revocation answered in {answered_in[rounds // 2]:.1f} ms (median), {answered_in[-1]:.1f} ms (slowest)"
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
