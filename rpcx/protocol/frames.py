"""Frame types and the length-prefixed framing of the rpcx wire protocol.

Every frame is a fixed 12-byte header, a CBOR *meta* map and an opaque payload::

    offset  size  field
    0       4     body_length  u32 BE: meta_length + payload length (not counting the header)
    4       1     frame_type   u8 (:class:`FrameType`)
    5       1     flags        u8 (:class:`Flags`); unknown bits are sent as 0 and ignored
    6       2     meta_length  u16 BE: length of the CBOR meta map (0 means the empty map)
    8       4     call_id      u32 BE: the call the frame belongs to; 0 for connection frames
    12      ...   meta         one CBOR map with small unsigned-integer keys
    12+ml   ...   payload      opaque bytes (the codec's encoding; see docs/marshalling.md)

Before the first frame each side sends the 8-byte :data:`PREFACE`. ``docs/protocol.md``
is the normative description; this module is its executable form, and the hex examples
in that document are produced by this encoder (a test keeps them in step).

:func:`parse_frame` turns one complete frame into a frame object and raises only
:class:`~rpcx.errors.RemoteProtocolError`; :func:`encode_frame` is its inverse.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Mapping
from typing import Any, Final

import attrs
import cbor2

from rpcx.errors import RemoteProtocolError
from rpcx.protocol._wire import (
    HEADER,
    MAX_CALL_ID,
    MAX_IDEMPOTENCY_KEY,
    MAX_META_LENGTH,
    PREFACE,
    PROTOCOL_VERSION,
    FrameHeader,
    _check_call_id,
    _check_metadata,
    encode_request,
    encode_response,
    parse_header,
    parse_request,
    timeout_to_ms,
)
from rpcx.status import Status
from rpcx.text import clip, describe, kind, plain

__all__ = [
    "HEADER",
    "MAX_CALL_ID",
    "MAX_IDEMPOTENCY_KEY",
    "MAX_META_LENGTH",
    "PREFACE",
    "PROTOCOL_VERSION",
    "CancelFrame",
    "ErrorFrame",
    "Flags",
    "Frame",
    "FrameHeader",
    "FrameType",
    "GoAwayFrame",
    "PingFrame",
    "PongFrame",
    "RequestFrame",
    "ResponseFrame",
    "UnknownFrame",
    "encode_frame",
    "encode_request",
    "encode_response",
    "parse_frame",
    "parse_request",
    "parse_header",
    "timeout_to_ms",
]

_META_MAX_DEPTH: Final = 32


class FrameType(enum.IntEnum):
    """The ``frame_type`` byte."""

    REQUEST = 0x01
    """Client → server: start a call (call_id ≠ 0)."""
    RESPONSE = 0x02
    """Server → client: the call succeeded; the payload is the encoded result."""
    ERROR = 0x03
    """Server → client: the call failed with a status (and maybe a declared error)."""
    CANCEL = 0x04
    """Client → server: the caller gave up; stop the handler, send nothing back."""
    PING = 0x05
    """Either direction (call_id 0): answer with a PONG carrying the same 8 bytes."""
    PONG = 0x06
    """Either direction (call_id 0): the answer to a PING."""
    GOAWAY = 0x07
    """Either direction (call_id 0): no new calls; or, with a non-OK status, a fatal error."""


class Flags(enum.IntFlag):
    """The ``flags`` byte."""

    NONE = 0
    ONEWAY = 0x01
    """On REQUEST: fire and forget; the server never answers this call."""


def _call_id_validator(_inst: object, _attr: attrs.Attribute[int], value: int) -> None:
    _check_call_id(value)


def _u64_validator(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value < 2**64:
        raise ValueError(f"{attr.name} must be in 0..2**64-1, got {describe(value)}")


@attrs.frozen(kw_only=True)
class RequestFrame:
    """REQUEST: start call ``call_id`` of ``method`` with the encoded arguments."""

    call_id: int = attrs.field(validator=_call_id_validator)
    """Chosen by the client; strictly increasing on a connection."""
    method: str
    """``package.Service/method``."""
    payload: bytes = b""
    """The encoded arguments (a CBOR map keyed by parameter tag)."""
    timeout_ms: int | None = None
    """Milliseconds left until the caller's deadline when the frame was sent; None: none."""
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    """Application key/value pairs, like HTTP headers."""
    idempotency_key: bytes | None = None
    """Set on retryable non-idempotent calls; the server executes a key at most once."""
    oneway: bool = False
    """Fire and forget: the server never answers."""

    def __attrs_post_init__(self) -> None:
        if not self.method:
            raise ValueError("method must be a non-empty string")
        if self.timeout_ms is not None and not 0 <= self.timeout_ms < 2**64:
            raise ValueError(f"timeout_ms must be in 0..2**64-1, got {describe(self.timeout_ms)}")
        if self.idempotency_key is not None and not (
            0 < len(self.idempotency_key) <= MAX_IDEMPOTENCY_KEY
        ):
            raise ValueError(
                f"idempotency_key must be 1..{MAX_IDEMPOTENCY_KEY} bytes, "
                f"got {len(self.idempotency_key)}"
            )
        _check_metadata(self.metadata)


