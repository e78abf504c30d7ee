"""The client side: a :class:`Channel` makes calls to one server address.

Connections are made lazily on the first call and again after one is lost (with
backoff between failed attempts); many calls share one connection, each with its own call
id. A call's life: client interceptors → encode → attempts (each on the current
connection, retried per the :class:`~rpcx.runtime.retry.RetryPolicy`) → decode or raise.

Open one with :func:`open_channel`; it owns a nursery for the connection's reader, so
nothing outlives the ``async with`` block. A unary call's per-call steps (the attempts,
the calls waiting for replies) are in :mod:`rpcx.runtime.unary`.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, overload

import attrs
import trio

from rpcx.codec import Codec, get_codec
from rpcx.errors import (
    DeadlineExceeded,
    RpcError,
    Unavailable,
)
from rpcx.protocol import (
    Connection,
    Event,
    Role,
)
from rpcx.protocol.connection import (
    DEFAULT_KEEPALIVE_INTERVAL,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_CALLS,
    DEFAULT_MAX_FRAME_SIZE,
)
from rpcx.runtime._errors import map_stream_errors
from rpcx.runtime.dispatch import Failure
from rpcx.runtime.interceptors import CallInfo, ClientInterceptor, run_chain
from rpcx.runtime.link import Link
from rpcx.runtime.options import effective_deadline
from rpcx.runtime.retry import RetryPolicy
from rpcx.runtime.streams import StreamCore
from rpcx.runtime.unary import ClientLink, StreamPending, attempt, unary
from rpcx.schema import MethodSpec
from rpcx.status import Status
from rpcx.transport import Transport, parse_address, transport_for

if TYPE_CHECKING:
    from rpcx.runtime.replicas import ReplicaChannel

__all__ = ["Channel", "ChannelStatistics", "open_channel"]

_CLOSE_FLUSH_TIMEOUT = 1.0
"""Seconds a closing channel spends trying to send its GOAWAY before it just closes."""


@attrs.frozen
class ChannelStatistics:
    calls: int
    """Calls started (each counted once, however many attempts it took)."""
    attempts: int
    retries: int
    failures: int
    """Calls that raised (after any retries)."""
    connects: int
    connect_failures: int
    open_calls: int
    connected: bool


def _no_event(_event: Event) -> None:
    """A Link's owner until the real one is set (nothing runs in between)."""


