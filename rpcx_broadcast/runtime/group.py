"""``open_group``: the application's view of a broadcast group.

```python
members = {"a": "tcp://127.0.0.1:7001", "b": "tcp://127.0.0.1:7002", ...}
async with open_group("a", members, order=FIFO_TOTAL) as group:
    await group.broadcast(b"set x 1")          # waits while flow control says full
    async for delivery in group.deliveries:    # Delivery(origin, seq, payload, index, ...)
        ...
```

Every member listens on its own address (``members[me]``, or ``listen=``) and sends to
the others' addresses with oneway rpcx calls; ``transport=`` picks the rpcx transport for
both (default: by URL scheme, so ``tcp://``, ``unix://`` and ``mem://`` work as they are;
pass ``SimNetwork.transport(me)`` for ``sim://``). A new member joins a running group
with ``open_group(me, order=..., join=<any member's address>, listen=<its own>)``.
Leaving the block first asks the group to install a view without this member (bounded
by ``leave_timeout``), then cancels every task the group started; nothing keeps running.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

import rpcx
from rpcx_broadcast.core.causal import CausalBroadcast
from rpcx_broadcast.core.fifo import FifoBroadcast
from rpcx_broadcast.core.gossip import BySize, GossipBroadcast
from rpcx_broadcast.core.layer import Layer, Stack
from rpcx_broadcast.core.membership import View
from rpcx_broadcast.core.raft_ready import RaftOptions
from rpcx_broadcast.core.storage import Storage
from rpcx_broadcast.core.total import LamportTotal, SequencerTotal
from rpcx_broadcast.runtime.node import Delivery, GroupStatistics, JoinStart, Journal, Node
from rpcx_broadcast.runtime.raft_node import RAFT, RaftMember, Snapshottable

__all__ = ["CAUSAL", "FIFO", "FIFO_TOTAL", "JOINABLE_ORDERS", "LAMPORT_FIFO_TOTAL", "ORDERS",
           "RAFT", "RELIABLE", "TOTAL", "Group", "make_stack", "open_group"]

RELIABLE = "reliable"
FIFO = "fifo"
CAUSAL = "causal"
TOTAL = "total"
FIFO_TOTAL = "fifo_total"
LAMPORT_FIFO_TOTAL = "lamport_fifo_total"

#: order name -> the checker order (rpcx_broadcast.check) its histories must pass
ORDERS: dict[str, str] = {RELIABLE: "reliable", FIFO: "fifo", CAUSAL: "causal",
                          TOTAL: "total", FIFO_TOTAL: "fifo_total",
                          LAMPORT_FIFO_TOTAL: "fifo_total", RAFT: "fifo_total"}

#: orders whose default stack a new member can join mid-run (see open_group's join=)
JOINABLE_ORDERS = (RELIABLE, FIFO, CAUSAL, TOTAL, FIFO_TOTAL)


def default_window(size: int) -> int:
    """The default gossip window for a group of ``size`` members: ``512 // (size - 1)²``,
    at least 16 (3 members: 128, 4: 56, 5: 32).

    A member that falls behind holds a backlog of up to ``size - 1`` windows of
    messages, and under relay to all it receives each of them ``size - 1`` times, so its
    work queued, and with it the delivery latency at saturation, grows as ``(size - 1)²
    x window``; the window shrinks by that so the worst backlog stays what it is with
    3 members (with 128 at 5 members the slowest member ran 1-1.3 s behind and causal
    order's p99 was 15x its p50; with 32, 6x, at the same throughput:
    bench/RESULTS.md)."""
    return max(16, 512 // max(1, size - 1) ** 2)


def make_stack(order: str, me: str, members: tuple[str, ...], *, batch_delay: float = 0.002,
               sync_interval: float = 0.05, window: int | None = None,
               leader: str | None = None) -> Stack:
    """The default stack for ``order``: batched gossip as the reliable layer (relay to
    all up to 8 members, through a hub beyond: ``BySize``), and the order's layer on top.
    ``window`` bounds each member's broadcasts not yet known to be held by every member
    (``broadcast()`` waits beyond it), which bounds the backlog of a member that falls
    behind and so the delivery latency at saturation; by default it follows the size of
    the first view (:func:`default_window`). Sequencer orders use ``leader`` as
    the fixed sequencer (default: the first member in sorted order; ``open_group`` passes
    the oldest member of the view, ``view.members[0]``, so a joiner never becomes it)."""
    leader = leader or min(members)
    members = tuple(sorted(members))
    if window is None:
        window = default_window(len(members))
    bottom = GossipBroadcast(me, members, topology=BySize(), batch_delay=batch_delay,
                             sync_interval=sync_interval, window=window)
    upper: list[Layer]
    if order == RELIABLE:
        upper = []
    elif order == FIFO:
        upper = [FifoBroadcast(me)]
    elif order == CAUSAL:
        upper = [CausalBroadcast(me)]
    elif order == TOTAL:
        upper = [SequencerTotal(me, members, leader=leader, order_delay=batch_delay)]
    elif order == FIFO_TOTAL:
        upper = [SequencerTotal(me, members, leader=leader, fifo=True,
                                order_delay=batch_delay)]
    elif order == LAMPORT_FIFO_TOTAL:
        upper = [FifoBroadcast(me), LamportTotal(me, members, heartbeat_delay=batch_delay)]
    elif order == RAFT:
        raise ValueError("the raft order is not a layer stack: open_group runs it with its "
                         "own adapter (rpcx_broadcast.runtime.raft_node)")
    else:
        raise ValueError(f"unknown order {order!r}; known: {sorted(ORDERS)}")
    return Stack([bottom, *upper])


class Group:
    """A running member of a group. Made by :func:`open_group`."""

    def __init__(self, node: Node | RaftMember) -> None:
        self._node = node
        self.me = node.me
        self.order = node.order

    @property
    def deliveries(self) -> trio.MemoryReceiveChannel[Delivery]:
        """Delivered messages, in delivery order. Keep reading it: when it is full, the
        member stops processing input (backpressure), and broadcasts wait too."""
        return self._node.deliveries

    @property
    def members(self) -> tuple[str, ...]:
        """The current agreed view's members, oldest first."""
        return self._node.members

    @property
    def view(self) -> int:
        """The id of the current agreed view."""
        return self._node.view

    @property
    def views(self) -> list[View]:
        """Every view this member installed, in order (its first: view 0, or the view
        that admitted it). Members pass through the same sequence of views."""
        return list(self._node.views)

    async def wait_view(self, view_id: int) -> View:
        """Wait until this member has installed view ``view_id`` (or a later one); return
        the current view."""
        while self._node.view < view_id:
            await self._node.wait_progress()
        return self._node.views[-1]

    @property
    def coordinator(self) -> str | None:
        """The member that creates views (the oldest one not suspected here); under the
        ``raft`` order, the leader this member knows of (``None``: none now)."""
        return self._node.coordinator

    @property
    def start(self) -> JoinStart | None:
        """Where this member started if it joined a running group (``None`` for an
        initial member): it delivers exactly the messages past this point."""
        return self._node.start

    async def broadcast(self, payload: bytes) -> int:
        """Broadcast ``payload`` to the group; return its ``seq`` (0-based, per member).

        Waits while the stack is not writable (flow control), so a slow member slows
        broadcasters instead of growing memory. Returns when the stack has taken the
        message, not when it is delivered."""
        return await self._node.broadcast(payload)

    async def wait_stable(self) -> None:
        """Wait until nothing is in flight at this member: its own broadcasts are
        delivered here, nothing is held back, and every message it stores for repair is
        known to be held by every member of the view."""
        while not self._node.settled():
            await self._node.wait_progress()

    def statistics(self) -> GroupStatistics:
        return self._node.statistics()

    async def read_barrier(self) -> int:
        """``raft`` order only: a linearizable read barrier. Returns a delivery count
        ``n``: once the application has applied ``n`` deliveries, its state reflects
        every message delivered anywhere before this call (see
        :meth:`RaftMember.read_barrier`)."""
        return await self._raft("read_barrier").read_barrier()

    def staleness(self) -> float:
        """``raft`` order only: seconds by which this member's deliveries may lag the
        group's (``inf`` without a leader or while catching up)."""
        return self._raft("staleness").staleness()

    def _raft(self, what: str) -> RaftMember:
        if not isinstance(self._node, RaftMember):
            raise TypeError(f"{what} needs the raft order (this group is {self.order!r})")
        return self._node


