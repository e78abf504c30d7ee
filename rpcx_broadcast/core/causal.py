"""Causal broadcast: a vector of delivered counts keyed by member, and a hold-back queue.

On broadcast, member i sends ``deps`` = its ``delivered`` vector with ``deps[i]`` set to
its own sequence number. A member delivers a message once ``deps <= delivered``: it has
delivered everything the sender had delivered before broadcasting, plus the sender's
earlier messages. This is the deliveries-based definition of causality (BROADCAST.md
a.2): receipts create no dependencies, deliveries do. The vector counts delivered
messages per sender, not events.

Self-delivery is immediate (our own ``deps`` are already satisfied). Runs over any
reliable layer. Assumptions and crash behaviour are those of the layer below; causal
order itself needs no clocks or timing. A message whose causal past is lost forever (its
dependency's sender crashed and nobody has it) stays held back, bounded by the cap.
Departed members keep their vector entries (pruning them is future work).

Joining: ``start_point()`` is the ``delivered`` vector plus the held-back messages. A
joiner started from it counts those as delivered; its own broadcasts then depend on them
(members that had not delivered them yet hold its messages back until they have).
"""

from __future__ import annotations

import attrs

from .actions import Action, Deliver, Down, StartPoint
from .clocks import vector_leq
from .holdback import HoldBack
from .layer import ProtocolViolation

__all__ = ["CausalBroadcast", "CausalMsg"]


@attrs.frozen
class CausalMsg:
    """``origin``'s ``seq``-th broadcast and what it causally depends on."""

    origin: str
    seq: int
    deps: dict[str, int]
    body: object


@attrs.define(eq=False)
class CausalBroadcast:
    """Causal order over a reliable layer."""

    me: str
    holdback_cap: int = 65536
    holdback: HoldBack[tuple[str, int], CausalMsg] = attrs.field(init=False)
    delivered: dict[str, int] = attrs.field(factory=dict, init=False)
    _seq: int = attrs.field(default=0, init=False)
    _origins: dict[str, None] = attrs.field(factory=dict, init=False)
    """Origins of the messages ever held back, in first-seen order."""

    def __attrs_post_init__(self) -> None:
        self.holdback = HoldBack(self.holdback_cap)

    def buffer_sizes(self) -> dict[str, int]:
        return {"holdback": len(self.holdback)}

    def on_broadcast(self, body: object, now: float) -> list[Action]:
        deps = {k: v for k, v in self.delivered.items() if v}
        deps[self.me] = self._seq
        msg = CausalMsg(self.me, self._seq, deps, body)
        self._seq += 1
        return [Down(msg)]

    def on_deliver(self, delivery: Deliver, now: float) -> list[Action]:
        msg = delivery.payload
        if not isinstance(msg, CausalMsg):
            raise ProtocolViolation(f"causal layer got {msg!r} from below")
        if msg.seq < self.delivered.get(msg.origin, 0) or msg.deps.get(msg.origin) != msg.seq:
            return []
        if not self.holdback.add((msg.origin, msg.seq), msg):
            return []
        self._origins.setdefault(msg.origin)
        return self._drain()

    def start_point(self) -> StartPoint:
        """Delivered counts per origin, and the messages held back."""
        return StartPoint(dict(self.delivered),
                          held=tuple(msg for _, msg in self.holdback.contents()))

    def start_from(self, point: StartPoint, now: float) -> list[Action]:
        """Start a fresh layer: ``point.counts`` count as delivered, adopt ``held``."""
        if self._seq or self.delivered or len(self.holdback):
            raise ValueError("start_from needs a fresh layer")
        point.check_joiner(self.me)
        self.delivered = dict(point.counts)
        for msg in point.held:
            if not isinstance(msg, CausalMsg):
                raise ProtocolViolation(f"causal layer cannot start from {msg!r}")
            if msg.seq >= self.delivered.get(msg.origin, 0):
                self.holdback.add((msg.origin, msg.seq), msg)
                self._origins.setdefault(msg.origin)
        return self._drain()

    def _drain(self) -> list[Action]:
        """Deliver what the held messages' dependencies allow. Only an origin's next
        message can be deliverable (its ``deps`` name its own seq), so each pass looks at
        one message per origin, not at the whole hold-back queue (which made a member
        that fell behind spend time quadratic in its backlog, and fall further behind)."""
        out: list[Action] = []
        progress = True
        while progress:
            progress = False
            for origin in self._origins:
                key = (origin, self.delivered.get(origin, 0))
                item = self.holdback.get(key)
                while item is not None and vector_leq(item.deps, self.delivered):
                    self.holdback.pop(key)
                    out.append(Deliver(origin, item.seq, item.body))
                    self.delivered[origin] = item.seq + 1
                    progress = True
                    key = (origin, item.seq + 1)
                    item = self.holdback.get(key)
        return out

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        raise ProtocolViolation(f"causal layer sends no network messages, got {msg!r}")

    def on_timer(self, key: str, now: float) -> list[Action]:
        return []
