"""The frame parser under fuzzing, both roles (issue 9, item 6): arbitrary byte streams,
split anywhere, and mutations of valid frame streams. The atheris twin is
``fuzz/fuzz_frames.py``; the property itself is :func:`rpcx.testing.fuzzing.check_frame_stream`."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcx.protocol import Role
from rpcx.protocol.frames import (
    HEADER,
    CancelFrame,
    ErrorFrame,
    GoAwayFrame,
    PingFrame,
    RequestFrame,
    ResponseFrame,
    encode_frame,
)
from rpcx.status import Status
from rpcx.testing.fuzzing import check_frame_stream

ROLES = st.sampled_from([Role.SERVER, Role.CLIENT])

VALID = [
    encode_frame(RequestFrame(call_id=1, method="fuzz.Fuzz/call", payload=b"\xa0",
                              timeout_ms=1000, metadata={"a": "b"}, idempotency_key=b"k")),
    encode_frame(RequestFrame(call_id=2, method="fuzz.Fuzz/call", oneway=True)),
    encode_frame(CancelFrame(call_id=1)),
    encode_frame(ResponseFrame(call_id=1, payload=b"\xa1\x01\x02")),
    encode_frame(ErrorFrame(call_id=2, status=Status.NOT_FOUND, message="m",
                            details={"k": [1, 2]}, error_name="a.B", error_payload=b"\xa0")),
    encode_frame(PingFrame(ping_id=7)),
    encode_frame(GoAwayFrame(last_call_id=1, message="bye")),
    HEADER.pack(3, 0x42, 0, 0, 5) + b"abc",
]


@settings(max_examples=150)
@given(role=ROLES, chunks=st.lists(st.binary(max_size=64), max_size=12),
       with_preface=st.booleans())
def test_random_bytes(role: Role, chunks: list[bytes], with_preface: bool) -> None:
    check_frame_stream(role, chunks, with_preface=with_preface)


@settings(max_examples=150)
@given(role=ROLES, data=st.data())
def test_mutated_valid_streams(role: Role, data: st.DataObject) -> None:
    stream = bytearray(b"".join(data.draw(st.lists(st.sampled_from(VALID), min_size=1,
                                                   max_size=8))))
    for _ in range(data.draw(st.integers(0, 6))):
        at = data.draw(st.integers(0, len(stream)))
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "big-length"]))
        if op == "flip" and at < len(stream):
            stream[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            stream[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del stream[at:at + data.draw(st.integers(1, 8))]
        elif op == "big-length" and at + 4 <= len(stream):
            stream[at:at + 4] = data.draw(st.sampled_from([b"\xff\xff\xff\xff",
                                                           b"\x00\x00\x10\x00"]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [bytes(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)],
                                                 strict=True)]
    check_frame_stream(role, chunks)


@settings(max_examples=150)
@given(role=ROLES, frame_type=st.integers(0, 255), flags=st.integers(0, 255),
       call_id=st.sampled_from([0, 1, 2, 3, 2**32 - 1]),
       meta=st.dictionaries(st.integers(0, 8), st.one_of(
           st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=20),
           st.binary(max_size=20), st.lists(st.integers(), max_size=3),
           st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3)),
           max_size=5),
       payload=st.binary(max_size=40))
def test_structured_frames_with_any_header_and_meta(role: Role, frame_type: int, flags: int,
                                                   call_id: int, meta: dict[int, object],
                                                   payload: bytes) -> None:
    meta_bytes = cbor2.dumps(meta) if meta else b""
    frame = HEADER.pack(len(meta_bytes) + len(payload), frame_type, flags, len(meta_bytes),
                        call_id) + meta_bytes + payload
    check_frame_stream(role, [frame, frame])


@pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT])
def test_the_property_catches_a_leaking_message(role: Role) -> None:
    """The check can fail: a GOAWAY quoting Python notation is caught."""
    from rpcx.testing import fuzzing

    with pytest.raises(AssertionError, match="python notation"):
        fuzzing.check_peer_text("protocol error: got b'\\x00'")
    check_frame_stream(role, [b"\x00" * 20])  # and a plain one passes
