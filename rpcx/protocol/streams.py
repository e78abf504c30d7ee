"""Streaming calls on the sans-I/O connection: MESSAGE, END and WINDOW frames.

A streaming call is an ordinary call (a REQUEST answered by one RESPONSE or ERROR, with
the same deadline, CANCEL, GOAWAY and limits) during which the two sides also exchange
*messages*, each one frame::

    0x08 MESSAGE  either direction  payload: one encoded stream item (never empty)
    0x09 END      client → server   the client sends no more messages (half-close)
    0x0A WINDOW   either direction  payload: u32 BE increment: credit for more messages

Flow control is per call and per direction, counted in payload bytes. Each direction of
each call starts with :data:`INITIAL_WINDOW` bytes of credit. A sender may send a
MESSAGE only while its credit is positive; the message's payload length is taken from
its credit (which may so become negative: a receiver buffers at most
``INITIAL_WINDOW + max_frame_size`` bytes per call and direction). The receiver gives
credit back with WINDOW as its application uses the messages. A MESSAGE sent without
credit is a connection error, so one slow reader bounds what its writer may queue, and
a call that does not read stalls only itself.

A receiver takes a run of MESSAGE frames (every one that follows another in its input)
at once and reports it as one :class:`~rpcx.protocol.events.MessagesReceived` per call,
its payloads in order: the per-message work is a header, a few checks and a slice. A
sender's loop uses ``Connection.queue_message``, which skips the checks its call passed
with its first message (written in ``connection.py``, which the compiled build compiles;
this module stays interpreted). The receiver's scan of a run is
``rpcx.protocol._wire.message_run``, compiled likewise.

Which methods stream, and in which direction, is not on the wire: both sides know it
from the method. ``docs/protocol.md`` § 18 is the specification; :class:`StreamsMixin`
is the part of :class:`~rpcx.protocol.Connection` that implements it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from rpcx.errors import LocalProtocolError, RemoteProtocolError, RpcError
from rpcx.protocol._wire import message_run
from rpcx.protocol.call import CallState, Role
from rpcx.protocol.events import EndReceived, MessagesReceived, WindowOpened
from rpcx.protocol.frames import HEADER, FrameHeader
from rpcx.status import Status

if TYPE_CHECKING:
    from rpcx.protocol.buffer import ReceiveBuffer
    from rpcx.protocol.call import Call
    from rpcx.protocol.events import Event

__all__ = [
    "INITIAL_WINDOW",
    "MAX_WINDOW",
    "StreamFrameType",
    "StreamsMixin",
    "encode_end",
    "encode_message",
    "encode_window",
]

INITIAL_WINDOW: Final = 65536
"""Bytes of message payload either side may send on a streaming call before the
receiver's first WINDOW: HTTP/2's initial window, rounded up to a power of two."""
MAX_WINDOW: Final = 2**31 - 1
"""Credit above this (a peer granting more than it could ever be sent) is an error."""

_TOO_LARGE: Final[Mapping[str, Any]] = {"limit": "max_frame_size"}
_WINDOW: Final = struct.Struct(">I")
_pack_header = HEADER.pack
_unpack_header = HEADER.unpack_from
_HEADER_SIZE: Final = HEADER.size
_MESSAGE: Final = 0x08
_RUN_BYTES: Final = 256 * 1024
"""The most buffered bytes one run of MESSAGE frames looks at (see
:meth:`StreamsMixin._take_messages`): a large frame still arriving behind small ones is
not copied once per read."""


class StreamFrameType(enum.IntEnum):
    """The frame types of streaming calls (see the module docstring)."""

    MESSAGE = 0x08
    END = 0x09
    WINDOW = 0x0A


STREAM_FRAME_TYPES: Final = frozenset(int(t) for t in StreamFrameType)
_NAMES: Final = {int(t): t.name for t in StreamFrameType}


def encode_message(call_id: int, payload: bytes) -> bytes:
    """A MESSAGE frame: no meta, the payload is one encoded item."""
    return HEADER.pack(len(payload), StreamFrameType.MESSAGE, 0, 0, call_id) + payload


def encode_end(call_id: int) -> bytes:
    """An END frame (client → server): no more messages on this call."""
    return HEADER.pack(0, StreamFrameType.END, 0, 0, call_id)


def encode_window(call_id: int, increment: int) -> bytes:
    """A WINDOW frame granting ``increment`` more bytes of message payload."""
    return HEADER.pack(4, StreamFrameType.WINDOW, 0, 0, call_id) + _WINDOW.pack(increment)


class _Stream:
    """Flow-control state of one streaming call, made when first needed."""

    __slots__ = ("consumed", "ended", "recv_window", "send_credit", "sendable")

    def __init__(self) -> None:
        self.sendable = False
        """:meth:`StreamsMixin.send_message` checked that this side may send messages on
        the call (two-way, and not after the client's END): the fast path may skip that."""
        self.send_credit = INITIAL_WINDOW
        """Bytes this side may still send (may be negative after a large message)."""
        self.recv_window = INITIAL_WINDOW
        """What the peer may still send, as this side has granted it."""
        self.consumed = 0
        """Bytes the application used and this side has not yet given back."""
        self.ended = False
        """The client's END: sent (client) or received (server)."""


class StreamsMixin:
    """The streaming part of :class:`~rpcx.protocol.Connection` (see the module doc)."""

    if TYPE_CHECKING:
        @property
        def role(self) -> Role: ...
        @property
        def max_frame_size(self) -> int: ...
        _calls: dict[int, Call]
        _events: list[Event]
        _streams: dict[int, _Stream]
        _buffer: ReceiveBuffer

        def bytes_to_send(self) -> int: ...

        def _queue(self, data: bytes) -> None: ...
        def _local_call(self, call_id: int) -> Call | None: ...
        def _peer_call(self, call_id: int, kind: str) -> Call | None: ...

    # ------------------------------------------------------------ API (both sides)

    def stream_credit(self, call_id: int) -> int:
        """Bytes of message payload this side may send on ``call_id`` now; a message may
        be sent while this is positive. 0 for a call that is not open."""
        if call_id not in self._calls:
            return 0
        stream = self._streams.get(call_id)
        return INITIAL_WINDOW if stream is None else stream.send_credit

    def send_message(self, call_id: int, payload: bytes) -> bool:
        """Queue one MESSAGE of the streaming call ``call_id``.

        Returns False, sending nothing, if the call has ended. Raises
        :class:`~rpcx.errors.LocalProtocolError` without credit (wait for
        :class:`~rpcx.protocol.events.WindowOpened`), for an empty payload, after the
        client's :meth:`end_stream` or on a one-way call; raises
        :class:`~rpcx.errors.RpcError` RESOURCE_EXHAUSTED (details ``{"limit":
        "max_frame_size"}``) for a message larger than ``max_frame_size``.
        """
        call = self._local_call(call_id)
        if call is None:
            return False
        if call.state is CallState.RUNNING_ONEWAY:
            raise LocalProtocolError(f"call {call_id} is one-way: it cannot stream")
        if not payload:
            raise LocalProtocolError("a stream message cannot be empty")
        stream = self._streams.get(call_id)
        if stream is None:
            stream = self._streams[call_id] = _Stream()
        if stream.ended and self.role is Role.CLIENT:
            raise LocalProtocolError(f"call {call_id}: the client already ended its stream")
        if stream.send_credit <= 0:
            raise LocalProtocolError(f"call {call_id}: no flow-control credit; wait for "
                                     "the peer's WINDOW")
        if len(payload) > self.max_frame_size:
            raise RpcError(Status.RESOURCE_EXHAUSTED,
                           f"message of {len(payload)} bytes exceeds max_frame_size "
                           f"{self.max_frame_size}", _TOO_LARGE)
        stream.send_credit -= len(payload)
        stream.sendable = True
        self._queue(encode_message(call_id, payload))
        return True

    def consume(self, call_id: int, size: int) -> bool:
        """The application used a received message of ``size`` payload bytes: give the
        credit back to the peer. A WINDOW is queued once half the initial window is owed
        (True then); False if nothing was queued (or the call has ended)."""
        if call_id not in self._calls:
            return False
        stream = self._streams.get(call_id)
        if stream is None:
            stream = self._streams[call_id] = _Stream()
        stream.consumed += size
        if stream.consumed < INITIAL_WINDOW // 2:
            return False
        increment, stream.consumed = stream.consumed, 0
        stream.recv_window += increment
        self._queue(encode_window(call_id, increment))
        return True

    # ------------------------------------------------------------ API (client)

    def end_stream(self, call_id: int) -> bool:
        """Client: queue END, the half-close of a client stream: no more messages. Returns
        False if the call has ended or END was sent already."""
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("end_stream is for the client, this is the server")
        call = self._local_call(call_id)
        if call is None:
            return False
        stream = self._streams.get(call_id)
        if stream is None:
            stream = self._streams[call_id] = _Stream()
        if stream.ended:
            return False
        stream.ended = True
        stream.sendable = False
        self._queue(encode_end(call_id))
        return True

    # ------------------------------------------------------------ received frames

    def _on_stream_frame(self, header: FrameHeader, body: bytes) -> None:
        """A complete frame of a type in :class:`StreamFrameType`. Stream frames have no
        meta keys: a meta map sent anyway is skipped, as unknown keys are (§ 3)."""
        kind = header.frame_type
        call_id = header.call_id
        call = self._calls.get(call_id)
        if call is None or kind != StreamFrameType.MESSAGE or (
                call.state is not CallState.RUNNING
                and call.state is not CallState.AWAITING_REPLY):
            call = self._check_stream_frame(kind, call_id, call)
            if call is None:
                return
        stream = self._streams.get(call_id)
        if stream is None:
            stream = self._streams[call_id] = _Stream()
        payload = body[header.meta_length:] if header.meta_length else body
        if kind == StreamFrameType.MESSAGE:
            if not payload or stream.recv_window <= 0 or (stream.ended
                                                          and self.role is Role.SERVER):
                raise RemoteProtocolError(
                    f"empty MESSAGE for call {call_id}" if not payload else
                    f"MESSAGE for call {call_id} after its END" if stream.recv_window > 0 else
                    f"MESSAGE for call {call_id} sent without flow-control credit")
            stream.recv_window -= len(payload)
            self._take_messages(call_id, stream, [payload])
        elif kind == StreamFrameType.END:
            if stream.ended:
                raise RemoteProtocolError(f"second END for call {call_id}")
            stream.ended = True
            self._events.append(EndReceived(call_id=call_id))
        else:
            if len(payload) != 4:
                raise RemoteProtocolError(
                    f"WINDOW payload must be 4 bytes, got {len(payload)}")
            (increment,) = _WINDOW.unpack(payload)
            if increment == 0:
                raise RemoteProtocolError(f"WINDOW of 0 for call {call_id}")
            before = stream.send_credit
            stream.send_credit += increment
            if stream.send_credit > MAX_WINDOW:
                raise RemoteProtocolError(
                    f"WINDOW for call {call_id} grants more than {MAX_WINDOW} bytes")
            if before <= 0 < stream.send_credit:
                self._events.append(WindowOpened(call_id=call_id))

    def _take_messages(self, call_id: int, stream: _Stream, payloads: list[bytes]) -> None:
        """After a MESSAGE (its payload in ``payloads``): take every MESSAGE frame that
        follows it in the buffer at once, and report them as one
        :class:`~rpcx.protocol.events.MessagesReceived` per call, in order.

        The run ends at the first frame that is not complete, is not a plain MESSAGE
        (type 0x08, no meta, a payload within ``max_frame_size``) of an open two-way call
        with credit left, or lies past :data:`_RUN_BYTES`: that frame goes the ordinary
        way (:meth:`_on_stream_frame` or the connection's), which also reports every
        error. So this path does the same as taking the frames one by one, minus a frame
        object and an event per message."""
        buffer = self._buffer
        data = buffer._data
        runs: dict[int, list[bytes]] = {call_id: payloads}
        if len(data) >= _HEADER_SIZE:
            raw = bytes(data[:_RUN_BYTES])
            end = len(raw)
            pos = 0
            taken = 0
            limit = self.max_frame_size
            calls = self._calls
            streams = self._streams
            server = self.role is Role.SERVER
            window = stream.recv_window
            while pos + _HEADER_SIZE <= end:
                # the frames of this call, natively in the compiled build
                before = len(payloads)
                pos, window = message_run(raw, pos, call_id, window, limit, payloads)
                taken += len(payloads) - before
                if pos + _HEADER_SIZE > end:
                    break
                size, kind, _, meta, frame_call = _unpack_header(raw, pos)
                stop = pos + _HEADER_SIZE + size
                if kind != _MESSAGE or meta or not 0 < size <= limit or stop > end:
                    break
                if frame_call != call_id:
                    call = calls.get(frame_call)
                    if call is None or (call.state is not CallState.RUNNING
                                        and call.state is not CallState.AWAITING_REPLY):
                        break  # late, unknown or one-way: the ordinary path decides
                    stream.recv_window = window
                    found = streams.get(frame_call)
                    if found is None:
                        found = streams[frame_call] = _Stream()
                    if found.ended and server:
                        break  # after END: the ordinary path reports it
                    stream, call_id, window = found, frame_call, found.recv_window
                    payloads = runs.setdefault(call_id, [])
                if window <= 0:
                    break  # without credit: the ordinary path reports it
                window -= size
                payloads.append(raw[pos + _HEADER_SIZE:stop])
                pos = stop
                taken += 1
            stream.recv_window = window
            if pos:
                del data[:pos]
                buffer.frames += taken
        events = self._events
        for frame_call, items in runs.items():
            if items:
                events.append(MessagesReceived(call_id=frame_call, payloads=items))

    def _check_stream_frame(self, kind: int, call_id: int, call: Call | None) -> Call | None:
        """The checks a MESSAGE of an open two-way call needs none of: the call the frame
        belongs to, or None for a late frame (its call has ended)."""
        name = _NAMES[kind]
        if call_id == 0:
            raise RemoteProtocolError(f"{name} frame with call id 0")
        if kind == StreamFrameType.END and self.role is Role.CLIENT:
            raise RemoteProtocolError("a server must not send END")
        if call is None:
            return self._peer_call(call_id, name)
        if call.state is CallState.RUNNING_ONEWAY:
            raise RemoteProtocolError(f"{name} for call {call_id}, which is one-way")
        return call
