"""What a :class:`~rpcx.protocol.Connection` reports: small frozen facts, past tense.

Client side: :class:`ResponseReceived`, :class:`ErrorReceived`, :class:`DeadlineExpired`
and :class:`CallAborted` each end a call; exactly one of them arrives for every
two-way call that was not cancelled locally.

Server side: :class:`RequestReceived` starts a handler; :class:`CancelReceived`,
:class:`DeadlineExpired` and :class:`CallAborted` tell the runtime to cancel it.

Both sides: :class:`PingAcked`, :class:`GoAwayReceived` and, last of all,
:class:`ConnectionTerminated`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from rpcx.status import Status

__all__ = [
    "CallAborted",
    "CancelReceived",
    "ConnectionTerminated",
    "DeadlineExpired",
    "EndReceived",
    "ErrorReceived",
    "Event",
    "GoAwayReceived",
    "MessagesReceived",
    "PingAcked",
    "RequestReceived",
    "ResponseReceived",
    "TerminationReason",
    "WindowOpened",
]


def _positive(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attr.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class RequestReceived:
    """Server: the client started a call; run the handler for ``method``."""

    call_id: int = attrs.field(validator=_positive)
    """Identifies the call in :meth:`Connection.send_response` / ``send_error``."""
    method: str
    """``package.Service/method``."""
    payload: bytes
    """The encoded arguments."""
    metadata: Mapping[str, str]
    """The caller's metadata."""
    deadline: float | None
    """Absolute deadline on this side's clock (``now`` at receipt + the remaining time)."""
    idempotency_key: bytes | None
    """Present when the client may retry a non-idempotent call; see ``rpcx.protocol.dedup``."""
    oneway: bool
    """No answer may be sent; call :meth:`Connection.finish_oneway` when the handler ends."""


@attrs.frozen(kw_only=True)
class ResponseReceived:
    """Client: call ``call_id`` succeeded."""

    call_id: int = attrs.field(validator=_positive)
    payload: bytes
    """The encoded result."""


@attrs.frozen(kw_only=True)
class ErrorReceived:
    """Client: the server reported that call ``call_id`` failed."""

    call_id: int = attrs.field(validator=_positive)
    status: Status
    message: str
    details: Mapping[str, Any]
    error_name: str | None
    """Qualified name of an IDL-declared error, or None."""
    error_payload: bytes | None
    """Encoded fields of the declared error (with ``error_name``), else None."""


@attrs.frozen(kw_only=True)
class CancelReceived:
    """Server: the caller cancelled call ``call_id``; cancel its handler, send nothing."""

    call_id: int = attrs.field(validator=_positive)


@attrs.frozen(kw_only=True)
class DeadlineExpired:
    """Call ``call_id``'s deadline passed (reported by ``handle_timeout``).

    Client: fail the call with DEADLINE_EXCEEDED; a CANCEL has been queued for the server.
    Server: cancel the handler; a DEADLINE_EXCEEDED error has been queued for the client
    (nothing for one-way calls).
    """

    call_id: int = attrs.field(validator=_positive)


@attrs.frozen(kw_only=True)
class CallAborted:
    """Call ``call_id`` ended without an answer from the peer.

    Client: fail it with ``status`` (UNAVAILABLE when the connection died or the server's
    GOAWAY shows it never processed the call, so retrying elsewhere is safe;
    RESOURCE_EXHAUSTED when the reply exceeded ``max_frame_size``).
    Server: cancel the handler (the connection is gone).
    """

    call_id: int = attrs.field(validator=_positive)
    status: Status
    message: str
    details: Mapping[str, Any] = attrs.field(factory=dict)
    outcome_unknown: bool = False
    """Client: the request may have reached the server and run (the connection died with
    the call open); False when the server is known not to have run it (GOAWAY) or to
    have finished it (a reply too large)."""
    """``{"limit": "max_frame_size"}`` when a size limit caused it (see TOO_LARGE)."""


@attrs.frozen(kw_only=True)
class PingAcked:
    """A PONG answered our PING ``ping_id`` after ``rtt`` seconds."""

    ping_id: int
    rtt: float


@attrs.frozen(kw_only=True)
class GoAwayReceived:
    """The peer sent GOAWAY: start no new calls on this connection.

    Client: calls above ``last_call_id`` were never processed and have been aborted with
    UNAVAILABLE; the others still complete.
    """

    last_call_id: int
    status: Status
    message: str


class TerminationReason(enum.Enum):
    """Why a connection reached its end."""

    DRAINED = "drained"
    """A GOAWAY was sent or received and every call finished."""
    PEER_CLOSED = "peer closed"
    """The peer closed the byte stream (``receive_data(b"")``) before draining."""
    KEEPALIVE_TIMEOUT = "keepalive timeout"
    """The peer sent nothing for ``keepalive_timeout`` after our PING."""
    PROTOCOL_ERROR = "protocol error"
    """The peer broke the protocol; we sent an error GOAWAY."""
    PEER_ERROR = "peer error"
    """The peer sent a GOAWAY with a non-OK status."""
    LOCAL_ERROR = "local error"
    """This side called ``close`` with a non-OK status."""
    FRAME_TIMEOUT = "frame timeout"
    """A frame was not complete ``frame_timeout`` seconds after its first byte; we sent
    an error GOAWAY."""


@attrs.frozen(kw_only=True)
class ConnectionTerminated:
    """The connection is finished: flush ``data_to_send()``, then close the stream.

    Always the last event; every call still open was reported with :class:`CallAborted`
    first.
    """

    reason: TerminationReason
    status: Status
    message: str


@attrs.frozen(kw_only=True)
class MessagesReceived:
    """A streaming call's peer sent messages (see ``rpcx.protocol.streams``): every
    MESSAGE of this call in one run of MESSAGE frames of the input, in order (one event
    per call per run, not one per message: the per-message path is the hot one). As the
    application uses them, it calls :meth:`Connection.consume` with their sizes so the
    peer may send more (flow control)."""

    call_id: int  # (non-zero: checked with the frame)
    payloads: list[bytes] = attrs.field(eq=True, hash=False)
    """The encoded stream items, oldest first (never empty)."""


@attrs.frozen(kw_only=True)
class EndReceived:
    """Server: the client sent END on a streaming call: it sends no more messages."""

    call_id: int  # (non-zero: checked with the frame)


@attrs.frozen(kw_only=True)
class WindowOpened:
    """The peer granted credit on a streaming call whose credit was used up: a sender
    waiting to send its next message may go on."""

    call_id: int  # (non-zero: checked with the frame)


Event = (
    RequestReceived | ResponseReceived | ErrorReceived | CancelReceived | DeadlineExpired
    | CallAborted | PingAcked | GoAwayReceived | ConnectionTerminated
    | MessagesReceived | EndReceived | WindowOpened
)
