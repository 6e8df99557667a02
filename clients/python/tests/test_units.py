"""The parts that need no signoff: the frame parser and the feed's state machine, the Basic
credentials, the bearer header, the key cache, the receivers' memory, webhooks, the options, and
the claim rules of access and logout tokens (on tokens signed here)."""

from __future__ import annotations

import base64
import json
import math
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import jwt
import pytest
from conftest import free_port, sign
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff_verify import LogoutTokenVerifier, ReceiveError, Verifier, WebhookVerifier, parse_frames, verify_webhook
from signoff_verify._feed import RESET, FeedState, Frame, KeyChange, UnreadableEvent, basic_auth
from signoff_verify._http import Base, Unreachable
from signoff_verify._jwks import KeySet, KeysUnavailable
from signoff_verify._web import Seen, bearer_token, logout_token_of
from signoff_verify.verifier import VerifyError


def test_frames_are_split_comments_and_revocation_events_only() -> None:
    frames, rest = parse_frames(
        ': reset 3\n\nid: 3\nevent: revocation\ndata: {"seq":3}\n\nevent: other\ndata: x\n\n: cur'
    )
    assert frames == [Frame(comment="reset 3"), Frame(id="3", data='{"seq":3}')]
    assert rest == ": cur"
    # Data lines are joined; a line without a colon is passed over.
    frames, rest = parse_frames('id: 4\nevent: revocation\ndata: {"a":\ndata:1}\nnoise\n\n')
    assert frames == [Frame(id="4", data='{"a":1}')]
    assert rest == ""


def event(seq: int, body: dict[str, object]) -> Frame:
    return Frame(id=str(seq), data=json.dumps({"seq": seq, **body}))


def claims(jti: str = "x", sid: str = "x", sub: str = "x", tv: int = 0) -> dict[str, object]:
    return {"jti": jti, "sid": sid, "sub": sub, "tv": tv}


def test_a_reset_is_built_aside_and_swapped_in_at_current() -> None:
    state = FeedState()
    far = int(time.time()) + 3600
    text = (
        ": reset 7\n\n"
        f'id: 3\nevent: revocation\ndata: {{"seq":3,"type":"token","jti":"j","exp":{far}}}\n\n'
        'id: 5\nevent: revocation\ndata: {"seq":5,"type":"session","sid":"s","at":1}\n\n'
        'id: 6\nevent: revocation\ndata: {"seq":6,"type":"user","sub":"u","tv":3}\n\n'
        'id: 7\nevent: revocation\ndata: {"seq":7,"type":"brand-new"}\n\n: current\n\n: heart'
    )
    frames, rest = parse_frames(text)
    assert len(frames) == 6 and rest == ": heart"
    assert not state.fresh(5)
    assert state.frame(frames[0], 60, 10) == RESET == KeyChange(None), "the keys are in doubt"
    for f in frames[1:-1]:
        assert state.frame(f, 60, 10) is None
        assert not state.fresh(5), "not fresh before : current"
    assert state.frame(frames[-1], 60, 10) is None
    assert state.fresh(5)
    assert state.position == 7
    assert state.frame(event(8, {"type": "keys", "kid": "k1", "withdrawn": True}), 60, 10) == KeyChange("k1", True)
    assert state.frame(event(9, {"type": "keys", "kid": "k2", "withdrawn": False}), 60, 10) == KeyChange("k2", False)
    with pytest.raises(UnreadableEvent):
        state.frame(Frame(id="10", data="{not json"), 60, 10)
    with pytest.raises(UnreadableEvent, match="token"):
        state.frame(event(10, {"type": "token", "jti": 5, "exp": far}), 60, 10)
    assert state.position == 9, "an unreadable event moves nothing"
    assert state.revokes(claims(jti="j"))
    assert state.revokes(claims(sid="s"))
    assert state.revokes(claims(sub="u", tv=2))
    assert not state.revokes(claims(sub="u", tv=3)), "the current version lives"
    assert not state.revokes(claims())
    assert state.held() == 3
    # A new reset replaces the tables at ": current"; until then both count.
    for f in parse_frames(": reset 12\n\n")[0]:
        state.frame(f, 60, 10)
    assert state.position is None
    state.frame(event(12, {"type": "session", "sid": "t"}), 60, 10)
    assert state.revokes(claims(jti="j")) and state.revokes(claims(sid="t"))
    state.frame(Frame(comment="current"), 60, 10)
    assert not state.revokes(claims(jti="j")) and state.revokes(claims(sid="t"))


