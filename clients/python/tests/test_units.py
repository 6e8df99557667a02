"""The parts that need no signoff: the frame parser and the feed's state machine, the Basic
credentials, the bearer header, the key cache, the receivers' memory, webhooks, and the claim rules
of access and logout tokens (on tokens signed here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import jwt
import pytest
from conftest import free_port
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff_verify import LogoutTokenVerifier, ReceiveError, Verifier, parse_frames, verify_webhook
from signoff_verify._feed import FeedState, Frame, KeyChange, UnreadableEvent, basic_auth
from signoff_verify._http import Base
from signoff_verify._jwks import KeySet
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
    for f in frames[:-1]:
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
    state.close()
    assert not state.fresh(5)


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
    state.disconnected()
    state.frame(Frame(comment="heartbeat"), 60, 10)
    assert state.fresh(5), "still fresh from the last heartbeat of the synced stream"
    assert not state.fresh(0.0)


def test_plain_http_is_warned_about_unless_on_loopback(caplog: pytest.LogCaptureFixture) -> None:
    for url in ("http://127.0.0.1:8080/", "http://localhost:8080", "http://[::1]:8080", "https://signoff.example"):
        Base.parse(url).warn_if_plain()
    assert not caplog.records
    Base.parse("http://signoff.internal:8080/").warn_if_plain()
    (record,) = caplog.records
    assert (record.name, record.levelname) == ("signoff_verify", "WARNING")
    assert "http://signoff.internal:8080 is plain http" in record.getMessage()
    for bad in ("ftp://signoff.example", "signoff.example", "http://user:pw@signoff.example", "http://h/?q=1"):
        with pytest.raises(ValueError):
            Base.parse(bad)


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


def sign(secret: str, id_: str, ts: int, body: bytes) -> str:
    key = base64.b64decode(secret[len("whsec_") :])
    mac = hmac.new(key, f"{id_}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


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
    with pytest.raises(TypeError):
        verify_webhook("not-a-secret", headers, body)


@dataclass(frozen=True)
class StaticBase(Base):
    """A signoff whose key set is ``doc``, counting the fetches (a lagging node, or a cache)."""

    doc: Any = None
    fetches: list[str] = field(default_factory=list)

    def get_json(self, path: str, headers: Mapping[str, str], timeout: float = 5.0) -> Any:
        assert path == "/.well-known/jwks.json" and headers == {"cache-control": "no-cache"}
        self.fetches.append(path)
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


def keyset(doc: Any, cooldown: float, algorithms: frozenset[str] = frozenset({"EdDSA"})) -> tuple[KeySet, list[str]]:
    base = StaticBase("http://127.0.0.1:9", False, "127.0.0.1", 9, "", doc)
    return KeySet(base, algorithms, cooldown), base.fetches


def test_an_unknown_kid_refetches_the_key_set_at_most_once_per_cooldown() -> None:
    keys, fetches = keyset({"keys": [jwk("k1")]}, cooldown=30)
    assert keys.key("k1", "EdDSA") is not None and len(fetches) == 1
    assert keys.key("k1", "EdDSA") is not None and len(fetches) == 1, "a known kid fetches nothing"
    for _ in range(5):
        assert keys.key("forged", "EdDSA") is None
    assert len(fetches) == 1, "unknown kids within the cooldown fetch nothing"
    keys.reload()
    assert len(fetches) == 2, "the feed's key change fetches at once"


def test_a_withdrawn_key_is_never_trusted_again_whatever_the_key_set_lists() -> None:
    keys, fetches = keyset({"keys": [jwk("k1"), jwk("k2")]}, cooldown=0)
    assert keys.key("k1", "EdDSA") is not None
    keys.withdraw("k1")
    assert keys.withdrawn("k1") and keys.key("k1", "EdDSA") is None
    assert len(fetches) == 1, "a withdrawn kid is not looked for"
    keys.reload()
    assert keys.key("k1", "EdDSA") is None, "still listed by a lagging key set, still refused"
    assert keys.key("k2", "EdDSA") is not None


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
        good = {"iss": "iss", "aud": "aud", "sub": "u", "iat": now, "exp": now + 900, "jti": "j", "sid": "s", "tv": 2}

        def token(claims: dict[str, Any], **header: Any) -> str:
            return jwt.encode(claims, ed, algorithm="EdDSA", headers={"kid": "ed", **header})

        assert v.verify(token(good)) == good
        for claims, header, why in (
            ({**good, "exp": now + 901}, {}, "lifetime longer"),
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


def code(v: Verifier, token: str) -> str:
    try:
        v.verify(token)
        return "ok"
    except VerifyError as e:
        return str(e.code)
