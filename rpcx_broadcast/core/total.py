"""Total order broadcast: a single-leader sequencer, or leaderless Lamport timestamps.

``SequencerTotal`` (fixed sequencer, payload via broadcast). A broadcast goes down as
``SeqData``; every member holds it back. The leader (``members[0]`` unless given) assigns
global sequence numbers in the order it receives data and broadcasts them, batched, as
``SeqOrder``. Everyone delivers in global order, holding back on gaps or missing
payloads. With ``fifo=True`` the leader assigns each origin's messages in their sequence
order, which gives FIFO-total order. Safety needs no timing. Liveness needs
the leader: if it crashes delivery stops for good, a crashed sequencer stops the order
(the consensus order, ``raft``, is the one that survives a leader crash).
A leader that *leaves* hands over (``on_leave``): it broadcasts its pending orders,
then ``SeqHandover(next, leader)``; since everything it broadcast reaches everyone in its
order, a member delivers the hand-over after every order of the old leader, so the
successor continues the numbering at ``next`` and orders whatever is still unordered.
Self-delivery is not immediate: our own message waits for the leader's order.
Joining: ``start_point()`` is the next global index to deliver, plus the payloads and
orders held back; a joiner started from it delivers the global order from that index on
(it must not be the leader).

``LamportTotal`` (BROADCAST.md a.6, the 2020 exam algorithm) runs over a FIFO layer. A
broadcast carries a Lamport timestamp; messages are held back in a priority queue keyed
``(timestamp, origin)`` and delivered once the key is at most ``min over members q of
(latest timestamp from q, q)``. A member that receives a message ordered after its own
latest broadcast answers with an empty *heartbeat* (clock) message after
``heartbeat_delay``, so a silent member does not block the others. It is FIFO-total.
Safety without crashes needs no timing; while a crashed member is in the view, delivery
blocks and the order stays safe.

**A view that drops a member (crashed, or removed) is flushed** before the member stops
counting. A survivor would otherwise stop waiting for the departed member's last
messages, deliver later messages, then deliver the departed member's ones that a relay
brings late, while another survivor that had them delivered them first. So on a view
without ``c``, every member broadcasts a ``LamportFlush(c, count)``: how many of ``c``'s
messages (counted by the FIFO layer's sequence, heartbeats included) it has received;
``c`` keeps counting in the threshold meanwhile. The *cut* is the highest count reported
by the members of that view; once a member has every report (from the members still in
its view; a reporter that departed too counts only once its own flush is done, and its
report only if it lies within its cut) and has received ``c``'s messages up to the cut
(the reliable layer relays them), ``c`` leaves the threshold, and ``c``'s messages past
the cut are dropped at every member alike; until then nothing is delivered past ``c``'s
first held message. Every survivor so delivers the same prefix of ``c``'s messages at the
same place (``tests/broadcast/test_lamport_crash.py``: seeded
crash schedules that broke total order before). A member whose view runs ahead of the
others (it was removed while alive) is no longer a member; reports from non-members are
ignored.
"""

from __future__ import annotations

import heapq

import attrs

from .actions import Action, Deliver, Down, SetTimer, StartPoint
from .clocks import LamportClock
from .holdback import HoldBack
from .layer import ProtocolViolation
from .links import SeqTracker

__all__ = ["LamportFlush", "LamportMsg", "LamportTotal", "SeqData", "SeqHandover",
           "SeqOrder", "SequencerTotal"]


@attrs.frozen
class SeqData:
    """``origin``'s ``seq``-th broadcast, waiting for the leader's order."""

    origin: str
    seq: int
    body: object


@attrs.frozen
class SeqOrder:
    """The leader's decision: ``ids[k]`` gets global sequence number ``start + k``."""

    start: int
    ids: tuple[tuple[str, int], ...]


@attrs.frozen
class SeqHandover:
    """The leaving leader's last word: ``leader`` orders from global index ``next`` on."""

    next: int
    leader: str


def _members(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(value)))