def test_an_event_without_a_type_is_unreadable_and_moves_nothing() -> None:
    state = FeedState()
    state.frame(Frame(comment="current"), 60, 10)
    state.frame(event(1, {"type": "session", "sid": "s"}), 60, 10)
    for body in ({}, {"type": None}, {"type": 5}):
        with pytest.raises(UnreadableEvent, match="without a type"):
            state.frame(event(2, body), 60, 10)
    assert state.position == 1, "the stream is given up and resumed from 1, the event not passed over"


def test_heartbeats_refresh_only_a_synced_stream_and_prune() -> None:
    state = FeedState()
    state.frame(Frame(comment="heartbeat"), 60, 10)
    assert not state.fresh(5), "a heartbeat before : current says nothing"
    state.frame(Frame(comment="current"), 60, 10)
    past = int(time.time()) - 11
    state.frame(event(1, {"type": "token", "jti": "old", "exp": past}), 60, 10)
    state.frame(event(2, {"type": "session", "sid": "s"}), 0.05, 10)
    assert state.held() == 2
    time.sleep(0.06)
    state.frame(Frame(comment="heartbeat"), 0.05, 10)
    assert state.held() == 0, "expired jti and sessions older than retain are dropped"
    assert state.fresh(0.05), "the heartbeat of a synced stream refreshes"
    state.disconnected()
    time.sleep(0.06)
    assert not state.fresh(0.05)
    state.frame(Frame(comment="heartbeat"), 60, 10)
    assert not state.fresh(0.05), "a heartbeat of a stream not caught up refreshes nothing"
    state.frame(event(3, {"type": "session", "sid": "t"}), 60, 10)
    assert not state.fresh(0.05), "nor does an event of it"
    state.frame(Frame(comment="current"), 60, 10)
    assert state.fresh(0.05)


def test_plain_http_is_warned_about_unless_on_loopback(caplog: pytest.LogCaptureFixture) -> None:
    for url in ("http://127.0.0.1:8080/", "http://localhost:8080", "http://[::1]:8080", "https://signoff.example"):
        Base.parse(url).warn_if_plain()
    assert not caplog.records
    Base.parse("http://signoff.internal:8080/").warn_if_plain()
    (record,) = caplog.records
    assert (record.name, record.levelname) == ("signoff_verify", "WARNING")
    assert "http://signoff.internal:8080 is plain http" in record.getMessage()
    for bad in ("ftp://signoff.example", "signoff.example", "http://h/?q=1"):
        with pytest.raises(ValueError):
            Base.parse(bad)


def test_a_url_with_a_user_or_password_is_refused_without_showing_it() -> None:
    for url in ("http://:hunter2@127.0.0.1:9", "http://u:hunter2@h", "http://hunter2@h", "hunter2:x@h", "http://u:@h"):
        with pytest.raises(ValueError, match="no user or password") as e:
            Base.parse(url)
        assert "hunter2" not in str(e.value)
    with pytest.raises(ValueError, match="no user or password"):
        Verifier("http://:hunter2@127.0.0.1:9", "id", "secret")
    assert Base.parse("http://h/p@x").path == "/p@x", "an @ in the path is no user"


def test_the_logout_token_verifier_warns_of_plain_http_too(caplog: pytest.LogCaptureFixture) -> None:
    LogoutTokenVerifier("http://127.0.0.1:9", "client")
    assert not caplog.records
    LogoutTokenVerifier("http://signoff.internal:9", "client")
    (record,) = caplog.records
    assert "http://signoff.internal:9 is plain http" in record.getMessage()


