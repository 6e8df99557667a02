"""The verifier against a real ``signoff serve``: revocations of every kind reach it, it resumes
the feed where it left off, refuses withdrawn keys, learns what to expect, fails closed, and
follows the feed anew in a forked child."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable, Iterator

import pytest
from conftest import ADMIN, Relay, Signoff, claims_of, header_of, request, until

from signoff_verify import Verifier, VerifyError


@pytest.fixture
def verifiers() -> Iterator[Callable[..., Verifier]]:
    """Makes verifiers; each is closed after the test."""
    made: list[Verifier] = []

    def make(url: str, client: dict[str, Any], **options: Any) -> Verifier:
        v = Verifier(url, client["client_id"], client["client_secret"], **options)
        made.append(v)
        return v

    yield make
    for v in made:
        v.close()


def code_of(v: Verifier, token: str) -> str:
    try:
        v.verify(token)
        return "ok"
    except VerifyError as e:
        return e.code


def wait_for(v: Verifier, token: str, code: str, limit: float) -> bool:
    """Polls ``verify`` until it gives ``code`` (True) or ``limit`` seconds pass (False)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if code_of(v, token) == code:
            return True
        time.sleep(0)
    return False


def pct(ordered: list[float], p: float) -> float:
    return ordered[round((len(ordered) - 1) * p)]


def test_a_revoked_token_is_refused_within_milliseconds_of_the_revoke_response(
    start_signoff: Callable[..., Signoff], verifiers: Callable[..., Verifier], capsys: pytest.CaptureFixture[str]
) -> None:
    s = start_signoff()
    s.user("lat@example.com")
    v = verifiers(s.base, s.client(), stale_after=10)
    rt = s.grant("lat@example.com")["refresh_token"]
    lags = []
    rounds = 200
    for n in range(rounds):
        pair = s.refresh(rt)
        rt = pair["refresh_token"]
        assert code_of(v, pair["access_token"]) == "ok", f"round {n}"
        assert s.post("/auth/revoke", {"token": pair["access_token"]}).status == 200
        answered = time.perf_counter()
        assert wait_for(v, pair["access_token"], "revoked", 2), f"round {n}: accepted 2 s after the revoke"
        lags.append((time.perf_counter() - answered) * 1000)
    lags.sort()
    p50, p99, top = pct(lags, 0.5), pct(lags, 0.99), lags[-1]
    with capsys.disabled():
        print(
            f"\npython verifier: revoke response -> refused, {rounds} revocations:"
            f" p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {top:.3f} ms"
        )
    assert p99 < 100, f"p99 {p99} ms"
    assert v.held() >= rounds
    v.close()
    assert code_of(v, pair["access_token"]) == "stale", "a closed verifier trusts nothing"


def test_a_session_end_and_a_token_version_bump_kill_their_tokens(
    start_signoff: Callable[..., Signoff], verifiers: Callable[..., Verifier]
) -> None:
    s = start_signoff()
    s.user("kill@example.com")
    v = verifiers(s.base, s.client(), stale_after=10)
    first = s.grant("kill@example.com")
    second = s.refresh(first["refresh_token"])
    claims = v.verify(second["access_token"])
    assert claims["sub"] == claims_of(second["access_token"])["sub"]
    assert s.post("/auth/logout", {}, first["access_token"]).status == 200
    assert wait_for(v, second["access_token"], "revoked", 1), "the session ended: its other token dies by sid"

    third = s.grant("kill@example.com")
    assert code_of(v, third["access_token"]) == "ok"
    assert s.post(f"/admin/users/{claims['sub']}/revoke", {"reason": "t"}, ADMIN).status == 200
    assert wait_for(v, third["access_token"], "revoked", 1), "the token version moved on"
    fresh = s.grant("kill@example.com")["access_token"]
    assert claims_of(fresh)["tv"] > claims_of(third["access_token"])["tv"]
    assert code_of(v, fresh) == "ok", "a token issued after the bump lives"
    # A character in the middle of the signature (the last one carries unused bits that
    # lenient base64 decoders ignore).
    at = len(fresh) - 20
    forged = fresh[:at] + ("B" if fresh[at] == "A" else "A") + fresh[at + 1 :]
    assert code_of(v, forged) == "invalid_token"
    assert code_of(v, "not.a.token") == "invalid_token"
    assert code_of(v, "x" * 5000) == "invalid_token"


