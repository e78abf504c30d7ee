"""The server side: accept connections, run handlers, answer.

:func:`serve` runs until cancelled (trio's ``serve_*`` convention, with ``task_status``);
:func:`open_server` is the context-manager form whose exit shuts down gracefully:
listeners close, every connection gets GOAWAY, in-flight calls have ``grace_period``
seconds to finish, then the rest are cancelled. Every task lives in the server's nurseries,
so nothing outlives it.

Each request runs first in its connection's reader; a handler that waits for anything
keeps that task while a new one reads on (``rpcx.runtime.link``), so a slow handler never
blocks others. It is cancelled (once it waits: see ``rpcx.runtime.link``) at its
deadline, when the client cancels or when the connection is lost. Non-idempotent calls
carry an idempotency key: the server's de-duplication cache (shared by all connections,
since a retry often arrives on a new one) makes a retried call execute at most once and
replays the first result. A unary request's job (and the connection's event handler
that queues it) is in :mod:`rpcx.runtime.unary`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from rpcx.codec import Codec, get_codec
from rpcx.protocol import (
    Connection,
    DedupCache,
    Event,
    RequestReceived,
    Role,
)
from rpcx.protocol.budget import DEFAULT_MAX_BUFFERED_BYTES, ReceiveBudget
from rpcx.protocol.connection import (
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_KEEPALIVE_INTERVAL,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_CALLS,
    DEFAULT_MAX_FRAME_SIZE,
)
from rpcx.protocol.dedup import (
    DEFAULT_DEDUP_WINDOW,
    DEFAULT_IDEMPOTENCY_QUOTA,
    DEFAULT_MAX_IDEMPOTENCY_BYTES,
    DEFAULT_MAX_IDEMPOTENCY_CACHE,
)
from rpcx.runtime.accept import accept_forever, describe_peer
from rpcx.runtime.dispatch import Dispatcher, Reply, Success
from rpcx.runtime.interceptors import ServerInterceptor
from rpcx.runtime.link import Link
from rpcx.runtime.streams import ServerCallStream
from rpcx.runtime.unary import CallState, ServerLink, answer
from rpcx.transport import Transport, bound_url, parse_address, transport_for

__all__ = ["Server", "ServerStatistics", "open_server", "serve"]

@attrs.frozen
class ServerStatistics:
    connections: int
    """Connections open now."""
    connections_total: int
    calls: int
    """Requests received (including duplicates answered from the cache)."""
    calls_in_flight: int
    replayed: int
    """Retried calls answered from the idempotency cache without running the handler."""
    idempotency_entries: int


class Server:
    """Serves service implementations (instances of generated ``<Svc>Service`` classes).

    Options: ``codec`` (default CBOR), ``interceptors`` (server interceptors, outermost
    first), ``max_concurrent_calls`` per connection (excess calls get RESOURCE_EXHAUSTED;
    rpcx clients wait for room instead), ``max_frame_size``, ``keepalive_interval``,
    ``keepalive_timeout``, ``frame_timeout`` (seconds within which a frame must be
    complete once its first byte arrived; default 30), ``max_buffered_bytes`` (bytes of
    incomplete frames all connections may hold together; default 64 MiB; a frame that
    finds no room is refused with RESOURCE_EXHAUSTED, its connection goes on),
    ``grace_period`` for graceful shutdown, and the idempotency
    cache's ``dedup_window`` (seconds a reply is kept), ``max_idempotency_cache``
    (entries), ``max_idempotency_bytes`` and ``idempotency_quota`` (entries one connection
    may hold; see :mod:`rpcx.protocol.dedup` for the exact guarantee).
    ``reflection`` (default on) also serves the built-in ``rpcx.reflection.Reflection``
    service (:mod:`rpcx.reflection`), which tools such as ``rpcx call`` use.
    ``deduplicate=False`` turns the idempotency cache off: keyed calls run every time,
    with their key visible to the handler (``rpcx.current_idempotency_key()``); for
    services that de-duplicate by key themselves (a replicated service keeps outcomes in
    its replicated log, which every replica shares).
    """

    def __init__(self, services: Iterable[object], *, codec: Codec | None = None,
                 interceptors: Sequence[ServerInterceptor] = (),
                 max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 keepalive_interval: float | None = DEFAULT_KEEPALIVE_INTERVAL,
                 keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
                 frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
                 max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
                 grace_period: float = 5.0,
                 dedup_window: float = DEFAULT_DEDUP_WINDOW,
                 max_idempotency_cache: int = DEFAULT_MAX_IDEMPOTENCY_CACHE,
                 max_idempotency_bytes: int = DEFAULT_MAX_IDEMPOTENCY_BYTES,
                 idempotency_quota: int = DEFAULT_IDEMPOTENCY_QUOTA,
                 reflection: bool = True, deduplicate: bool = True) -> None:
        if reflection:
            from rpcx.reflection import with_reflection

            services = with_reflection(services)
        self.dispatcher = Dispatcher(services, interceptors)
        self.codec = codec or get_codec("cbor")
        self.grace_period = grace_period
        self._conn_options: dict[str, Any] = {
            "max_frame_size": max_frame_size, "max_concurrent_calls": max_concurrent_calls,
            "keepalive_interval": keepalive_interval, "keepalive_timeout": keepalive_timeout,
            "frame_timeout": frame_timeout}
        self.receive_budget = ReceiveBudget(max_buffered_bytes)
        """Bytes of incomplete frames all connections may hold together."""
        self._dedup: DedupCache[Reply] = DedupCache(
            max_entries=max_idempotency_cache, window=dedup_window,
            max_bytes=max_idempotency_bytes, quota=idempotency_quota, size=_reply_size)
        self._dedup_done: dict[tuple[str, bytes], trio.Event] = {}
        self._deduplicate = deduplicate
        self._links: set[Link] = set()
        self._shutdown = trio.Event()
        self._stopped = trio.Event()
        self.addresses: list[str] = []
        """The URLs the server listens on (with the real port when bound to port 0)."""
        self._stats = {"connections_total": 0, "calls": 0, "replayed": 0}
        self._in_flight = 0

    # -- running -------------------------------------------------------------------------

    async def serve(self, listeners: Sequence[trio.abc.Listener[trio.abc.Stream]], *,
                    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept on ``listeners`` until :meth:`shutdown` (graceful) or cancellation."""
        try:
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as acceptors:
                    for listener in listeners:
                        acceptors.start_soon(accept_forever, listener, connections,
                                             self._handle_connection)
                    task_status.started(self)
                    await self._shutdown.wait()
                    acceptors.cancel_scope.cancel()
                await self._close_listeners(listeners)
                await self._drain(connections)
        finally:
            # Cancelled rather than shut down: still release the addresses.
            with trio.CancelScope(shield=True):
                await self._close_listeners(listeners)
            self._stopped.set()

    @staticmethod
    async def _close_listeners(listeners: Sequence[trio.abc.Listener[trio.abc.Stream]]) -> None:
        for listener in listeners:
            await trio.aclose_forcefully(listener)

    def shutdown(self) -> None:
        """Begin a graceful shutdown; :meth:`serve` returns when it is done."""
        self._shutdown.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def _drain(self, connections: trio.Nursery) -> None:
        now = trio.current_time()
        for link in list(self._links):
            link.conn.close(now, message="server shutting down")
            link.rearm()
            # Each GOAWAY is written by a task of its own, within the grace period: a
            # client that stopped reading must hold up neither the others nor the drain.
            connections.start_soon(link.flush)
        with trio.move_on_after(self.grace_period):
            while self._links:
                await next(iter(self._links)).closed.wait()
        connections.cancel_scope.cancel()

    async def _handle_connection(self, stream: trio.abc.Stream) -> None:
        self._stats["connections_total"] += 1
        conn = Connection(Role.SERVER, now=trio.current_time(), budget=self.receive_budget,
                          **self._conn_options)
        owner = self._stats["connections_total"]  # owns the idempotency keys it sends
        peer = describe_peer(stream)
        link = Link(stream, conn, _no_event, name=peer)
        link.on_event = ServerLink(self, link, peer, owner).on_event  # (no lambda between)
        self._links.add(link)
        if self._shutdown.is_set():
            # Accepted just as the drain began: tell it at once, like the others.
            conn.close(trio.current_time(), message="server shutting down")
        try:
            await link.run()  # runs the handlers too (see rpcx.runtime.link)
        finally:
            self._links.discard(link)

    async def _run_stream(self, link: Link, event: RequestReceived, state: CallState,
                          calls: dict[int, CallState],
                          streams: dict[int, ServerCallStream], peer: str) -> None:
        """A streaming call (``rpcx.runtime.streams``): through the server interceptors,
        not de-duplicated; cancelled like any call."""
        self._stats["calls"] += 1
        call_stream = streams[event.call_id]
        if state.cancelled or (event.deadline is not None
                               and trio.current_time() >= event.deadline):
            streams.pop(event.call_id, None)
            return
        route = self.dispatcher.lookup(event.method)
        assert route is not None
        self._in_flight += 1
        try:
            reply = await call_stream.run(
                route.handler, event.payload, event.metadata,
                math.inf if event.deadline is None else event.deadline,
                interceptors=self.dispatcher.interceptors, peer=peer)
        finally:
            self._in_flight -= 1
            streams.pop(event.call_id, None)
            if calls.get(event.call_id) is state:
                del calls[event.call_id]
        answer(link, event, reply)
        link.rearm()  # the link writes the answer after this job

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(connections=len(self._links), calls_in_flight=self._in_flight,
                                idempotency_entries=len(self._dedup), **self._stats)