@pytest.mark.parametrize(
    "option,value",
    [
        ("stale_after", 0),
        ("stale_after", -1),
        ("stale_after", math.nan),
        ("stale_after", math.inf),
        ("stale_after", 3601),
        ("stale_after", True),
        ("stale_after", "3"),
        ("leeway", -1),
        ("leeway", math.nan),
        ("leeway", math.inf),
        ("retain", 0),
        ("retain", math.nan),
        ("retain", math.inf),
        ("jwks_cooldown", -0.5),
        ("jwks_cooldown", math.nan),
    ],
)
def test_a_verifier_option_out_of_range_is_refused_naming_it(option: str, value: Any) -> None:
    # Options are checked before the URL: one let through fails here on the URL at once, rather
    # than make a verifier that waits for its feed for as long as it says.
    with pytest.raises(ValueError, match=f"^{option} must be a finite number of seconds"):
        Verifier("not a URL", "id", "secret", **{option: value})


def test_a_receiver_option_out_of_range_is_refused_naming_it() -> None:
    for option, value in (("leeway", math.nan), ("leeway", -1), ("jwks_cooldown", math.inf)):
        with pytest.raises(ValueError, match=f"^{option} must be"):
            LogoutTokenVerifier("http://127.0.0.1:9", "client", **{option: value})
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    for tolerance in (math.nan, math.inf, 0, -300):
        with pytest.raises(ValueError, match="^tolerance must be"):
            WebhookVerifier(secret, tolerance=tolerance)


def test_client_credentials_are_form_encoded_before_basic() -> None:
    header = basic_auth("my id", "s+e:cret%é")
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]).decode() == "my%20id:s%2Be%3Acret%25%C3%A9"


def test_the_bearer_token_of_an_authorization_header() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer abc") == "abc"
    for bad in (None, "", "Bearer", "Bearer ", "Basic abc", "Bearer  abc"):
        with pytest.raises(VerifyError) as e:
            bearer_token(bad)
        assert e.value.code == "invalid_token"


def test_repeats_are_remembered() -> None:
    seen = Seen()
    assert not seen.has("a")
    seen.add("a")
    assert seen.has("a") and not seen.has("b")


def test_a_logout_token_is_read_from_a_form_only() -> None:
    form = "application/x-www-form-urlencoded"
    assert logout_token_of(form + "; charset=utf-8", b"logout_token=a.b.c&x=1") == "a.b.c"
    for content_type, body in (
        (form, b"nothing=here"),
        (form, b"logout_token="),
        ("application/json", b'{"logout_token":"a"}'),
        (form, b"logout_token=" + b"a" * 70_000),
    ):
        with pytest.raises(ReceiveError) as e:
            logout_token_of(content_type, body)
        assert e.value.code == "invalid"


def test_a_webhook_signed_with_any_of_the_secrets_verifies_within_the_tolerance() -> None:
    old, new = "whsec_" + base64.b64encode(b"o" * 32).decode(), "whsec_" + base64.b64encode(b"n" * 32).decode()
    body = b'{"type":"session.ended","timestamp":"t","data":{}}'
    now = int(time.time())
    headers = {
        "Webhook-Id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": f"v1,AAAA {sign(new, 'msg_1', now, body)}",
    }
    assert verify_webhook([old, new], headers, body) == json.loads(body)
    assert verify_webhook(new, headers, body.decode()) == json.loads(body)
    for secrets, h, b, why in (
        (old, headers, body, "no valid signature"),
        (new, headers, body + b" ", "no valid signature"),
        (new, {**headers, "Webhook-Id": "msg_2"}, body, "no valid signature"),
        (new, {**headers, "webhook-timestamp": str(now - 301)}, body, "tolerance"),
        (new, {**headers, "webhook-timestamp": "12a"}, body, "timestamp"),
        (new, {k: v for k, v in headers.items() if k != "webhook-signature"}, body, "missing"),
    ):
        with pytest.raises(ReceiveError, match=why):
            verify_webhook(secrets, h, b)
    earlier = {**headers, "webhook-timestamp": str(now - 600), "webhook-signature": sign(new, "msg_1", now - 600, body)}
    with pytest.raises(ReceiveError, match="tolerance"):
        verify_webhook(new, earlier, body)
    assert verify_webhook(new, earlier, body, now=now - 400) == json.loads(body), "now is the receiver's clock"
    with pytest.raises(ValueError):
        verify_webhook("not-a-secret", headers, body)


