"""The sans-I/O rpcx connection: many calls multiplexed over one byte stream.

Inputs are :meth:`Connection.receive_data`, the API calls (:meth:`~Connection.start_call`,
:meth:`~Connection.cancel_call`, :meth:`~Connection.send_response`,
:meth:`~Connection.send_error`, :meth:`~Connection.finish_oneway`,
:meth:`~Connection.ping`, :meth:`~Connection.close`) and :meth:`~Connection.handle_timeout`.
Outputs are :meth:`~Connection.events`, :meth:`~Connection.data_to_send` and
:meth:`~Connection.next_deadline`. Time is a float of seconds passed in by the caller; this
module never reads a clock, opens a socket or draws a random number.

A runtime drives it with one loop::

    conn = Connection(Role.CLIENT, now=clock())
    send(conn.data_to_send())                 # the preface
    while True:
        data = receive(timeout=conn.next_deadline() - clock())   # b"" on EOF
        try:
            conn.receive_data(data, clock()) if data is not None else conn.handle_timeout(clock())
        except RemoteProtocolError:
            pass                              # already reported as events; GOAWAY queued
        for event in conn.events(): dispatch(event)
        send(conn.data_to_send())
        if conn.state is ConnectionState.CLOSED: close the stream; break

Per-call transitions live in :mod:`rpcx.protocol.call`; this module owns everything
that spans calls: call ids, deadlines, keepalive, limits and GOAWAY.
"""

from __future__ import annotations

import enum
import heapq
import math
from collections.abc import Mapping
from typing import Any, Final

from rpcx._mypyc import mypyc_attr
from rpcx.errors import LocalProtocolError, RemoteProtocolError, RpcError
from rpcx.protocol._wire import (
    _ONEWAY,
    _REQUEST,
    _RESPONSE,
    HEADER,
    MAX_CALL_ID,
    PREFACE,
    FrameHeader,
    encode_request,
    encode_response,
    parse_request,
    timeout_to_ms,
)
from rpcx.protocol.budget import BUDGET_EXHAUSTED, ReceiveBudget
from rpcx.protocol.buffer import Oversized, ReceiveBuffer
from rpcx.protocol.call import Call, CallInput, CallState, Role
from rpcx.protocol.events import (
    CallAborted,
    CancelReceived,
    ConnectionTerminated,
    DeadlineExpired,
    ErrorReceived,
    Event,
    GoAwayReceived,
    PingAcked,
    RequestReceived,
    ResponseReceived,
    TerminationReason,
)
from rpcx.protocol.frames import (
    CancelFrame,
    ErrorFrame,
    Flags,
    Frame,
    FrameType,
    GoAwayFrame,
    PingFrame,
    PongFrame,
    RequestFrame,
    ResponseFrame,
    UnknownFrame,
    encode_frame,
    parse_frame,
)
from rpcx.protocol.streams import STREAM_FRAME_TYPES, StreamsMixin, _Stream
from rpcx.status import Status

_pack_header: Final = HEADER.pack
_HEADER_SIZE: Final = HEADER.size
_MESSAGE: Final = 0x08


def _slot_setter(cls: type, name: str) -> Any:
    """The setter of slot ``name`` of a slotted (attrs) event class: filling every slot
    of ``object.__new__(cls)`` with these makes the object its ``__init__`` would make,
    for a fraction of the cost (events of a frozen class, one per call each way)."""
    slot = cls.__dict__[name]
    assert slot.__class__.__name__ == "member_descriptor", (cls, name)
    return slot.__set__


_new_event: Final[Any] = object.__new__
_SET_RESPONSE_CALL_ID: Final = _slot_setter(ResponseReceived, "call_id")
_SET_RESPONSE_PAYLOAD: Final = _slot_setter(ResponseReceived, "payload")
_SET_REQUEST_CALL_ID: Final = _slot_setter(RequestReceived, "call_id")
_SET_REQUEST_METHOD: Final = _slot_setter(RequestReceived, "method")
_SET_REQUEST_PAYLOAD: Final = _slot_setter(RequestReceived, "payload")
_SET_REQUEST_METADATA: Final = _slot_setter(RequestReceived, "metadata")
_SET_REQUEST_DEADLINE: Final = _slot_setter(RequestReceived, "deadline")
_SET_REQUEST_KEY: Final = _slot_setter(RequestReceived, "idempotency_key")
_SET_REQUEST_ONEWAY: Final = _slot_setter(RequestReceived, "oneway")