@attrs.define(eq=False)
class SequencerTotal:
    """Total (or, with ``fifo=True``, FIFO-total) order through a fixed leader."""

    me: str
    members: tuple[str, ...] = attrs.field(converter=_members)
    leader: str = ""
    fifo: bool = False
    order_delay: float = 0.01
    holdback_cap: int = 65536
    window: int = 1024
    """At most this many of this member's broadcasts wait for their order (``writable``)."""
    holdback: HoldBack[tuple[str, int], SeqData] = attrs.field(init=False)
    _seq: int = attrs.field(default=0, init=False)
    _orders: dict[int, tuple[str, int]] = attrs.field(factory=dict, init=False)
    _next_global: int = attrs.field(default=0, init=False)
    _done: dict[str, SeqTracker] = attrs.field(factory=dict, init=False)
    # leader state
    _assigned: dict[str, int] = attrs.field(factory=dict, init=False)
    _waiting: dict[tuple[str, int], None] = attrs.field(factory=dict, init=False)
    _pending: list[tuple[str, int]] = attrs.field(factory=list, init=False)
    _next_assign: int = attrs.field(default=0, init=False)
    _flush_armed: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self.leader = self.leader or self.members[0]
        self.holdback = HoldBack(self.holdback_cap)

    def buffer_sizes(self) -> dict[str, int]:
        return {"holdback": len(self.holdback), "orders": len(self._orders),
                "leader_waiting": len(self._waiting)}

    @property
    def writable(self) -> bool:
        """Fewer than ``window`` of this member's broadcasts are undelivered here. With a
        crashed sequencer nothing is ordered any more: ``broadcast()`` then waits, rather
        than piling messages up until the hold-back cap ends the group."""
        done = self._done.get(self.me)
        delivered = done.next + len(done.extra) if done is not None else 0
        return self._seq - delivered < self.window

    def on_broadcast(self, body: object, now: float) -> list[Action]:
        msg = SeqData(self.me, self._seq, body)
        self._seq += 1
        return [Down(msg)]

    def on_deliver(self, delivery: Deliver, now: float) -> list[Action]:
        msg = delivery.payload
        out: list[Action] = []
        if isinstance(msg, SeqData):
            key = (msg.origin, msg.seq)
            if msg.seq in self._done.setdefault(msg.origin, SeqTracker()) or key in self.holdback:
                return []
            self.holdback.add(key, msg)
            if self.me == self.leader:
                self._assign(key, now, out)
        elif isinstance(msg, SeqOrder):
            for offset, ident in enumerate(msg.ids):
                if msg.start + offset >= self._next_global:
                    self._orders[msg.start + offset] = ident
        elif isinstance(msg, SeqHandover):
            if delivery.origin == self.me:
                return []  # our own hand-over: applied when we sent it
            if delivery.origin != self.leader:
                raise ProtocolViolation(f"{delivery.origin!r} handed over the sequencer, "
                                        f"but the leader is {self.leader!r}")
            self.leader = msg.leader
            if msg.leader == self.me:
                self._take_over(msg.next, now, out)
        else:
            raise ProtocolViolation(f"sequencer got {msg!r} from below")
        self._try_deliver(out)
        return out

    def on_leave(self, successor: str, now: float) -> list[Action]:
        """This member is about to leave the group: if it is the leader, send its pending
        orders and hand the role to ``successor`` (the next oldest member)."""
        if self.me != self.leader or successor == self.me:
            return []
        out = self.on_timer("order", now) if self._pending else []
        self.leader = successor
        self._waiting.clear()
        out.append(Down(SeqHandover(self._next_assign, successor)))
        return out

    def _take_over(self, start: int, now: float, out: list[Action]) -> None:
        """Become the leader at global index ``start``: every order below it is known
        here (it came before the hand-over), so order the rest of what is held."""
        self._next_assign = start
        ordered = set(self._orders.values())
        if self.fifo:
            # per origin, one past the highest sequence number already ordered
            self._assigned = {o: t.next for o, t in self._done.items()}
            for origin, seq in ordered:
                self._assigned[origin] = max(self._assigned.get(origin, 0), seq + 1)
        for key in sorted(k for k, _ in self.holdback.contents()):
            if key not in ordered:
                self._assign(key, now, out)

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        raise ProtocolViolation(f"sequencer sends no network messages, got {msg!r}")

    def on_timer(self, key: str, now: float) -> list[Action]:
        self._flush_armed = False
        if not self._pending:
            return []
        order = SeqOrder(self._next_assign - len(self._pending), tuple(self._pending))
        self._pending = []
        out: list[Action] = [Down(order)]
        self._try_deliver(out)
        return out

    def on_view(self, members: tuple[str, ...], now: float) -> list[Action]:
        self.members = _members(members)
        return []

    def start_point(self) -> StartPoint:
        """The next global index, per-origin contiguous delivered counts, and what is held
        back: payloads (``SeqData``) and orders at or past the index (``SeqOrder``)."""
        orders = tuple(SeqOrder(index, (ident,)) for index, ident in sorted(self._orders.items())
                       if index >= self._next_global)
        return StartPoint({o: t.next for o, t in self._done.items()}, next=self._next_global,
                          held=(*(msg for _, msg in self.holdback.contents()), *orders))

    def start_from(self, point: StartPoint, now: float) -> list[Action]:
        """Start a fresh, non-leader layer at global index ``point.next``."""
        if self._seq or self._next_global or len(self.holdback) or self._orders:
            raise ValueError("start_from needs a fresh layer")
        point.check_joiner(self.me)
        if self.me == self.leader:
            raise ValueError("a joiner cannot be the sequencer")
        self._next_global = point.next
        self._done = {o: SeqTracker(next=count) for o, count in point.counts.items()}
        for msg in point.held:
            if isinstance(msg, SeqData):
                self.holdback.add((msg.origin, msg.seq), msg)
            elif isinstance(msg, SeqOrder):
                for offset, ident in enumerate(msg.ids):
                    if msg.start + offset >= self._next_global:
                        self._orders[msg.start + offset] = ident
            else:
                raise ProtocolViolation(f"sequencer cannot start from {msg!r}")
        out: list[Action] = []
        self._try_deliver(out)
        return out

    def _assign(self, key: tuple[str, int], now: float, out: list[Action]) -> None:
        ready = [key]
        if self.fifo:
            self._waiting[key] = None
            ready = []
            origin = key[0]
            nxt = self._assigned.get(origin, 0)
            while (origin, nxt) in self._waiting:
                del self._waiting[(origin, nxt)]
                ready.append((origin, nxt))
                nxt += 1
            self._assigned[origin] = nxt
        for ident in ready:
            self._pending.append(ident)
            self._next_assign += 1
        if self._pending and not self._flush_armed:
            self._flush_armed = True
            out.append(SetTimer("order", now + self.order_delay))

    def _try_deliver(self, out: list[Action]) -> None:
        while True:
            ident = self._orders.get(self._next_global)
            if ident is None or ident not in self.holdback:
                return
            del self._orders[self._next_global]
            self._next_global += 1
            msg = self.holdback.pop(ident)
            self._done.setdefault(ident[0], SeqTracker()).add(ident[1])
            out.append(Deliver(msg.origin, msg.seq, msg.body))


