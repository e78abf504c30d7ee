"""Whatever a peer sends, the sans-I/O connection answers with a protocol error or a status
and never raises anything else; every frame it sends back encodes and fits its limits, and
no text in it is Python notation (issue 9, findings 1 and 5).

The first tests replay the findings of the attack one by one: each made the server process
exit with ``ValueError: meta map is 120067 bytes, limit 65535`` before the fix. The
property tests then draw any value for any meta field of any frame type, for both roles.
"""

from __future__ import annotations

import struct
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcx.errors import RemoteProtocolError
from rpcx.protocol import PREFACE, CallAborted, Connection, ConnectionState, Role
from rpcx.protocol.buffer import Oversized, ReceiveBuffer
from rpcx.protocol.frames import (
    HEADER,
    MAX_META_LENGTH,
    ErrorFrame,
    FrameType,
    GoAwayFrame,
    encode_frame,
    parse_frame,
)
from rpcx.status import Status
from rpcx.testing.fuzzing import python_notation
from rpcx.text import MAX_MESSAGE_BYTES


def raw_frame(frame_type: int, call_id: int, meta: Any, payload: bytes = b"",
              flags: int = 0) -> bytes:
    meta_bytes = cbor2.dumps(meta) if meta is not None else b""
    return HEADER.pack(len(meta_bytes) + len(payload), frame_type, flags, len(meta_bytes),
                       call_id) + meta_bytes + payload


def sent_frames(data: bytes) -> list[Any]:
    """Parse what a connection sent after its preface, as its peer would: every byte must
    be well formed."""
    buffer = ReceiveBuffer(2**32)
    buffer.feed(PREFACE + data)
    assert buffer.check_preface()
    frames = []
    while (item := buffer.next_item()) is not None:
        assert not isinstance(item, Oversized)
        assert item.header.meta_length <= MAX_META_LENGTH
        frames.append(parse_frame(item.header, item.body))
    assert len(buffer) == 0, "a partial frame was sent"
    return frames


def assert_plain(text: str) -> None:
    assert len(text.encode("utf-8")) <= MAX_MESSAGE_BYTES, len(text)
    assert python_notation(text) is None, text


def feed(conn: Connection, data: bytes) -> RemoteProtocolError | None:
    """Feed the preface and ``data``; only RemoteProtocolError may come out."""
    try:
        conn.receive_data(PREFACE + data, 1.0)
    except RemoteProtocolError as exc:
        assert conn.state is ConnectionState.CLOSED
        assert_plain(str(exc))
        return exc
    return None


def answers(conn: Connection) -> list[Any]:
    frames = sent_frames(conn.data_to_send())
    for frame in frames:
        if isinstance(frame, ErrorFrame | GoAwayFrame):
            assert_plain(frame.message)
    for event in conn.events():
        message = getattr(event, "message", "")
        assert_plain(message)
    return frames


NUL_METHOD = raw_frame(FrameType.REQUEST, 1, {1: b"\x00" * 30_000})
NUL_TIMEOUT = raw_frame(FrameType.REQUEST, 1, {1: "echo.Echo/echo", 2: "\x00" * 20_000})
BIG_METADATA = raw_frame(FrameType.REQUEST, 1, {1: "echo.Echo/echo", 3: {"k": b"v" * 20_000}})
HUGE_INT_TIMEOUT = raw_frame(FrameType.REQUEST, 1, {1: "echo.Echo/echo", 2: 10**20_000})
HUGE_LAST_CALL_ID = raw_frame(FrameType.GOAWAY, 0, {1: -(10**20_000)})


@pytest.mark.parametrize("data", [NUL_METHOD, NUL_TIMEOUT, BIG_METADATA, HUGE_INT_TIMEOUT,
                                  HUGE_LAST_CALL_ID],
                         ids=["nul-method", "nul-timeout", "big-metadata", "huge-int-timeout",
                              "huge-last-call-id"])
def test_the_findings_get_an_error_goaway_that_fits(data: bytes) -> None:
    server = Connection(Role.SERVER, now=0.0)
    server.data_to_send()
    error = feed(server, data)
    assert error is not None
    (goaway,) = answers(server)
    assert isinstance(goaway, GoAwayFrame)
    assert goaway.status is Status.INTERNAL
    assert goaway.message.startswith("protocol error: ")


def test_the_goaway_quotes_a_bad_value_in_neutral_notation() -> None:
    server = Connection(Role.SERVER, now=0.0)
    server.data_to_send()
    feed(server, NUL_METHOD)
    (goaway,) = answers(server)
    assert ("method (meta key 1) must be text, got a byte string "
            "h'00000000000000000000000000000000...' (30000 bytes)") in goaway.message
    server = Connection(Role.SERVER, now=0.0)
    server.data_to_send()
    feed(server, NUL_TIMEOUT)
    (goaway,) = answers(server)
    assert 'got text "\\u0000\\u0000' in goaway.message
    assert "(20000 characters)" in goaway.message


