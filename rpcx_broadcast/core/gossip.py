"""Gossip reliable broadcast with batching, anti-entropy repair and stability tracking.

How it works:

- **Push (fast path).** On first receipt of a message a member queues it for the peers a
  ``Topology`` names (all of them, a hub, or a few seeded-random peers). Queues are
  flushed every ``batch_delay`` seconds as one ``GossipBatch`` per peer, so one network
  message carries many broadcasts.
- **Per-origin order.** Each member delivers an origin's messages in sequence order
  (``have[origin]`` counts the contiguous prefix delivered), holding later ones back, so
  this layer is also FIFO. It keeps what it delivered in a store for repair.
- **Anti-entropy (repair and acks).** Every ``sync_interval`` while anything is unsettled
  a member sends a digest (a ``GossipBatch`` without messages, with ``want_reply``) to
  one peer: preferably one known to have messages it lacks, otherwise the next peer
  round-robin. The digest is the sender's knowledge matrix ``known[member][origin]`` (how
  many of origin's messages that member is known to have); push batches carry only the
  rows that changed since the sender's last push. The peer merges it and answers with
  its own matrix. **Repair is pulled, never pushed**: a digest names in ``repair`` the
  origins the sender is *stuck* on (some member is known to have more of them, and it
  delivered none of them since its last sync tick), and only then does the answer carry
  the sender's missing messages of those origins, at most ``max_reply``, and only
  messages held by the answering member since the sync tick before the last one
  (younger ones are still travelling by push). Pushing repairs to a peer that the
  knowledge matrix showed behind flooded a member that was merely slow: its matrix
  lagged by its own queue, so every peer resent, every sync interval, what already
  waited in that queue (up to ``max_reply`` each), and it fell further behind (5 members
  at saturation: 419,003 duplicates at the slow member in 20 s, against about 30,000 at
  the others). A member that is behind but advancing asks for nothing; one that lost a
  message asks once per sync interval, so repair is paced by the member that needs it.
  Knowledge spreads transitively, which is safe because "m has k messages of o" only
  ever grows.
- **Stability and GC.** ``stable[o]`` = min over members of ``known[m][o]``: every member
  has those messages, so they leave the store.
- **Joining.** ``start_point()`` is this member's ``have`` vector; a joiner started from
  it (``start_from``) counts those messages as delivered and receives every later one: a
  member that admits a joiner keeps each later message in its store until the joiner is
  known to have it (its row counts in ``stable``), and repairs it by anti-entropy.
- **Flow control.** A member may have at most ``window`` of its own broadcasts unstable;
  beyond that ``writable`` is false and ``Stack.on_broadcast`` refuses new broadcasts
  (internal control traffic of upper layers is still accepted; it is bounded by theirs). A slow or
  partitioned member therefore slows broadcasters instead of growing memory; when it
  catches up (or a view change removes it) the windows open again.

Network: fair-loss links (loss, duplication, reordering, partitions that heal).
Timing: asynchronous for safety; timers only pace flushing and repair. Crashes: if a
correct member delivers m, every correct member eventually delivers m (agreement), since
it keeps m until every member has it and repairs peers that lack it; a crashed member
stops stability until a view change removes it. Determinism: peer choice uses a seeded
``SplitMix64`` or round-robin, never ``random``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

import attrs

from .actions import Action, Deliver, Send, SetTimer, StartPoint
from .clocks import SplitMix64
from .layer import ProtocolViolation

__all__ = ["BySize", "GossipBatch", "GossipBroadcast", "GossipMsg", "Hub", "RandomPeers",
           "RelayAll", "Topology"]


@attrs.frozen
class GossipMsg:
    """``origin``'s ``seq``-th broadcast (0-based), carrying ``body``."""

    origin: str
    seq: int
    body: object


@attrs.frozen
class GossipBatch:
    """Messages plus the sender's knowledge matrix. ``want_reply`` asks for the receiver's
    matrix back; ``repair`` names the origins whose messages the sender lacks and asks
    for in that reply (it made no progress on them for a sync interval)."""

    msgs: tuple[GossipMsg, ...]
    known: dict[str, dict[str, int]]
    want_reply: bool = False
    repair: tuple[str, ...] = ()


class Topology(Protocol):
    """Whom a member forwards a message to on first receipt."""

    def targets(self, me: str, origin: str, src: str,
                members: tuple[str, ...]) -> Sequence[str]:
        """Peers to push ``origin``'s message to, having received it from ``src``."""
        ...


