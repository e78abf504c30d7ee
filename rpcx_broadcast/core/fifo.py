"""FIFO broadcast: per-sender sequence numbers, a hold-back queue, NAK gap repair.

Runs over any reliable broadcast layer (``Down`` to it, ``on_deliver`` from it). Each
message carries ``(origin, seq)``; a member delivers origin's ``seq`` only after
``0..seq-1``. Duplicates (seq already delivered) are dropped on arrival. Self-delivery is
immediate: the reliable layer hands our own message straight back.

Gap repair: when a sender's messages wait behind a gap for ``nak_delay`` seconds, the
member asks the sender directly (``FifoNak``) and the sender resends from a bounded ring of
its last ``resend_cap`` messages (as JGroups NAKACK2 does). The reliable layer below
closes the gap anyway; the NAK only shortens it.

Joining: ``start_point()`` is the ``delivered`` vector plus the held-back messages; a
joiner started from it delivers each origin's messages from there on, in order.

Assumptions: those of the reliable layer below. Timing: asynchronous. Crashes: FIFO order
holds for every member; if a sender crashes, members deliver the same gap-free prefix of
its messages that the reliable layer gives them (agreement comes from below).
"""

from __future__ import annotations

from collections import deque

import attrs

from .actions import Action, Deliver, Down, Send, SetTimer, StartPoint
from .holdback import HoldBack
from .layer import ProtocolViolation

__all__ = ["FifoBroadcast", "FifoMsg", "FifoNak"]


@attrs.frozen
class FifoMsg:
    """``origin``'s ``seq``-th FIFO broadcast."""

    origin: str
    seq: int
    body: object


@attrs.frozen
class FifoNak:
    """Please resend your messages with these sequence numbers."""

    seqs: tuple[int, ...]


@attrs.define(eq=False)
class FifoBroadcast:
    """FIFO order over a reliable layer, with NAK-based gap repair."""

    me: str
    nak_delay: float = 0.2
    resend_cap: int = 1024
    holdback_cap: int = 65536
    holdback: HoldBack[tuple[str, int], FifoMsg] = attrs.field(init=False)
    delivered: dict[str, int] = attrs.field(factory=dict, init=False)
    _seq: int = attrs.field(default=0, init=False)
    _sent: deque[FifoMsg] = attrs.field(init=False)
    _top: dict[str, int] = attrs.field(factory=dict, init=False)
    _nak_armed: set[str] = attrs.field(factory=set, init=False)
    _departed: set[str] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        self.holdback = HoldBack(self.holdback_cap)
        self._sent = deque(maxlen=self.resend_cap)

    def buffer_sizes(self) -> dict[str, int]:
        return {"holdback": len(self.holdback), "resend": len(self._sent)}

    def on_broadcast(self, body: object, now: float) -> list[Action]:
        msg = FifoMsg(self.me, self._seq, body)
        self._seq += 1
        self._sent.append(msg)
        return [Down(msg)]

    def on_deliver(self, delivery: Deliver, now: float) -> list[Action]:
        if not isinstance(delivery.payload, FifoMsg):
            raise ProtocolViolation(f"fifo layer got {delivery.payload!r} from below")
        return self._receive(delivery.payload, now)

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        if isinstance(msg, FifoMsg) and msg.origin == src:
            return self._receive(msg, now)
        if isinstance(msg, FifoNak):
            wanted = set(msg.seqs)
            return [Send(src, m) for m in self._sent if m.seq in wanted]
        raise ProtocolViolation(f"fifo layer got {msg!r} from {src!r}")

    def on_timer(self, key: str, now: float) -> list[Action]:
        origin = key.removeprefix("nak:")
        self._nak_armed.discard(origin)
        if origin in self._departed:
            return []
        start = self.delivered.get(origin, 0)
        top = self._top.get(origin, -1)
        missing = tuple(s for s in range(start, min(top, start + 64))
                        if (origin, s) not in self.holdback)
        if not missing:
            return []
        self._nak_armed.add(origin)
        return [Send(origin, FifoNak(missing)), SetTimer(key, now + self.nak_delay)]

    def on_view(self, members: tuple[str, ...], now: float) -> list[Action]:
        """Stop asking departed senders for retransmissions (they cannot answer)."""
        self._departed = (self._departed | set(self.delivered) | set(self._top)) - set(members)
        return []

    def start_point(self) -> StartPoint:
        """Delivered counts per origin, and the messages held back behind gaps."""
        return StartPoint(dict(self.delivered),
                          held=tuple(msg for _, msg in self.holdback.contents()))

    def start_from(self, point: StartPoint, now: float) -> list[Action]:
        """Start a fresh layer: ``point.counts`` count as delivered, adopt ``held``."""
        if self._seq or self.delivered or len(self.holdback):
            raise ValueError("start_from needs a fresh layer")
        point.check_joiner(self.me)
        self.delivered = dict(point.counts)
        out: list[Action] = []
        for msg in point.held:
            if not isinstance(msg, FifoMsg):
                raise ProtocolViolation(f"fifo layer cannot start from {msg!r}")
            out.extend(self._receive(msg, now))
        return out

    def _receive(self, msg: FifoMsg, now: float) -> list[Action]:
        origin = msg.origin
        next_seq = self.delivered.get(origin, 0)
        if msg.seq < next_seq or not self.holdback.add((origin, msg.seq), msg):
            return []
        self._top[origin] = max(self._top.get(origin, -1), msg.seq)
        out: list[Action] = []
        while (origin, next_seq) in self.holdback:
            item = self.holdback.pop((origin, next_seq))
            out.append(Deliver(origin, next_seq, item.body))
            next_seq += 1
        self.delivered[origin] = next_seq
        if self._top[origin] >= next_seq and origin not in self._nak_armed:
            self._nak_armed.add(origin)
            out.append(SetTimer(f"nak:{origin}", now + self.nak_delay))
        return out
