"""The fast paths of the two frames of every call give exactly what the general frame
code gives: the same bytes out, the same values in, the same errors (issue 12: the same
behaviour, byte for byte, with less work per call)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcx.errors import RemoteProtocolError
from rpcx.protocol.frames import (
    HEADER,
    RequestFrame,
    ResponseFrame,
    encode_frame,
    encode_request,
    encode_response,
    parse_frame,
    parse_header,
    parse_request,
)

texts = st.text(min_size=1, max_size=40)
requests = st.fixed_dictionaries({
    "call_id": st.integers(1, 2**32 - 1),
    "method": texts,
    "payload": st.binary(max_size=64),
    "timeout_ms": st.none() | st.integers(0, 2**64 - 1),
    "metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    "idempotency_key": st.none() | st.binary(min_size=1, max_size=64),
    "oneway": st.booleans(),
})


@settings(max_examples=300)
@given(requests)
def test_encode_request_is_encode_frame_byte_for_byte(args: dict[str, object]) -> None:
    fast = encode_request(**args)  # type: ignore[arg-type]
    assert fast == encode_frame(RequestFrame(**args))  # type: ignore[arg-type]
    header = parse_header(fast[:HEADER.size])
    frame = parse_frame(header, fast[HEADER.size:])
    assert isinstance(frame, RequestFrame)
    assert parse_request(header, fast[HEADER.size:]) == (
        frame.method, frame.payload, frame.timeout_ms, dict(frame.metadata),
        frame.idempotency_key)


@given(st.integers(1, 2**32 - 1), st.binary(max_size=64))
def test_encode_response_is_encode_frame_byte_for_byte(call_id: int, payload: bytes) -> None:
    assert encode_response(call_id, payload) == encode_frame(
        ResponseFrame(call_id=call_id, payload=payload))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": ""}, "method must be a non-empty string"),
    ({"timeout_ms": -1}, "timeout_ms must be in"),
    ({"timeout_ms": 2**64}, "timeout_ms must be in"),
    ({"idempotency_key": b""}, "idempotency_key must be 1..64 bytes"),
    ({"idempotency_key": b"k" * 65}, "idempotency_key must be 1..64 bytes"),
    ({"metadata": {"a": 1}}, "metadata keys and values must be text"),
    ({"call_id": 0}, "call_id must be in"),
    ({"method": "m" * 70_000}, "meta map is 70007 bytes, limit 65535"),
])
def test_encode_request_refuses_what_request_frame_refuses(kwargs: dict[str, object],
                                                           match: str) -> None:
    args: dict[str, object] = {"call_id": 1, "method": "a.B/c", "payload": b"", **kwargs}
    with pytest.raises(ValueError, match=match):
        encode_request(**args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        encode_frame(RequestFrame(**args))  # type: ignore[arg-type]


def test_parse_request_refuses_what_parse_frame_refuses() -> None:
    data = encode_frame(RequestFrame(call_id=1, method="a.B/c"))
    header = parse_header(data[:HEADER.size])
    bad = header._replace(call_id=0)
    for call in (parse_request, parse_frame):
        with pytest.raises(RemoteProtocolError, match="REQUEST frame must have a call_id"):
            call(bad, data[HEADER.size:])
        with pytest.raises(RemoteProtocolError, match="body is 3 bytes, header says"):
            call(header, b"abc")


# -- the hand-read REQUEST meta agrees with cbor2 wherever it answers -------------------

def _general_meta(meta: bytes) -> object:
    from rpcx.protocol.frames import FrameHeader, _decode_meta, _request_fields

    header = FrameHeader(len(meta), 1, 0, len(meta), 1)
    try:
        return _request_fields(header, _decode_meta(meta))
    except (RemoteProtocolError, ValueError) as exc:
        return exc


def _usual_meta(method: str, timeout_ms: int | None) -> bytes:
    frame = encode_request(1, method, b"", timeout_ms)
    return frame[HEADER.size:]


@st.composite
def metas(draw: st.DrawFn) -> bytes:
    """Usual REQUEST metas, some with bytes changed, cut or added, and arbitrary bytes."""
    kind = draw(st.sampled_from(["usual", "mutated", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=40))
    meta = bytearray(_usual_meta(draw(st.text(min_size=1, max_size=300)),
                                 draw(st.none() | st.integers(0, 2**64 - 1))))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            op = draw(st.sampled_from(["set", "cut", "add"]))
            i = draw(st.integers(0, len(meta)))
            if op == "set" and i < len(meta):
                meta[i] = draw(st.integers(0, 255))
            elif op == "cut":
                del meta[i:]
            else:
                meta[i:i] = draw(st.binary(min_size=1, max_size=3))
    return bytes(meta)


@settings(max_examples=2000)
@given(metas())
def test_the_usual_request_meta_read_by_hand_is_what_cbor2_reads(meta: bytes) -> None:
    from rpcx.protocol._wire import common_request_meta as _common_request_meta

    fast = _common_request_meta(meta)
    if fast is not None:
        assert _general_meta(meta) == (fast[0], fast[1], {}, None)


@given(st.text(min_size=1, max_size=255).filter(lambda t: len(t.encode()) <= 255),
       st.none() | st.integers(0, 2**64 - 1))
def test_the_usual_request_meta_takes_the_hand_read_path(method: str,
                                                         timeout_ms: int | None) -> None:
    from rpcx.protocol._wire import common_request_meta as _common_request_meta

    assert _common_request_meta(_usual_meta(method, timeout_ms)) == (method, timeout_ms)


def test_the_wire_module_numbers_agree_with_the_frame_enums() -> None:
    from rpcx.protocol import _wire
    from rpcx.protocol.frames import Flags, FrameType

    assert (_wire._REQUEST, _wire._RESPONSE, _wire._ONEWAY) == (
        FrameType.REQUEST, FrameType.RESPONSE, Flags.ONEWAY)


def test_request_and_response_events_are_built_with_every_field() -> None:
    # connection.py fills these events' slots directly (no attrs __init__): every field
    # must be one it fills, so a field added later cannot be left unset.
    import attrs

    from rpcx.protocol import connection
    from rpcx.protocol.events import RequestReceived, ResponseReceived

    for cls, prefix in ((RequestReceived, "_SET_REQUEST_"), (ResponseReceived,
                                                            "_SET_RESPONSE_")):
        names = {f.name for f in attrs.fields(cls)}
        setters = [value for name, value in vars(connection).items()
                   if name.startswith(prefix)]
        assert len(setters) == len(names)
        assert {setter.__self__.__name__ for setter in setters} == names
