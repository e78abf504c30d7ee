"""Point-to-point links: best-effort, and reliable (retransmit until acked, de-duplicate).

Assumptions: fair-loss links (a message sent infinitely often to a correct member is
received infinitely often; messages may be lost, duplicated, delayed and reordered), no
bound on delay. Guarantee of ``ReliableLinks``: a body sent to a correct member that keeps
running is handed up exactly once; nothing is invented. If the receiver crashes the
sender retransmits until ``forget(dest)`` (a view change) or until its per-destination cap
is reached; then ``send`` raises ``BufferFull`` so callers slow down.

These are helpers that a broadcast layer owns, not layers in a ``Stack``: a layer calls
``send(dest, body, now)`` and feeds link messages to ``on_receive``.
"""

from __future__ import annotations

import attrs

from .actions import Action, CancelTimer, Send, SetTimer
from .layer import BufferFull

__all__ = ["BestEffortLinks", "LinkAck", "LinkData", "ReliableLinks", "SeqTracker"]


@attrs.define
class SeqTracker:
    """Which sequence numbers arrived: all below ``next`` plus the sparse ``extra`` set."""

    next: int = 0
    extra: set[int] = attrs.field(factory=set)

    def add(self, seq: int) -> bool:
        """Record ``seq``; return False if it was already recorded."""
        if seq < self.next or seq in self.extra:
            return False
        if seq == self.next:
            self.next += 1
            while self.next in self.extra:
                self.extra.remove(self.next)
                self.next += 1
        else:
            self.extra.add(seq)
        return True

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and (seq < self.next or seq in self.extra)


@attrs.frozen
class LinkData:
    """A link frame: the ``seq``-th body sent on this link."""

    seq: int
    body: object


@attrs.frozen
class LinkAck:
    """Acknowledges frame ``seq`` and every frame below ``upto``."""

    seq: int
    upto: int


@attrs.define(eq=False)
class BestEffortLinks:
    """Send once; what arrives is handed up as is (duplicates included)."""

    def send(self, dest: str, body: object) -> list[Action]:
        return [Send(dest, body)]


@attrs.define(eq=False)
class ReliableLinks:
    """Retransmit every ``rto`` seconds until acked; de-duplicate by per-link sequence."""

    rto: float = 0.2
    cap: int = 1024
    _next: dict[str, int] = attrs.field(factory=dict, init=False)
    _unacked: dict[str, dict[int, tuple[object, float]]] = attrs.field(factory=dict, init=False)
    _received: dict[str, SeqTracker] = attrs.field(factory=dict, init=False)
    _armed: set[str] = attrs.field(factory=set, init=False)

    def send(self, dest: str, body: object, now: float, *, force: bool = False) -> list[Action]:
        """Send ``body`` to ``dest``; raise ``BufferFull`` past the cap unless ``force``."""
        pending = self._unacked.setdefault(dest, {})
        if len(pending) >= self.cap and not force:
            raise BufferFull(f"reliable link to {dest!r} holds {self.cap} unacked messages")
        seq = self._next.get(dest, 0)
        self._next[dest] = seq + 1
        pending[seq] = (body, now)
        out: list[Action] = [Send(dest, LinkData(seq, body))]
        if dest not in self._armed:
            self._armed.add(dest)
            out.append(SetTimer(f"rto:{dest}", now + self.rto))
        return out

    def on_receive(self, src: str, msg: object, now: float) -> tuple[list[Action], list[object]]:
        """Handle a link frame; return actions and the bodies to hand up (new ones only)."""
        if isinstance(msg, LinkData):
            tracker = self._received.setdefault(src, SeqTracker())
            fresh = tracker.add(msg.seq)
            return [Send(src, LinkAck(msg.seq, tracker.next))], ([msg.body] if fresh else [])
        if isinstance(msg, LinkAck):
            pending = self._unacked.get(src)
            if pending:
                pending.pop(msg.seq, None)
                for seq in [s for s in pending if s < msg.upto]:
                    del pending[seq]
            return [], []
        raise TypeError(f"not a link frame: {msg!r}")

    def on_timer(self, key: str, now: float) -> list[Action]:
        """Retransmit what has waited ``rto`` on the link named by ``key``."""
        dest = key.removeprefix("rto:")
        self._armed.discard(dest)
        pending = self._unacked.get(dest)
        if not pending:
            return []
        out: list[Action] = []
        for seq, (body, sent) in list(pending.items()):
            if sent + self.rto <= now + 1e-9:
                pending[seq] = (body, now)
                out.append(Send(dest, LinkData(seq, body)))
        self._armed.add(dest)
        out.append(SetTimer(f"rto:{dest}", min(s for _, s in pending.values()) + self.rto))
        return out

    def forget(self, peer: str) -> list[Action]:
        """Drop what waits for ``peer`` and what came from it (it left the group). The
        numbering towards it goes on: should it come back (removed while alive, then
        admitted again) and still remember our earlier frames, new ones are not taken
        for duplicates of those."""
        self._unacked.pop(peer, None)
        self._received.pop(peer, None)
        if peer in self._armed:
            self._armed.discard(peer)
            return [CancelTimer(f"rto:{peer}")]
        return []

    def unacked(self, dest: str | None = None) -> int:
        """Unacked messages to ``dest``, or to everyone."""
        if dest is not None:
            return len(self._unacked.get(dest, ()))
        return sum(len(p) for p in self._unacked.values())