__all__ = [
    "TOO_LARGE",
    "DEFAULT_FRAME_TIMEOUT",
    "DEFAULT_KEEPALIVE_INTERVAL",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_CONCURRENT_CALLS",
    "DEFAULT_MAX_FRAME_SIZE",
    "Connection",
    "ConnectionState",
]

DEFAULT_MAX_FRAME_SIZE: Final = 4 * 1024 * 1024 + 64 * 1024
"""4 MiB of payload (gRPC's default max receive message size) plus 64 KiB of meta map."""
DEFAULT_MAX_CONCURRENT_CALLS: Final = 100
"""Calls in flight per connection; HTTP/2's recommended minimum and gRPC's usual value."""
DEFAULT_KEEPALIVE_INTERVAL: Final = 60.0
"""Seconds of receive silence before we PING."""
DEFAULT_KEEPALIVE_TIMEOUT: Final = 20.0
"""Seconds after a keepalive PING within which the peer must send something."""
DEFAULT_FRAME_TIMEOUT: Final = 30.0
"""Seconds a server gives a frame to arrive whole once its first byte has (4 MiB at
140 KB/s); a client leaves it off (None), as each call's deadline bounds its reply."""
_MAX_OUTSTANDING_PINGS: Final = 64

TOO_LARGE: Final[Mapping[str, Any]] = {"limit": "max_frame_size"}
"""The ``details`` of every RESOURCE_EXHAUSTED failure caused by a message too large for
``max_frame_size``: sending the same message again cannot succeed, so it is not retried."""


class ConnectionState(enum.Enum):
    """The connection's own life, separate from any one call's."""

    OPEN = "open"
    """Calls may start."""
    CLOSING = "closing"
    """A GOAWAY was sent or received: no new calls; open ones finish."""
    CLOSED = "closed"
    """Finished; flush ``data_to_send()`` and close the stream."""