@attrs.frozen(kw_only=True)
class ResponseFrame:
    """RESPONSE: call ``call_id`` succeeded with the encoded result."""

    call_id: int = attrs.field(validator=_call_id_validator)
    payload: bytes = b""
    """The encoded result."""


@attrs.frozen(kw_only=True)
class ErrorFrame:
    """ERROR: call ``call_id`` failed."""

    call_id: int = attrs.field(validator=_call_id_validator)
    status: Status
    """Any status except OK."""
    message: str = attrs.field(default="", converter=clip)
    """Human-readable, lower-case, never a traceback or a secret; cut to
    :data:`~rpcx.text.MAX_MESSAGE_BYTES` so the frame always fits its limits."""
    details: Mapping[str, Any] = attrs.field(factory=dict)
    """Structured extra information; values are any CBOR-encodable data."""
    error_name: str | None = None
    """The qualified name of an IDL-declared error (``payments.InsufficientFunds``)."""
    error_payload: bytes | None = None
    """The encoded fields of the declared error; only together with ``error_name``."""

    def __attrs_post_init__(self) -> None:
        if self.status is Status.OK:
            raise ValueError("an error frame cannot carry status OK")
        if self.error_payload is not None and self.error_name is None:
            raise ValueError("error_payload requires error_name")
        if self.error_name is not None and not self.error_name:
            raise ValueError("error_name must be a non-empty string")
        for key in self.details:
            if not isinstance(key, str):
                raise ValueError(f"details keys must be text, got {describe(key)}")


@attrs.frozen(kw_only=True)
class CancelFrame:
    """CANCEL: the client abandoned call ``call_id``."""

    call_id: int = attrs.field(validator=_call_id_validator)


@attrs.frozen(kw_only=True)
class PingFrame:
    """PING: liveness probe; ``ping_id`` is echoed in the PONG."""

    ping_id: int = attrs.field(validator=_u64_validator)


@attrs.frozen(kw_only=True)
class PongFrame:
    """PONG: the answer to the PING with the same ``ping_id``."""

    ping_id: int = attrs.field(validator=_u64_validator)


@attrs.frozen(kw_only=True)
class GoAwayFrame:
    """GOAWAY: the sender accepts no new calls.

    With status OK it is a graceful shutdown: calls up to ``last_call_id`` still complete.
    With any other status it reports a fatal connection error and the sender closes.
    """

    last_call_id: int = attrs.field(validator=_u64_validator)
    """Server: the highest call id it received and will finish; client: 0."""
    status: Status = Status.OK
    message: str = attrs.field(default="", converter=clip)
    """Cut to :data:`~rpcx.text.MAX_MESSAGE_BYTES`, like an ERROR's."""


@attrs.frozen(kw_only=True)
class UnknownFrame:
    """A frame whose type this version does not know; receivers ignore it."""

    frame_type: int
    flags: int
    call_id: int
    body: bytes


Frame = (
    RequestFrame | ResponseFrame | ErrorFrame | CancelFrame | PingFrame | PongFrame
    | GoAwayFrame | UnknownFrame
)


# ---------------------------------------------------------------- encoding


def _pack(frame_type: FrameType, flags: int, call_id: int, meta: dict[int, Any],
          payload: bytes) -> bytes:
    meta_bytes = cbor2.dumps(meta) if meta else b""
    if len(meta_bytes) > MAX_META_LENGTH:
        raise ValueError(f"meta map is {len(meta_bytes)} bytes, limit {MAX_META_LENGTH}")
    header = HEADER.pack(len(meta_bytes) + len(payload), frame_type, flags,
                         len(meta_bytes), call_id)
    return b"".join((header, meta_bytes, payload))


