"""The Raft core's types around the node: options, errors, roles, per-follower progress,
and the ``Ready`` batch with its persist-then-send contract (see ``raft.py``)."""

from __future__ import annotations

from collections import deque
from enum import IntEnum
from typing import Protocol

import attrs

from .actions import Send
from .raft_messages import (
    Append,
    Entry,
    HardState,
    Heartbeat,
    InstallSnapshot,
    ReadState,
    Snapshot,
    TimeoutNow,
)
from .storage import Storage

__all__ = ["ConfigChangeRefused", "NotLeader", "Progress", "RaftError", "RaftOptions",
           "RandomSource", "ReadIndexUnavailable", "Ready", "Role"]


class RaftError(Exception):
    """Base of the errors the Raft core raises at its caller."""


class NotLeader(RaftError):
    """This node cannot take the request now; it was *not* appended. ``leader`` is the
    leader this node knows of (``""`` if none), where a retry may succeed."""

    def __init__(self, leader: str, reason: str = "not the leader") -> None:
        super().__init__(f"{reason} (leader: {leader or 'unknown'})")
        self.leader = leader


class ConfigChangeRefused(RaftError, ValueError):
    """A configuration change was refused (one is pending, the learner is behind, ...)."""


class ReadIndexUnavailable(RaftError):
    """The leader has not committed an entry of its term yet; retry after a tick."""


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class RandomSource(Protocol):
    """Where election timeouts come from (``random.Random(seed)`` fits)."""

    def randrange(self, start: int, stop: int) -> int: ...


def _positive(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


@attrs.frozen
class RaftOptions:
    """Timing (in ticks) and flow control. One budget: ``election_ticks``; a follower
    campaigns after a random ``[election_ticks, 2 * election_ticks)`` ticks of silence."""

    election_ticks: int = attrs.field(default=10, validator=_positive)
    heartbeat_ticks: int = attrs.field(default=1, validator=_positive)
    pre_vote: bool = True
    check_quorum: bool = True
    max_entries_per_append: int = attrs.field(default=512, validator=_positive)
    max_bytes_per_append: int = attrs.field(default=1 << 20, validator=_positive)
    max_inflight: int = attrs.field(default=64, validator=_positive)
    snapshot_chunk_bytes: int = attrs.field(default=512 << 10, validator=_positive)
    """InstallSnapshot sends the snapshot's data in chunks of at most this many bytes, one
    chunk in flight per follower (a resend may briefly put two in one transport batch:
    keep it well under the transport's frame limit, 4 MiB for rpcx)."""

    def __attrs_post_init__(self) -> None:
        if self.heartbeat_ticks >= self.election_ticks:
            raise ValueError("heartbeat_ticks must be below election_ticks")


class _PState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


@attrs.define(eq=False)
class Progress:
    """The leader's view of one follower (or learner)."""

    match: int = 0
    next: int = 1
    state: _PState = _PState.PROBE
    paused: bool = False
    inflight: deque[int] = attrs.Factory(deque)
    pending_snapshot: int = 0
    snapshot_offset: int = 0
    """In ``SNAPSHOT`` state: where the chunk in flight starts (what the follower holds)."""
    snapshot_end: int = -1
    """In ``SNAPSHOT`` state: where the chunk in flight ends (-1: none in flight)."""
    stalled: int = 0
    recent_active: bool = False

    def probe(self, next_index: int) -> None:
        self.state, self.next, self.paused, self.stalled = _PState.PROBE, next_index, False, 0
        self.inflight.clear()

    def replicate(self) -> None:
        self.state, self.next, self.paused, self.stalled = (_PState.REPLICATE, self.match + 1,
                                                            False, 0)
        self.inflight.clear()


_EARLY = (Append, Heartbeat, InstallSnapshot, TimeoutNow)
"""What only a leader sends: these may leave before the batch is persisted (below)."""


@attrs.define(eq=False)
class Ready:
    """One batch of output. Send ``send_first()`` (optional), persist it (``persist``),
    send the messages it returns, install ``snapshot`` if set, apply ``committed`` in
    order, then ``RaftNode.advance(ready)``."""

    hard_state: HardState | None
    """Changed term/vote: persist before sending (``None``: unchanged)."""
    entries: tuple[Entry, ...]
    """Append to storage, overwriting from ``entries[0].index`` on."""
    snapshot: Snapshot | None
    """From the leader: persist (the stored log is replaced by it), then restore the state
    machine from ``snapshot.data`` before applying ``committed``."""
    compaction: Snapshot | None
    """Taken locally by ``RaftNode.compact``: persist it and drop the log prefix."""
    committed: tuple[Entry, ...]
    """Committed entries to apply, in order (skip ``NOOP``; ``CONFIG`` ones are views)."""
    read_states: tuple[ReadState, ...]
    """Confirmed ``read_index`` requests."""
    _messages: tuple[Send, ...]
    persisted: bool = False
    _taken: bool = False

    @property
    def must_sync(self) -> bool:
        """Whether ``persist`` writes anything."""
        return bool(self.hard_state is not None or self.entries or self.snapshot is not None
                    or self.compaction is not None)

    def send_first(self) -> tuple[Send, ...]:
        """The messages that may be sent *before* this batch is persisted, taken out of
        what ``persist`` returns: a leader's ``Append``s (and heartbeats, snapshot chunks,
        ``TimeoutNow``) when its term and vote are unchanged, so the followers write the
        new entries while the leader writes them too (Raft thesis section 10.2.1). Safe
        because the leader counts itself in a commit quorum only for entries it has
        persisted (``advance``), and its term is already durable. Empty when the term or
        vote changed in this batch, or a snapshot from a leader is being installed; a
        follower's acknowledgements and every vote always wait for ``persist``."""
        if self.persisted:
            raise RuntimeError("send_first() comes before persist()")
        if self._taken:
            return ()
        self._taken = True
        if self.hard_state is not None or self.snapshot is not None:
            return ()
        early = tuple(s for s in self._messages if isinstance(s.msg, _EARLY))
        if early:
            self._messages = tuple(s for s in self._messages if not isinstance(s.msg, _EARLY))
        return early

    def persist(self, storage: Storage) -> tuple[Send, ...]:
        """Write this batch durably to ``storage`` and return the messages, which may be sent
        only now (all of them, or the rest after ``send_first``). Blocking (a file storage
        syncs): an async driver runs it in a thread."""
        if self.must_sync:
            storage.save(self.hard_state, self.entries, self.snapshot)
            if self.compaction is not None:
                storage.compact(self.compaction)
        self.persisted = True
        return self._messages
