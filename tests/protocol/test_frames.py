"""Frame encode/parse: round trips, exact layout, and robustness against random bytes."""

from __future__ import annotations

import contextlib
import struct

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcx.errors import RemoteProtocolError
from rpcx.protocol.buffer import Oversized, RawFrame, ReceiveBuffer
from rpcx.protocol.frames import (
    HEADER,
    PREFACE,
    CancelFrame,
    ErrorFrame,
    Frame,
    FrameHeader,
    FrameType,
    GoAwayFrame,
    PingFrame,
    PongFrame,
    RequestFrame,
    ResponseFrame,
    UnknownFrame,
    encode_frame,
    parse_frame,
    parse_header,
    timeout_to_ms,
)
from rpcx.status import Status

call_ids = st.integers(1, 2**32 - 1)
texts = st.text(max_size=20)
metadata = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4)
statuses = st.sampled_from([s for s in Status if s is not Status.OK])
details = st.dictionaries(
    st.text(max_size=8), st.one_of(st.integers(-(2**63), 2**63 - 1), texts, st.binary()),
    max_size=3,
)

frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(RequestFrame, call_id=call_ids, method=st.text(min_size=1, max_size=30),
              payload=st.binary(max_size=40),
              timeout_ms=st.none() | st.integers(0, 2**64 - 1), metadata=metadata,
              idempotency_key=st.none() | st.binary(min_size=1, max_size=64),
              oneway=st.booleans()),
    st.builds(ResponseFrame, call_id=call_ids, payload=st.binary(max_size=40)),
    st.builds(ErrorFrame, call_id=call_ids, status=statuses, message=texts, details=details),
    st.builds(ErrorFrame, call_id=call_ids, status=statuses, message=texts, details=details,
              error_name=st.text(min_size=1, max_size=20),
              error_payload=st.binary(max_size=20)),
    st.builds(CancelFrame, call_id=call_ids),
    st.builds(PingFrame, ping_id=st.integers(0, 2**64 - 1)),
    st.builds(PongFrame, ping_id=st.integers(0, 2**64 - 1)),
    st.builds(GoAwayFrame, last_call_id=st.integers(0, 2**32 - 1),
              status=st.sampled_from(list(Status)), message=texts),
    st.builds(UnknownFrame, frame_type=st.integers(8, 255), flags=st.integers(0, 255),
              call_id=st.integers(0, 2**32 - 1), body=st.binary(max_size=20)),
)


def parse_bytes(data: bytes) -> Frame:
    return parse_frame(parse_header(data), data[HEADER.size:])


@given(frames)
def test_round_trip(frame: Frame) -> None:
    data = encode_frame(frame)
    header = parse_header(data)
    assert header.body_length == len(data) - HEADER.size
    parsed = parse_bytes(data)
    if isinstance(frame, ErrorFrame) and frame.error_name is not None:
        # an absent payload and an empty one are the same on the wire
        assert parsed == ErrorFrame(call_id=frame.call_id, status=frame.status,
                                    message=frame.message, details=frame.details,
                                    error_name=frame.error_name,
                                    error_payload=frame.error_payload or b"")
    else:
        assert parsed == frame


def test_fixed_header_layout_is_pinned() -> None:
    data = encode_frame(RequestFrame(call_id=0x01020304, method="m", payload=b"xyz",
                                     oneway=True))
    meta = cbor2.dumps({1: "m"})
    assert data[:12] == struct.pack(">IBBHI", len(meta) + 3, 1, 1, len(meta), 0x01020304)
    assert data[12:] == meta + b"xyz"
    assert PREFACE == b"RPCX\r\n\x00\x01"


@given(st.binary(min_size=HEADER.size, max_size=80))
def test_parse_of_random_bytes_raises_only_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        header = parse_header(data)
        parse_frame(header, data[HEADER.size:HEADER.size + header.body_length])


@given(st.sampled_from(list(FrameType)), st.integers(0, 255), st.integers(0, 3),
       st.binary(max_size=40), st.binary(max_size=12))
