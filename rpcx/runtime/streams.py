"""Streaming calls over trio: the typed client objects, the channel's stream core and the
server's handler runner.

A streaming call is one call of the protocol (REQUEST … RESPONSE or ERROR) with MESSAGE,
END and WINDOW frames in between (:mod:`rpcx.protocol.streams`). The generated client
returns one of three typed objects, each an async context manager that cancels the call
if the block is left before the call ended:

- :class:`ServerStream` (``-> stream T``): ``async for item in stream``;
- :class:`ClientStream` (``(…, N: items: stream T) -> R``): ``await call.send(item)``,
  then ``await call.finish()`` for the result;
- :class:`BidiStream` (both): ``send``, ``end`` and ``async for``.

Flow control is the protocol's: a sender without credit waits (``send`` blocks), and a
receiver gives credit back as the application takes messages, so a slow consumer holds
its producer at about :data:`~rpcx.protocol.streams.INITIAL_WINDOW` bytes. The call's
deadline covers the whole stream. A declared error raised by the server after some
messages arrives, typed, after those messages.

Writes are batched: a message is queued on the connection and written by a task of its
own once the producer waits for anything (or at once past :data:`_BATCH_BYTES`), so a
burst of small messages shares a few system calls; an item that needs no waiting is
queued without a coroutine (:meth:`ServerCallStream.send_soon`). Reads are batched too:
the connection reports a read's messages per call in one event, and an item already
received is taken and decoded without a coroutine or a task switch
(:meth:`StreamCore.receive_nowait`); :meth:`StreamCore.receive` does the rest (credit
given back every :data:`_OWED` bytes, with a cancel point; the call's end; waiting).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar, cast

import attrs
import trio

from rpcx.codec.base import Codec, decoder_of, encoder_of
from rpcx.errors import CodecError, DeadlineExceeded, DeclaredError, RemoteError, RpcError
from rpcx.protocol.events import EndReceived, Event, MessagesReceived, WindowOpened
from rpcx.runtime._errors import error_for
from rpcx.runtime.arguments import argument_details, invalid_arguments
from rpcx.runtime.dispatch import Failure, Reply, Success, _declared_failure, unpack_reply
from rpcx.runtime.interceptors import CallInfo, Proceed, run_chain
from rpcx.runtime.link import WRITE_HIGH_WATER, Link, Waiter
from rpcx.runtime.options import deadline_scope
from rpcx.schema import MethodSpec, StructSpec, list_of
from rpcx.status import Status
from rpcx.text import lower_start

__all__ = [
    "STREAM_EVENTS",
    "BidiStream",
    "ClientStream",
    "ServerCallStream",
    "ServerStream",
    "StreamCore",
    "Stream",
    "StreamInvoker",
    "run_handler",
]

logger = logging.getLogger("rpcx.server")

STREAM_EVENTS = (MessagesReceived, EndReceived, WindowOpened)
"""The events a connection reports for streaming calls only."""

_OWED = 4096
"""A receiver gives taken messages' credit back to its connection in steps this large."""

_BATCH_BYTES = 16 * 1024
"""Bytes of queued frames past which a sender writes itself instead of leaving it to the
flush task (so a producer that never waits still sends in batches of about this size)."""

Interceptor = Callable[[CallInfo, Proceed], Awaitable[Any]]
"""A server interceptor's ``intercept_server``."""

S = TypeVar("S")
R = TypeVar("R")


class _End:
    """The marker :meth:`StreamCore.receive` returns once the server's stream ended."""


END = _End()


class _Wait:
    """The marker :meth:`StreamCore.receive_nowait` returns when :meth:`receive` must
    be awaited."""


WAIT = _Wait()


class _Box(Protocol):
    """Where the channel's reader puts the call's outcome (RESPONSE, ERROR, deadline…)."""

    reply: bytes | Failure | None
    """A success as its payload (the channel keeps no :class:`Success` around it)."""


