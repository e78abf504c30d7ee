"""Run a sans-I/O broadcast ``Stack`` over rpcx: the one loop that drives it.

A :class:`Node` owns, inside one nursery:

- an rpcx server for the ``rpcx_broadcast.Broadcast`` service (``idl/broadcast.rpcx``):
  its ``push`` handler decodes frames (``wire.from_frame``) and queues them for the loop;
- one sender task per peer, which drains that peer's bounded outgoing queue into batched
  oneway ``push`` calls on an rpcx ``Channel``;
- **the loop** (:meth:`Node._loop`), the only code that touches the stack. It waits for
  the next input (a push, or a broadcast request) or the earliest timer deadline, feeds
  the stack, and performs the actions it returns:

  - ``Send(dest, msg)`` → ``wire.to_frame(msg)`` into ``dest``'s outgoing queue. Never
    blocks: when the queue is full (the peer is slow, down or unreachable) the frame is
    dropped, which the layers treat as a lost message (fair-loss links);
  - ``Deliver`` → a :class:`Delivery` into the application's trio memory channel. This
    *does* wait when the application is behind (backpressure: the loop stops taking input
    rather than buffering without bound), so an application must keep reading;
  - ``SetTimer`` / ``CancelTimer`` → entries in a deadline table; the loop's wait ends at
    the earliest one (``trio.move_on_at``).

A heartbeat failure detector (``HeartbeatFailureDetector``) runs in the same loop. When it
suspects a member, the node installs a local view without it (``Stack.on_view``), which is
how the layers stop waiting for a crashed member. This is an oracle view per member, not
an agreed view: see docs/broadcast.md for what each order tolerates.

Errors are handled where they happen: a frame that does not decode or that a layer
rejects (``ProtocolViolation``) is logged and dropped; a failed ``push`` (peer down:
``rpcx.RpcError``) drops that batch; configuration errors (``HoldBackOverflow``) propagate
and end the group.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable, Mapping, Sequence

import attrs
import trio

import rpcx
from rpcx_broadcast._generated import broadcast_rpcx as idl
from rpcx_broadcast.core.actions import Action, CancelTimer, Deliver, Send, SetTimer, Wire
from rpcx_broadcast.core.failure_detector import (
    Heartbeat,
    HeartbeatFailureDetector,
    Suspected,
)
from rpcx_broadcast.core.layer import ProtocolViolation, Stack
from rpcx_broadcast.runtime.wire import from_frame, to_frame

__all__ = ["Delivery", "GroupStatistics", "Journal", "Node"]

logger = logging.getLogger("rpcx_broadcast")

_IN_FLIGHT = frozenset({"store", "ahead", "outbox", "holdback", "retransmit", "orders",
                        "leader_waiting"})

Journal = Callable[[str, str, int, bytes], None]
"""``journal(kind, origin, seq, payload)`` with kind ``"broadcast"`` or ``"deliver"``,
called by the loop in exactly the order the stack did things (for checkers and logs)."""


@attrs.frozen
class Delivery:
    """A message delivered to the application."""

    origin: str
    """The member that broadcast it."""
    seq: int
    """Its number among ``origin``'s broadcasts (0-based)."""
    payload: bytes
    index: int
    """Its position in this member's delivery sequence (0-based). Under ``total`` and
    ``fifo_total`` order this is the message's place in the group's one order, the same
    at every member."""
    order: str
    """The order the group guarantees (``"fifo_total"``, ``"causal"``, ...)."""
    view: int
    """The id of the view it was delivered in (0, then +1 per member removed)."""


@attrs.frozen
class GroupStatistics:
    """Counters of one member (``Group.statistics()``)."""

    broadcasts: int
    deliveries: int
    own_deliveries: int
    """Deliveries of this member's own broadcasts."""
    frames_sent: int
    """Frames handed to peers' queues (stack messages and heartbeats)."""
    pushes_sent: int
    """Oneway ``push`` calls made (each carries a batch of frames)."""
    frames_dropped: int
    """Frames lost because a peer's queue was full or its ``push`` failed."""
    frames_received: int
    bytes_sent: int
    """Encoded ``push`` arguments sent (only counted with ``count_bytes=True``)."""
    payload_bytes_sent: int
    """Application payload bytes inside the frames sent (with ``count_bytes=True``)."""
    pending_broadcasts: int
    """Broadcasts waiting for the stack to become writable."""
    members: tuple[str, ...]
    view: int
    suspected: tuple[str, ...]
    buffer_sizes: Mapping[str, int]


@attrs.define(eq=False)
class _Request:
    payload: bytes
    done: trio.Event = attrs.Factory(trio.Event)
    seq: int = -1
    abandoned: bool = False


class _Handler(idl.BroadcastService):
    def __init__(self, node: Node) -> None:
        self._node = node

    async def push(self, sender: str, frames: list[idl.Frame]) -> None:
        # Backpressure: while the loop is behind, this waits, the connection stops being
        # read, and the sender's queue (bounded) drops what it cannot hold.
        await self._node._inbox_send.send((sender, frames))


