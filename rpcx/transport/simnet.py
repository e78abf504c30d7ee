"""A seeded simulated network: ``sim://node`` addresses between named nodes in one process.

Each ``send_all`` on a simulated stream is one *packet*. Per packet, the network decides,
with its own seeded random generator, whether it is dropped, duplicated, and how long it is
delayed; packets with different delays arrive out of order. Nodes can be partitioned from
each other and crashed and restarted. All time is trio time, so under
``trio.testing.MockClock(autojump_threshold=0)`` an hour of simulated traffic runs in
seconds, and the same seed (with the same program) makes the same fates: every decision is
recorded in :attr:`SimNetwork.trace`.

Loss is per packet, not per byte: the RPC runtime writes whole frames per packet, so a lost
packet is a lost message, as the notes mean it, not a corrupted stream.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import random
from collections.abc import Iterable

import attrs
import trio

from rpcx.transport.base import Address

__all__ = ["LinkFaults", "SimNetwork", "SimStream", "SimTransport", "TraceEvent"]


@attrs.frozen
class LinkFaults:
    """What the network does to packets on a link."""

    drop: float = 0.0
    """Probability that a packet is lost."""
    duplicate: float = 0.0
    """Probability that a packet arrives twice (each copy delayed independently)."""
    delay: tuple[float, float] = (0.0, 0.0)
    """Each packet is delayed uniformly within this range, in seconds; a range reorders."""

    def __attrs_post_init__(self) -> None:
        for name in ("drop", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        lo, hi = self.delay
        if not 0.0 <= lo <= hi:
            raise ValueError(
                f"delay must be (low, high) with 0 <= low <= high, got {self.delay!r}")


@attrs.frozen
class TraceEvent:
    time: float
    src: str
    dst: str
    size: int
    fate: str
    """``delivered``, ``duplicated``, ``dropped``, ``partitioned`` or ``crashed``."""
    arrives: tuple[float, ...] = ()


@attrs.define(eq=False)
class _Inbox:
    """Packets on their way to one stream endpoint, ordered by arrival time."""

    heap: list[tuple[float, int, bytes | None]] = attrs.Factory(list)
    """(arrival time, sequence, data); ``None`` data is the peer's end-of-stream."""
    wakeup: trio.Event = attrs.Factory(trio.Event)
    reset: bool = False

    def push(self, at: float, seq: int, data: bytes | None) -> None:
        heapq.heappush(self.heap, (at, seq, data))
        self.wakeup.set()
        self.wakeup = trio.Event()


class SimStream(trio.abc.Stream):
    """One end of a simulated connection from node ``local`` to node ``remote``."""

    def __init__(self, network: SimNetwork, local: str, remote: str) -> None:
        self._network = network
        self.local = local
        self.remote = remote
        self._inbox = _Inbox()
        self._peer: SimStream | None = None
        self._closed = False
        self._sent_eof = False
        self._leftover = b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("stream is closed")
        if self._inbox.reset or self._peer is None:
            raise trio.BrokenResourceError("connection reset by simulated peer")
        if self._sent_eof:
            raise trio.ClosedResourceError("send side is closed")
        if data:
            self._network._transmit(self, self._peer, bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("stream is closed")
        while True:
            if self._leftover:
                await trio.lowlevel.checkpoint()
                return self._take_leftover(max_bytes)
            if self._inbox.reset:
                await trio.lowlevel.checkpoint()
                raise trio.BrokenResourceError("connection reset by simulated peer")
            heap = self._inbox.heap
            now = trio.current_time()
            if heap and heap[0][0] <= now:
                _, _, data = heapq.heappop(heap)
                await trio.lowlevel.checkpoint()
                if data is None:
                    return b""
                self._leftover = data
                return self._take_leftover(max_bytes)
            wakeup = self._inbox.wakeup
            with trio.move_on_at(heap[0][0] if heap else float("inf")):
                await wakeup.wait()
            if self._closed:
                raise trio.ClosedResourceError("stream is closed")

    def _take_leftover(self, max_bytes: int | None) -> bytes:
        n = len(self._leftover) if max_bytes is None else max_bytes
        out, self._leftover = self._leftover[:n], self._leftover[n:]
        return out

    def _eof(self) -> None:
        if not self._sent_eof and self._peer is not None and not self._closed:
            self._sent_eof = True
            self._network._transmit(self, self._peer, None)

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        self._eof()

    async def aclose(self) -> None:
        # Close first, then checkpoint: aclose must close even when already cancelled
        # (trio.aclose_forcefully relies on it).
        if not self._closed:
            self._eof()
            self._closed = True
            self._network._streams.discard(self)
            self._inbox.wakeup.set()
        await trio.lowlevel.checkpoint()

    def _break(self) -> None:
        self._inbox.reset = True
        self._inbox.wakeup.set()


class _SimListener(trio.abc.Listener[trio.abc.Stream]):
    def __init__(self, network: SimNetwork, node: str) -> None:
        self._network = network
        self.node = node
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](128)

    async def accept(self) -> trio.abc.Stream:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("simulated listener is closed") from None

    async def aclose(self) -> None:
        if self._network._listeners.get(self.node) is self:
            del self._network._listeners[self.node]
        self._send.close()
        await trio.lowlevel.checkpoint()