def test_a_withdrawn_signing_key_is_refused_at_once_a_rotated_one_keeps_verifying(
    start_signoff: Callable[..., Signoff], verifiers: Callable[..., Verifier]
) -> None:
    s = start_signoff()
    s.user("keys@example.com")
    v = verifiers(s.base, s.client(), stale_after=10)
    old = s.grant("keys@example.com")["access_token"]
    assert code_of(v, old) == "ok"
    new_kid = s.cli("keys", "rotate")["kid"]

    # The server reads the CLI's rotation from the feed within its poll.
    def signed_with_the_new_key() -> Any:
        token = s.grant("keys@example.com")["access_token"]
        return token if header_of(token)["kid"] == new_kid else None

    fresh = until(signed_with_the_new_key, 5, "the server signing with the new key", interval=0.05)
    assert wait_for(v, fresh, "ok", 2), "a token of the new key is accepted (the key set refetched)"
    assert code_of(v, old) == "ok", "a rotated key still verifies its tokens"
    s.cli("keys", "revoke", header_of(old)["kid"])
    assert wait_for(v, old, "invalid_token", 2), "the withdrawn key is refused"
    assert code_of(v, fresh) == "ok"


def test_the_feed_is_resumed_by_last_event_id_without_a_replay(
    start_signoff: Callable[..., Signoff], verifiers: Callable[..., Verifier]
) -> None:
    s = start_signoff()
    s.user("resume@example.com")
    port = int(s.base.rsplit(":", 1)[1])
    relay = Relay(("127.0.0.1", port))
    try:
        v = verifiers(relay.base, s.client(), stale_after=10)
        before = s.grant("resume@example.com")["access_token"]
        assert s.post("/auth/revoke", {"token": before}).status == 200
        assert wait_for(v, before, "revoked", 1)
        ((first_request, first_answer),) = relay.streams()
        assert "last-event-id" not in first_request.lower()
        assert ": reset" in first_answer, "a first connection gets the whole state"
        position = int(first_answer.rsplit("\nid: ", 1)[1].split("\n", 1)[0])

        # The connection drops; a revocation happens meanwhile.
        relay.refuse = True
        relay.cut()
        during = s.grant("resume@example.com")["access_token"]
        assert s.post("/auth/revoke", {"token": during}).status == 200
        relay.refuse = False
        until(lambda: len(relay.streams()) == 2 and ": current" in relay.streams()[1][1], 5, "the reconnection")
        second_request, second_answer = relay.streams()[1]
        assert f"last-event-id: {position}\r\n" in second_request.lower()
        assert ": reset" not in second_answer, "resumed, not restarted"
        ids = [int(line[4:]) for line in second_answer.split("\n") if line.startswith("id: ")]
        assert ids and min(ids) > position, f"only what came after {position}: {ids}"
        # (The relay records an answer before passing it on: the verifier may read it a moment later.)
        assert wait_for(v, during, "revoked", 1), "the revocation made while disconnected"
        assert code_of(v, before) == "revoked", "what was held before is kept"
    finally:
        relay.stop()


def test_the_key_set_out_of_reach_is_no_verdict(
    start_signoff: Callable[..., Signoff], verifiers: Callable[..., Verifier]
) -> None:
    s = start_signoff()
    s.user("jwks@example.com")
    port = int(s.base.rsplit(":", 1)[1])
    relay = Relay(("127.0.0.1", port))
    try:
        v = verifiers(relay.base, s.client(), stale_after=10)
        token = s.grant("jwks@example.com")["access_token"]
        assert code_of(v, token) == "ok"
        # The stream goes on; new requests (the key set's) find nobody. signoff signs with a
        # new key: the feed tells, and the key set cannot be fetched.
        relay.refuse = True
        new_kid = s.cli("keys", "rotate")["kid"]

        def signed_with_the_new_key() -> Any:
            fresh = s.grant("jwks@example.com")["access_token"]
            return fresh if header_of(fresh)["kid"] == new_kid else None

        fresh = until(signed_with_the_new_key, 5, "the server signing with the new key", interval=0.05)
        assert wait_for(v, fresh, "stale", 3), "told of a new key: no verdict without the key set"
        with pytest.raises(VerifyError) as e:
            v.verify(fresh)
        assert (e.value.code, str(e.value)) == ("stale", "the signing keys cannot be fetched")
        assert code_of(v, token) == "ok", "the keys in hand still serve"
        relay.refuse = False
        assert wait_for(v, fresh, "ok", 3)
    finally:
        relay.stop()


def test_close_stops_the_feed_promptly_and_refuses_everything_after(
    start_signoff: Callable[..., Signoff], verifiers: Callable[..., Verifier]
) -> None:
    s = start_signoff()
    s.user("close@example.com")
    with verifiers(s.base, s.client()) as v:
        token = s.grant("close@example.com")["access_token"]
        assert code_of(v, token) == "ok"
        started = time.monotonic()
        v.close()
        took = time.monotonic() - started
    assert took < 0.5, f"close() took {took:.3f} s (the feed's read was not interrupted)"
    assert not any(t.name == "signoff-verify-feed" and t.is_alive() for t in __import__("threading").enumerate())
    assert code_of(v, token) == "stale"


