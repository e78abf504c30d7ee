"""What a broadcast core asks its driver to do, and the values it passes between layers.

Every core entry point returns a ``list[Action]``. The driver (the simulator, or the trio
adapter) performs them in order:

- ``Send(dest, msg)``: put ``msg`` on the point-to-point link to ``dest``. It may be lost,
  duplicated, delayed or reordered; the cores cope.
- ``Deliver(origin, seq, payload)``: hand a message to the layer above, or, from the top
  of a ``Stack``, to the application. ``seq`` is the origin's 0-based broadcast number at
  that layer, so ``(origin, seq)`` names the message.
- ``SetTimer(key, at)``: call ``on_timer(key, now)`` once virtual or real time reaches
  ``at``. Setting a key again replaces the earlier deadline.
- ``CancelTimer(key)``: forget the timer ``key`` (a no-op if it is not set).
- ``Down(body)``: only between layers of a ``Stack``: broadcast ``body`` with the layer
  below. A driver never sees it.

Times are seconds as ``float``, on whatever monotonic clock the driver uses.
"""

from __future__ import annotations

import attrs

__all__ = ["Action", "CancelTimer", "Deliver", "Down", "Send", "SetTimer", "StartPoint",
           "Wire"]


def _non_empty(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty str, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an int >= 0, got {value!r}")


@attrs.frozen
class Send:
    """Send ``msg`` to member ``dest`` over a fair-loss point-to-point link."""

    dest: str = attrs.field(validator=_non_empty)
    msg: object


@attrs.frozen
class Deliver:
    """Deliver ``payload`` broadcast by ``origin`` as its ``seq``-th message (0-based)."""

    origin: str = attrs.field(validator=_non_empty)
    seq: int = attrs.field(validator=_non_negative)
    payload: object


@attrs.frozen
class SetTimer:
    """Arm (or re-arm) timer ``key`` to fire at absolute time ``at``."""

    key: str = attrs.field(validator=_non_empty)
    at: float


@attrs.frozen
class CancelTimer:
    """Disarm timer ``key``."""

    key: str = attrs.field(validator=_non_empty)


@attrs.frozen
class Down:
    """Inside a ``Stack``: broadcast ``body`` through the layer below this one."""

    body: object


@attrs.frozen
class Wire:
    """The envelope a ``Stack`` puts around a layer's network message: which layer owns it."""

    layer: int = attrs.field(validator=_non_negative)
    msg: object


Action = Send | Deliver | SetTimer | CancelTimer | Down


@attrs.frozen
class StartPoint:
    """Where one layer of a joiner starts: what counts as delivered before it joined.

    ``counts[origin]``: that many of origin's messages (0..count-1, in the layer's own
    numbering) count as delivered. ``next``: the next global order index (sequencer).
    ``held``: messages the layer at the coordinator had received but not yet delivered
    (they are past the starting point, but the joiner would never receive them again).
    """

    counts: dict[str, int] = attrs.field(factory=dict)
    next: int = 0
    held: tuple[object, ...] = ()

    def check_joiner(self, me: str) -> None:
        """Refuse to start a joiner named ``me`` if that name broadcast in an earlier
        membership: a new process numbers its broadcasts from 0, and those numbers are
        already counted as delivered (they would be dropped as duplicates everywhere)."""
        if self.counts.get(me, 0):
            raise ValueError(f"{me!r} broadcast {self.counts[me]} messages in an earlier "
                             "membership; a process joining again needs a new name")