def test_webhook_secrets_are_decoded_strictly_and_read_once_when_the_verifier_is_made() -> None:
    good = "whsec_" + base64.b64encode(b"k" * 32).decode()
    short = "whsec_" + base64.b64encode(b"k" * 23).decode()
    for bad, why in (
        ("whsec_", "at least 24 bytes of key, this one 0"),
        (short, "at least 24 bytes of key, this one 23"),
        (good[:12] + "!" + good[12:], "base64, without other characters"),
        (good[:12] + " " + good[12:], "base64, without other characters"),
        (good + "\n", "base64, without other characters"),
        ("whsec_é" + good[6:], "base64, without other characters"),
        (good[6:], "starting with whsec_"),
        ([good, b"whsec_AAAA"], "a string"),
        ([], "no webhook secret"),
    ):
        with pytest.raises(ValueError, match=why) as e:
            WebhookVerifier(bad)  # type: ignore[arg-type]
        assert good[6:20] not in str(e.value), "the secret is not shown"
    other = "whsec_" + base64.b64encode(b"o" * 64).decode()
    verify = WebhookVerifier(s for s in (other, good))
    body, now = b'{"type":"x"}', int(time.time())
    for id_ in ("msg_1", "msg_2"):
        headers = {"webhook-id": id_, "webhook-timestamp": str(now), "webhook-signature": sign(good, id_, now, body)}
        assert verify(headers, body) == {"type": "x"}, "a generator of secrets serves every call"


@dataclass(frozen=True)
class StaticBase(Base):
    """A signoff whose key set is ``doc``, counting the fetches (a lagging node, or a cache),
    each answered after ``delay`` seconds."""

    doc: Any = None
    fetches: list[str] = field(default_factory=list)
    delay: float = 0.0

    def get_json(self, path: str, headers: Mapping[str, str], timeout: float = 5.0) -> Any:
        assert path == "/.well-known/jwks.json" and headers == {"cache-control": "no-cache"}
        self.fetches.append(path)
        time.sleep(self.delay)
        return self.doc


def jwk(kid: str, **overrides: str) -> dict[str, str]:
    public = Ed25519PrivateKey.generate().public_key()
    return {
        **json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public)),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
        **overrides,
    }


def keyset(
    doc: Any,
    cooldown: float,
    algorithms: frozenset[str] = frozenset({"EdDSA"}),
    max_age: float = 600,
    delay: float = 0.0,
) -> tuple[KeySet, list[str]]:
    base = StaticBase("http://127.0.0.1:9", False, "127.0.0.1", 9, "", doc, delay=delay)
    return KeySet(base, algorithms, cooldown, max_age=max_age), base.fetches


def test_an_unknown_kid_refetches_the_key_set_at_most_once_per_cooldown() -> None:
    keys, fetches = keyset({"keys": [jwk("k1")]}, cooldown=30)
    assert keys.key("k1", "EdDSA") is not None and len(fetches) == 1
    assert keys.key("k1", "EdDSA") is not None and len(fetches) == 1, "a known kid fetches nothing"
    for _ in range(5):
        assert keys.key("forged", "EdDSA") is None
    assert len(fetches) == 1, "unknown kids within the cooldown fetch nothing"
    keys.refresh()
    assert len(fetches) == 2, "the feed's key change fetches at once"


def test_a_withdrawn_key_is_never_trusted_again_whatever_the_key_set_lists() -> None:
    keys, fetches = keyset({"keys": [jwk("k1"), jwk("k2")]}, cooldown=0)
    assert keys.key("k1", "EdDSA") is not None
    keys.withdraw("k1")
    assert keys.withdrawn("k1") and keys.key("k1", "EdDSA") is None
    assert len(fetches) == 1, "a withdrawn kid is not looked for"
    keys.refresh()
    assert keys.key("k1", "EdDSA") is None, "still listed by a lagging key set, still refused"
    assert keys.key("k2", "EdDSA") is not None


