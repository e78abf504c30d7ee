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
pass ``SimNetwork.transport(me)`` for ``sim://``). Leaving the block cancels every task the
group started; nothing keeps running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import trio

import rpcx
from rpcx_broadcast.core.causal import CausalBroadcast
from rpcx_broadcast.core.fifo import FifoBroadcast
from rpcx_broadcast.core.gossip import GossipBroadcast, RelayAll
from rpcx_broadcast.core.layer import Layer, Stack
from rpcx_broadcast.core.total import LamportTotal, SequencerTotal
from rpcx_broadcast.runtime.node import Delivery, GroupStatistics, Journal, Node

__all__ = ["CAUSAL", "FIFO", "FIFO_TOTAL", "LAMPORT_FIFO_TOTAL", "ORDERS", "RELIABLE",
           "TOTAL", "Group", "make_stack", "open_group"]

RELIABLE = "reliable"
FIFO = "fifo"
CAUSAL = "causal"
TOTAL = "total"
FIFO_TOTAL = "fifo_total"
LAMPORT_FIFO_TOTAL = "lamport_fifo_total"

#: order name -> the checker order (rpcx_broadcast.check) its histories must pass
ORDERS: dict[str, str] = {RELIABLE: "reliable", FIFO: "fifo", CAUSAL: "causal",
                          TOTAL: "total", FIFO_TOTAL: "fifo_total",
                          LAMPORT_FIFO_TOTAL: "fifo_total"}


def make_stack(order: str, me: str, members: tuple[str, ...], *, batch_delay: float = 0.002,
               sync_interval: float = 0.05, window: int = 1024) -> Stack:
    """The default stack for ``order``: batched gossip (relay to all) as the reliable
    layer, and the order's layer on top. Sequencer orders use the first member (sorted)
    as the fixed leader."""
    members = tuple(sorted(members))
    bottom = GossipBroadcast(me, members, topology=RelayAll(), batch_delay=batch_delay,
                             sync_interval=sync_interval, window=window)
    upper: list[Layer]
    if order == RELIABLE:
        upper = []
    elif order == FIFO:
        upper = [FifoBroadcast(me)]
    elif order == CAUSAL:
        upper = [CausalBroadcast(me)]
    elif order == TOTAL:
        upper = [SequencerTotal(me, members, order_delay=batch_delay)]
    elif order == FIFO_TOTAL:
        upper = [SequencerTotal(me, members, fifo=True, order_delay=batch_delay)]
    elif order == LAMPORT_FIFO_TOTAL:
        upper = [FifoBroadcast(me), LamportTotal(me, members, heartbeat_delay=batch_delay)]
    else:
        raise ValueError(f"unknown order {order!r}; known: {sorted(ORDERS)}")
    return Stack([bottom, *upper])


class Group:
    """A running member of a group. Made by :func:`open_group`."""

    def __init__(self, node: Node) -> None:
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
        """The current view's members (a suspected member is removed)."""
        return self._node.members

    @property
    def view(self) -> int:
        return self._node.view

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


@asynccontextmanager
async def open_group(me: str, members: Mapping[str, str], order: str = FIFO_TOTAL, *,
                     transport: rpcx.Transport | None = None, listen: str | None = None,
                     stack: Stack | Callable[[str, tuple[str, ...]], Stack] | None = None,
                     failure_timeout: float | None = 2.0, heartbeat_interval: float = 0.25,
                     delivery_buffer: int = 1024, send_buffer: int = 4096,
                     count_bytes: bool = False,
                     journal: Journal | None = None) -> AsyncIterator[Group]:
    """Join the group ``members`` (name → rpcx address) as ``me`` with ``order``.

    Options: ``stack`` (a ``Stack``, or a factory ``(me, members) -> Stack``, to run any
    stack instead of :func:`make_stack`'s), ``failure_timeout`` (seconds of silence before
    a member is suspected and dropped from this member's view; ``None`` never suspects),
    ``heartbeat_interval``, ``delivery_buffer`` (deliveries waiting for the application),
    ``send_buffer`` (frames waiting per peer before they are dropped), ``count_bytes``
    (encode twice to count wire bytes for statistics), ``journal`` (called in stack order
    for every broadcast and delivery, for logs and checkers).
    """
    names = tuple(sorted(members))
    if order not in ORDERS and stack is None:
        raise ValueError(f"unknown order {order!r}; known: {sorted(ORDERS)}")
    if stack is None:
        built = make_stack(order, me, names)
    elif isinstance(stack, Stack):
        built = stack
    else:
        built = stack(me, names)
    node = Node(me, members, built, order=order, transport=transport, listen=listen,
                failure_timeout=failure_timeout, heartbeat_interval=heartbeat_interval,
                delivery_buffer=delivery_buffer, send_buffer=send_buffer,
                count_bytes=count_bytes, journal=journal)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            try:
                yield Group(node)
            finally:
                await node.stop()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