class Stream(Protocol):
    """One streaming call as the typed wrappers drive it (:class:`StreamCore` on a
    channel; ``rpcx.testing.LocalChannel`` has its own)."""

    async def start(self) -> None: ...
    async def receive(self) -> Any: ...
    async def send(self, item: Any) -> None: ...
    async def end(self) -> None: ...
    async def finish(self) -> Any: ...
    async def aclose(self) -> None: ...


class StreamInvoker(Protocol):
    """A channel that can make streaming calls (:class:`rpcx.Channel` can)."""

    def open_stream(self, method: MethodSpec, args: tuple[Any, ...], *,
                    timeout: float | None = None,
                    metadata: Mapping[str, str] | None = None) -> Stream: ...


class _Sender:
    """What a sending side (one call) needs to batch its writes: its link, whether a
    flush task it started has yet to run, and the bytes it queued behind another task's
    write since it last let the others run."""

    __slots__ = ("flush_pending", "link", "unyielded")

    def __init__(self) -> None:
        self.link: Link | None = None
        self.flush_pending = False
        self.unyielded = 0


async def _flush_later(sender: _Sender, link: Link) -> None:
    sender.flush_pending = False
    await link.flush()


async def _write_batch(link: Link) -> None:
    """Write a full batch, then let the other tasks run (a producer that never waits
    would otherwise keep the scheduler to itself while it has credit)."""
    await link.flush()
    await trio.lowlevel.checkpoint()


def _write_soon(sender: _Sender, link: Link, queued: int,
                size: int) -> Awaitable[None] | None:
    """After queueing a frame of ``size`` payload bytes (``queued``: the bytes the
    connection now holds to send): leave it to a flush task (None), or, past
    :data:`_BATCH_BYTES`, the awaitable that writes now and yields. Below a batch nothing
    here waits, so a message costs no scheduling. At most one flush task per sender is
    pending (a task per message would cost more than the message).

    While another task is writing (the socket is full) and the connection holds no more
    than :data:`~rpcx.runtime.link.WRITE_HIGH_WATER`, that task takes these bytes too:
    the sender then yields once per batch of its own bytes, not after every message
    (which made the streams of a busy connection take turns message by message)."""
    if queued >= _BATCH_BYTES:
        if link._sending and queued <= WRITE_HIGH_WATER:
            sender.unyielded += size
            if sender.unyielded < _BATCH_BYTES:
                return None
        sender.unyielded = 0
        # (bytes a partial write left are being written by a sender at work already)
        return _write_batch(link)
    if not sender.flush_pending and not link._sending:
        nursery = link._nursery
        if nursery is not None:
            sender.flush_pending = True
            nursery.start_soon(_flush_later, sender, link)
    return None


# -- client ------------------------------------------------------------------------------


Start = Callable[["StreamCore", bytes], Awaitable[None]]
"""The channel's part: send the REQUEST and :meth:`StreamCore.attach` the call."""


def _no_items(payload: bytes) -> Any:
    raise CodecError("the method returns no value")  # (a receiver never takes one)