def test_a_key_dropped_from_the_key_set_stops_verifying_once_the_set_is_max_age_old() -> None:
    doc: dict[str, Any] = {"keys": [jwk("k1"), jwk("k2")]}
    keys, fetches = keyset(doc, cooldown=30, max_age=0.3)
    assert keys.key("k1", "EdDSA") is not None
    listed = doc["keys"] = [doc["keys"][1]]  # k1 withdrawn, and the feed did not tell
    assert keys.key("k1", "EdDSA") is not None and len(fetches) == 1, "the set in hand serves until max_age"
    time.sleep(0.35)
    assert keys.key("k1", "EdDSA") is None and len(fetches) == 2, "fetched again: k1 is gone"
    assert keys.key("k2", "EdDSA") is not None
    doc["keys"] = None  # signoff's key set out of reach
    time.sleep(0.35)
    with pytest.raises(KeysUnavailable):
        keys.key("k2", "EdDSA")  # no verdict, rather than the old set
    doc["keys"] = listed


def test_a_feed_reset_outdates_the_key_set_until_a_fetch_sent_after_it_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("signoff_verify._jwks.RETRY_AFTER", 0.05)
    doc: dict[str, Any] = {"keys": [jwk("k1"), jwk("k2")]}
    keys, fetches = keyset(doc, cooldown=30)
    assert keys.key("k1", "EdDSA") is not None
    listed = doc["keys"] = [doc["keys"][1]]  # k1 withdrawn while the verifier was away
    assert keys.key("k1", "EdDSA") is not None and len(fetches) == 1
    keys.outdate()
    assert keys.key("k1", "EdDSA") is None and len(fetches) == 2, "the set was fetched again and replaced"
    assert keys.key("k2", "EdDSA") is not None and len(fetches) == 2
    keys.outdate()
    doc["keys"] = None
    with pytest.raises(KeysUnavailable):
        keys.key("k2", "EdDSA")  # a known kid all the same: nothing of the set in hand is trusted
    doc["keys"] = listed
    time.sleep(0.06)
    keys.refresh()
    assert len(fetches) == 4 and keys.key("k2", "EdDSA") is not None and len(fetches) == 4


@dataclass(frozen=True)
class SlowBase(Base):
    """A signoff taking ``delay`` seconds to answer each fetch of its key set: ``doc``, or (None)
    a failure."""

    delay: float = 0.0
    doc: Any = None
    fetches: list[float] = field(default_factory=list)

    def get_json(self, path: str, headers: Mapping[str, str], timeout: float = 5.0) -> Any:
        self.fetches.append(time.monotonic())
        time.sleep(self.delay)
        if self.doc is None:
            raise Unreachable("signoff is down")
        return self.doc