def test_a_client_given_an_error_with_a_huge_bytes_status_fails_its_calls() -> None:
    client = Connection(Role.CLIENT, now=0.0)
    call_id = client.start_call("echo.Echo/echo", b"", now=0.0)
    client.data_to_send()
    error = feed(client, raw_frame(FrameType.ERROR, call_id, {1: b"\x00" * 20_000}))
    assert error is not None and "status (meta key 1) must be an integer" in str(error)
    events = client.events()
    aborted = [e for e in events if isinstance(e, CallAborted)]
    assert [e.call_id for e in aborted] == [call_id]
    assert_plain(aborted[0].message)
    (goaway,) = sent_frames(client.data_to_send())
    assert isinstance(goaway, GoAwayFrame) and goaway.status is Status.INTERNAL


def test_a_preface_from_the_wrong_peer_is_named_in_hex() -> None:
    server = Connection(Role.SERVER, now=0.0)
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(b"GET / HTTP/1.1\r\n", 0.0)
    assert "expected the preface h'525043580d0a0001'" in str(info.value)
    assert "got h'474554202f204854'" in str(info.value)
    assert_plain(str(info.value))


# ---------------------------------------------------------------- any meta value

# Everything cbor2 can encode that a decoder gives back: big and small, nested, tagged.
leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=2**64 - 2, max_value=2**64 + 2),
    st.sampled_from([5000, -5000, 64, -1, 0]).map(  # built lazily: repr(10**5000) raises
        lambda e: (10 ** abs(e)) * (1 if e >= 0 else -1)),
    st.floats(allow_nan=True),
    st.text(max_size=50), st.binary(max_size=50),
    st.sampled_from([("\x00", 30_000), ("\ud7ff", 15_000), ("é", 20_000)]).map(
        lambda piece: piece[0] * piece[1]),
    st.just(30_000).map(lambda n: b"\xff" * n),
    st.builds(cbor2.CBORTag, st.sampled_from([2, 3, 24, 32, 100, 55799]), st.binary(max_size=8)),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=8), st.integers()),
                                            inner, max_size=4)),
    max_leaves=8,
)
metas = st.one_of(
    st.dictionaries(st.integers(min_value=0, max_value=6), values, max_size=5),
    values,
)


@settings(max_examples=300)
@given(role=st.sampled_from([Role.SERVER, Role.CLIENT]),
       frame_type=st.sampled_from([*FrameType, 0, 0x08, 0xFF]),
       call_id=st.sampled_from([0, 1, 2, 2**32 - 1]), meta=metas,
       payload=st.binary(max_size=16), flags=st.sampled_from([0, 1, 0xFF]),
       open_call=st.booleans())
def test_any_meta_value_gets_a_protocol_error_or_a_status(
        role: Role, frame_type: int, call_id: int, meta: Any, payload: bytes, flags: int,
        open_call: bool) -> None:
    try:
        data = raw_frame(frame_type, call_id, meta, payload, flags)
    except (OverflowError, ValueError, struct.error, cbor2.CBOREncodeError):
        return  # not encodable as CBOR in a 16-bit meta length: no peer can send it
    conn = Connection(role, now=0.0)
    if role is Role.CLIENT and open_call:
        conn.start_call("echo.Echo/echo", b"", now=0.0)
    conn.data_to_send()
    feed(conn, data)
    answers(conn)  # every frame sent back parses, fits, and is in plain words
    if conn.state is not ConnectionState.CLOSED and role is Role.SERVER:
        # still serving: a good request after the bad frame gets through
        conn.receive_data(raw_frame(FrameType.REQUEST, 2**32 - 1, {1: "echo.Echo/echo"}), 2.0)
        answers(conn)


@settings(max_examples=200)
@given(message=st.text(max_size=2000) | st.sampled_from(
    ["\x00" * 70_000, "\ud800" * 10, "x\udfff" * 30_000, "€" * 30_000, "a" * 200_000]),
    status=st.sampled_from([s for s in Status if s is not Status.OK]))
def test_no_message_can_make_an_error_or_goaway_fail_to_encode(message: str,
                                                               status: Status) -> None:
    for frame in (ErrorFrame(call_id=1, status=status, message=message),
                  GoAwayFrame(last_call_id=2**64 - 1, status=status, message=message)):
        data = encode_frame(frame)
        (parsed,) = sent_frames(data)
        assert isinstance(parsed, ErrorFrame | GoAwayFrame)
        assert len(parsed.message.encode("utf-8")) <= MAX_MESSAGE_BYTES
        if len(message.encode("utf-8", "surrogatepass")) <= MAX_MESSAGE_BYTES and (
                not any(0xD800 <= ord(c) <= 0xDFFF for c in message)):
            assert parsed.message == message  # short, valid messages pass unchanged
        else:
            assert parsed.message.endswith("...") or "\ufffd" in parsed.message


def test_a_connection_error_message_quoting_everything_still_fits() -> None:
    """The error GOAWAY a core sends on a local close carries the caller's message, cut."""
    server = Connection(Role.SERVER, now=0.0)
    server.data_to_send()
    server.close(0.0, status=Status.INTERNAL, message="x" * 100_000)
    (goaway,) = sent_frames(server.data_to_send())
    assert isinstance(goaway, GoAwayFrame)
    assert len(goaway.message) == MAX_MESSAGE_BYTES and goaway.message.endswith("...")
