"""A channel to a replicated service: one client for every replica's address.

``rpcx.open_channel(["tcp://a:7000", "tcp://b:7000", "tcp://c:7000"])`` gives a
:class:`ReplicaChannel`, which generated client stubs use exactly like a
:class:`~rpcx.Channel`. A call goes to the replica the channel is using; when that one
cannot be reached, its connection is lost, or it answers with a retryable status, the
call moves on to the next replica (straight to the leader when the answer names it in
its ``leader`` detail), within the call's deadline. Every attempt of a call carries the
same idempotency key, so a retry that reaches a different replica after the first one
died is recognised there (a replicated service keeps outcomes by key in its replicated
log; see docs/replication.md) and the call takes effect exactly once.

Replicas that fail to connect are skipped while their reconnect backoff runs; when every
replica is failing, attempts pause per the :class:`~rpcx.RetryPolicy` (default: up to 64
attempts, 50 ms doubling to 1 s between rounds), and never past the deadline.
"""

from __future__ import annotations

import os
import random
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import trio

from rpcx.codec import Codec, get_codec
from rpcx.errors import DeclaredError, RpcError
from rpcx.runtime.channel import Channel, ChannelStatistics
from rpcx.runtime.dispatch import Failure, Success, unpack_reply
from rpcx.runtime.interceptors import CallInfo, ClientInterceptor, run_chain
from rpcx.runtime.options import effective_deadline
from rpcx.runtime.retry import NO_RETRY, RetryPolicy
from rpcx.schema import MethodSpec
from rpcx.status import RETRYABLE

__all__ = ["REPLICA_RETRY", "ReplicaChannel"]

REPLICA_RETRY = RetryPolicy(max_attempts=64, initial_backoff=0.05, max_backoff=1.0,
                            retryable=RETRYABLE)
"""The default retry policy of a :class:`ReplicaChannel`: enough attempts to ride out a
leader election (the deadline bounds them anyway)."""


class ReplicaChannel:
    """Calls to a service served by several replicas. Use :func:`rpcx.open_channel` with
    a list of addresses. Options are those of :class:`~rpcx.Channel` (each replica gets
    a channel with them); ``retry`` (default :data:`REPLICA_RETRY`), ``interceptors``,
    ``metadata``, ``default_timeout`` and ``codec`` apply to the calls as a whole."""

    def __init__(self, addresses: Sequence[str], nursery: trio.Nursery, *,
                 codec: Codec | None = None, default_timeout: float | None = None,
                 retry: RetryPolicy | None = None,
                 interceptors: Sequence[ClientInterceptor] = (),
                 metadata: Mapping[str, str] | None = None, seed: int | None = None,
                 **options: Any) -> None:
        if not addresses:
            raise ValueError("a replica channel needs at least one address")
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"an address is listed twice: {list(addresses)!r}")
        self.addresses = tuple(addresses)
        self.codec = codec or get_codec("cbor")
        self.default_timeout = default_timeout
        self.retry = retry or REPLICA_RETRY
        self._interceptors = [i.intercept_client for i in interceptors]
        self._metadata = dict(metadata or {})
        self._random = random.Random(seed)
        self._channels = [Channel(address, nursery, codec=self.codec, retry=NO_RETRY,
                                  seed=None if seed is None else seed + i, **options)
                          for i, address in enumerate(self.addresses)]
        self._current = 0
        self.switches = 0
        """How often calls moved to another replica."""
        self._stats = {"calls": 0, "attempts": 0, "retries": 0, "failures": 0}

    @property
    def address(self) -> str:
        """The replica calls go to now."""
        return self.addresses[self._current]

    async def call(self, method: MethodSpec, args: tuple[Any, ...], *,
                   timeout: float | None = None,
                   metadata: Mapping[str, str] | None = None) -> Any:
        self._stats["calls"] += 1
        deadline = effective_deadline(method, timeout, self.default_timeout)
        merged = {**self._metadata, **metadata} if metadata else self._metadata
        try:
            if not self._interceptors:
                return await self._unary(method, args, deadline, merged)
            info = CallInfo(method, dict(merged), deadline, args)
            return await run_chain(self._interceptors, info, self._unary_info)
        except RpcError:
            self._stats["failures"] += 1
            raise

    async def call_oneway(self, method: MethodSpec, args: tuple[Any, ...], *,
                          timeout: float | None = None,
                          metadata: Mapping[str, str] | None = None) -> None:
        """A one-way call to the current replica (no reply, so no failover)."""
        merged = {**self._metadata, **metadata} if metadata else self._metadata
        await self._channels[self._current].call_oneway(method, args, timeout=timeout,
                                                        metadata=merged)

    def _unary_info(self, info: CallInfo) -> Coroutine[Any, Any, Any]:
        return self._unary(info.method, info.args, info.deadline, info.metadata)

    async def _unary(self, method: MethodSpec, args: tuple[Any, ...], deadline: float,
                     metadata: Mapping[str, str]) -> Any:
        payload = self.codec.encode(method.params, args)
        key = None if method.idempotent else os.urandom(16)  # the same on every replica
        policy = self.retry
        attempt, unknown, tried = 1, False, 0
        while True:
            channel = self._pick()
            self._stats["attempts"] += 1
            try:
                reply = await channel._attempt(method, deadline, metadata, payload, key,
                                               policy)
                return unpack_reply(method, reply if isinstance(reply, Failure)
                                    else Success(reply), self.codec)
            except DeclaredError:
                raise
            except RpcError as error:
                unknown = error.outcome_unknown = error.outcome_unknown or unknown
                if error.code not in policy.retryable or attempt >= policy.max_attempts:
                    raise
                tried += 1
                self._move_on(error)
                # Straight on to the next replica; a pause only after a whole round.
                pause = 0.0
                if tried >= len(self._channels):
                    tried = 0
                    pause = policy.backoff(attempt // len(self._channels) + 1, self._random)
                if trio.current_time() + pause >= deadline:
                    raise
            attempt += 1
            self._stats["retries"] += 1
            if pause:
                await trio.sleep(pause)
            else:
                await trio.lowlevel.checkpoint()

    def _pick(self) -> Channel:
        """The current replica, unless it is sitting out a reconnect backoff and another
        is not."""
        now = trio.current_time()
        n = len(self._channels)
        for step in range(n):
            channel = self._channels[(self._current + step) % n]
            if channel._next_connect_at <= now:
                if step:
                    self._current = (self._current + step) % n
                    self.switches += 1
                return channel
        return self._channels[self._current]

    def _move_on(self, error: RpcError) -> None:
        leader = error.details.get("leader") if isinstance(error.details, Mapping) else None
        if isinstance(leader, str) and leader in self.addresses:
            self._current = self.addresses.index(leader)
        else:
            self._current = (self._current + 1) % len(self._channels)
        self.switches += 1

    def statistics(self) -> ChannelStatistics:
        """Calls as a whole; connections summed over the replicas (``connected``: the
        current one)."""
        stats = [c.statistics() for c in self._channels]
        return ChannelStatistics(
            **self._stats, connects=sum(s.connects for s in stats),
            connect_failures=sum(s.connect_failures for s in stats),
            open_calls=sum(s.open_calls for s in stats),
            connected=stats[self._current].connected)

    async def aclose(self) -> None:
        for channel in self._channels:
            await channel.aclose()