@attrs.frozen
class RelayAll:
    """Everyone relays to everyone (eager relay, but batched): n(n-1) copies, most robust."""

    all_to_all: ClassVar[bool] = True
    """Every member pushes to every other, so each learns every knowledge row first hand."""

    def targets(self, me: str, origin: str, src: str,
                members: tuple[str, ...]) -> Sequence[str]:
        return [p for p in members if p not in (me, src, origin)]


@attrs.frozen
class Hub:
    """Origins push to a hub, the hub pushes to everyone: n-1 copies, two hops.

    With ``count`` hubs (the first members in sorted order) an origin uses hub number
    ``index(origin) % count``. If a hub is down, anti-entropy still delivers, slower.
    """

    count: int = 1

    def targets(self, me: str, origin: str, src: str,
                members: tuple[str, ...]) -> Sequence[str]:
        hubs = members[: self.count]
        if me == origin:
            if me in hubs:
                return [p for p in members if p != me]
            return [hubs[members.index(me) % len(hubs)]] if hubs else []
        if me in hubs and src not in hubs:
            return [p for p in members if p not in (me, src, origin)]
        return []


@attrs.frozen
class BySize:
    """The default: ``RelayAll`` while the group has at most ``relay_all_up_to`` members
    (every member hears every message first hand: the lowest latency, and n(n-1) copies
    are few), a ``Hub`` beyond (n-1 copies, two hops), so that a large group meets the
    message targets (25 members: under 20 messages per broadcast, docs/broadcast.md).
    Decided per message from the current view, so a group that grows by joins switches."""

    relay_all_up_to: int = 8
    hub: Hub = Hub()

    def relays_to_all(self, members: tuple[str, ...]) -> bool:
        return len(members) <= self.relay_all_up_to

    def targets(self, me: str, origin: str, src: str,
                members: tuple[str, ...]) -> Sequence[str]:
        if self.relays_to_all(members):
            return [p for p in members if p not in (me, src, origin)]
        return self.hub.targets(me, origin, src, members)


@attrs.define
class RandomPeers:
    """Classic gossip: forward to ``fanout`` peers drawn from a seeded PRNG."""

    fanout: int = 3
    seed: int = 0
    _rng: SplitMix64 = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.fanout < 1:
            raise ValueError(f"fanout must be at least 1, got {self.fanout}")
        self._rng = SplitMix64(self.seed)

    def targets(self, me: str, origin: str, src: str,
                members: tuple[str, ...]) -> Sequence[str]:
        peers = [p for p in members if p not in (me, src, origin)]
        return self._rng.sample(peers, self.fanout)


def _members(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(value)))