def test_random_bodies_of_known_types(kind: FrameType, flags: int, call_id: int,
                                      meta: bytes, payload: bytes) -> None:
    # valid headers with garbage or arbitrary CBOR inside must fail cleanly, not crash
    for m in (meta, cbor2.dumps({1: meta, 2: -1, 3: [meta], 4: 1.5})):
        header = FrameHeader(len(m) + len(payload), kind, flags, len(m), call_id)
        with contextlib.suppress(RemoteProtocolError):
            parse_frame(header, m + payload)


def _raw(kind: int, call_id: int, meta: object = None, payload: bytes = b"",
         flags: int = 0) -> bytes:
    m = b"" if meta is None else cbor2.dumps(meta)
    return HEADER.pack(len(m) + len(payload), kind, flags, len(m), call_id) + m + payload


@pytest.mark.parametrize(("data", "match"), [
    (_raw(1, 1, {2: 5}), "method .meta key 1. is missing"),
    (_raw(1, 1, {1: 7}), r"method .meta key 1. must be text, got an integer 7"),
    (_raw(1, 1, {1: "m", 2: True}), "timeout_ms .* must be an integer, got a boolean true"),
    (_raw(1, 1, {1: ""}), "method must be a non-empty string"),
    (_raw(1, 1, {1: "m", 2: -1}), "timeout_ms must be in"),
    (_raw(1, 1, {1: "m", 3: {"a": 1}}), "metadata keys and values must be text"),
    (_raw(1, 1, {1: "m", 4: b""}), "idempotency_key must be 1..64 bytes"),
    (_raw(1, 0, {1: "m"}), "REQUEST frame must have a call_id other than 0"),
    (_raw(2, 0), "RESPONSE frame must have a call_id other than 0"),
    (_raw(3, 1, {1: 0}), "cannot carry status OK"),
    (_raw(3, 1, {1: -3}), "status must be unsigned"),
    (_raw(3, 1, {1: 5}, b"x"), "payload but no error_name"),
    (_raw(3, 1, {1: 5, 4: ""}), "error_name must be a non-empty string"),
    (_raw(3, 1, {1: 5, 3: {1: 2}}), "details keys must be text"),
    (_raw(4, 0), "CANCEL frame must have a call_id other than 0"),
    (_raw(5, 1, None, bytes(8)), "PING frame must have call_id 0"),
    (_raw(5, 0, None, bytes(7)), "PING payload must be 8 bytes, got 7"),
    (_raw(6, 0, None, bytes(9)), "PONG payload must be 8 bytes, got 9"),
    (_raw(7, 0, {2: 1}), "last_call_id .meta key 1. is missing"),
    (_raw(7, 0, {1: -1}), "last_call_id must be in"),
    (_raw(2, 1, [1, 2]), "meta must be a map, got an array"),
    (HEADER.pack(2, 2, 0, 2, 1) + b"\xa1\x01", "malformed meta map"),
    (HEADER.pack(3, 2, 0, 3, 1) + b"\xa2\x01\x01", "malformed meta map"),
    (HEADER.pack(2, 2, 0, 2, 1) + b"\xa0\x00", "meta has 1 bytes after the CBOR map"),
])
def test_malformed_frames_name_the_problem(data: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        parse_bytes(data)


def test_duplicate_meta_keys_are_rejected() -> None:
    meta = b"\xa2\x01\x61m\x01\x61n"  # {1: "m", 1: "n"}, written by hand
    with pytest.raises(RemoteProtocolError, match="malformed meta map"):
        parse_bytes(HEADER.pack(len(meta), 1, 0, len(meta), 1) + meta)


def test_header_and_body_lengths_must_agree() -> None:
    with pytest.raises(RemoteProtocolError, match="meta_length 5 exceeds body_length 4"):
        parse_header(HEADER.pack(4, 2, 0, 5, 1))
    with pytest.raises(RemoteProtocolError, match="body is 1 bytes, header says 2"):
        parse_frame(FrameHeader(2, 2, 0, 0, 1), b"x")


def test_unknown_status_reads_as_unknown_and_unknown_keys_are_ignored() -> None:
    frame = parse_bytes(_raw(3, 9, {1: 99, 2: "x", 77: "future"}))
    assert frame == ErrorFrame(call_id=9, status=Status.UNKNOWN, message="x")
    goaway = parse_bytes(_raw(7, 0, {1: 3, 2: 14, 3: "bye"}))
    assert goaway == GoAwayFrame(last_call_id=3, status=Status.UNAVAILABLE, message="bye")


def test_frame_constructors_validate() -> None:
    with pytest.raises(ValueError, match="call_id must be in"):
        ResponseFrame(call_id=0)
    with pytest.raises(ValueError, match="ping_id must be in"):
        PingFrame(ping_id=-1)
    with pytest.raises(ValueError, match="error_payload requires error_name"):
        ErrorFrame(call_id=1, status=Status.INTERNAL, error_payload=b"x")
    with pytest.raises(ValueError, match=r"meta map is \d+ bytes, limit 65535"):
        encode_frame(RequestFrame(call_id=1, method="m", metadata={"k": "v" * 70000}))


def test_timeout_to_ms_rounds_up_and_clamps() -> None:
    assert timeout_to_ms(1.5) == 1500
    assert timeout_to_ms(0.0001) == 1
    assert timeout_to_ms(-3) == 0
    assert timeout_to_ms(float("inf")) == 2**64 - 1
    with pytest.raises(ValueError, match="NaN"):
        timeout_to_ms(float("nan"))


# ---------------------------------------------------------------- receive buffer


def test_buffer_hands_out_frames_split_anywhere() -> None:
    frames_ = [ResponseFrame(call_id=i, payload=bytes(i)) for i in range(1, 6)]
    stream = PREFACE + b"".join(encode_frame(f) for f in frames_)
    for step in (1, 5, 13, len(stream)):
        buf = ReceiveBuffer(1000)
        out: list[Frame] = []
        for i in range(0, len(stream), step):
            buf.feed(stream[i:i + step])
            if not buf.check_preface():
                continue
            while (item := buf.next_item()) is not None:
                assert isinstance(item, RawFrame)
                out.append(parse_frame(item.header, item.body))
        assert buf.preface_done
        assert out == frames_
        assert len(buf) == 0


def test_buffer_skips_oversized_body_and_resyncs() -> None:
    big = encode_frame(ResponseFrame(call_id=1, payload=bytes(100)))
    small = encode_frame(ResponseFrame(call_id=2, payload=b"ok"))
    buf = ReceiveBuffer(50)
    buf.feed(PREFACE + big[:20])
    assert buf.check_preface()
    item = buf.next_item()
    assert isinstance(item, Oversized) and item.header.body_length == 100
    assert buf.next_item() is None and len(buf) == 0
    for i in range(20, len(big)):  # the rest of the body trickles in and is dropped
        buf.feed(big[i:i + 1])
        assert len(buf) == 0
    buf.feed(small)
    item = buf.next_item()
    assert isinstance(item, RawFrame)
    assert parse_frame(item.header, item.body) == ResponseFrame(call_id=2, payload=b"ok")


def test_buffer_drops_skipped_tail_and_keeps_what_follows_in_one_chunk() -> None:
    big = encode_frame(ResponseFrame(call_id=1, payload=bytes(100)))
    small = encode_frame(ResponseFrame(call_id=2, payload=b"ok"))
    buf = ReceiveBuffer(50)
    buf.feed(PREFACE + big[:30])
    assert buf.check_preface() and isinstance(buf.next_item(), Oversized)
    buf.feed(big[30:] + small)
    item = buf.next_item()
    assert isinstance(item, RawFrame) and item.header.call_id == 2


@pytest.mark.parametrize(("data", "match"), [
    (b"GET / HTTP/1.1\r\n", "peer is not speaking rpcx"),
    (b"RPQ", "peer is not speaking rpcx"),
    (b"RPCX\r\n\x00\x02", "peer speaks rpcx protocol version 2, this side speaks 1"),
])
def test_buffer_rejects_bad_preface_early(data: bytes, match: str) -> None:
    buf = ReceiveBuffer(100)
    buf.feed(data)
    with pytest.raises(RemoteProtocolError, match=match):
        buf.check_preface()


def test_buffer_waits_for_a_partial_preface() -> None:
    buf = ReceiveBuffer(100)
    buf.feed(b"RPC")
    assert not buf.check_preface()
    assert not buf.preface_done