class Channel:
    """Calls to one address. Use :func:`open_channel` rather than constructing one.

    Options (all keyword-only, all with defaults):

    - ``transport``: how to reach the address (default: chosen by the URL scheme).
    - ``codec``: the payload codec (default CBOR; both sides must agree).
    - ``default_timeout``: seconds, for calls with no ``timeout=`` and no ``@deadline``.
    - ``retry``: the :class:`RetryPolicy`; ``NO_RETRY`` turns retries off.
    - ``interceptors``: client interceptors, outermost first.
    - ``metadata``: sent with every call (per-call metadata overrides it).
    - ``max_concurrent_calls``: calls in flight on the connection; more wait for room.
    - ``max_frame_size``, ``keepalive_interval``, ``keepalive_timeout``: protocol limits.
    - ``connect_timeout``: seconds for one connection attempt.
    - ``reconnect_backoff``: (first, max) seconds between failed connection attempts.
    - ``seed``: seeds the jitter of backoffs, for reproducible simulations.
    """

    def __init__(self, address: str, nursery: trio.Nursery, *,
                 transport: Transport | None = None, codec: Codec | None = None,
                 default_timeout: float | None = None,
                 retry: RetryPolicy | None = None,
                 interceptors: Sequence[ClientInterceptor] = (),
                 metadata: Mapping[str, str] | None = None,
                 max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 keepalive_interval: float | None = DEFAULT_KEEPALIVE_INTERVAL,
                 keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
                 connect_timeout: float = 5.0,
                 reconnect_backoff: tuple[float, float] = (0.05, 2.0),
                 seed: int | None = None) -> None:
        self.address = address
        self._parsed = parse_address(address)
        self._transport = transport or transport_for(self._parsed)
        self._nursery = nursery
        self.codec = codec or get_codec("cbor")
        self.default_timeout = default_timeout
        self.retry = retry or RetryPolicy()
        self._interceptors = [i.intercept_client for i in interceptors]
        self._metadata = dict(metadata or {})
        self._max_calls = max_concurrent_calls
        self._max_frame_size = max_frame_size
        self._keepalive = (keepalive_interval, keepalive_timeout)
        self._connect_timeout = connect_timeout
        self._reconnect_backoff = reconnect_backoff
        self._random = random.Random(seed)
        self._link: ClientLink | None = None
        self._connect_lock = trio.Lock()
        self._next_connect_at = -math.inf
        self._failed_connects = 0
        self._closed = False
        self._stats = {"calls": 0, "attempts": 0, "retries": 0, "failures": 0,
                       "connects": 0, "connect_failures": 0}

    # -- the Invoker interface that generated stubs call -------------------------------

    def call(self, method: MethodSpec, args: tuple[Any, ...], *,
             timeout: float | None = None,
             metadata: Mapping[str, str] | None = None) -> Coroutine[Any, Any, Any]:
        """A unary call: encode, send, wait for the reply (retrying when safe), decode.
        (A coroutine to await, as from an ``async def``; without interceptors it is the
        call's own, one layer less on every call.)"""
        self._stats["calls"] += 1
        link = self._link
        deadline = effective_deadline(method, timeout, self.default_timeout,
                                      trio.current_time if link is None else link.link.now)
        if not self._interceptors:
            # No CallInfo and no copy of the channel's metadata: nothing changes it.
            return unary(self, method, args, deadline,
                         {**self._metadata, **metadata} if metadata else self._metadata,
                         True)
        return self._call_chain(CallInfo(method, {**self._metadata, **metadata} if metadata
                                         else dict(self._metadata), deadline, args))

    async def _call_chain(self, info: CallInfo) -> Any:
        try:
            return await run_chain(self._interceptors, info, self._unary_info)
        except RpcError:
            self._stats["failures"] += 1
            raise

    async def call_oneway(self, method: MethodSpec, args: tuple[Any, ...], *,
                          timeout: float | None = None,
                          metadata: Mapping[str, str] | None = None) -> None:
        """Send a one-way call and return once it is written: no reply, no retry. Raises
        :class:`~rpcx.Unavailable` only if it could not be sent at all."""
        self._stats["calls"] += 1
        info = CallInfo(method, {**self._metadata, **(metadata or {})},
                        effective_deadline(method, timeout, self.default_timeout), args)
        await run_chain(self._interceptors, info, self._oneway)

    def open_stream(self, method: MethodSpec, args: tuple[Any, ...], *,
                    timeout: float | None = None,
                    metadata: Mapping[str, str] | None = None) -> StreamCore:
        """A streaming call (``rpcx.runtime.streams``), started on first use. Streaming
        calls are not retried; the client interceptors run around their start (they may
        change the metadata, as TokenAuth does, or refuse the call)."""
        self._stats["calls"] += 1
        return StreamCore(method, args, self.codec,
                          effective_deadline(method, timeout, self.default_timeout),
                          {**self._metadata, **metadata} if metadata else self._metadata,
                          self._start_stream)

    async def _start_stream(self, core: StreamCore, payload: bytes) -> None:
        if not self._interceptors:
            await self._begin_stream(core, payload)
            return

        async def begin(info: CallInfo) -> None:
            core.metadata = info.metadata
            await self._begin_stream(core, payload)

        await run_chain(self._interceptors, CallInfo(core.method, dict(core.metadata),
                                                     core.deadline, core.args), begin)

    async def _begin_stream(self, core: StreamCore, payload: bytes) -> None:
        deadline = core.deadline
        self._stats["attempts"] += 1
        if trio.current_time() >= deadline:
            raise DeadlineExceeded(f"{core.method.path}: deadline passed before sending")
        with trio.move_on_at(deadline):
            while True:
                link = await self._ready_link(deadline)
                await link.link.wait_for_room(self._max_calls)
                if link.usable:
                    break
        now = trio.current_time()
        if now >= deadline:
            raise DeadlineExceeded(f"{core.method.path}: deadline passed before sending")
        call_id = link.link.conn.start_call(
            core.method.path, payload, now=now,
            timeout=None if deadline == math.inf else deadline - now, metadata=core.metadata)
        pending = StreamPending(core)
        link.pending[call_id] = pending
        link.streams[call_id] = core

        def release() -> None:
            link.pending.pop(call_id, None)
            link.streams.pop(call_id, None)

        core.attach(link.link, call_id, pending, release)
        link.link.rearm()
        if not await link.link.flush(deadline=deadline):
            await core.aclose()
            raise DeadlineExceeded(f"{core.method.path}: deadline passed while the request "
                                   "was being written (is the peer reading?)")

    # -- calls ---------------------------------------------------------------------------

    def _unary_info(self, info: CallInfo) -> Coroutine[Any, Any, Any]:
        return unary(self, info.method, info.args, info.deadline, info.metadata)

    def _attempt(self, method: MethodSpec, deadline: float, metadata: Mapping[str, str],
                 payload: bytes, key: bytes | None, policy: RetryPolicy
                 ) -> Coroutine[Any, Any, bytes | Failure]:
        """One attempt (:func:`rpcx.runtime.unary.attempt`): the reply's payload
        (success) or a Failure carrying a declared error; other failures raise."""
        return attempt(self, method, deadline, metadata, payload, key, policy)

    async def _oneway(self, info: CallInfo) -> None:
        payload = self.codec.encode(info.method.params, info.args)
        link = await self._ready_link(info.deadline)
        await link.link.wait_for_room(self._max_calls)
        if not link.usable:
            raise Unavailable(f"{self.address}: connection closed while waiting to send")
        now = trio.current_time()
        timeout = None if info.deadline == math.inf else max(0.0, info.deadline - now)
        link.link.conn.start_call(info.method.path, payload, now=now, timeout=timeout,
                                  metadata=info.metadata, oneway=True)
        link.link.rearm()
        await link.link.flush(wait=True)

    # -- connections ---------------------------------------------------------------------

    async def _ready_link(self, deadline: float) -> ClientLink:
        if self._closed:
            raise Unavailable(f"{self.address}: channel is closed")
        link = self._link
        if link is not None and link.usable:
            return link
        async with self._connect_lock:
            link = self._link
            if link is not None and link.usable:
                return link
            return await self._connect(deadline)

    async def _connect(self, deadline: float) -> ClientLink:
        if self._next_connect_at > deadline:
            raise Unavailable(f"{self.address}: unreachable (next attempt after the deadline)")
        await trio.sleep_until(self._next_connect_at)
        try:
            with trio.fail_at(min(deadline, trio.current_time() + self._connect_timeout)):
                with map_stream_errors(f"cannot reach {self.address}"):
                    stream = await self._transport.connect(self._parsed)
        except (Unavailable, trio.TooSlowError) as exc:
            if isinstance(exc, trio.TooSlowError) and trio.current_time() >= deadline:
                # The call ran out of time, not the server: no backoff for the next one.
                raise DeadlineExceeded(
                    f"{self.address}: deadline passed while connecting") from None
            self._stats["connect_failures"] += 1
            self._failed_connects += 1
            first, most = self._reconnect_backoff
            # (the exponent is capped: after ~1,000 failures 2.0 ** n overflows a float)
            pause = min(most, first * 2.0 ** min(self._failed_connects - 1, 64))
            self._next_connect_at = trio.current_time() + pause * (0.5 + self._random.random() / 2)
            if isinstance(exc, Unavailable):
                raise
            raise Unavailable(f"cannot reach {self.address}: connect timed out") from None
        if self._closed:
            # Closed while this call slept out the backoff or connected: its nursery may
            # be gone, and nothing may outlive the channel anyway.
            await trio.aclose_forcefully(stream)
            raise Unavailable(f"{self.address}: channel is closed")
        self._failed_connects = 0
        self._next_connect_at = -math.inf
        self._stats["connects"] += 1
        interval, timeout = self._keepalive
        conn = Connection(Role.CLIENT, now=trio.current_time(),
                          max_frame_size=self._max_frame_size,
                          max_concurrent_calls=self._max_calls,
                          keepalive_interval=interval, keepalive_timeout=timeout)
        link = Link(stream, conn, _no_event, name=self.address)
        client_link = ClientLink(link)
        link.on_event = client_link.on_event  # (no lambda in between: once per reply)
        self._link = client_link
        self._nursery.start_soon(link.run)
        return client_link

    # -- lifecycle -----------------------------------------------------------------------

    def statistics(self) -> ChannelStatistics:
        link = self._link
        return ChannelStatistics(
            **self._stats,
            open_calls=link.link.conn.open_calls if link else 0,
            connected=bool(link and link.usable))

    async def aclose(self) -> None:
        """Close the connection; calls still waiting fail with UNAVAILABLE."""
        self._closed = True
        link = self._link
        if link is not None and not link.link.closed.is_set():
            link.link.conn.close(trio.current_time())
            for call_id in list(link.pending):
                link.resolve(call_id, Failure(Status.UNAVAILABLE, "channel closed"))
            with trio.CancelScope(shield=True):
                with trio.move_on_after(_CLOSE_FLUSH_TIMEOUT):  # a peer may not be reading
                    await link.link.flush(wait=True)
                await trio.aclose_forcefully(link.link.stream)
                await link.link.closed.wait()


