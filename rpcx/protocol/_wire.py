"""The byte-level core of the framing: the frame header and the fast paths of the two
frames every call sends (REQUEST and RESPONSE), over bytes and ints only.

:mod:`rpcx.protocol.frames` is the public face (it re-exports everything here); this module
holds no attrs classes, so the compiled build (``hatch_build.py``) can compile it with mypyc.
Same bytes and the same errors on both builds.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import cbor2

from rpcx.errors import RemoteProtocolError
from rpcx.text import describe

__all__ = [
    "HEADER",
    "MAX_CALL_ID",
    "MAX_IDEMPOTENCY_KEY",
    "MAX_META_LENGTH",
    "PREFACE",
    "PROTOCOL_VERSION",
    "FrameHeader",
    "common_request_meta",
    "encode_request",
    "encode_response",
    "message_run",
    "parse_header",
    "parse_request",
    "timeout_to_ms",
]

PROTOCOL_VERSION: Final = 1
"""The version this implementation speaks; the last two bytes of the preface."""

PREFACE: Final = b"RPCX\r\n" + PROTOCOL_VERSION.to_bytes(2, "big")
"""Sent by both sides before anything else: magic ``RPCX``, CR LF, version u16 BE."""

HEADER: Final = struct.Struct(">IBBHI")
"""The fixed frame header: body_length, frame_type, flags, meta_length, call_id."""

MAX_CALL_ID: Final = 2**32 - 1
"""Largest call id; a client that reaches it opens a new connection."""

MAX_META_LENGTH: Final = 2**16 - 1
"""The meta map is at most 65535 bytes (it holds method, metadata and error details)."""

MAX_IDEMPOTENCY_KEY: Final = 64
"""An idempotency key is 1 to 64 bytes."""

_REQUEST: Final = 0x01
_RESPONSE: Final = 0x02
_ONEWAY: Final = 0x01
"""FrameType.REQUEST, FrameType.RESPONSE and Flags.ONEWAY (frames.py checks they agree)."""


def _check_call_id(value: int) -> None:
    if not 0 < value <= MAX_CALL_ID:
        raise ValueError(f"call_id must be in 1..{MAX_CALL_ID}, got {describe(value)}")


def _check_metadata(metadata: Mapping[Any, Any]) -> None:
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"metadata keys and values must be text, got {describe(key)}: "
                             f"{describe(value)}")


class FrameHeader(NamedTuple):
    """The decoded fixed 12-byte header (a tuple: cheap to make for every frame)."""

    body_length: int
    frame_type: int
    flags: int
    meta_length: int
    call_id: int


_unpack_header = HEADER.unpack_from


def parse_header(data: bytes | bytearray | memoryview) -> FrameHeader:
    """Decode the first 12 bytes of ``data`` (the caller guarantees there are 12)."""
    header = tuple.__new__(FrameHeader, _unpack_header(data))  # (_make, in C)
    if header.meta_length > header.body_length:
        raise RemoteProtocolError(
            f"meta_length {header.meta_length} exceeds body_length {header.body_length}"
        )
    return header


# The two frames of every call have encoders of their own that build the bytes directly
# (no frame object, no meta dict): the same bytes as encode_frame, which a test checks.

_pack_header = HEADER.pack
_METHOD_META: dict[str, bytes] = {}
"""Method name → the CBOR of ``1: name`` in a REQUEST's meta map (a few per service)."""
_MAX_CACHED_METHODS: Final = 1024


def _cbor_head(major: int, value: int) -> bytes:
    """A CBOR item head (major type, argument), in its shortest form as cbor2 writes it."""
    if value < 24:
        return bytes((major << 5 | value,))
    if value < 0x100:
        return bytes((major << 5 | 24, value))
    if value < 0x10000:
        return struct.pack(">BH", major << 5 | 25, value)
    if value < 0x100000000:
        return struct.pack(">BI", major << 5 | 26, value)
    return struct.pack(">BQ", major << 5 | 27, value)


def _method_meta(method: str) -> bytes:
    cached = _METHOD_META.get(method)
    if cached is None:
        if not method or not isinstance(method, str):
            raise ValueError("method must be a non-empty string")
        text = method.encode("utf-8")
        cached = b"\x01" + _cbor_head(3, len(text)) + text
        if len(_METHOD_META) < _MAX_CACHED_METHODS:
            _METHOD_META[method] = cached
    return cached


def encode_request(call_id: int, method: str, payload: bytes, timeout_ms: int | None = None,
                   metadata: Mapping[str, str] | None = None,
                   idempotency_key: bytes | None = None, oneway: bool = False) -> bytes:
    """``encode_frame(RequestFrame(...))`` with the same arguments and checks, faster.
    Raises ValueError for an invalid argument or a meta map over 65535 bytes."""
    _check_call_id(call_id)
    parts = [_method_meta(method)]
    if timeout_ms is not None:
        if not 0 <= timeout_ms < 2**64:
            raise ValueError(f"timeout_ms must be in 0..2**64-1, got {describe(timeout_ms)}")
        parts.append(b"\x02" + _cbor_head(0, timeout_ms))
    if metadata:
        _check_metadata(metadata)
        parts.append(b"\x03" + cbor2.dumps(dict(metadata)))
    if idempotency_key is not None:
        if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ValueError(f"idempotency_key must be 1..{MAX_IDEMPOTENCY_KEY} bytes, "
                             f"got {len(idempotency_key)}")
        parts.append(b"\x04" + _cbor_head(2, len(idempotency_key)) + idempotency_key)
    meta = bytes((0xA0 | len(parts),)) + b"".join(parts)
    if len(meta) > MAX_META_LENGTH:
        raise ValueError(f"meta map is {len(meta)} bytes, limit {MAX_META_LENGTH}")
    return b"".join((_pack_header(len(meta) + len(payload), _REQUEST,
                                  _ONEWAY if oneway else 0, len(meta), call_id),
                     meta, payload))


