"""Best-effort broadcast and eager reliable broadcast (the notes' a.3.2).

``BestEffortBroadcast``: send once to every member, deliver on receipt (duplicates
removed). Assumes nothing; guarantees nothing beyond integrity and no duplication: a lost
message is simply never delivered there.

``EagerReliableBroadcast``: send to every other member over reliable links, deliver
locally at once; on first receipt of someone's message, deliver it and relay it to every
member except the origin and the relayer. Network: fair-loss links. Timing: asynchronous
(timers only pace retransmission). Crashes: if any member that stays correct delivers m,
every correct member delivers m (agreement), even when the origin crashed part-way,
because the first correct receiver relays. Delivery is per message, in no particular
order. Cost O(n^2) messages per broadcast, plus acks. Memory: link buffers are emptied by
acks; a member that stops acking fills them and ``writable`` turns false until a view
change removes it (``on_view``).
"""

from __future__ import annotations

import attrs

from .actions import Action, Deliver, Send
from .layer import ProtocolViolation
from .links import ReliableLinks, SeqTracker

__all__ = ["BestEffortBroadcast", "EagerMsg", "EagerReliableBroadcast"]


@attrs.frozen
class EagerMsg:
    """``origin``'s ``seq``-th broadcast (0-based), carrying ``body``."""

    origin: str
    seq: int
    body: object


def _members(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(value)))


@attrs.define(eq=False)
class BestEffortBroadcast:
    """Send each broadcast once to every member; no retransmission."""

    me: str
    members: tuple[str, ...] = attrs.field(converter=_members)
    _seq: int = attrs.field(default=0, init=False)
    _seen: dict[str, SeqTracker] = attrs.field(factory=dict, init=False)

    def on_broadcast(self, body: object, now: float) -> list[Action]:
        msg = EagerMsg(self.me, self._seq, body)
        self._seq += 1
        self._seen.setdefault(self.me, SeqTracker()).add(msg.seq)
        out: list[Action] = [Send(peer, msg) for peer in self.members if peer != self.me]
        out.append(Deliver(self.me, msg.seq, body))
        return out

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        if not isinstance(msg, EagerMsg):
            raise ProtocolViolation(f"best-effort broadcast got {msg!r} from {src!r}")
        if self._seen.setdefault(msg.origin, SeqTracker()).add(msg.seq):
            return [Deliver(msg.origin, msg.seq, msg.body)]
        return []

    def on_deliver(self, delivery: Deliver, now: float) -> list[Action]:
        raise ProtocolViolation("best-effort broadcast is a bottom layer")

    def on_timer(self, key: str, now: float) -> list[Action]:
        return []

    def on_view(self, members: tuple[str, ...], now: float) -> list[Action]:
        self.members = _members(members)
        return []


@attrs.define(eq=False)
class EagerReliableBroadcast:
    """Eager reliable broadcast: relay every new message to everyone, over reliable links.

    ``window`` bounds this member's unacked link messages (flow control): while it is
    reached, ``writable`` is false and ``Stack.on_broadcast`` refuses application broadcasts.
    """

    me: str
    members: tuple[str, ...] = attrs.field(converter=_members)
    rto: float = 0.2
    window: int = 1024
    _links: ReliableLinks = attrs.field(init=False)
    _seq: int = attrs.field(default=0, init=False)
    _seen: dict[str, SeqTracker] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        self._links = ReliableLinks(rto=self.rto, cap=1 << 62)

    @property
    def writable(self) -> bool:
        return self._links.unacked() < self.window

    def buffer_sizes(self) -> dict[str, int]:
        return {"retransmit": self._links.unacked(),
                "seen_extra": sum(len(t.extra) for t in self._seen.values())}

    def on_broadcast(self, body: object, now: float) -> list[Action]:
        msg = EagerMsg(self.me, self._seq, body)
        self._seq += 1
        self._seen.setdefault(self.me, SeqTracker()).add(msg.seq)
        out = self._relay(msg, (), now)
        out.append(Deliver(self.me, msg.seq, body))
        return out

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        actions, bodies = self._links.on_receive(src, msg, now)
        for body in bodies:
            if not isinstance(body, EagerMsg):
                raise ProtocolViolation(f"eager broadcast got {body!r} from {src!r}")
            if self._seen.setdefault(body.origin, SeqTracker()).add(body.seq):
                actions.extend(self._relay(body, (src, body.origin), now))
                actions.append(Deliver(body.origin, body.seq, body.body))
        return actions

    def on_deliver(self, delivery: Deliver, now: float) -> list[Action]:
        raise ProtocolViolation("eager reliable broadcast is a bottom layer")

    def on_timer(self, key: str, now: float) -> list[Action]:
        return self._links.on_timer(key, now)

    def on_view(self, members: tuple[str, ...], now: float) -> list[Action]:
        out: list[Action] = []
        new = _members(members)
        for gone in set(self.members) - set(new):
            out.extend(self._links.forget(gone))
        self.members = new
        return out

    def _relay(self, msg: EagerMsg, exclude: tuple[str, ...], now: float) -> list[Action]:
        out: list[Action] = []
        for peer in self.members:
            if peer != self.me and peer not in exclude:
                out.extend(self._links.send(peer, msg, now))
        return out
