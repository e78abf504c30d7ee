"""Helpers for testing code that uses rpcx.

:class:`LocalChannel` serves service implementations in the same process: every call is
marshalled through a real codec and dispatched exactly as a server would, so a test sees
the same values, errors and validation as over a network, without one.

Streaming calls work too, in the caller's task (there is no network to wait on): a server
stream's handler runs as the caller takes its items; a client stream's items are
marshalled as they are sent and handed to the handler when the caller ends its side, so
a bidirectional handler sees everything sent before the caller first reads.

:func:`free_ports` finds ports for servers that other processes will start (demos,
process tests, benchmarks), where no outgoing connection can take them first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import trio

from rpcx.codec import Codec, get_codec
from rpcx.errors import CodecError, DeadlineExceeded, DeclaredError, RpcError
from rpcx.runtime._errors import error_for
from rpcx.runtime.arguments import invalid_arguments
from rpcx.runtime.dispatch import Dispatcher, _declared_failure, unpack_reply
from rpcx.runtime.options import deadline_scope, effective_deadline
from rpcx.runtime.streams import END, run_handler
from rpcx.schema import MethodSpec
from rpcx.status import Status
from rpcx.testing.ports import free_ports
from rpcx.text import lower_start

__all__ = ["LocalChannel", "free_ports"]


class LocalChannel:
    """An in-process channel: ``PaymentsClient(LocalChannel(MyPayments()))``.

    ``timeout`` (or the method's ``@deadline``) bounds each call; the handler is cancelled
    when it passes and the caller gets :class:`~rpcx.errors.DeadlineExceeded`. ``calls``
    records ``(method path, metadata)`` for each call, for assertions.
    """

    def __init__(self, *services: object, codec: Codec | None = None) -> None:
        self.codec = codec if codec is not None else get_codec("cbor")
        self.dispatcher = Dispatcher(services)
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def _roundtrip(self, method: MethodSpec, args: tuple[Any, ...],
                         timeout: float | None, metadata: Mapping[str, str] | None) -> Any:
        self.calls.append((method.path, dict(metadata or {})))
        payload = self.codec.encode(method.params, args)
        deadline = effective_deadline(method, timeout, None)
        with trio.move_on_at(deadline) as scope:
            # The handler sees the metadata and deadline, as it would behind a server.
            reply = await self.dispatcher.dispatch(method.path, payload, self.codec,
                                                   metadata=metadata, deadline=deadline)
        if scope.cancelled_caught:
            raise DeadlineExceeded(f"{method.path} passed its deadline")
        return unpack_reply(method, reply, self.codec)

    async def call(self, method: MethodSpec, args: tuple[Any, ...], *,
                   timeout: float | None = None,
                   metadata: Mapping[str, str] | None = None) -> Any:
        return await self._roundtrip(method, args, timeout, metadata)

    async def call_oneway(self, method: MethodSpec, args: tuple[Any, ...], *,
                          timeout: float | None = None,
                          metadata: Mapping[str, str] | None = None) -> None:
        """Runs the handler to completion and drops its outcome, as a server does for a
        one-way call (in process, there is no one to hand it to)."""
        self.calls.append((method.path, dict(metadata or {})))
        payload = self.codec.encode(method.params, args)  # bad arguments raise here
        deadline = effective_deadline(method, timeout, None)
        with trio.move_on_at(deadline):
            await self.dispatcher.dispatch(method.path, payload, self.codec,
                                           metadata=metadata, deadline=deadline)

    def open_stream(self, method: MethodSpec, args: tuple[Any, ...], *,
                    timeout: float | None = None,
                    metadata: Mapping[str, str] | None = None) -> _LocalStream:
        """A streaming call in process (see the module docstring)."""
        self.calls.append((method.path, dict(metadata or {})))
        return _LocalStream(self, method, args, effective_deadline(method, timeout, None),
                            dict(metadata or {}))


class _LocalStream:
    """A streaming call of :class:`LocalChannel`: the handler runs in the caller's task,
    one item per ``receive`` (a server stream may be endless), every item marshalled."""

    def __init__(self, channel: LocalChannel, method: MethodSpec, args: tuple[Any, ...],
                 deadline: float, metadata: dict[str, str]) -> None:
        self.channel = channel
        self.method = method
        self.payload = channel.codec.encode(method.params, args)  # bad arguments raise
        self.deadline = deadline
        self.metadata = metadata
        self.sent: list[bytes] = []
        self.ended = False
        self.items: Any = None  # the handler's async generator, once started

    async def start(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send(self, item: Any) -> None:
        spec = self.method.client_stream
        assert spec is not None
        if self.ended:
            raise RuntimeError(f"{self.method.path}: send() after end()")
        self.sent.append(self.channel.codec.encode(spec.type, item))
        await trio.lowlevel.checkpoint()

    async def end(self) -> None:
        self.ended = True
        await trio.lowlevel.checkpoint()

    async def _incoming(self) -> AsyncIterator[Any]:
        spec = self.method.client_stream
        assert spec is not None
        index = 0
        while index < len(self.sent):  # (no one can send while the handler runs)
            index += 1
            yield self.channel.codec.decode(spec.type, self.sent[index - 1])

    def _args(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        route = self.channel.dispatcher.lookup(self.method.path)
        if route is None:
            raise RpcError(Status.UNIMPLEMENTED, f"unknown method {self.method.path}")
        try:
            args = self.channel.codec.decode(self.method.params, self.payload)
        except CodecError as exc:
            raise invalid_arguments(self.method.path, self.method.params, exc) from None
        if self.method.client_stream is not None:
            args = (*args, self._incoming())
        return route.handler, args

    async def receive(self) -> Any:
        method, codec = self.method, self.channel.codec
        assert method.result is not None
        self.ended = True  # what was sent so far is the client's stream
        if self.items is None:
            handler, args = self._args()
            self.items = handler(*args)
        with trio.move_on_at(self.deadline) as scope:
            try:
                with deadline_scope(self.deadline, self.metadata):
                    item = await self.items.__anext__()
            except StopAsyncIteration:
                return END
            except DeclaredError as exc:
                unpack_reply(method, _declared_failure(method, exc, codec), codec)
            except RpcError as exc:
                raise error_for(exc.code, lower_start(exc.message), exc.details) from None
        if scope.cancelled_caught:
            await self.aclose()
            raise DeadlineExceeded(f"{method.path} passed its deadline")
        return codec.decode(method.result, codec.encode(method.result, item))

    async def finish(self) -> Any:
        self.ended = True
        route = self.channel.dispatcher.lookup(self.method.path)
        if route is None:
            raise RpcError(Status.UNIMPLEMENTED, f"unknown method {self.method.path}")

        async def nowhere(data: bytes) -> None:
            raise AssertionError("a client stream's handler yields nothing")

        with trio.move_on_at(self.deadline) as scope:
            reply = await run_handler(self.method, self.channel.codec, route.handler,
                                      self.payload, self.metadata, self.deadline, nowhere,
                                      self._incoming())
        if scope.cancelled_caught:
            raise DeadlineExceeded(f"{self.method.path} passed its deadline")
        return unpack_reply(self.method, reply, self.channel.codec)

    async def aclose(self) -> None:
        items, self.items = self.items, None
        if items is not None:
            await items.aclose()