@overload
def open_channel(address: str, **options: Any) -> AbstractAsyncContextManager[Channel]: ...


@overload
def open_channel(address: Sequence[str], **options: Any
                 ) -> AbstractAsyncContextManager[ReplicaChannel]: ...


def open_channel(address: str | Sequence[str], **options: Any
                 ) -> AbstractAsyncContextManager[Channel | ReplicaChannel]:
    """``async with open_channel("tcp://127.0.0.1:7000") as channel:`` — see
    :class:`Channel` for the options. Nothing it started outlives the block.

    Given a list of addresses (the replicas of a replicated service), the channel is a
    :class:`~rpcx.runtime.replicas.ReplicaChannel`: calls fail over between them."""
    return _open_channel(address, options)


@asynccontextmanager
async def _open_channel(address: str | Sequence[str], options: dict[str, Any]
                        ) -> AsyncIterator[Channel | ReplicaChannel]:
    try:
        async with trio.open_nursery() as nursery:
            channel: Channel | ReplicaChannel
            if isinstance(address, str):
                channel = Channel(address, nursery, **options)
            else:
                from rpcx.runtime.replicas import ReplicaChannel

                channel = ReplicaChannel(address, nursery, **options)
            try:
                yield channel
            finally:
                await channel.aclose()
    except BaseExceptionGroup as group:
        # Background tasks never raise, so a group holds the block's own exception:
        # give it back unwrapped, as a caller of a context manager expects.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