@mypyc_attr(allow_interpreted_subclasses=True)  # (tests subclass it to inject a bug)
class Connection(StreamsMixin):
    """One end of an rpcx connection; see the module docstring for the driving loop.

    Every limit is a constructor parameter:

    - ``max_frame_size``: the largest frame body accepted *and* sent. An oversized request
      is answered with RESOURCE_EXHAUSTED, an oversized reply fails just that call; the
      connection survives both because the length prefix lets the receiver skip the body.
    - ``max_concurrent_calls``: server: requests beyond it get RESOURCE_EXHAUSTED;
      client: :meth:`start_call` refuses, so the runtime should wait (backpressure) while
      :attr:`open_calls` is at the limit.
    - ``keepalive_interval`` / ``keepalive_timeout``: PING after that much receive
      silence; if nothing arrives within the timeout, the peer is dead. None disables.
    - ``frame_timeout``: seconds from the first byte of a frame within which the rest
      must arrive; past it the connection ends with an error GOAWAY. None disables.
    - ``budget``: a :class:`~rpcx.protocol.budget.ReceiveBudget` shared with other
      connections that caps the bytes of incomplete frames they hold together. A frame
      that cannot get room is refused: a REQUEST gets RESOURCE_EXHAUSTED
      (``details`` :data:`~rpcx.protocol.budget.BUDGET_EXHAUSTED`), a reply fails its call,
      and the connection goes on, dropping that frame's bytes as they arrive.
    """

    def __init__(
        self,
        role: Role,
        *,
        now: float,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
        keepalive_interval: float | None = DEFAULT_KEEPALIVE_INTERVAL,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
        frame_timeout: float | None = None,
        budget: ReceiveBudget | None = None,
    ) -> None:
        if max_frame_size < 64:
            raise ValueError(f"max_frame_size must be at least 64, got {max_frame_size!r}")
        if max_concurrent_calls < 1:
            raise ValueError(
                f"max_concurrent_calls must be positive, got {max_concurrent_calls!r}"
            )
        if keepalive_interval is not None and not keepalive_interval > 0:
            raise ValueError(
                f"keepalive_interval must be positive or None, got {keepalive_interval!r}"
            )
        if not keepalive_timeout > 0:
            raise ValueError(f"keepalive_timeout must be positive, got {keepalive_timeout!r}")
        if frame_timeout is not None and not frame_timeout > 0:
            raise ValueError(f"frame_timeout must be positive or None, got {frame_timeout!r}")
        self.role: Final = role
        self.max_frame_size: Final = max_frame_size
        self.max_concurrent_calls: Final = max_concurrent_calls
        self.keepalive_interval: Final = keepalive_interval
        self.keepalive_timeout: Final = keepalive_timeout
        self.frame_timeout: Final = frame_timeout
        self._budget = budget
        self._held = 0  # bytes of ``_buffer`` charged to the budget
        self._partial_since: float | None = None  # when the frame held now began to arrive
        self._new_deadline = math.inf  # earliest deadline added since the last look
        self._buffer = ReceiveBuffer(max_frame_size)
        self._out: list[bytes] = [PREFACE]
        self._out_bytes = len(PREFACE)
        self._events: list[Event] = []
        self._calls: dict[int, Call] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._highest_call_id = 0  # client: last allocated; server: last received
        self._state = ConnectionState.OPEN
        self._goaway_sent = False
        self._last_received = now
        self._keepalive_sent: float | None = None
        self._pings: dict[int, float] = {}
        self._next_ping_id = 1
        self._streams: dict[int, _Stream] = {}  # streaming calls (rpcx.protocol.streams)

    # ------------------------------------------------------------ introspection

    @property
    def state(self) -> ConnectionState:
        """OPEN, CLOSING (after a GOAWAY either way) or CLOSED."""
        return self._state

    @property
    def open_calls(self) -> int:
        """Calls started and not yet finished (including running one-way handlers)."""
        return len(self._calls)

    # ------------------------------------------------------------ outputs

    def events(self) -> list[Event]:
        """Everything that happened since the last call, in order."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """Bytes to write to the stream, in order; empty if there are none."""
        data = b"".join(self._out)
        self._out.clear()
        self._out_bytes = 0
        return data

    def has_data_to_send(self) -> bool:
        """True if :meth:`data_to_send` would return bytes."""
        return bool(self._out)

    def bytes_to_send(self) -> int:
        """How many bytes :meth:`data_to_send` would return."""
        return self._out_bytes

    def _queue(self, data: bytes) -> None:
        self._out.append(data)
        self._out_bytes += len(data)

    # (The sender's loop of a streaming call, so part of rpcx.protocol.streams; written
    # here because this module is compiled in the compiled build and that one is not.)
    def queue_message(self, call_id: int, payload: bytes) -> int:
        """:meth:`send_message` for a sender's loop. Returns, once the MESSAGE is queued,
        the bytes now waiting in :meth:`data_to_send` (positive: what a sender batching
        its writes needs next); 0 if the call has ended (nothing sent); -1 if there is no
        credit now (nothing sent: wait for :class:`~rpcx.protocol.events.WindowOpened`,
        then try again). Raises what :meth:`send_message` raises for a message that can
        never be sent."""
        stream = self._streams.get(call_id)
        size = len(payload)
        if (stream is not None and stream.sendable and stream.send_credit > 0
                and 0 < size <= self.max_frame_size and call_id in self._calls):
            # send_message without the checks its first message passed (the call is
            # two-way, the client has not ended it)
            stream.send_credit -= size
            self._out.append(_pack_header(size, _MESSAGE, 0, 0, call_id) + payload)
            self._out_bytes += _HEADER_SIZE + size
            return self._out_bytes
        if payload and call_id in self._calls and self.stream_credit(call_id) <= 0:
            return -1
        return self._out_bytes if self.send_message(call_id, payload) else 0

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called; None if never."""
        self._new_deadline = math.inf
        if self._state is ConnectionState.CLOSED:
            return None
        while self._deadlines and self._deadlines[0][1] not in self._calls:
            heapq.heappop(self._deadlines)
        candidates = [self._deadlines[0][0]] if self._deadlines else []
        if self._partial_since is not None and self.frame_timeout is not None:
            candidates.append(self._partial_since + self.frame_timeout)
        if self.keepalive_interval is not None:
            if self._keepalive_sent is not None:
                candidates.append(self._keepalive_sent + self.keepalive_timeout)
            else:
                candidates.append(self._last_received + self.keepalive_interval)
        return min(candidates, default=None)

    def new_deadline(self) -> float:
        """The earliest deadline added since :meth:`next_deadline` or this method was last
        called (infinity if none), then forget it. Deadlines only move earlier when one is
        added, so a timer sleeping until ``next_deadline()`` need only compare with this
        (O(1)) after each change; ends of calls move it later, which costs at most one
        early wake-up."""
        deadline, self._new_deadline = self._new_deadline, math.inf
        return deadline

    # ------------------------------------------------------------ client API

    def start_call(
        self,
        method: str,
        payload: bytes,
        *,
        now: float,
        timeout: float | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: bytes | None = None,
        oneway: bool = False,
    ) -> int:
        """Queue a REQUEST and return its call id.

        ``timeout`` is seconds from ``now`` (None or infinity: no deadline). Raises
        :class:`~rpcx.errors.LocalProtocolError` if this is not a client, the connection is
        not OPEN, ``max_concurrent_calls`` two-way calls are already open, the call ids are
        exhausted or an argument is invalid; raises :class:`~rpcx.errors.RpcError` with
        RESOURCE_EXHAUSTED if the frame would exceed ``max_frame_size``.
        """
        self._require_role(Role.CLIENT, "start_call")
        if self._state is not ConnectionState.OPEN:
            raise LocalProtocolError(
                f"cannot start a call on a connection in state {self._state.name}; "
                "open a new connection"
            )
        if not oneway and len(self._calls) >= self.max_concurrent_calls:
            raise LocalProtocolError(
                f"{len(self._calls)} calls already open (max_concurrent_calls="
                f"{self.max_concurrent_calls}); wait for one to finish"
            )
        if self._highest_call_id >= MAX_CALL_ID:
            raise LocalProtocolError("call ids exhausted; open a new connection")
        deadline: float | None = None
        timeout_ms: int | None = None
        if timeout is not None and not math.isinf(timeout):
            if math.isnan(timeout):
                raise LocalProtocolError("timeout must not be NaN")
            deadline = now + timeout
            timeout_ms = timeout_to_ms(timeout)
        call_id = self._highest_call_id + 1
        try:
            data = encode_request(call_id, method, payload, timeout_ms, metadata,
                                  idempotency_key, oneway)
        except ValueError as exc:
            raise LocalProtocolError(f"invalid call to {method!r}: {exc}") from None
        if len(data) - HEADER.size > self.max_frame_size:
            raise RpcError(
                Status.RESOURCE_EXHAUSTED,
                f"request of {len(data) - HEADER.size} bytes exceeds max_frame_size "
                f"{self.max_frame_size}",
                TOO_LARGE,
            )
        self._highest_call_id = call_id
        if not oneway:
            # Call.apply(SEND_REQUEST) from IDLE, written out (the table's transition)
            self._track(Call(Role.CLIENT, call_id, method, deadline, CallState.AWAITING_REPLY))
        self._queue(data)
        return call_id

    def cancel_call(self, call_id: int, *, notify: bool = True) -> bool:
        """Abandon a call: queue a CANCEL so the server cancels its handler.

        With ``notify=False`` the call is only forgotten here and nothing is sent: the
        server runs it to completion (a retried call with an idempotency key wants that,
        so the result is stored for the retry) and its late reply is ignored.

        Returns False if the call had already finished (its outcome was reported or it was
        one-way); no event follows for a cancelled call.
        """
        self._require_role(Role.CLIENT, "cancel_call")
        call = self._local_call(call_id)
        if call is None:
            return False
        self._finish(call, CallInput.SEND_CANCEL)
        if notify:
            self._queue(encode_frame(CancelFrame(call_id=call_id)))
        self._maybe_drained()
        return True

    # ------------------------------------------------------------ server API

    def send_response(self, call_id: int, payload: bytes) -> bool:
        """Answer call ``call_id`` with its encoded result.

        Returns False, sending nothing, if the call already ended (cancelled, deadline
        passed, connection lost): handlers racing those events need no special care. A
        result larger than ``max_frame_size`` is replaced by a RESOURCE_EXHAUSTED error.
        """
        if self.role is not Role.SERVER:
            self._require_role(Role.SERVER, "send_response")
        call = self._local_call(call_id)
        if call is None:
            return False
        data = encode_response(call_id, payload)
        if len(data) - HEADER.size > self.max_frame_size:
            return self._send_too_large(call, "response", len(data) - HEADER.size)
        if call.state is CallState.RUNNING:  # the table's RUNNING -> DONE, written out
            call.state = CallState.DONE
            del self._calls[call_id]
            if self._streams:  # as _finish: a streaming call's flow-control state goes
                self._streams.pop(call_id, None)
        else:
            self._finish(call, CallInput.SEND_RESPONSE)  # raises
        self._queue(data)
        if self._state is ConnectionState.CLOSING:
            self._maybe_drained()
        return True

    def send_error(
        self,
        call_id: int,
        status: Status,
        message: str = "",
        details: Mapping[str, Any] | None = None,
        *,
        error_name: str | None = None,
        error_payload: bytes | None = None,
    ) -> bool:
        """Fail call ``call_id``; for an IDL-declared error pass its qualified name and
        encoded fields. Returns False if the call already ended (see :meth:`send_response`).
        Raises :class:`~rpcx.errors.LocalProtocolError` for status OK, non-str detail keys,
        undecodable details or a meta map over 64 KiB (the call stays open).
        """
        self._require_role(Role.SERVER, "send_error")
        call = self._local_call(call_id)
        if call is None:
            return False
        try:
            frame = ErrorFrame(call_id=call_id, status=status, message=message,
                               details=dict(details or {}), error_name=error_name,
                               error_payload=error_payload)
            data = encode_frame(frame)
        except Exception as exc:  # ValueError from validation, CBOREncodeError from cbor2
            raise LocalProtocolError(f"cannot send error for call {call_id}: {exc}") from None
        if len(data) - HEADER.size > self.max_frame_size:
            return self._send_too_large(call, "error", len(data) - HEADER.size)
        self._finish(call, CallInput.SEND_ERROR)
        self._queue(data)
        self._maybe_drained()
        return True

    def finish_oneway(self, call_id: int) -> bool:
        """Report that a one-way call's handler finished (frees its concurrency slot)."""
        self._require_role(Role.SERVER, "finish_oneway")
        call = self._local_call(call_id)
        if call is None:
            return False
        self._finish(call, CallInput.HANDLER_DONE)
        self._maybe_drained()
        return True

    # ------------------------------------------------------------ both sides

    def ping(self, now: float) -> int:
        """Queue a PING; its PONG is reported as :class:`PingAcked` with the same id."""
        if self._state is ConnectionState.CLOSED:
            raise LocalProtocolError("cannot ping a CLOSED connection")
        return self._send_ping(now)

    def close(self, now: float, *, status: Status = Status.OK, message: str = "") -> None:
        """Stop accepting calls.

        With status OK this is a graceful shutdown: a GOAWAY is queued, open calls finish,
        and :class:`ConnectionTerminated` (DRAINED) follows when the last one does. Any
        other status aborts at once: an error GOAWAY is queued and every open call is
        reported as :class:`CallAborted`. Closing a CLOSED connection does nothing.
        """
        if self._state is ConnectionState.CLOSED:
            return
        if status is not Status.OK:
            self._terminate(TerminationReason.LOCAL_ERROR, status, message, send_goaway=True)
            return
        if not self._goaway_sent:
            self._goaway_sent = True
            self._queue(encode_frame(GoAwayFrame(
                last_call_id=self._highest_call_id if self.role is Role.SERVER else 0,
                message=message,
            )))
        self._state = ConnectionState.CLOSING
        self._maybe_drained()

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the stream; ``b""`` means the peer closed it (EOF).

        Raises :class:`~rpcx.errors.RemoteProtocolError` if the peer broke the protocol.
        Before raising, the connection has queued an error GOAWAY, reported every open
        call as :class:`CallAborted` and ended with :class:`ConnectionTerminated`
        (PROTOCOL_ERROR); drain ``events()`` and ``data_to_send()`` as usual, then close.
        Data arriving after the connection is CLOSED is ignored.
        """
        if self._state is ConnectionState.CLOSED:
            return
        if not data:
            self._terminate(TerminationReason.PEER_CLOSED, Status.UNAVAILABLE,
                            "connection closed by peer", send_goaway=False)
            return
        self._last_received = now
        self._keepalive_sent = None
        buffer = self._buffer
        frames_before = buffer.frames
        buffer.feed(data)
        try:
            if buffer.check_preface():
                while not self._closed():
                    item = buffer.next_item()
                    if item is None:
                        break
                    if isinstance(item, Oversized):
                        self._on_oversized(item.header)
                        continue
                    header = item.header
                    # The two frames of every call skip the frame objects (fast path).
                    if header.frame_type == _REQUEST and self.role is Role.SERVER:
                        method, payload, timeout_ms, metadata, key = parse_request(
                            header, item.body)
                        self._on_request(header.call_id, method, payload, timeout_ms,
                                         metadata, key, header.flags & _ONEWAY != 0, now)
                    elif (header.frame_type == _RESPONSE and not header.meta_length
                          and self.role is Role.CLIENT and header.call_id):
                        self._on_response(header.call_id, item.body)
                    elif header.frame_type in STREAM_FRAME_TYPES:
                        self._on_stream_frame(header, item.body)
                    else:
                        self._on_frame(parse_frame(header, item.body), now)
            if not self._closed():
                self._account(now, started=buffer.frames != frames_before)
        except RemoteProtocolError as exc:
            self._terminate(TerminationReason.PROTOCOL_ERROR, Status.INTERNAL,
                            f"protocol error: {exc}", send_goaway=True)
            raise
        self._maybe_drained()

    def handle_timeout(self, now: float) -> None:
        """Fire every deadline at or before ``now``: call deadlines, the frame timeout,
        then keepalive."""
        if self._state is ConnectionState.CLOSED:
            return
        if (self._partial_since is not None and self.frame_timeout is not None
                and now >= self._partial_since + self.frame_timeout):
            self._terminate(
                TerminationReason.FRAME_TIMEOUT, Status.RESOURCE_EXHAUSTED,
                f"a frame was not completed within {self.frame_timeout:g} s of its first "
                "byte (frame_timeout)", send_goaway=True)
            return
        while self._deadlines and self._deadlines[0][0] <= now:
            _, call_id = heapq.heappop(self._deadlines)
            call = self._calls.get(call_id)
            if call is None:
                continue
            oneway = call.state is CallState.RUNNING_ONEWAY
            self._finish(call, CallInput.DEADLINE)
            self._events.append(DeadlineExpired(call_id=call_id))
            if self.role is Role.CLIENT:
                self._queue(encode_frame(CancelFrame(call_id=call_id)))
            elif not oneway:
                self._queue(encode_frame(ErrorFrame(
                    call_id=call_id, status=Status.DEADLINE_EXCEEDED,
                    message="deadline exceeded on the server",
                )))
        self._maybe_drained()
        if self._closed() or self.keepalive_interval is None:
            return
        if self._keepalive_sent is not None:
            if now >= self._keepalive_sent + self.keepalive_timeout:
                self._terminate(
                    TerminationReason.KEEPALIVE_TIMEOUT, Status.UNAVAILABLE,
                    f"peer sent nothing for {self.keepalive_timeout}s after a keepalive ping",
                    send_goaway=False,
                )
        elif now >= self._last_received + self.keepalive_interval:
            self._keepalive_sent = now
            self._send_ping(now)

    # ------------------------------------------------------------ internals

    def _closed(self) -> bool:
        # a method, not an inline test, so mypy does not narrow ``_state`` across calls
        return self._state is ConnectionState.CLOSED

    def _require_role(self, role: Role, operation: str) -> None:
        if self.role is not role:
            raise LocalProtocolError(f"{operation} is for the {role.value}, this is the "
                                     f"{self.role.value}")

    def _local_call(self, call_id: int) -> Call | None:
        """The open call ``call_id``; None if it already ended; raise if it never began."""
        call = self._calls.get(call_id)
        if call is None and not 0 < call_id <= self._highest_call_id:
            raise LocalProtocolError(f"no call with id {call_id!r} was ever started")
        return call

    def _peer_call(self, call_id: int, kind: str) -> Call | None:
        """Like :meth:`_local_call` for an id named by the peer's frame."""
        call = self._calls.get(call_id)
        if call is None and call_id > self._highest_call_id:
            raise RemoteProtocolError(f"{kind} for call {call_id}, which was never started")
        return call

    def _track(self, call: Call) -> None:
        self._calls[call.call_id] = call
        if call.deadline is not None:
            if len(self._deadlines) > 2 * len(self._calls) + 64:
                self._deadlines = [d for d in self._deadlines if d[1] in self._calls]
                heapq.heapify(self._deadlines)
            heapq.heappush(self._deadlines, (call.deadline, call.call_id))
            if call.deadline < self._new_deadline:
                self._new_deadline = call.deadline

    def _finish(self, call: Call, event: CallInput) -> None:
        """End ``call``; the public entry point then checks for a drained connection."""
        call.apply(event)
        del self._calls[call.call_id]
        if self._streams:
            self._streams.pop(call.call_id, None)

    def _send_too_large(self, call: Call, what: str, size: int) -> bool:
        self._finish(call, CallInput.SEND_ERROR)
        self._queue(encode_frame(ErrorFrame(
            call_id=call.call_id, status=Status.RESOURCE_EXHAUSTED,
            message=f"{what} of {size} bytes exceeds max_frame_size {self.max_frame_size}",
            details=TOO_LARGE,
        )))
        self._maybe_drained()
        return True

    def _send_ping(self, now: float) -> int:
        ping_id = self._next_ping_id
        self._next_ping_id += 1
        if len(self._pings) >= _MAX_OUTSTANDING_PINGS:
            del self._pings[next(iter(self._pings))]
        self._pings[ping_id] = now
        self._queue(encode_frame(PingFrame(ping_id=ping_id)))
        return ping_id

    def _account(self, now: float, *, started: bool) -> None:
        """After a read: charge the incomplete frame now held to the budget (refusing it
        if there is no room) and note when it began (``started``: a frame was completed
        in this read, so what is held now began in it)."""
        held = len(self._buffer)
        if held == 0:
            self._partial_since = None
        elif started or self._partial_since is None:
            self._partial_since = now
            if self.frame_timeout is not None:
                self._new_deadline = min(self._new_deadline, now + self.frame_timeout)
        budget = self._budget
        if budget is None or held == self._held:
            return
        if not budget.resize(self._held, held):
            header = self._buffer.refuse()
            if header is not None:
                self._partial_since = None
                budget.resize(self._held, 0)
                self._held = 0
                self._on_refused(header)
                return
            budget.resize(self._held, held, force=True)  # under 12 bytes: a header's start
        self._held = held

    def _release(self) -> None:
        """The connection is CLOSED: give back its budget and forget partial input."""
        self._buffer.clear()
        self._partial_since = None
        if self._budget is not None and self._held:
            self._budget.resize(self._held, 0)
        self._held = 0

    def _maybe_drained(self) -> None:
        if self._state is ConnectionState.CLOSING and not self._calls:
            self._release()
            self._state = ConnectionState.CLOSED
            self._events.append(ConnectionTerminated(
                reason=TerminationReason.DRAINED, status=Status.OK, message="",
            ))

    def _terminate(self, reason: TerminationReason, status: Status, message: str, *,
                   send_goaway: bool) -> None:
        if send_goaway:
            self._queue(encode_frame(GoAwayFrame(
                last_call_id=self._highest_call_id if self.role is Role.SERVER else 0,
                status=status, message=message,
            )))
        aborted = Status.UNAVAILABLE if self.role is Role.CLIENT else Status.CANCELLED
        for call_id in sorted(self._calls):
            self._calls[call_id].apply(CallInput.CONNECTION_LOST)
            self._events.append(CallAborted(call_id=call_id, status=aborted,
                                            message=f"{reason.value}: {message}",
                                            outcome_unknown=self.role is Role.CLIENT))
        self._calls.clear()
        self._streams.clear()
        self._deadlines.clear()
        self._release()
        self._state = ConnectionState.CLOSED
        self._events.append(ConnectionTerminated(reason=reason, status=status,
                                                 message=message))

    # ------------------------------------------------------------ frame handlers

    def _on_oversized(self, header: FrameHeader) -> None:
        text = f"of {header.body_length} bytes exceeds max_frame_size {self.max_frame_size}"
        self._skip_frame(header, text, TOO_LARGE)

    def _on_refused(self, header: FrameHeader) -> None:
        text = (f"of {header.body_length} bytes was refused: the receiver's memory for "
                "incomplete frames (max_buffered_bytes) is in use; retry later")
        self._skip_frame(header, text, BUDGET_EXHAUSTED)

    def _skip_frame(self, header: FrameHeader, text: str, details: Mapping[str, Any]) -> None:
        """A frame whose body is being skipped: fail its call, or the connection if it
        belongs to no call."""
        if self.role is Role.SERVER and header.frame_type == FrameType.REQUEST:
            self._accept_call_id(header.call_id)
            if not header.flags & Flags.ONEWAY:
                self._reject(header.call_id, Status.RESOURCE_EXHAUSTED, f"request {text}",
                             details)
            return
        if self.role is Role.CLIENT and header.frame_type in (FrameType.RESPONSE,
                                                              FrameType.ERROR):
            call = self._peer_call(header.call_id, "reply")
            if call is not None:
                self._finish(call, CallInput.REPLY_TOO_LARGE)
                self._events.append(CallAborted(call_id=call.call_id,
                                                status=Status.RESOURCE_EXHAUSTED,
                                                message=f"reply {text}", details=details))
            return
        raise RemoteProtocolError(f"frame of type {header.frame_type} {text}")

    def _on_frame(self, frame: Frame, now: float) -> None:
        if isinstance(frame, PingFrame):
            self._queue(encode_frame(PongFrame(ping_id=frame.ping_id)))
        elif isinstance(frame, PongFrame):
            sent = self._pings.pop(frame.ping_id, None)
            if sent is not None:
                self._events.append(PingAcked(ping_id=frame.ping_id, rtt=now - sent))
        elif isinstance(frame, GoAwayFrame):
            self._on_goaway(frame)
        elif isinstance(frame, UnknownFrame):
            pass  # extension point: unknown frame types are skipped
        elif self.role is Role.CLIENT:
            self._on_client_frame(frame)
        else:
            self._on_server_frame(frame, now)

    def _on_client_frame(self, frame: Frame) -> None:
        if isinstance(frame, ResponseFrame):
            self._on_response(frame.call_id, frame.payload)
        elif isinstance(frame, ErrorFrame):
            call = self._peer_call(frame.call_id, "ERROR")
            if call is not None:
                self._finish(call, CallInput.RECV_ERROR)
                self._events.append(ErrorReceived(
                    call_id=frame.call_id, status=frame.status, message=frame.message,
                    details=frame.details, error_name=frame.error_name,
                    error_payload=frame.error_payload,
                ))
        else:
            raise RemoteProtocolError(f"a server must not send {type(frame).__name__}")

    def _on_server_frame(self, frame: Frame, now: float) -> None:
        if isinstance(frame, RequestFrame):
            self._on_request(frame.call_id, frame.method, frame.payload, frame.timeout_ms,
                             frame.metadata, frame.idempotency_key, frame.oneway, now)
        elif isinstance(frame, CancelFrame):
            call = self._peer_call(frame.call_id, "CANCEL")
            if call is not None:
                self._finish(call, CallInput.RECV_CANCEL)
                self._events.append(CancelReceived(call_id=frame.call_id))
        else:
            raise RemoteProtocolError(f"a client must not send {type(frame).__name__}")

    def _accept_call_id(self, call_id: int) -> None:
        if call_id <= self._highest_call_id:
            raise RemoteProtocolError(
                f"call id {call_id} is not greater than the previous {self._highest_call_id}"
            )
        self._highest_call_id = call_id

    def _reject(self, call_id: int, status: Status, message: str,
                details: Mapping[str, Any] | None = None) -> None:
        Call(Role.SERVER, call_id).apply(CallInput.REJECT)
        self._queue(encode_frame(ErrorFrame(call_id=call_id, status=status,
                                                 message=message, details=details or {})))

    def _on_response(self, call_id: int, payload: bytes) -> None:
        call = self._peer_call(call_id, "RESPONSE")
        if call is not None:
            if call.state is CallState.AWAITING_REPLY:  # the table's transition, written out
                call.state = CallState.DONE
                del self._calls[call_id]
                if self._streams:  # as _finish: a streaming call's flow-control state goes
                    self._streams.pop(call_id, None)
            else:
                self._finish(call, CallInput.RECV_RESPONSE)  # raises
            event = _new_event(ResponseReceived)
            _SET_RESPONSE_CALL_ID(event, call_id)
            _SET_RESPONSE_PAYLOAD(event, payload)
            self._events.append(event)

    def _on_request(self, call_id: int, method: str, payload: bytes, timeout_ms: int | None,
                    metadata: Mapping[str, str], key: bytes | None, oneway: bool,
                    now: float) -> None:
        self._accept_call_id(call_id)
        if self._state is not ConnectionState.OPEN:
            if not oneway:
                self._reject(call_id, Status.UNAVAILABLE,
                             "connection is shutting down; retry on a new connection")
            return
        if len(self._calls) >= self.max_concurrent_calls:
            if not oneway:
                self._reject(call_id, Status.RESOURCE_EXHAUSTED,
                             f"too many concurrent calls (max_concurrent_calls="
                             f"{self.max_concurrent_calls})")
            return
        deadline = None if timeout_ms is None else now + timeout_ms / 1000
        # Call.apply(RECV_REQUEST or RECV_ONEWAY) from IDLE, written out
        self._track(Call(Role.SERVER, call_id, method, deadline,
                         CallState.RUNNING_ONEWAY if oneway else CallState.RUNNING))
        # RequestReceived(call_id=..., ...) without its attrs __init__ (keywords, a
        # validator the call id has passed already, a frozen setattr per field): the
        # slots filled directly, the same object (see _slot_setter).
        event = _new_event(RequestReceived)
        _SET_REQUEST_CALL_ID(event, call_id)
        _SET_REQUEST_METHOD(event, method)
        _SET_REQUEST_PAYLOAD(event, payload)
        _SET_REQUEST_METADATA(event, metadata)
        _SET_REQUEST_DEADLINE(event, deadline)
        _SET_REQUEST_KEY(event, key)
        _SET_REQUEST_ONEWAY(event, oneway)
        self._events.append(event)

    def _on_goaway(self, frame: GoAwayFrame) -> None:
        self._events.append(GoAwayReceived(last_call_id=frame.last_call_id,
                                           status=frame.status, message=frame.message))
        if frame.status is not Status.OK:
            self._terminate(TerminationReason.PEER_ERROR, frame.status, frame.message,
                            send_goaway=False)
            return
        self._state = ConnectionState.CLOSING
        if self.role is Role.CLIENT:
            for call_id in sorted(self._calls):
                if call_id > frame.last_call_id:
                    self._finish(self._calls[call_id], CallInput.CONNECTION_LOST)
                    self._events.append(CallAborted(
                        call_id=call_id, status=Status.UNAVAILABLE,
                        message="the server went away before processing the call; "
                                "safe to retry on a new connection",
                    ))