def look_up_at_once(keys: KeySet, kids: list[str]) -> tuple[list[str], float]:
    """Each kid looked up in a thread of its own, all at once: the outcomes and the time taken."""
    outcomes: list[str] = []

    def look(kid: str) -> None:
        try:
            outcomes.append("a key" if keys.key(kid, "EdDSA") is not None else "no key")
        except KeysUnavailable as e:
            outcomes.append(str(e))

    started = time.monotonic()
    threads = [threading.Thread(target=look, args=(kid,)) for kid in kids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, time.monotonic() - started


def test_lookups_of_unknown_kids_share_one_fetch_and_none_follows_a_failure_within_a_second() -> None:
    """Forged kids, each of which would fetch: the callers queued behind a fetch take its
    outcome (each would otherwise wait for a fetch of its own, one after the other), and none
    fetches again within a second of a failure."""
    slow = SlowBase("http://127.0.0.1:9", False, "127.0.0.1", 9, "", delay=0.3, doc={"keys": [jwk("k1")]})
    outcomes, took = look_up_at_once(KeySet(slow, frozenset({"EdDSA"}), cooldown=0), [f"f{n}" for n in range(8)])
    assert (outcomes, len(slow.fetches)) == (["no key"] * 8, 1)
    assert took < 0.6, f"the callers waited {took:.2f} s"

    down = SlowBase("http://127.0.0.1:9", False, "127.0.0.1", 9, "", delay=0.3)
    keys = KeySet(down, frozenset({"EdDSA"}), cooldown=0)
    outcomes, took = look_up_at_once(keys, [f"f{n}" for n in range(8)])
    assert (outcomes, len(down.fetches)) == (["signoff is down"] * 8, 1)
    assert took < 0.6, f"the callers waited {took:.2f} s"
    for n in range(5):
        with pytest.raises(KeysUnavailable, match="signoff is down"):
            keys.key(f"again-{n}", "EdDSA")
    assert len(down.fetches) == 1, "none within a second of the failure"
    time.sleep(1.05)
    with pytest.raises(KeysUnavailable):
        keys.key("later", "EdDSA")
    assert len(down.fetches) == 2


def test_a_document_must_come_whole_within_the_timeout() -> None:
    """A server answering a byte at a time: each read is within a socket timeout, the whole
    is not."""
    listener = socket.create_server(("127.0.0.1", 0))

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                for byte in b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-pad: " + b"a" * 100:
                    conn.sendall(bytes([byte]))
                    time.sleep(0.05)
            except OSError:
                pass

    server = threading.Thread(target=drip, daemon=True)
    server.start()
    try:
        base = Base.parse(f"http://127.0.0.1:{listener.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(Unreachable, match="no complete answer within 0.5 s"):
            base.get_json("/.well-known/jwks.json", {}, timeout=0.5)
        assert time.monotonic() - started < 1.5
    finally:
        listener.close()
        server.join(10)


def test_each_key_is_used_only_under_its_own_algorithm_and_key_type() -> None:
    algorithms = frozenset({"EdDSA", "ES256", "RS256"})
    p384 = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    doc = {
        "keys": [
            jwk("ed"),
            jwk("liar", alg="RS256"),
            jwk("enc", use="enc"),
            {"kid": "junk", "alg": "EdDSA", "kty": "OKP"},
            {**p384, "kid": "p384", "alg": "ES256"},
        ]
    }
    keys, _ = keyset(doc, cooldown=30, algorithms=algorithms)
    assert keys.key("ed", "EdDSA") is not None
    assert keys.key("ed", "ES256") is None and keys.key("ed", "RS256") is None
    assert keys.key("liar", "RS256") is None and keys.key("liar", "EdDSA") is None, "an OKP key named RS256 is no key"
    assert keys.key("enc", "EdDSA") is None, "not a signing key"
    assert keys.key("junk", "EdDSA") is None
    assert keys.key("p384", "ES256") is None, "ES256 is P-256 only (PyJWT would take a P-384 key)"


def test_logout_token_checks() -> None:
    """Each claim rule of a logout token, on tokens signed here (signoff's are checked in
    test_receivers.py): a key set of an Ed25519 key "ed" and an RSA key "rsa"."""
    ed, rs = Ed25519PrivateKey.generate(), rsa.generate_private_key(public_exponent=65537, key_size=2048)
    doc = {
        "keys": [
            {**json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ed.public_key())), "kid": "ed", "alg": "EdDSA"},
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rs.public_key())), "kid": "rsa", "alg": "RS256"},
        ]
    }
    verify = LogoutTokenVerifier("http://127.0.0.1:9", "client", issuer="https://signoff.example")
    verify._keys, fetches = keyset(doc, cooldown=30, algorithms=frozenset({"EdDSA", "ES256", "RS256"}))
    now = int(time.time())
    good = {
        "iss": "https://signoff.example",
        "aud": "client",
        "iat": now,
        "exp": now + 120,
        "jti": "j",
        "sid": "s",
        "sub": "u",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }

    def token(claims: dict[str, Any], key: Any = ed, alg: str = "EdDSA", **header: Any) -> str:
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": "ed", "typ": "logout+jwt", **header})

    assert verify(token(good)) == good
    assert verify(token(good, rs, "RS256", kid="rsa")) == good
    assert verify(token(good, typ="application/logout+JWT")) == good
    assert verify(token({k: v for k, v in good.items() if k != "sub"}))["sid"] == "s", "sub is optional"
    for claims, header, code, why in (
        ({**good, "nonce": "n"}, {}, "invalid", "nonce"),
        ({**good, "events": {"http://schemas.openid.net/event/backchannel-logout": "yes"}}, {}, "invalid", "event"),
        ({**good, "events": {"other": {}}}, {}, "invalid", "event"),
        ({**good, "sub": 5}, {}, "invalid", "ubject"),
        ({k: v for k, v in good.items() if k != "sid"}, {}, "invalid", "sid"),
        ({**good, "iat": now - 400, "exp": now + 60}, {}, "invalid", "too old"),
        ({**good, "iat": now + 60}, {}, "invalid", "iat"),
        ({**good, "exp": now - 60}, {}, "invalid", "expired"),
        ({**good, "aud": "other"}, {}, "invalid", 'aud is "other", this receiver expects "client"'),
        ({**good, "iss": "https://elsewhere"}, {}, "invalid", 'iss is "https://elsewhere"'),
        (good, {"typ": "JWT"}, "invalid", "typ"),
        (good, {"kid": "rsa"}, "unavailable", "key"),
        (good, {"kid": "new"}, "unavailable", "key"),
    ):
        with pytest.raises(ReceiveError) as e:
            verify(token(claims, **header))
        assert (e.value.code, why in str(e.value)) == (code, True), (claims, header, str(e.value))
    with pytest.raises(ReceiveError, match="algorithm"):
        verify(
            jwt.encode(
                good,
                "a-shared-secret-of-32-bytes-or-more!",
                algorithm="HS256",
                headers={"kid": "ed", "typ": "logout+jwt"},
            )
        )
    assert len(fetches) == 1, "one fetch: unknown kids wait for the cooldown"