@attrs.define(eq=False)
class GossipBroadcast:
    """Batched gossip with anti-entropy, stability-based GC and flow control."""

    me: str
    members: tuple[str, ...] = attrs.field(converter=_members)
    topology: Topology = attrs.field(factory=Hub)
    batch_delay: float = 0.1
    sync_interval: float = 0.5
    window: int = 256
    max_reply: int = 512
    _seq: int = attrs.field(default=0, init=False)
    _have: dict[str, int] = attrs.field(factory=dict, init=False)
    _ahead: dict[str, dict[int, GossipMsg]] = attrs.field(factory=dict, init=False)
    _store: dict[str, dict[int, GossipMsg]] = attrs.field(factory=dict, init=False)
    _known: dict[str, dict[str, int]] = attrs.field(factory=dict, init=False)
    _dirty: set[str] = attrs.field(factory=set, init=False)
    """Members whose row changed since the last push (sent with it)."""
    _stable: dict[str, int] = attrs.field(factory=dict, init=False)
    _outbox: dict[str, list[GossipMsg]] = attrs.field(factory=dict, init=False)
    _flush_armed: bool = attrs.field(default=False, init=False)
    _sync_armed: bool = attrs.field(default=False, init=False)
    _rr: int = attrs.field(default=0, init=False)
    # what this member had at the last two sync ticks: only messages held here since
    # the older one (at least one sync_interval) are repaired, so a repair never resends
    # what the push is still carrying
    _had: dict[str, int] = attrs.field(factory=dict, init=False)
    _had_before: dict[str, int] = attrs.field(factory=dict, init=False)
    stats: dict[str, int] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        if self.me not in self.members:
            raise ValueError(f"{self.me!r} is not in members {self.members!r}")
        self._known = {m: {} for m in self.members}
        self._known[self.me] = self._have

    # -- introspection ---------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self.own_unstable < self.window

    @property
    def own_unstable(self) -> int:
        """How many of this member's own broadcasts some member is not yet known to have."""
        return self._seq - self._stable.get(self.me, 0)

    def buffer_sizes(self) -> dict[str, int]:
        return {"store": sum(len(s) for s in self._store.values()),
                "ahead": sum(len(s) for s in self._ahead.values()),
                "outbox": sum(len(q) for q in self._outbox.values())}

    def stable(self) -> dict[str, int]:
        """How many of each origin's messages every member is known to have."""
        return dict(self._stable)

    # -- Layer -----------------------------------------------------------------------

    def on_broadcast(self, body: object, now: float) -> list[Action]:
        msg = GossipMsg(self.me, self._seq, body)
        self._seq += 1
        out: list[Action] = []
        self._accept(msg, self.me, now, out)
        self._arm_sync(now, out)
        return out

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        if not isinstance(msg, GossipBatch):
            raise ProtocolViolation(f"gossip got {msg!r} from {src!r}")
        out: list[Action] = []
        if self._merge(msg.known):
            self._collect_own()
        for item in msg.msgs:
            self._accept(item, src, now, out)
        if msg.want_reply and src in self._known:
            repair = self._missing_at(src, msg.repair) if msg.repair else ()
            out.append(Send(src, GossipBatch(repair, self._snapshot())))
        self._arm_sync(now, out)
        return out

    def on_deliver(self, delivery: Deliver, now: float) -> list[Action]:
        raise ProtocolViolation("gossip broadcast is a bottom layer")

    def on_timer(self, key: str, now: float) -> list[Action]:
        out: list[Action] = []
        if key == "flush":
            self._flush_armed = False
            # A push carries this member's own row and the rows it learned something new
            # about since its last push, not the whole n x n matrix: knowledge still
            # spreads transitively (through a hub, say), and a lost push is made good by
            # anti-entropy, which always carries the whole matrix.
            # With all-to-all pushes every row arrives first hand, so the own row is enough.
            self._dirty.add(self.me)
            relays_to_all = getattr(self.topology, "relays_to_all", None)
            if getattr(self.topology, "all_to_all", False) or (
                    relays_to_all is not None and relays_to_all(self.members)):
                rows = {self.me: dict(self._have)}
            else:
                rows = {m: dict(self._known[m]) for m in self._dirty if m in self._known}
            self._dirty.clear()
            for dest, queued in self._outbox.items():
                if queued:
                    out.append(Send(dest, GossipBatch(tuple(queued), rows)))
            self._outbox.clear()
        elif key == "sync":
            self._sync_armed = False
            stuck = self._stuck()
            self._had_before, self._had = self._had, dict(self._have)
            self._collect()
            peer = self._sync_peer(stuck)
            if peer is not None:
                # Only digests go out unasked: what a peer lacks is sent when *it* asks,
                # so a member that is merely behind (its queues full of pushes it has not
                # taken yet) is never sent copies of them; it asks once it is stuck.
                out.append(Send(peer, GossipBatch((), self._snapshot(), want_reply=True,
                                                  repair=stuck)))
            self._arm_sync(now, out)
        return out

    def on_view(self, members: tuple[str, ...], now: float) -> list[Action]:
        self.members = _members(members)
        for gone in set(self._known) - set(self.members):
            del self._known[gone]
            self._outbox.pop(gone, None)
        for new in self.members:
            self._known.setdefault(new, {})
        self._collect()
        out: list[Action] = []
        self._arm_sync(now, out)
        return out

    # -- Joinable --------------------------------------------------------------------

    def start_point(self) -> StartPoint:
        """Per-origin counts of the messages delivered here (a joiner's starting point)."""
        return StartPoint(dict(self._have))

    def start_from(self, point: StartPoint, now: float) -> list[Action]:
        """Count ``point.counts`` of each origin's messages as delivered (and stable: this
        member never stores them, the members that had them are responsible for them)."""
        if self._seq or any(self._have.values()):
            raise ValueError("start_from needs a fresh layer")
        point.check_joiner(self.me)
        self._have.update(point.counts)
        self._stable.update(point.counts)
        return []

    # -- internals -------------------------------------------------------------------

    def _accept(self, msg: GossipMsg, src: str, now: float, out: list[Action]) -> None:
        origin, seq = msg.origin, msg.seq
        have = self._have.get(origin, 0)
        ahead = self._ahead.setdefault(origin, {})
        if seq < have or seq in ahead:
            self.stats["duplicates"] = self.stats.get("duplicates", 0) + 1
            return
        if seq >= have + 4 * self.window:
            return  # too far ahead to hold; anti-entropy brings it again later
        for dest in self.topology.targets(self.me, origin, src, self.members):
            self._outbox.setdefault(dest, []).append(msg)
            if not self._flush_armed:
                self._flush_armed = True
                out.append(SetTimer("flush", now + self.batch_delay))
        ahead[seq] = msg
        store = self._store.setdefault(origin, {})
        while have in ahead:
            item = ahead.pop(have)
            store[have] = item
            out.append(Deliver(origin, have, item.body))
            have += 1
        self._have[origin] = have

    def _merge(self, known: dict[str, dict[str, int]]) -> bool:
        """Merge a knowledge matrix; True if it says more of this member's messages are
        held somewhere."""
        own = False
        for member, row in known.items():
            mine = self._known.get(member)
            if mine is None or member == self.me:
                continue
            for origin, count in row.items():
                if count > mine.get(origin, 0):
                    mine[origin] = count
                    self._dirty.add(member)
                    own = own or origin == self.me
        return own

    def _collect_own(self) -> None:
        """Advance ``stable`` for this member's own messages at once (the other origins
        wait for the sync tick): the window opens as soon as the acks are in, so a
        window of a given size keeps the pipe fuller."""
        floor = min(self._known[m].get(self.me, 0) for m in self.members)
        old = self._stable.get(self.me, 0)
        if floor > old:
            store = self._store.get(self.me, {})
            for seq in range(old, floor):
                store.pop(seq, None)
            self._stable[self.me] = floor

    def _snapshot(self) -> dict[str, dict[str, int]]:
        return {member: dict(row) for member, row in self._known.items()}

    def _missing_at(self, peer: str, origins: Sequence[str]) -> tuple[GossipMsg, ...]:
        """What ``peer`` asked for (its messages of ``origins`` past its row), among the
        messages held here for at least a sync interval (newer ones are still on their
        way by push), at most ``max_reply``."""
        theirs = self._known[peer]
        found: list[GossipMsg] = []
        for origin in origins:
            if origin not in self._have:
                continue
            have = self._had_before.get(origin, 0)
            store = self._store.get(origin, {})
            # below stable nothing is stored (a new member's row starts empty)
            first = max(theirs.get(origin, 0), self._stable.get(origin, 0))
            for seq in range(first, min(have, first + self.max_reply - len(found))):
                item = store.get(seq)
                if item is not None:
                    found.append(item)
            if len(found) >= self.max_reply:
                break
        self.stats["repaired"] = self.stats.get("repaired", 0) + len(found)
        return tuple(found)

    def _collect(self) -> None:
        """Advance ``stable`` to what every member has, and drop those messages."""
        rows = [self._known[m] for m in self.members]
        for origin in list(self._store):
            floor = min(row.get(origin, 0) for row in rows)
            old = self._stable.get(origin, 0)
            if floor > old:
                store = self._store[origin]
                for seq in range(old, floor):
                    store.pop(seq, None)
                self._stable[origin] = floor

    def _lacking(self) -> list[str]:
        """Peers known to have messages this member lacks."""
        return [m for m in self.members if m != self.me
                and any(c > self._have.get(o, 0) for o, c in self._known[m].items())]

    def _stuck(self) -> tuple[str, ...]:
        """Origins of which some member is known to have more than this member, and of
        which this member delivered nothing since the last sync tick: a message was lost
        (or is held back behind a lost one). An origin still advancing is only behind:
        its messages are on their way, and asking for them again would add copies to a
        member that is already the slowest."""
        best: dict[str, int] = {}
        for member, row in self._known.items():
            if member == self.me:
                continue
            for origin, count in row.items():
                if count > best.get(origin, 0):
                    best[origin] = count
        return tuple(sorted(o for o, count in best.items()
                            if count > self._have.get(o, 0)
                            and self._have.get(o, 0) == self._had.get(o, 0)))

    def _unsettled(self) -> bool:
        if any(self._stable.get(o, 0) < h for o, h in self._have.items()):
            return True
        return bool(self._lacking())

    def _sync_peer(self, stuck: Sequence[str] = ()) -> str | None:
        if stuck:
            candidates = [m for m in self.members if m != self.me and any(
                self._known[m].get(o, 0) > self._have.get(o, 0) for o in stuck)]
        else:
            candidates = self._lacking()
        if not candidates:
            mine = self._have
            candidates = [m for m in self.members if m != self.me and any(
                self._known[m].get(o, 0) < h for o, h in mine.items())]
        if not candidates:
            return None
        self._rr += 1
        return candidates[self._rr % len(candidates)]

    def _arm_sync(self, now: float, out: list[Action]) -> None:
        if not self._sync_armed and self._unsettled():
            self._sync_armed = True
            out.append(SetTimer("sync", now + self.sync_interval))