@asynccontextmanager
async def open_group(me: str, members: Mapping[str, str] | None = None,
                     order: str = FIFO_TOTAL, *, join: str | None = None,
                     transport: rpcx.Transport | None = None, listen: str | None = None,
                     stack: Stack | Callable[[str, tuple[str, ...]], Stack] | None = None,
                     failure_timeout: float | None = 2.0, heartbeat_interval: float = 0.25,
                     delivery_buffer: int = 1024, send_buffer: int = 4096,
                     count_bytes: bool = False, journal: Journal | None = None,
                     join_timeout: float = 10.0, leave_timeout: float = 1.0,
                     storage: Storage | None = None, election_timeout: float = 1.0,
                     max_pending: int = 256,
                     raft_options: RaftOptions | None = None,
                     snapshot_every: int | None = 10_000, snapshot_bytes: int = 64 << 20,
                     state: Snapshottable | None = None, remove_on_leave: bool = False,
                     remove_after: float | None = None, seed: int | None = None,
                     secret: str | None = None,
                     services: Sequence[object] = (),
                     server_options: Mapping[str, Any] | None = None
                     ) -> AsyncIterator[Group]:
    """Run member ``me`` of a group with ``order``: either one of the initial ``members``
    (name → rpcx address; view 0 is their names, sorted), or, with ``join=`` (any running
    member's address) and ``listen=`` (this member's own address), a new member of a
    running group.

    Options: ``stack`` (a ``Stack``, or a factory ``(me, members) -> Stack`` called with
    the first view's members, oldest first, to run any stack instead of
    :func:`make_stack`'s; a joiner needs a factory), ``failure_timeout`` (seconds of
    silence before a member is suspected; the coordinator then installs a view without it;
    ``None`` never suspects), ``heartbeat_interval``, ``delivery_buffer`` (deliveries
    waiting for the application), ``send_buffer`` (frames waiting per peer before they are
    dropped), ``count_bytes`` (encode twice to count wire bytes for statistics),
    ``journal`` (called in stack order for every broadcast and delivery, for logs and
    checkers), ``join_timeout`` (seconds to get admitted, else :class:`JoinError`) and
    ``leave_timeout`` (seconds to wait, when the block is left normally, for the view
    without this member).

    Under ``order=RAFT`` (FIFO-total by consensus, docs/broadcast.md) the group runs a
    Raft member instead of a stack: ``storage`` (a ``Storage``; default a fresh
    ``MemoryStorage``, pass ``rpcx_broadcast.FileStorage(directory)`` to survive a crash),
    ``election_timeout`` (seconds: the one failure-detection budget; heartbeats every
    tenth of it, failover in about 1.2-2 of it), ``max_pending`` (this member's broadcasts
    admitted but not yet delivered here; ``broadcast()`` waits beyond it) and
    ``raft_options`` (the core's ``RaftOptions``: ticks per election timeout, batching),
    ``snapshot_every`` (log entries between snapshots, ``None``: never) and
    ``snapshot_bytes`` (or this many bytes of entries), ``state`` (a
    :class:`~rpcx_broadcast.runtime.raft_node.Snapshottable`: the application's state in
    snapshots), ``remove_on_leave`` (a graceful leave commits this member's removal from
    the configuration; default: it stays a voter and may restart from its storage),
    ``remove_after`` (seconds: the leader removes a voter it has not heard from for that
    long; default never), ``join`` / ``listen`` / ``join_timeout`` (join a running raft
    group as a learner, promoted to voter once caught up) apply; ``stack``,
    ``failure_timeout``, ``heartbeat_interval`` and ``count_bytes`` do not. ``services``
    (implementations of generated service classes) are served on the member's own rpcx
    server beside the group's, with ``server_options`` (keyword arguments of
    :class:`rpcx.Server`). ``seed`` seeds the raft member's random choices (election
    timeouts) so that a simulation replays exactly. ``secret``: members send it with
    their calls to each other and refuse calls to the group's methods without it
    (``PERMISSION_DENIED``), so a client that can reach a member's address (a replicated
    service's clients can) cannot speak for a member; pair it with TLS
    (``transport=rpcx.TlsTransport(...)``) where the network is not trusted.
    """
    if order == RAFT:
        if stack is not None:
            raise ValueError("the raft order runs no layer stack: it takes no stack=")
        raft = RaftMember(me, members, join=join, storage=storage,
                          election_timeout=election_timeout,
                          options=raft_options, transport=transport, listen=listen,
                          max_pending=max_pending, delivery_buffer=delivery_buffer,
                          send_buffer=send_buffer, journal=journal,
                          snapshot_every=snapshot_every, snapshot_bytes=snapshot_bytes,
                          state=state, remove_on_leave=remove_on_leave,
                          remove_after=remove_after, join_timeout=join_timeout,
                          services=services, server_options=server_options,
                          rng=None if seed is None else random.Random(seed), secret=secret)
        async with _running(raft, leave_timeout) as group:
            yield group
        return
    if (storage is not None or raft_options is not None or state is not None
            or remove_on_leave or remove_after is not None or services or server_options
            or seed is not None or secret is not None):
        raise ValueError(f"storage=, raft_options=, state=, remove_on_leave=, "
                         f"remove_after=, services=, server_options=, seed= and secret= are "
                         f"for the raft order, not {order!r}")
    if order not in ORDERS and stack is None:
        raise ValueError(f"unknown order {order!r}; known: {sorted(ORDERS)}")
    if (members is None) == (join is None):
        raise ValueError("pass either members (an initial member) or join= (a contact "
                         "address of a running group), not both")

    def build(names: tuple[str, ...]) -> Stack:
        if stack is None:
            return make_stack(order, me, names, leader=names[0])
        if isinstance(stack, Stack):
            return stack
        return stack(me, names)

    if join is not None:
        if order == LAMPORT_FIFO_TOTAL:
            raise ValueError("lamport_fifo_total cannot be joined: a member delivers only "
                             "once it has a later timestamp from every member, so it needs "
                             "a fixed set of members (changing it safely needs view "
                             "synchrony); use fifo_total to add members to a running group")
        if isinstance(stack, Stack):
            raise ValueError("a joiner needs stack= as a factory (me, members) -> Stack: "
                             "its members are only known once the group admits it")
        if listen is None:
            raise ValueError("a joiner needs listen= (its own address, told to the others)")
        node = Node(me, None, None, order=order, make=build, join=join,
                    transport=transport, listen=listen, failure_timeout=failure_timeout,
                    heartbeat_interval=heartbeat_interval, delivery_buffer=delivery_buffer,
                    send_buffer=send_buffer, count_bytes=count_bytes, journal=journal,
                    join_timeout=join_timeout)
    else:
        assert members is not None
        if me not in members:
            raise ValueError(f"{me!r} is not one of the members {sorted(members)!r}")
        node = Node(me, members, build(tuple(sorted(members))), order=order,
                    transport=transport, listen=listen, failure_timeout=failure_timeout,
                    heartbeat_interval=heartbeat_interval, delivery_buffer=delivery_buffer,
                    send_buffer=send_buffer, count_bytes=count_bytes, journal=journal)
    async with _running(node, leave_timeout) as group:
        yield group


@asynccontextmanager
async def _running(node: Node | RaftMember, leave_timeout: float) -> AsyncIterator[Group]:
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            try:
                yield Group(node)
                await node.leave(leave_timeout)
            finally:
                await node.stop()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]  # nested nurseries wrap one error several times
        if error is group:
            raise
        raise error from None