def test_access_token_checks() -> None:
    """Each claim rule of an access token, on tokens signed here (signoff's are checked in
    test_verifier.py), with the feed's state set by hand: a verifier whose signoff is nowhere."""
    ed = Ed25519PrivateKey.generate()
    doc = {"keys": [{**json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ed.public_key())), "kid": "ed", "alg": "EdDSA"}]}
    # A short wait for a feed that never answers; then a long budget, so that one ": current"
    # set by hand keeps it fresh through the test.
    v = Verifier(
        f"http://127.0.0.1:{free_port()}", "id", "secret", stale_after=0.01, issuer="iss", audience="aud", retain=900
    )
    v._stale_after = 60
    try:
        v._keys, _ = keyset(doc, cooldown=30)
        assert code(v, "x") == "stale", "nothing heard from the feed yet"
        v._feed.frame(Frame(comment="current"), 900, 10)
        now = int(time.time())
        # The longest lifetime taken: retain (900) less twice the leeway (10).
        good = {"iss": "iss", "aud": "aud", "sub": "u", "iat": now, "exp": now + 880, "jti": "j", "sid": "s", "tv": 2}

        def token(claims: dict[str, Any], **header: Any) -> str:
            return jwt.encode(claims, ed, algorithm="EdDSA", headers={"kid": "ed", **header})

        assert v.verify(token(good)) == good
        for claims, header, why in (
            ({**good, "exp": now + 881}, {}, "lifetime longer"),
            ({**good, "iat": now + 60, "exp": now + 120}, {}, "yet valid"),
            ({**good, "tv": "2"}, {}, "tv"),
            ({**good, "tv": True}, {}, "tv"),
            ({**good, "sid": 5}, {}, "sid"),
            ({k: v for k, v in good.items() if k != "jti"}, {}, "jti"),
            ({k: v for k, v in good.items() if k != "tv"}, {}, "tv"),
            ({**good, "exp": now - 11}, {}, "expired"),
            ({**good, "aud": "other"}, {}, 'aud is "other", this verifier expects "aud"'),
            (good, {"kid": "other"}, "unknown key"),
            ({**good, "pad": "x" * 4096}, {}, "malformed"),
        ):
            with pytest.raises(VerifyError) as e:
                v.verify(token(claims, **header))
            assert (e.value.code, why in str(e.value)) == ("invalid_token", True), (claims, header, str(e.value))
        assert code(
            v, jwt.encode(good, "a-shared-secret-of-32-bytes-or-more!", algorithm="HS256", headers={"kid": "ed"})
        ) == ("invalid_token")
        v._feed.frame(Frame(id="1", data=json.dumps({"type": "user", "sub": "u", "tv": 3})), 900, 10)
        assert code(v, token(good)) == "revoked", "tv 2 is below the user's minimum"
        assert code(v, token({**good, "tv": 3})) == "ok"
    finally:
        v.close()


