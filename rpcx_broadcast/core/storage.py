"""Durable state of a Raft node: the ``Storage`` interface and its in-memory twin.

A ``Storage`` keeps what a ``RaftNode`` must not forget across a crash: the hard state
(term, vote), the latest snapshot and the log entries after it. The node never calls it
itself; ``Ready.persist(storage)`` does, and only then hands out the messages that depend
on what was written (docs/consensus.md, "The Ready contract"). ``FileStorage`` (in
``rpcx_broadcast.storage``) is the on-disk implementation; ``MemoryStorage`` here is the
same thing in memory, for tests and the simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from .raft_messages import Entry, HardState, Snapshot

__all__ = ["MemoryStorage", "Recovered", "Storage"]


@attrs.frozen
class Recovered:
    """What a storage held when it was opened: start a ``RaftNode`` from it."""

    hard_state: HardState = attrs.Factory(HardState)
    snapshot: Snapshot | None = None
    entries: tuple[Entry, ...] = ()
    """Contiguous, starting right after ``snapshot.index`` (or at 1)."""


class Storage(Protocol):
    """Where a Raft node's durable state lives. Every method returns only once what it
    wrote is durable (fsynced): the caller sends messages right after."""

    def load(self) -> Recovered:
        """Everything that was durably saved (and not compacted away)."""
        ...

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None = None) -> None:
        """In this order: if ``snapshot`` is given, keep it and drop the whole log (it now
        starts after ``snapshot.index``); then record ``hard_state`` if given; then append
        ``entries``, first dropping any stored entry at or after ``entries[0].index``."""
        ...

    def compact(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (taken locally at an applied index); entries up to its index may
        be dropped, entries after it are kept."""
        ...


@attrs.define(eq=False)
class MemoryStorage:
    """A ``Storage`` in memory: durable as long as the object lives (the simulator keeps it
    across a simulated crash). ``saves`` counts calls, as a stand-in for fsyncs."""

    hard_state: HardState = attrs.Factory(HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = attrs.field(factory=list)
    saves: int = 0

    @property
    def offset(self) -> int:
        """Index of the entry before ``entries[0]``."""
        return self.snapshot.index if self.snapshot is not None else 0

    def load(self) -> Recovered:
        return Recovered(self.hard_state, self.snapshot, tuple(self.entries))

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None = None) -> None:
        self.saves += 1
        if snapshot is not None:
            self.snapshot = snapshot
            self.entries.clear()
        if hard_state is not None:
            self.hard_state = hard_state
        if entries:
            start = entries[0].index
            last = self.offset + len(self.entries)
            if not self.offset < start <= last + 1:
                raise ValueError(f"entries start at {start}; storage holds "
                                 f"{self.offset + 1}..{last}")
            del self.entries[start - self.offset - 1:]
            self.entries.extend(entries)

    def compact(self, snapshot: Snapshot) -> None:
        self.saves += 1
        if self.snapshot is not None and snapshot.index <= self.snapshot.index:
            return
        drop = snapshot.index - self.offset
        if drop > len(self.entries):
            self.entries.clear()
        else:
            del self.entries[:drop]
        self.snapshot = snapshot
