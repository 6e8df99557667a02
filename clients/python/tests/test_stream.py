"""The feed's response read off its socket (``_stream``): HTTP/1.1 heads and chunked bodies in
whatever pieces they arrive, and a request waiting until what arrived has been applied."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from signoff_verify._stream import BadResponse, Response, Unread

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def body_of(res: Response) -> bytes:
    got = b""
    while piece := res.body():
        got += piece
    return got


def test_a_chunked_body_is_read_whole_whatever_pieces_it_arrives_in(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    wire = HEAD + chunk(b": current\n\n") + chunk(b"id: 1\nevent: revocation\ndata: {}\n\n") + b"0\r\n\r\n"

    def send() -> None:
        # A byte at a time: every boundary falls inside a head, a size line or a chunk.
        for i in range(len(wire)):
            theirs.sendall(wire[i : i + 1])
            if i % 16 == 0:
                time.sleep(0.001)

    sender = threading.Thread(target=send)
    sender.start()
    res = Response(ours, Unread(), 2.0)
    assert res.head() == 200
    assert body_of(res) == b": current\n\nid: 1\nevent: revocation\ndata: {}\n\n"
    sender.join()


def test_a_body_without_chunks_runs_to_the_connection_s_end(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    theirs.sendall(b"HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\n\r\nno")
    theirs.shutdown(socket.SHUT_WR)
    res = Response(ours, Unread(), 2.0)
    assert res.head() == 401
    assert body_of(res) == b"no"


@pytest.mark.parametrize(
    "wire",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        HEAD + b"zz\r\nab\r\n",
        HEAD + b"2\r\nabX\r\n",
        HEAD + b"+2\r\nab\r\n",
        HEAD + b"5\r\nab",
        HEAD + b"0x2\r\nab\r\n",
        "HTTP/1.1 2\u00b20 OK\r\n\r\n".encode(),
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nab\r\n",
    ],
    ids=[
        "not http",
        "size not hex",
        "no crlf after data",
        "signed size",
        "cut inside a chunk",
        "0x size",
        "non-ascii status",
        "a coding besides chunked",
    ],
)
def test_what_is_not_a_well_formed_response_is_refused(pair: tuple[socket.socket, socket.socket], wire: bytes) -> None:
    ours, theirs = pair
    theirs.sendall(wire)
    theirs.shutdown(socket.SHUT_WR)
    res = Response(ours, Unread(), 2.0)
    with pytest.raises(BadResponse):
        res.head()
        body_of(res)


def test_a_silent_connection_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    theirs.sendall(HEAD)
    res = Response(ours, Unread(), 0.2)
    assert res.head() == 200
    with pytest.raises(socket.timeout):
        res.body()


def test_settle_waits_until_what_arrived_is_applied(pair: tuple[socket.socket, socket.socket]) -> None:
    """A request settles at once on a quiet stream; once bytes arrive it waits until the
    reader has taken and applied them, and no longer."""
    ours, theirs = pair
    unread = Unread()
    theirs.sendall(HEAD)
    res = Response(ours, unread, 5.0)
    assert res.head() == 200
    unread.watch(ours)
    applied: list[bytes] = []

    def read() -> None:
        while piece := res.body():
            time.sleep(0.05)  # applying takes a while
            applied.append(piece)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        assert unread.settle(1.0)
        assert time.monotonic() - started < 0.02, "nothing was unread"
        for round_ in range(20):
            theirs.sendall(chunk(b"event %d\n\n" % round_))
            assert unread.settle(1.0)
            assert applied[-1] == b"event %d\n\n" % round_, "settled before the bytes sent were applied"
        # Bytes that are not applied in time: settle says so when its time is up.
        theirs.sendall(chunk(b"late\n\n"))
        assert not unread.settle(0.01)
        assert unread.settle(1.0)
    finally:
        theirs.sendall(b"0\r\n\r\n")
        reader.join()
    unread.watch(None)
    assert unread.settle(0)


def test_events_that_arrive_with_the_head_are_unread_until_applied(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """On a reconnection the first events usually come in the same read as the head: a request
    that asks meanwhile waits for them too."""
    ours, theirs = pair
    unread = Unread()
    unread.watch(ours)
    theirs.sendall(HEAD + chunk(b"id: 9\nevent: revocation\ndata: {}\n\n"))
    res = Response(ours, unread, 5.0)
    assert res.head() == 200
    assert not unread.settle(0.02), "the events read with the head are not applied yet"
    assert res.body() == b"id: 9\nevent: revocation\ndata: {}\n\n"
    # Applied: the reader asks for more, which marks it idle while it waits.
    more: list[bytes] = []
    reader = threading.Thread(target=lambda: more.append(res.body()))
    reader.start()
    assert unread.settle(2.0)
    theirs.sendall(chunk(b"next\n\n"))
    reader.join()
    assert more == [b"next\n\n"]