def encode_response(call_id: int, payload: bytes) -> bytes:
    """``encode_frame(ResponseFrame(call_id=call_id, payload=payload))``, faster."""
    _check_call_id(call_id)
    return _pack_header(len(payload), _RESPONSE, 0, 0, call_id) + payload


_UINT_SIZES: Final = {24: 1, 25: 2, 26: 4, 27: 8}


def common_request_meta(meta: bytes) -> tuple[str, int | None] | None:
    """(method, timeout_ms) if ``meta`` is the usual REQUEST meta map, ``{1: method}`` or
    ``{1: method, 2: timeout_ms}`` with a method of 1 to 255 UTF-8 bytes, exactly as
    :func:`encode_request` writes it; None for anything else (metadata, a key, another
    layout, anything malformed), which then takes the general path through cbor2 and
    its checks. Read by hand: the general path builds a decoder and a file object per
    frame. A test checks that both paths agree on arbitrary input."""
    size = len(meta)
    if size < 4 or meta[1] != 1:
        return None
    head = meta[0]
    if head != 0xA1 and head != 0xA2:
        return None
    text = meta[2]
    if 0x61 <= text <= 0x77:
        start = 3
        end = 3 + text - 0x60
    elif text == 0x78:
        start = 4
        end = 4 + meta[3]
    else:
        return None
    if end > size or end == start:
        return None
    try:
        method = meta[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if head == 0xA1:
        return (method, None) if end == size else None
    if end + 2 > size or meta[end] != 2:
        return None
    arg = meta[end + 1]
    if arg < 24:
        return (method, arg) if end + 2 == size else None
    width = _UINT_SIZES.get(arg)
    if width is None or end + 2 + width != size:
        return None
    return method, int.from_bytes(meta[end + 2:], "big")


def parse_request(header: FrameHeader, body: bytes
                  ) -> tuple[str, bytes, int | None, dict[str, str], bytes | None]:
    """A REQUEST frame's (method, payload, timeout_ms, metadata, idempotency_key) without
    building a :class:`~rpcx.protocol.frames.RequestFrame`; the same checks and errors as
    :func:`~rpcx.protocol.frames.parse_frame`."""
    if len(body) != header.body_length:
        raise RemoteProtocolError(
            f"body is {len(body)} bytes, header says {header.body_length}"
        )
    split = header.meta_length
    if header.call_id:
        common = common_request_meta(body[:split])
        if common is not None:
            return common[0], body[split:], common[1], {}, None
    from rpcx.protocol.frames import _decode_meta, _request_fields  # the general path

    try:
        method, timeout_ms, metadata, key = _request_fields(header, _decode_meta(body[:split]))
    except ValueError as exc:
        raise RemoteProtocolError(f"invalid REQUEST frame: {exc}") from None
    return method, body[split:], timeout_ms, metadata, key


def timeout_to_ms(timeout: float) -> int:
    """Remaining seconds → whole milliseconds on the wire, rounded up, at least 0."""
    if math.isnan(timeout):
        raise ValueError("timeout must not be NaN")
    if timeout <= 0:
        return 0
    millis = timeout * 1000
    if millis >= 2**64 - 1:  # also infinity
        return 2**64 - 1
    return math.ceil(millis)


_MESSAGE: Final = 0x08


def message_run(raw: bytes, pos: int, call_id: int, window: int, limit: int,
                payloads: list[bytes]) -> tuple[int, int]:
    """From ``pos`` in ``raw``: append to ``payloads`` the payload of each complete, plain
    MESSAGE frame (type 0x08, flags ignored, no meta, a payload of 1 to ``limit`` bytes)
    of ``call_id`` while ``window`` (the call's receive credit) is positive, taking each
    payload's size from it. Stops at the first frame that is not one (incomplete, another
    type or call, ...) or once the credit is gone, and returns where it stopped and the
    credit left. The scanning part of ``StreamsMixin._take_messages``, here so the
    compiled build runs it natively (the header read byte by byte: no tuple per frame)."""
    end = len(raw)
    while pos + 12 <= end and window > 0:
        if raw[pos + 4] != _MESSAGE or raw[pos + 6] or raw[pos + 7]:
            break
        if ((raw[pos + 8] << 24) | (raw[pos + 9] << 16) | (raw[pos + 10] << 8)
                | raw[pos + 11]) != call_id:
            break
        size = (raw[pos] << 24) | (raw[pos + 1] << 16) | (raw[pos + 2] << 8) | raw[pos + 3]
        stop = pos + 12 + size
        if not 0 < size <= limit or stop > end:
            break
        window -= size
        payloads.append(raw[pos + 12:stop])
        pos = stop
    return pos, window