@attrs.frozen
class LamportMsg:
    """A timestamped broadcast; ``body is None`` marks a heartbeat (clock) message.

    ``seq`` numbers the origin's real (non-heartbeat) broadcasts.
    """

    ts: int
    seq: int
    body: object


@attrs.frozen
class LamportFlush:
    """Sent when a view drops ``member``: the sender had received ``count`` of its
    messages (by the FIFO layer's sequence)."""

    member: str
    count: int


@attrs.define(eq=False)
class LamportTotal:
    """Leaderless FIFO-total order from Lamport timestamps, over a FIFO layer."""

    me: str
    members: tuple[str, ...] = attrs.field(converter=_members)
    heartbeat_delay: float = 0.01
    holdback_cap: int = 65536
    window: int = 1024
    """At most this many of this member's broadcasts wait for delivery (``writable``)."""
    holdback: HoldBack[tuple[int, str], LamportMsg] = attrs.field(init=False)
    clock: LamportClock = attrs.field(factory=LamportClock, init=False)
    latest: dict[str, int] = attrs.field(factory=dict, init=False)
    _heap: list[tuple[int, str]] = attrs.field(factory=list, init=False)
    _seq: int = attrs.field(default=0, init=False)
    _last_sent: tuple[int, str] = attrs.field(default=(0, ""), init=False)
    _owe: bool = attrs.field(default=False, init=False)
    _armed: bool = attrs.field(default=False, init=False)
    # the view-change flush: FIFO positions received per origin, the held messages'
    # positions, members dropped but still counting (-> the view that dropped them),
    # reports (departed member -> reporter -> (reporter's position, count)), and the cut
    # of each flushed member
    _received: dict[str, int] = attrs.field(factory=dict, init=False)
    _position: dict[tuple[int, str], int] = attrs.field(factory=dict, init=False)
    _departed: dict[str, tuple[str, ...]] = attrs.field(factory=dict, init=False)
    _reports: dict[str, dict[str, tuple[int, int]]] = attrs.field(factory=dict, init=False)
    _cut: dict[str, int] = attrs.field(factory=dict, init=False)
    _own_delivered: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self.holdback = HoldBack(self.holdback_cap)
        self._last_sent = (0, self.me)

    def buffer_sizes(self) -> dict[str, int]:
        return {"holdback": len(self.holdback), "flushing": len(self._departed)}

    @property
    def writable(self) -> bool:
        """Fewer than ``window`` of this member's broadcasts are undelivered here (a
        crashed member still in the view blocks delivery: ``broadcast()`` then waits)."""
        return self._seq - self._own_delivered < self.window

    def on_broadcast(self, body: object, now: float) -> list[Action]:
        if body is None:
            raise TypeError("None is reserved for heartbeats")
        return [self._send(body)]

    def on_deliver(self, delivery: Deliver, now: float) -> list[Action]:
        msg = delivery.payload
        if not isinstance(msg, LamportMsg):
            raise ProtocolViolation(f"lamport layer got {msg!r} from below")
        origin = delivery.origin
        self.clock.observe(msg.ts)
        out: list[Action] = []
        if origin in self._cut or (origin not in self.members
                                   and origin not in self._departed):
            return out  # past a flushed member's cut, or never a member here
        self._received[origin] = max(self._received.get(origin, 0), delivery.seq + 1)
        self.latest[origin] = max(self.latest.get(origin, 0), msg.ts)
        if isinstance(msg.body, LamportFlush):
            reports = self._reports.setdefault(msg.body.member, {})
            reports.setdefault(origin, (delivery.seq, msg.body.count))
        elif msg.body is not None:
            key = (msg.ts, origin)
            if self.holdback.add(key, msg):
                heapq.heappush(self._heap, key)
                self._position[key] = delivery.seq
            if key > self._last_sent:
                self._owe = True
                if not self._armed:
                    self._armed = True
                    out.append(SetTimer("heartbeat", now + self.heartbeat_delay))
        self._flush(out)
        self._try_deliver(out)
        return out

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        raise ProtocolViolation(f"lamport layer sends no network messages, got {msg!r}")

    def on_timer(self, key: str, now: float) -> list[Action]:
        self._armed = False
        if not self._owe:
            return []
        return [self._send(None)]

    def on_view(self, members: tuple[str, ...], now: float) -> list[Action]:
        old, self.members = self.members, _members(members)
        out: list[Action] = []
        if self.me in self.members:
            for gone in old:
                if gone not in self.members and gone not in self._cut:
                    self._departed.setdefault(gone, self.members)
                    count = self._received.get(gone, 0)
                    out.append(self._send(LamportFlush(gone, count)))
        self._flush(out)
        self._try_deliver(out)
        return out

    def _flush(self, out: list[Action]) -> None:
        """Finish the flush of every departed member whose cut is known and reached."""
        progress = True
        while progress:
            progress = False
            for gone, view in list(self._departed.items()):
                cut = self._cut_of(gone, view)
                if cut is None or self._received.get(gone, 0) < cut:
                    continue
                del self._departed[gone]
                self._cut[gone] = cut
                self._reports.pop(gone, None)
                for key in [k for k in self._heap if k[1] == gone
                            and self._position.get(k, 0) >= cut]:
                    self.holdback.pop(key)
                    self._position.pop(key, None)
                self._heap = [k for k in self._heap if k in self.holdback]
                heapq.heapify(self._heap)
                progress = True

    def _cut_of(self, gone: str, view: tuple[str, ...]) -> int | None:
        """The flush cut of ``gone`` (dropped by ``view``), once every report that can
        count is known; ``None`` while one is missing."""
        reports = self._reports.get(gone, {})
        counts: list[int] = []
        for reporter in view:
            if reporter in self._departed:
                return None  # its own flush decides whether its report counts
            found = reports.get(reporter)
            if reporter in self._cut:
                if found is not None and found[0] < self._cut[reporter]:
                    counts.append(found[1])
            elif reporter in self.members:
                if found is None:
                    return None
                counts.append(found[1])
        return max(counts, default=0)

    def _send(self, body: object) -> Down:
        ts = self.clock.tick()
        self._last_sent = (ts, self.me)
        self._owe = False
        msg = LamportMsg(ts, self._seq, body)
        if body is not None and not isinstance(body, LamportFlush):
            self._seq += 1
        return Down(msg)

    def _try_deliver(self, out: list[Action]) -> None:
        counting = (*self.members, *self._departed) if self._departed else self.members
        threshold = min((self.latest.get(q, 0), q) for q in counting)
        while self._heap and self._heap[0] <= threshold:
            if self._heap[0][1] in self._departed:
                break  # its cut decides whether it is delivered at all: wait for it
            key = heapq.heappop(self._heap)
            msg = self.holdback.pop(key)
            self._position.pop(key, None)
            if key[1] == self.me:
                self._own_delivered += 1
            out.append(Deliver(key[1], msg.seq, msg.body))