class SimNetwork:
    """A network of named nodes with seeded faults.

    ``faults`` applies to every link unless :meth:`set_link` says otherwise for a pair.
    """

    def __init__(self, seed: int, faults: LinkFaults | None = None) -> None:
        self.seed = seed
        self.random = random.Random(seed)
        self.default_faults = faults or LinkFaults()
        self.trace: list[TraceEvent] = []
        self._links: dict[tuple[str, str], LinkFaults] = {}
        self._listeners: dict[str, _SimListener] = {}
        self._streams: set[SimStream] = set()
        self._group_of: dict[str, int] = {}
        self._crashed: set[str] = set()
        self._seq = itertools.count()

    # -- configuration -----------------------------------------------------------------

    def transport(self, node: str) -> SimTransport:
        """The transport that node ``node`` uses to connect and listen."""
        return SimTransport(self, node)

    def set_link(self, a: str, b: str, faults: LinkFaults) -> None:
        """Faults for packets between ``a`` and ``b`` (both directions)."""
        self._links[(a, b)] = self._links[(b, a)] = faults

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the named nodes into groups that cannot reach each other. Nodes not named
        keep reaching everyone. Packets across the cut are silently lost."""
        self._group_of = {node: i for i, group in enumerate(groups) for node in group}

    def heal(self) -> None:
        self._group_of = {}

    def crash(self, node: str) -> None:
        """The node stops: its listeners close, its connections are reset (peers see a
        broken stream, as after a process crash), and packets to it are lost until
        :meth:`restart`. Stopping the node's own tasks is the caller's job."""
        self._crashed.add(node)
        listener = self._listeners.pop(node, None)
        if listener is not None:
            listener._send.close()
        for stream in list(self._streams):
            if node in (stream.local, stream.remote):
                stream._break()
                self._streams.discard(stream)

    def restart(self, node: str) -> None:
        self._crashed.discard(node)

    def reachable(self, a: str, b: str) -> bool:
        if a in self._crashed or b in self._crashed:
            return False
        ga, gb = self._group_of.get(a), self._group_of.get(b)
        return ga is None or gb is None or ga == gb

    # -- internals ---------------------------------------------------------------------

    def _faults(self, a: str, b: str) -> LinkFaults:
        return self._links.get((a, b), self.default_faults)

    def _transmit(self, src: SimStream, dst: SimStream, data: bytes | None) -> None:
        now = trio.current_time()
        size = 0 if data is None else len(data)
        if src.local in self._crashed or dst.local in self._crashed:
            self.trace.append(TraceEvent(now, src.local, dst.local, size, "crashed"))
            return
        faults = self._faults(src.local, dst.local)
        if data is None:
            # End-of-stream is never lost; it arrives after anything already in flight.
            at = now + faults.delay[1]
            dst._inbox.push(at, next(self._seq), None)
            return
        if not self.reachable(src.local, dst.local):
            self.trace.append(TraceEvent(now, src.local, dst.local, size, "partitioned"))
            return
        rng = self.random
        if faults.drop and rng.random() < faults.drop:
            self.trace.append(TraceEvent(now, src.local, dst.local, size, "dropped"))
            return
        copies = 2 if faults.duplicate and rng.random() < faults.duplicate else 1
        arrivals = tuple(now + rng.uniform(*faults.delay) for _ in range(copies))
        for at in arrivals:
            dst._inbox.push(at, next(self._seq), data)
        fate = "duplicated" if copies == 2 else "delivered"
        self.trace.append(TraceEvent(now, src.local, dst.local, size, fate, arrivals))

    async def _connect(self, src: str, address: Address) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        dst = address.rest.rstrip("/")
        if src in self._crashed:
            raise OSError(errno.ENETDOWN, f"node {src!r} is crashed")
        listener = self._listeners.get(dst)
        if listener is None or not self.reachable(src, dst):
            raise OSError(errno.ECONNREFUSED, f"{address}: cannot connect from {src!r}")
        client, server = SimStream(self, src, dst), SimStream(self, dst, src)
        client._peer, server._peer = server, client
        try:
            listener._send.send_nowait(server)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            raise OSError(errno.ECONNREFUSED, f"{address}: not accepting") from None
        self._streams.update((client, server))
        return client

    async def _listen(self, node: str,
                      address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        await trio.lowlevel.checkpoint()
        name = address.rest.rstrip("/")
        if name != node:
            raise OSError(errno.EADDRNOTAVAIL, f"node {node!r} cannot listen as {address}")
        if node in self._crashed:
            raise OSError(errno.ENETDOWN, f"node {node!r} is crashed")
        if node in self._listeners:
            raise OSError(errno.EADDRINUSE, f"{address}: already listening")
        listener = _SimListener(self, node)
        self._listeners[node] = listener
        return [listener]


class SimTransport:
    """The simulated network as seen from one node."""

    def __init__(self, network: SimNetwork, node: str) -> None:
        self.network = network
        self.node = node

    async def connect(self, address: Address) -> trio.abc.Stream:
        return await self.network._connect(self.node, address)

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        return await self.network._listen(self.node, address)