def encode_frame(frame: Frame) -> bytes:
    """Serialise ``frame``; raises ValueError if its meta map exceeds 65535 bytes."""
    meta: dict[int, Any] = {}
    if isinstance(frame, RequestFrame):
        meta[1] = frame.method
        if frame.timeout_ms is not None:
            meta[2] = frame.timeout_ms
        if frame.metadata:
            meta[3] = dict(frame.metadata)
        if frame.idempotency_key is not None:
            meta[4] = frame.idempotency_key
        flags = Flags.ONEWAY if frame.oneway else Flags.NONE
        return _pack(FrameType.REQUEST, flags, frame.call_id, meta, frame.payload)
    if isinstance(frame, ResponseFrame):
        return _pack(FrameType.RESPONSE, 0, frame.call_id, meta, frame.payload)
    if isinstance(frame, ErrorFrame):
        meta[1] = int(frame.status)
        if frame.message:
            meta[2] = frame.message
        if frame.details:
            meta[3] = dict(frame.details)
        if frame.error_name is not None:
            meta[4] = frame.error_name
        return _pack(FrameType.ERROR, 0, frame.call_id, meta, frame.error_payload or b"")
    if isinstance(frame, CancelFrame):
        return _pack(FrameType.CANCEL, 0, frame.call_id, meta, b"")
    if isinstance(frame, PingFrame):
        return _pack(FrameType.PING, 0, 0, meta, frame.ping_id.to_bytes(8, "big"))
    if isinstance(frame, PongFrame):
        return _pack(FrameType.PONG, 0, 0, meta, frame.ping_id.to_bytes(8, "big"))
    if isinstance(frame, GoAwayFrame):
        meta[1] = frame.last_call_id
        if frame.status is not Status.OK:
            meta[2] = int(frame.status)
        if frame.message:
            meta[3] = frame.message
        return _pack(FrameType.GOAWAY, 0, 0, meta, b"")
    return HEADER.pack(len(frame.body), frame.frame_type, frame.flags, 0,
                       frame.call_id) + frame.body


# ---------------------------------------------------------------- parsing


def _decode_meta(data: bytes) -> dict[Any, Any]:
    if not data:
        return {}
    fp = io.BytesIO(data)
    try:
        meta = cbor2.CBORDecoder(fp, max_depth=_META_MAX_DEPTH, allow_duplicate_keys=False,
                                 allow_indefinite=False).decode()
    except Exception as exc:  # cbor2 6 raises CBORDecodeError; be robust to anything
        reason = plain(str(exc))
        raise RemoteProtocolError(
            f"malformed meta map: {reason}" if reason else "malformed meta map") from None
    if fp.tell() != len(data):  # cbor2 would silently ignore trailing bytes
        raise RemoteProtocolError(
            f"meta has {len(data) - fp.tell()} bytes after the CBOR map"
        )
    if not isinstance(meta, dict):
        raise RemoteProtocolError(f"meta must be a map, got {kind(meta)}")
    return meta


_CBOR_NAMES: Final[dict[type[Any], str]] = {
    str: "text", int: "an integer", bytes: "a byte string", dict: "a map"}


def _get(meta: dict[Any, Any], key: int, expected: type[Any], what: str,
         *, required: bool = False) -> Any:
    value = meta.get(key)
    if value is None:
        if required:
            raise RemoteProtocolError(f"{what} (meta key {key}) is missing")
        return None
    if not isinstance(value, expected) or isinstance(value, bool):
        raise RemoteProtocolError(
            f"{what} (meta key {key}) must be {_CBOR_NAMES[expected]}, got {kind(value)} "
            f"{describe(value)}"
        )
    return value


def _status(value: int) -> Status:
    if value < 0:
        raise RemoteProtocolError(f"status must be unsigned, got {describe(value)}")
    try:
        return Status(value)
    except ValueError:
        return Status.UNKNOWN  # codes from a newer peer read as UNKNOWN, as in gRPC


def _require_connection_frame(header: FrameHeader, name: str) -> None:
    if header.call_id != 0:
        raise RemoteProtocolError(f"{name} frame must have call_id 0, got {header.call_id}")


def _require_call_frame(header: FrameHeader, name: str) -> None:
    if header.call_id == 0:
        raise RemoteProtocolError(f"{name} frame must have a call_id other than 0")