class StreamCore:
    """One streaming call on a channel, untyped (the generated stubs wrap it)."""

    def __init__(self, method: MethodSpec, args: tuple[Any, ...], codec: Codec,
                 deadline: float, metadata: Mapping[str, str], start: Start) -> None:
        self.method = method
        self.args = args
        self.codec = codec
        self.deadline = deadline
        self.metadata = metadata
        self._start = start
        self._messages: collections.deque[bytes] = collections.deque()
        self._receiver = Waiter()
        self._sender = Waiter()
        self._batch = _Sender()
        self._link: Link | None = None
        self._call_id = 0
        self._box: _Box | None = None
        self._release: Callable[[], None] | None = None
        self._ended = False  # END sent
        self._done = False  # closed locally (finished, cancelled or failed)
        self._owed = 0  # bytes of messages taken and not yet given back as credit
        self._result: Any = method.result
        self._decode = decoder_of(codec, method.result) if method.result is not None \
            else _no_items

    # -- set up by the channel -----------------------------------------------------------

    def attach(self, link: Link, call_id: int, box: _Box, release: Callable[[], None]) -> None:
        self._link, self._call_id, self._box, self._release = link, call_id, box, release

    def on_event(self, event: Event) -> None:
        if isinstance(event, MessagesReceived):
            self._messages.extend(event.payloads)
            self._receiver.wake()
        elif isinstance(event, WindowOpened):
            self._sender.wake()

    def wake(self) -> None:
        """The call ended (its box has the reply): wake whoever waits."""
        self._receiver.wake()
        self._sender.wake()

    # -- used by the typed wrappers ------------------------------------------------------

    async def start(self) -> None:
        if self._link is not None:
            return
        payload = self.codec.encode(self.method.params, self.args)
        await self._start(self, payload)

    def _failure(self) -> RpcError | DeclaredError | None:
        """The exception for the call's outcome if it failed; None if it succeeded."""
        assert self._box is not None and self._box.reply is not None
        reply = self._box.reply
        if isinstance(reply, bytes):
            return None
        if reply.error_name is None:
            failed = error_for(reply.status, reply.message, reply.details)
            failed.outcome_unknown = reply.local or reply.status is Status.DEADLINE_EXCEEDED
            return failed
        try:
            unpack_reply(self.method, reply, self.codec)
        except (RpcError, DeclaredError) as exc:
            return exc
        raise AssertionError("unpack_reply of a Failure returned")  # pragma: no cover

    def receive_nowait(self) -> Any:
        """The next item if taking it needs nothing awaited, else :data:`WAIT`:
        :meth:`receive` then does the rest (credit to give back, the call's end, an item
        that does not decode, waiting). Most items of a busy stream take this path."""
        messages = self._messages
        box = self._box
        if not messages or box is None or box.reply is not None:
            return WAIT
        payload = messages[0]
        owed = self._owed + len(payload)
        if owed >= _OWED or len(messages) == 1:
            return WAIT  # credit goes back now: receive() may have to write
        try:
            item = self._decode(payload)
        except CodecError:
            return WAIT  # receive() takes it again and fails the call
        messages.popleft()
        self._owed = owed
        return item

    async def receive(self) -> Any:
        """The next item of the server's stream, or :data:`END`; raises the call's error
        once the messages sent before it are taken."""
        if self._link is None:
            await self.start()
        link, box = self._link, self._box
        assert link is not None and box is not None
        result = self.method.result
        assert result is not None
        while True:
            messages = self._messages
            reply = box.reply
            if messages and (reply is None or not _abrupt(reply)):
                payload = messages.popleft()
                # Credit goes back to the connection in steps of _OWED bytes, and in full
                # before this task waits (below), so the server is never held by it.
                owed = self._owed = self._owed + len(payload)
                if owed >= _OWED or not messages:
                    self._owed = 0
                    if link.conn.consume(self._call_id, owed):
                        await link.flush()
                    # Items taken without waiting (receive_nowait): let a cancellation
                    # in every _OWED bytes (the scheduler gets its turn when the queue
                    # runs dry).
                    await trio.lowlevel.checkpoint_if_cancelled()
                try:
                    return self.codec.decode(result, payload)
                except CodecError as exc:
                    await self.aclose()
                    raise RemoteError(Status.INTERNAL, f"undecodable message from "
                                      f"{self.method.path}: {exc}") from None
            if reply is not None:
                messages.clear()
                self._finish_locally()
                failure = self._failure()
                if failure is not None:
                    raise failure
                return END
            await self._receiver.wait()

    async def send(self, item: Any) -> None:
        """Send one item of the client's stream, waiting for flow-control credit. After
        the call ended with an error, raises it; after it succeeded (the server answered
        without reading everything) the item is dropped."""
        spec = self.method.client_stream
        assert spec is not None
        if self._ended:
            raise RuntimeError(f"{self.method.path}: send() after end()")
        payload = self.codec.encode(spec.type, item)
        await self.start()
        link, box = self._link, self._box
        assert link is not None and box is not None
        conn = link.conn
        while True:
            if box.reply is not None:
                failure = self._failure()
                if failure is not None:
                    raise failure
                return
            queued = conn.queue_message(self._call_id, payload)
            if queued >= 0:
                break  # queued (or dropped: the call was cancelled here)
            if trio.current_time() >= self.deadline:
                raise DeadlineExceeded(f"{self.method.path}: deadline passed")
            with trio.move_on_at(self.deadline):
                await self._sender.wait()
        if queued:
            write = _write_soon(self._batch, link, queued, len(payload))
            if write is not None:
                await write

    async def end(self) -> None:
        """Half-close: no more items from this side."""
        await self.start()
        link = self._link
        assert link is not None
        if not self._ended:
            self._ended = True
            if link.conn.end_stream(self._call_id):
                await link.flush()

    async def finish(self) -> Any:
        """Client streaming: end the stream and wait for the result."""
        await self.end()
        box = self._box
        assert box is not None
        while box.reply is None:
            await self._receiver.wait()
        self._finish_locally()
        failure = self._failure()
        if failure is not None:
            raise failure
        reply = box.reply
        assert isinstance(reply, bytes)
        return unpack_reply(self.method, Success(reply), self.codec)

    def _finish_locally(self) -> None:
        if not self._done:
            self._done = True
            if self._release is not None:
                self._release()

    async def aclose(self) -> None:
        """Cancel the call if it is still open (the server cancels its handler)."""
        if self._done:
            return
        self._done = True
        link, box = self._link, self._box
        if link is None or box is None:
            return
        if self._release is not None:
            self._release()
        if box.reply is None and link.conn.cancel_call(self._call_id):
            link.call_ended()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1.0):
                    await link.flush()