def _payload_bytes(value: object) -> int:
    """Application bytes nested inside a core message (for the metadata statistics)."""
    if isinstance(value, bytes):
        return len(value)
    fields = getattr(type(value), "__attrs_attrs__", None)
    if fields is not None:
        return sum(_payload_bytes(getattr(value, field.name)) for field in fields)
    if isinstance(value, tuple):
        return sum(_payload_bytes(v) for v in value)
    return 0


class Node:
    """One member running a stack. Use :func:`rpcx_broadcast.open_group`."""

    def __init__(self, me: str, members: Mapping[str, str], stack: Stack, *, order: str,
                 transport: rpcx.Transport | None = None, listen: str | None = None,
                 failure_timeout: float | None = 2.0, heartbeat_interval: float = 0.25,
                 delivery_buffer: int = 1024, send_buffer: int = 4096, max_batch: int = 256,
                 count_bytes: bool = False, journal: Journal | None = None) -> None:
        if me not in members:
            raise ValueError(f"{me!r} is not one of the members {sorted(members)!r}")
        self.me = me
        self.addresses = dict(members)
        self.stack = stack
        self.order = order
        self._transport = transport
        self._listen = listen or members[me]
        self._journal = journal
        self._count_bytes = count_bytes
        self._max_batch = max_batch
        self._send_buffer = send_buffer
        self.members: tuple[str, ...] = tuple(sorted(members))
        self.view = 0
        self._fd = (HeartbeatFailureDetector(me, self.members, interval=heartbeat_interval,
                                             timeout=failure_timeout)
                    if failure_timeout is not None else None)
        self._timers: dict[str, float] = {}
        self._pending: collections.deque[_Request] = collections.deque()
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[
            tuple[str, list[idl.Frame]] | _Request](64)
        self._deliver_send, self.deliveries = trio.open_memory_channel[Delivery](
            delivery_buffer)
        self._outboxes: dict[str, trio.MemorySendChannel[idl.Frame]] = {}
        self._progress = trio.Event()
        self._broadcasts = 0
        self._deliveries = 0
        self._own_delivered = 0
        self._stats = collections.Counter[str]()
        self.server: rpcx.Server | None = None

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve, connect to peers and run the loop until cancelled."""
        async with trio.open_nursery() as nursery:
            self.server = await nursery.start(self._serve)
            for peer in self.members:
                if peer == self.me:
                    continue
                send, receive = trio.open_memory_channel[idl.Frame](self._send_buffer)
                self._outboxes[peer] = send
                channel = rpcx.Channel(self.addresses[peer], nursery,
                                       transport=self._transport, retry=rpcx.NO_RETRY,
                                       reconnect_backoff=(0.02, 0.5), connect_timeout=2.0)
                nursery.start_soon(self._sender, peer, channel, receive)
            nursery.start_soon(self._loop)
            task_status.started()

    async def stop(self) -> None:
        """Shut the server down so its listener is released (a cancelled ``rpcx.serve``
        does not close its listeners), then let the caller cancel the rest."""
        server = self.server
        if server is not None:
            server.shutdown()
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await server.wait_stopped()

    async def _serve(self, *, task_status: trio.TaskStatus[rpcx.Server]) -> None:
        await rpcx.serve(self._listen, [_Handler(self)], transport=self._transport,
                         grace_period=0.0, task_status=task_status)

    async def _sender(self, peer: str, channel: rpcx.Channel,
                      queue: trio.MemoryReceiveChannel[idl.Frame]) -> None:
        client = idl.BroadcastClient(channel)
        codec = rpcx.CborCodec()
        params = idl._m_Broadcast_push.params
        async for first in queue:
            frames = [first]
            while len(frames) < self._max_batch:
                try:
                    frames.append(queue.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                await client.push(self.me, frames)
            except rpcx.RpcError as error:
                # The peer is down or unreachable: the batch is lost, as on a fair-loss
                # link. The layers retransmit; the failure detector notices a crash.
                self._stats["frames_dropped"] += len(frames)
                logger.debug("%s: push to %s failed: %s", self.me, peer, error)
                continue
            self._stats["pushes_sent"] += 1
            if self._count_bytes:
                self._stats["bytes_sent"] += len(codec.encode(params, (self.me, frames)))

    # -- the loop ------------------------------------------------------------------------

    async def _loop(self) -> None:
        now = trio.current_time()
        if self._fd is not None:
            await self._perform(self._fd.on_start(now), fd=True)
        while True:
            deadline = min(self._timers.values(), default=math.inf)
            item: tuple[str, list[idl.Frame]] | _Request | None = None
            with trio.move_on_at(deadline):
                item = await self._inbox_recv.receive()
            now = trio.current_time()
            if isinstance(item, _Request):
                self._pending.append(item)
            elif item is not None:
                await self._on_push(item[0], item[1], now)
            for key, at in sorted(self._timers.items(), key=lambda kv: kv[1]):
                if at <= now and self._timers.get(key) == at:
                    del self._timers[key]
                    if key.startswith("fd/"):
                        assert self._fd is not None
                        await self._perform(self._fd.on_timer(key[3:], now), fd=True)
                    else:
                        await self._perform(self.stack.on_timer(key, now))
            await self._check_suspicions(now)
            await self._admit(now)
            self._progress.set()
            self._progress = trio.Event()

    async def _on_push(self, sender: str, frames: Sequence[idl.Frame], now: float) -> None:
        if sender not in self.members or sender == self.me:
            self._stats["frames_ignored"] += len(frames)
            return
        for frame in frames:
            self._stats["frames_received"] += 1
            try:
                msg = from_frame(frame)
                if self._fd is not None:
                    self._fd.on_receive(sender, Heartbeat(), now)  # any traffic is life
                if isinstance(msg, Wire):
                    await self._perform(self.stack.on_receive(sender, msg, now))
            except ProtocolViolation as error:
                logger.warning("%s: dropped a bad frame from %s: %s", self.me, sender, error)

    async def _admit(self, now: float) -> None:
        """Hand waiting broadcasts to the stack while it accepts them (flow control)."""
        while self._pending and self.stack.writable:
            request = self._pending.popleft()
            if request.abandoned:
                continue
            request.seq = self._broadcasts
            self._broadcasts += 1
            if self._journal is not None:
                self._journal("broadcast", self.me, request.seq, request.payload)
            actions = self.stack.on_broadcast(request.payload, now)
            request.done.set()
            await self._perform(actions)

    async def _check_suspicions(self, now: float) -> None:
        if self._fd is None:
            return
        for change in self._fd.changes():
            if isinstance(change, Suspected) and change.member in self.members:
                # A suspected member leaves this member's view for good (it is not taken
                # back if heard from again: the layers have forgotten it).
                self.members = tuple(m for m in self.members if m != change.member)
                self.view += 1
                logger.info("%s: suspects %s; view %d is %s", self.me, change.member,
                            self.view, self.members)
                self._fd.set_members(self.members, now)
                await self._perform(self.stack.on_view(self.members, now))

    async def _perform(self, actions: list[Action], *, fd: bool = False) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action.dest, action.msg)
            elif isinstance(action, Deliver):
                payload = action.payload
                if not isinstance(payload, bytes):
                    raise TypeError(f"the stack delivered {payload!r}, not bytes")
                if self._journal is not None:
                    self._journal("deliver", action.origin, action.seq, payload)
                delivery = Delivery(action.origin, action.seq, payload, self._deliveries,
                                    self.order, self.view)
                self._deliveries += 1
                if action.origin == self.me:
                    self._own_delivered += 1
                await self._deliver_send.send(delivery)
            elif isinstance(action, SetTimer):
                self._timers[f"fd/{action.key}" if fd else action.key] = action.at
            elif isinstance(action, CancelTimer):
                self._timers.pop(f"fd/{action.key}" if fd else action.key, None)
            else:
                raise TypeError(f"the stack returned {action!r}")

    def _send(self, dest: str, msg: object) -> None:
        outbox = self._outboxes.get(dest)
        if outbox is None:
            return
        frame = to_frame(msg)
        try:
            outbox.send_nowait(frame)
        except trio.WouldBlock:
            self._stats["frames_dropped"] += 1
            return
        self._stats["frames_sent"] += 1
        if self._count_bytes and isinstance(msg, Wire):
            self._stats["payload_bytes_sent"] += _payload_bytes(msg.msg)

    # -- what Group uses -----------------------------------------------------------------

    async def broadcast(self, payload: bytes) -> int:
        """Queue ``payload`` for the loop and wait until the stack has taken it."""
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        request = _Request(payload)
        await self._inbox_send.send(request)
        try:
            await request.done.wait()
        except trio.Cancelled:
            request.abandoned = True
            raise
        return request.seq

    async def wait_progress(self) -> None:
        """Wait until the loop has handled one more input or timer."""
        await self._progress.wait()

    def settled(self) -> bool:
        """Nothing in flight here: every own broadcast delivered, nothing held back, and
        every message this member stores for repair known to be held by all members."""
        if self._waiting() or self._own_delivered < self._broadcasts:
            return False
        sizes = self.stack.buffer_sizes()
        return not any(size for name, size in sizes.items()
                       if name.rsplit(".", 1)[-1] in _IN_FLIGHT)

    def _waiting(self) -> int:
        return sum(not request.abandoned for request in self._pending)

    def statistics(self) -> GroupStatistics:
        stats = self._stats
        return GroupStatistics(
            broadcasts=self._broadcasts, deliveries=self._deliveries,
            own_deliveries=self._own_delivered,
            frames_sent=stats["frames_sent"], pushes_sent=stats["pushes_sent"],
            frames_dropped=stats["frames_dropped"], frames_received=stats["frames_received"],
            bytes_sent=stats["bytes_sent"], payload_bytes_sent=stats["payload_bytes_sent"],
            pending_broadcasts=self._waiting(), members=self.members, view=self.view,
            suspected=tuple(sorted(self._fd.suspected)) if self._fd else (),
            buffer_sizes=self.stack.buffer_sizes())