def _no_event(_event: Event) -> None:
    """A Link's owner until the real one is set (nothing runs in between)."""


def _reply_size(reply: Reply) -> int:
    """Bytes a stored reply is charged in the idempotency cache."""
    if isinstance(reply, Success):
        return len(reply.payload)
    return len(reply.message) + len(reply.error_payload or b"") + 64 * len(reply.details)


async def serve(address: str, services: Iterable[object], *,
                transport: Transport | None = None,
                task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
                **options: Any) -> None:
    """Listen on ``address`` and serve until cancelled. ``await nursery.start(serve, ...)``
    returns the :class:`Server` once it is listening (``server.addresses`` has the URLs)."""
    parsed = parse_address(address)
    listeners = await (transport or transport_for(parsed)).listen(parsed)
    server = Server(services, **options)
    server.addresses = [bound_url(listener, address) for listener in listeners]
    await server.serve(listeners, task_status=task_status)


@asynccontextmanager
async def open_server(address: str, services: Iterable[object], *,
                      transport: Transport | None = None,
                      **options: Any) -> AsyncIterator[Server]:
    """Serve while the block runs; on exit, shut down gracefully (see the module doc)."""
    try:
        async with trio.open_nursery() as nursery:
            server: Server = await nursery.start(
                lambda task_status: serve(address, services, transport=transport,
                                          task_status=task_status, **options))
            try:
                yield server
            finally:
                server.shutdown()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