def ed_jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    return {**json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "EdDSA"}


@contextmanager
def offline_verifier(doc: Any, issuer: str = "iss", delay: float = 0.0) -> Iterator[Verifier]:
    """A verifier whose signoff is nowhere: its key set is ``doc`` (each fetch taking ``delay``
    seconds) and its feed is set by hand (one ": current", and fresh for a minute)."""
    v = Verifier(f"http://127.0.0.1:{free_port()}", "id", "secret", stale_after=0.01, issuer=issuer, audience="aud")
    v._stale_after = 60
    try:
        v._keys, _ = keyset(doc, cooldown=30, delay=delay)
        v._feed.frame(Frame(comment="current"), 900, 10)
        yield v
    finally:
        v.close()


def access_token(key: Ed25519PrivateKey, **claims: Any) -> str:
    now = int(time.time())
    base = {"iss": "iss", "aud": "aud", "sub": "u", "iat": now, "exp": now + 600, "jti": "j", "sid": "s", "tv": 1}
    return jwt.encode({**base, **claims}, key, algorithm="EdDSA", headers={"kid": "ed"})


def test_after_a_feed_reset_the_verifier_trusts_no_key_until_the_key_set_is_fetched_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("signoff_verify._jwks.RETRY_AFTER", 0.05)
    ed = Ed25519PrivateKey.generate()
    doc: dict[str, Any] = {"keys": [ed_jwk(ed, "ed")]}
    # Each fetch takes a while: the verify right after a reset runs while the reload it started
    # is still under way (and must not take the set in hand meanwhile).
    with offline_verifier(doc, delay=0.2) as v:
        token = access_token(ed)
        assert code(v, token) == "ok"
        doc["keys"] = []  # "ed" withdrawn during a long disconnection: the feed no longer tells
        assert code(v, token) == "ok", "the set in hand serves"
        v._keys_changed(v._feed.frame(Frame(comment="reset 40"), 900, 10))
        assert code(v, token) == "invalid_token", "the set fetched after the reset has no ed"
        doc["keys"] = None  # and, after another reset, signoff's key set out of reach
        v._keys_changed(v._feed.frame(Frame(comment="reset 41"), 900, 10))
        assert code(v, token) == "stale"
        doc["keys"] = [ed_jwk(ed, "ed")]
        time.sleep(0.06)
        assert code(v, token) == "ok"


def test_an_issuer_that_is_a_prefix_or_a_part_of_the_one_expected_is_refused() -> None:
    """PyJWT 2.10.0 compared ``iss`` as a substring of the issuer expected (CVE-2024-53861)."""
    ed = Ed25519PrivateKey.generate()
    with offline_verifier({"keys": [ed_jwk(ed, "ed")]}, issuer="https://signoff.example.com") as v:
        assert v.verify(access_token(ed, iss="https://signoff.example.com"))["sub"] == "u"
        for iss in ("https://signoff.example", "signoff", "https://", ".com", ""):
            with pytest.raises(VerifyError) as e:
                v.verify(access_token(ed, iss=iss))
            assert (e.value.code, e.value.claim, e.value.found) == ("invalid_token", "iss", iss)


def test_a_token_that_breaks_the_decoder_is_invalid_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ed = Ed25519PrivateKey.generate()
    nested = base64.urlsafe_b64encode(b"[" * 3000).rstrip(b"=").decode() + ".e30.AAAA"
    with offline_verifier({"keys": [ed_jwk(ed, "ed")]}) as v:
        assert code(v, nested) == "invalid_token"
        token = access_token(ed)
        assert code(v, token) == "ok"

        def breaks(*args: Any, **kwargs: Any) -> Any:
            # As PyJWT 2.10.1 does for that header: its JSON parser's RecursionError, let out.
            return json.loads("[" * 100_000)

        for name in ("get_unverified_header", "decode"):
            with monkeypatch.context() as m:
                m.setattr(jwt, name, breaks)
                assert code(v, token) == "invalid_token", name


def code(v: Verifier, token: str) -> str:
    try:
        v.verify(token)
        return "ok"
    except VerifyError as e:
        return str(e.code)