def _ping_id(payload: bytes, name: str) -> int:
    if len(payload) != 8:
        raise RemoteProtocolError(f"{name} payload must be 8 bytes, got {len(payload)}")
    return int.from_bytes(payload, "big")


def parse_frame(header: FrameHeader, body: bytes) -> Frame:
    """Build the frame described by ``header`` from its complete ``body``.

    Raises :class:`~rpcx.errors.RemoteProtocolError`, and nothing else, for any malformed
    input. Unknown meta keys are ignored so later versions can add fields.
    """
    if len(body) != header.body_length:
        raise RemoteProtocolError(
            f"body is {len(body)} bytes, header says {header.body_length}"
        )
    try:
        kind = FrameType(header.frame_type)
    except ValueError:
        return UnknownFrame(frame_type=header.frame_type, flags=header.flags,
                            call_id=header.call_id, body=body)
    meta = _decode_meta(body[: header.meta_length])
    payload = body[header.meta_length:]
    try:
        return _build(kind, header, meta, payload)
    except ValueError as exc:  # a frame constructor's validation
        raise RemoteProtocolError(f"invalid {kind.name} frame: {exc}") from None


def _build(kind: FrameType, header: FrameHeader, meta: dict[Any, Any],
           payload: bytes) -> Frame:
    if kind is FrameType.REQUEST:
        method, timeout_ms, metadata, key = _request_fields(header, meta)
        return RequestFrame(call_id=header.call_id, method=method, payload=payload,
                            timeout_ms=timeout_ms, metadata=metadata, idempotency_key=key,
                            oneway=bool(header.flags & Flags.ONEWAY))
    if kind is FrameType.RESPONSE:
        _require_call_frame(header, "RESPONSE")
        return ResponseFrame(call_id=header.call_id, payload=payload)
    if kind is FrameType.ERROR:
        _require_call_frame(header, "ERROR")
        error_name = _get(meta, 4, str, "error_name")
        if error_name is None and payload:
            raise RemoteProtocolError("ERROR frame has a payload but no error_name")
        return ErrorFrame(
            call_id=header.call_id,
            status=_status(_get(meta, 1, int, "status", required=True)),
            message=_get(meta, 2, str, "message") or "",
            details=_get(meta, 3, dict, "details") or {},
            error_name=error_name,
            error_payload=payload if error_name is not None else None,
        )
    if kind is FrameType.CANCEL:
        _require_call_frame(header, "CANCEL")
        return CancelFrame(call_id=header.call_id)
    if kind is FrameType.PING:
        _require_connection_frame(header, "PING")
        return PingFrame(ping_id=_ping_id(payload, "PING"))
    if kind is FrameType.PONG:
        _require_connection_frame(header, "PONG")
        return PongFrame(ping_id=_ping_id(payload, "PONG"))
    _require_connection_frame(header, "GOAWAY")
    status = _get(meta, 2, int, "status")
    return GoAwayFrame(
        last_call_id=_get(meta, 1, int, "last_call_id", required=True),
        status=Status.OK if status is None else _status(status),
        message=_get(meta, 3, str, "message") or "",
    )


def _request_fields(header: FrameHeader, meta: dict[Any, Any]
                    ) -> tuple[str, int | None, dict[str, str], bytes | None]:
    """A REQUEST's method, timeout_ms, metadata and idempotency key, each checked as the
    RequestFrame constructor checks it (ValueError for a bad value)."""
    _require_call_frame(header, "REQUEST")
    method = _get(meta, 1, str, "method", required=True)
    if not method:
        raise ValueError("method must be a non-empty string")
    timeout_ms = meta.get(2)
    if timeout_ms is not None:
        if timeout_ms.__class__ is not int:
            timeout_ms = _get(meta, 2, int, "timeout_ms")
        if not 0 <= timeout_ms < 2**64:
            raise ValueError(f"timeout_ms must be in 0..2**64-1, got {describe(timeout_ms)}")
    metadata = meta.get(3)
    if metadata is None:
        metadata = {}
    else:
        metadata = _get(meta, 3, dict, "metadata")
        _check_metadata(metadata)
    key = meta.get(4)
    if key is not None:
        key = _get(meta, 4, bytes, "idempotency_key")
        if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise ValueError(f"idempotency_key must be 1..{MAX_IDEMPOTENCY_KEY} bytes, "
                             f"got {len(key)}")
    return method, timeout_ms, metadata, key