def _abrupt(reply: bytes | Failure) -> bool:
    """The call was cut short (deadline, lost connection, cancelled): items still queued
    are dropped and the error raised at once. Any other outcome comes after the items the
    server sent before it (a declared error included)."""
    return isinstance(reply, Failure) and reply.status in _ABRUPT


_ABRUPT = frozenset({Status.DEADLINE_EXCEEDED, Status.UNAVAILABLE, Status.CANCELLED})


def _open(invoker: object, method: MethodSpec, args: tuple[Any, ...],
          timeout: float | None, metadata: Mapping[str, str] | None) -> Stream:
    open_stream = getattr(invoker, "open_stream", None)
    if open_stream is None:
        raise RpcError(Status.UNIMPLEMENTED,
                       f"{type(invoker).__name__} cannot make streaming calls "
                       f"({method.path} streams)")
    core: Stream = open_stream(method, args, timeout=timeout, metadata=metadata)
    return core


class _Typed:
    __slots__ = ("_core",)

    def __init__(self, invoker: object, method: MethodSpec, args: tuple[Any, ...],
                 timeout: float | None = None,
                 metadata: Mapping[str, str] | None = None) -> None:
        self._core = _open(invoker, method, args, timeout, metadata)

    async def aclose(self) -> None:
        """Cancel the call unless it has ended."""
        await self._core.aclose()

    async def _enter(self) -> None:
        await self._core.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._core.aclose()


class _Items(_Typed, Generic[R]):
    """The receiving side of a stream call: ``async for`` its items."""

    __slots__ = ()

    async def __anext__(self) -> R:
        core = self._core
        item: R  # (not cast(): a function call per item)
        if core.__class__ is StreamCore:
            item = core.receive_nowait()
            if item is not WAIT:
                return item
        item = await core.receive()
        if item is END:
            raise StopAsyncIteration
        return item


class ServerStream(_Items[R]):
    """A call of a ``-> stream R`` method: iterate it (``async for``) inside ``async
    with``; leaving the block early cancels the call."""

    __slots__ = ()

    async def __aenter__(self) -> ServerStream[R]:
        await self._enter()
        return self

    def __aiter__(self) -> ServerStream[R]:
        return self



class ClientStream(_Typed, Generic[S, R]):
    """A call of a method with a ``stream S`` parameter returning ``R``: ``send`` the
    items, then ``finish()`` for the result."""

    __slots__ = ()

    async def __aenter__(self) -> ClientStream[S, R]:
        await self._enter()
        return self

    async def send(self, item: S) -> None:
        await self._core.send(item)

    async def finish(self) -> R:
        return cast(R, await self._core.finish())