def test_issuer_and_audience_are_learned_and_a_mismatch_names_both(
    start_signoff: Callable[..., Signoff], verifiers: Callable[..., Verifier], caplog: pytest.LogCaptureFixture
) -> None:
    s = start_signoff(SIGNOFF_TOKEN_AUDIENCE="orders-api")
    meta = request("GET", f"{s.base}/.well-known/signoff-configuration").json()
    assert (meta["issuer"], meta["token_audience"]) == (s.public, "orders-api")
    s.user("learn@example.com")
    client = s.client()
    token = s.grant("learn@example.com")["access_token"]
    claims = verifiers(s.base, client).verify(token)
    assert (claims["iss"], claims["aud"]) == (s.public, "orders-api")

    wrong_iss = verifiers(s.base, client, issuer=s.base)
    with pytest.raises(VerifyError) as e:
        wrong_iss.verify(token)
    assert (e.value.code, e.value.claim, e.value.found, e.value.expected) == ("invalid_token", "iss", s.public, s.base)
    assert s.public in str(e.value) and s.base in str(e.value)
    wrong_aud = verifiers(s.base, client, audience=s.public)
    caplog.clear()
    for _ in range(3):
        with pytest.raises(VerifyError) as e:
            wrong_aud.verify(token)
        assert (e.value.code, e.value.claim, e.value.found, e.value.expected) == (
            "invalid_token",
            "aud",
            "orders-api",
            s.public,
        )
    warnings = [r for r in caplog.records if r.name == "signoff_verify" and "refused a token" in r.getMessage()]
    assert len(warnings) == 1, "warned once per distinct mismatch"


def test_an_issuer_that_the_expected_one_merely_starts_with_is_refused(
    start_signoff: Callable[..., Signoff], verifiers: Callable[..., Verifier]
) -> None:
    """A token of signoff, signed with its real key, for a verifier expecting a longer issuer:
    PyJWT 2.10.0 took an ``iss`` found inside the issuer expected (CVE-2024-53861)."""
    s = start_signoff()
    s.user("cve@example.com")
    token = s.grant("cve@example.com")["access_token"]
    longer = verifiers(s.base, s.client(), issuer=s.public + "/tenant")
    with pytest.raises(VerifyError) as e:
        longer.verify(token)
    assert (e.value.code, e.value.claim, e.value.found, e.value.expected) == (
        "invalid_token",
        "iss",
        s.public,
        s.public + "/tenant",
    )


# What went wrong in the forked child, by its exit code.
IN_CHILD = {
    1: "the token was refused",
    2: "signoff did not revoke",
    3: "the revocation made in the child did not reach its verifier",
    4: "the child's verifier went stale: no feed followed there",
    5: "an exception",
}


def in_child(v: Verifier, s: Signoff, kept: str, doomed: str) -> int:
    """What a worker forked from a master that made the verifier (gunicorn --preload) does; an
    exit code of IN_CHILD."""
    try:
        if code_of(v, kept) != "ok":
            return 1
        if s.post("/auth/revoke", {"token": doomed}).status != 200:
            return 2
        if not wait_for(v, doomed, "revoked", 3):
            return 3
        time.sleep(2)  # past stale_after since the fork: only a feed followed here keeps it fresh
        return 0 if code_of(v, kept) == "ok" else 4
    except BaseException:
        return 5


def reap(pid: int, timeout: float) -> int:
    """The exit code of the child ``pid``; killed and failed past ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child still ran after {timeout} s (a lock inherited held?)")


def test_a_verifier_made_before_a_fork_follows_the_feed_in_the_child(
    start_signoff: Callable[..., Signoff], verifiers: Callable[..., Verifier]
) -> None:
    s = start_signoff()
    s.user("fork@example.com")
    v = verifiers(s.base, s.client(), stale_after=1.5)
    kept, doomed = (s.grant("fork@example.com")["access_token"] for _ in range(2))
    assert code_of(v, kept) == "ok" and code_of(v, doomed) == "ok"
    # At the fork, a thread the child will not have holds the lock of the feed's state.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with v._feed._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:
        status = 5
        try:
            status = in_child(v, s, kept, doomed)
        finally:
            os._exit(status)
    release.set()
    holder.join()
    status = reap(pid, 20)
    assert status == 0, IN_CHILD.get(status, status)
    assert wait_for(v, doomed, "revoked", 2), "the parent hears of it on its own feed"
    assert code_of(v, kept) == "ok", "and goes on"
