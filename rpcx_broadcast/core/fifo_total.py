"""FIFO-total order: total order plus FIFO, composed from the pieces in ``total.py``.

Two ways, both over any reliable layer:

- ``fifo_total_sequencer(me, members)``: the sequencer with ``fifo=True``: the leader
  assigns each origin's messages in their FIFO sequence order, so the single global
  order respects every sender's order.
- ``lamport_fifo_total(me, members)``: ``FifoBroadcast`` under ``LamportTotal``. FIFO
  delivery from each origin makes its timestamps increase, which is what the delivery
  threshold relies on, and the ``(timestamp, origin)`` order extends FIFO order.

FIFO-total is strictly stronger than causal order (BROADCAST.md a.2).

Crashes: the sequencer version stops for good when the sequencer crashes; the Lamport
version blocks while a crashed member is in the view and is no longer total once a view
drops it (see ``total.py``). The order that survives crashes is ``raft``.
"""

from __future__ import annotations

from .fifo import FifoBroadcast
from .layer import Layer
from .total import LamportTotal, SequencerTotal

__all__ = ["fifo_total_sequencer", "lamport_fifo_total"]


def fifo_total_sequencer(me: str, members: tuple[str, ...], *,
                         leader: str = "") -> list[Layer]:
    """The layers to put above a reliable layer for sequencer-based FIFO-total order."""
    return [SequencerTotal(me, members, leader=leader, fifo=True)]


def lamport_fifo_total(me: str, members: tuple[str, ...]) -> list[Layer]:
    """The layers to put above a reliable layer for leaderless FIFO-total order."""
    return [FifoBroadcast(me), LamportTotal(me, members)]