class BidiStream(_Items[R], Generic[S, R]):
    """A call with a ``stream S`` parameter and a ``stream R`` result: ``send`` and
    ``end`` one side, ``async for`` the other, in any order or from two tasks."""

    __slots__ = ()

    async def __aenter__(self) -> BidiStream[S, R]:
        await self._enter()
        return self

    async def send(self, item: S) -> None:
        await self._core.send(item)

    async def end(self) -> None:
        await self._core.end()

    def __aiter__(self) -> BidiStream[S, R]:
        return self


# -- server ------------------------------------------------------------------------------


def _invalid_item(method: MethodSpec, index: int, exc: CodecError) -> RpcError:
    """INVALID_ARGUMENT for the client's item ``index`` that did not decode: the field
    path in the details is ``NAME[INDEX]...``, as if the stream were a list parameter."""
    spec = method.client_stream
    assert spec is not None
    inner = exc.path
    path = f"{spec.name}[{index}]" + (inner if inner.startswith("[") or not inner
                                      else f".{inner}")
    located = CodecError(exc.reason, path)
    as_list = attrs.evolve(spec, type=list_of(spec.type))
    params = StructSpec(method.params.name, None, (*method.params.fields, as_list))
    return RpcError(Status.INVALID_ARGUMENT,
                    f"invalid stream item to {method.path}: {lower_start(str(located))}",
                    argument_details(params, located))


class _Incoming(AsyncIterator[Any]):
    __slots__ = ("_stream",)

    def __init__(self, stream: ServerCallStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _Incoming:
        return self

    async def __anext__(self) -> Any:
        return await self._stream.next_item()


class ServerCallStream:
    """The server's side of one streaming call: feeds the handler the client's items and
    sends what it yields."""

    def __init__(self, link: Link, call_id: int, method: MethodSpec, codec: Codec) -> None:
        self.link = link
        self.call_id = call_id
        self.method = method
        self.codec = codec
        self._messages: collections.deque[bytes] = collections.deque()
        self._ended = False
        self._taken = 0
        self._receiver = Waiter()
        self._sender = Waiter()
        self._batch = _Sender()
        self._queue_message = link.conn.queue_message

    def on_event(self, event: Event) -> None:
        if isinstance(event, MessagesReceived):
            if self.method.client_stream is not None:
                self._messages.extend(event.payloads)
                self._receiver.wake()
            # (a method without a client stream ignores messages: § 18 of protocol.md)
        elif isinstance(event, EndReceived):
            self._ended = True
            self._receiver.wake()
        elif isinstance(event, WindowOpened):
            self._sender.wake()

    def incoming(self) -> _Incoming:
        """The client's items, until its END (an iterator object rather than an async
        generator: a handler may abandon it without anything left to finalize)."""
        return _Incoming(self)

    async def next_item(self) -> Any:
        spec = self.method.client_stream
        assert spec is not None
        while True:
            if self._messages:
                payload = self._messages.popleft()
                if self.link.conn.consume(self.call_id, len(payload)):
                    await self.link.flush()
                index = self._taken
                self._taken += 1
                try:
                    return self.codec.decode(spec.type, payload)
                except CodecError as exc:
                    raise _invalid_item(self.method, index, exc) from None
            if self._ended:
                raise StopAsyncIteration
            await self._receiver.wait()

    async def send(self, payload: bytes) -> None:
        conn = self.link.conn
        while conn.stream_credit(self.call_id) <= 0:
            if self.call_id not in conn._calls:
                break  # ended (CANCEL, deadline): send_message drops it, the cancel follows
            await self._sender.wait()
        try:
            sent = conn.send_message(self.call_id, payload)
        except RpcError as exc:  # a message over max_frame_size
            raise RpcError(exc.code, f"{self.method.path}: {exc.message}",
                           exc.details) from None
        if not sent:
            # The call ended under us (CANCEL, deadline): the cancel reaches this task.
            await trio.lowlevel.checkpoint()
            return
        write = _write_soon(self._batch, self.link, conn.bytes_to_send(), len(payload))
        if write is not None:
            await write

    def send_soon(self, payload: bytes) -> Awaitable[None] | None:
        """Queue one message if that needs no waiting (None: done, though it may still
        be unwritten); otherwise what to await: the write of a full batch, or
        :meth:`send` (no credit now, the call has ended, an oversized message)."""
        try:
            queued = self._queue_message(self.call_id, payload)
        except RpcError:
            queued = -1  # send() raises it with the method's path
        if queued > 0:
            if queued < _BATCH_BYTES and self._batch.flush_pending:
                return None  # _write_soon's answer, without the call
            return _write_soon(self._batch, self.link, queued, len(payload))
        return self.send(payload)

    async def run(self, handler: Callable[..., Any], payload: bytes,
                  metadata: Mapping[str, str], deadline: float, *,
                  interceptors: Sequence[Interceptor] = (), peer: str = "") -> Reply:
        """Decode the arguments, run the handler, send what it yields; the final reply."""
        return await run_handler(self.method, self.codec, handler, payload, metadata,
                                 deadline, self.send,
                                 self.incoming() if self.method.client_stream else None,
                                 interceptors=interceptors, peer=peer,
                                 send_soon=self.send_soon)


async def run_handler(method: MethodSpec, codec: Codec, handler: Callable[..., Any],
                      payload: bytes, metadata: Mapping[str, str], deadline: float,
                      send: Callable[[bytes], Awaitable[None]],
                      incoming: AsyncIterator[Any] | None = None, *,
                      interceptors: Sequence[Interceptor] = (), peer: str = "",
                      send_soon: Callable[[bytes], Awaitable[None] | None] | None = None,
                      ) -> Reply:
    """Run a streaming method's handler through the server ``interceptors`` (as a unary
    call's: they see the call before its arguments are decoded, and may refuse it):
    decode the arguments (the client's stream, ``incoming``, goes last), ``send`` each
    item it yields encoded, and return the reply that ends the call, mapped as
    :mod:`rpcx.runtime.dispatch` maps a unary call's. ``send_soon``, if given, is tried
    first for each item (see :meth:`ServerCallStream.send_soon`)."""
    path = method.path

    async def invoke(call: CallInfo) -> Any:
        try:
            call.args = codec.decode(method.params, payload)
        except CodecError as exc:
            raise invalid_arguments(path, method.params, exc) from None
        args = call.args if incoming is None else (*call.args, incoming)
        with deadline_scope(call.deadline, call.metadata):
            if not method.server_stream:
                return await handler(*args)
            result_spec = method.result
            assert result_spec is not None
            items = handler(*args)
            try:
                encode = encoder_of(codec, result_spec)
                async for item in items:
                    try:
                        data = encode(item)
                    except CodecError as exc:
                        logger.error("handler for %s yielded an invalid item: %s", path, exc)
                        raise RpcError(Status.INTERNAL,
                                       f"internal error in {path}: invalid item") from None
                    if send_soon is None:
                        await send(data)
                    else:
                        pending = send_soon(data)
                        if pending is not None:
                            await pending
            finally:
                aclose = getattr(items, "aclose", None)
                if aclose is not None:
                    await aclose()
            return None

    try:
        info = CallInfo(method, dict(metadata) if metadata else {}, deadline, peer=peer)
        result = await (run_chain(interceptors, info, invoke) if interceptors
                        else invoke(info))
    except DeclaredError as exc:
        return _declared_failure(method, exc, codec)
    except RpcError as exc:
        return Failure(exc.code, lower_start(exc.message), exc.details)
    except Exception:
        logger.exception("handler for %s raised", path)
        return Failure(Status.INTERNAL, f"internal error in {path}")
    if method.result is None or method.server_stream:
        return Success(b"")
    try:
        return Success(codec.encode(method.result, result))
    except CodecError as exc:
        logger.error("handler for %s returned an invalid result: %s", path, exc)
        return Failure(Status.INTERNAL, f"internal error in {path}: invalid result")
