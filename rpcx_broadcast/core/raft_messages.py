"""Plain data of the Raft core: log entries, configurations, snapshots, hard state, messages.

Everything here is an ``attrs`` frozen class holding only ints, bools, ``bytes``, ``str``
and tuples of those (or of each other), so a trio adapter can CBOR them as they are. See
``docs/consensus.md`` for what each message means.
"""

from __future__ import annotations

from enum import IntEnum

import attrs

__all__ = ["Append", "AppendReply", "Config", "ConfigChange", "ConfigOp", "Entry", "EntryKind",
           "HardState", "Heartbeat", "HeartbeatReply", "InstallSnapshot", "RaftMessage",
           "ReadState", "Snapshot", "SnapshotAck", "TimeoutNow", "VoteReply", "VoteRequest"]


class EntryKind(IntEnum):
    """What a log entry carries."""

    NORMAL = 0
    """An application command (``Entry.data``)."""
    NOOP = 1
    """The empty entry a new leader appends to commit its predecessors' entries."""
    CONFIG = 2
    """A new configuration (``Entry.config``), effective as soon as it is appended."""


class ConfigOp(IntEnum):
    """A single-server configuration change."""

    ADD_LEARNER = 0
    """Add a non-voting member that receives the log (catches up before promotion)."""
    PROMOTE = 1
    """Make a caught-up learner a voter."""
    REMOVE = 2
    """Remove a voter or a learner (not the leader itself: transfer leadership first)."""


def _names(value: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(sorted(set(value)))


@attrs.frozen
class Config:
    """A configuration: who votes and who only listens. Names are sorted and unique."""

    voters: tuple[str, ...] = attrs.field(default=(), converter=_names)
    learners: tuple[str, ...] = attrs.field(default=(), converter=_names)

    def __attrs_post_init__(self) -> None:
        both = set(self.voters) & set(self.learners)
        if both:
            raise ValueError(f"{sorted(both)} cannot be both voter and learner")

    @property
    def members(self) -> tuple[str, ...]:
        """Voters and learners, sorted."""
        return tuple(sorted(self.voters + self.learners))

    @property
    def quorum(self) -> int:
        """How many voters make a majority."""
        return len(self.voters) // 2 + 1

    def changed(self, change: ConfigChange) -> Config:
        """This configuration with ``change`` applied; ``ValueError`` if it makes no sense."""
        node = change.node
        if change.op == ConfigOp.ADD_LEARNER:
            if node in self.voters or node in self.learners:
                raise ValueError(f"{node!r} is already a member")
            return Config(self.voters, (*self.learners, node))
        if change.op == ConfigOp.PROMOTE:
            if node not in self.learners:
                raise ValueError(f"{node!r} is not a learner")
            return Config((*self.voters, node), tuple(n for n in self.learners if n != node))
        if node not in self.voters and node not in self.learners:
            raise ValueError(f"{node!r} is not a member")
        if self.voters == (node,):
            raise ValueError(f"cannot remove {node!r}, the last voter")
        return Config(tuple(n for n in self.voters if n != node),
                      tuple(n for n in self.learners if n != node))


@attrs.frozen
class ConfigChange:
    """Proposed change ``op`` of member ``node`` (one server at a time)."""

    op: ConfigOp
    node: str = attrs.field()

    @node.validator
    def _check(self, _attribute: object, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError(f"node must be a non-empty str, got {value!r}")


@attrs.frozen
class Entry:
    """Log entry number ``index`` (1-based), created by the leader of ``term``."""

    term: int
    index: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL
    config: Config | None = None
    """For ``CONFIG`` entries: the whole configuration after the change."""


@attrs.frozen
class Snapshot:
    """The application's state after applying entries ``1..index``; ``term`` is the term of
    entry ``index`` and ``config`` the configuration in force there."""

    index: int
    term: int
    config: Config
    data: bytes = b""


@attrs.frozen
class HardState:
    """What must be on disk before any message that depends on it leaves the node."""

    term: int = 0
    vote: str = ""
    """Whom this node voted for in ``term`` (``""``: nobody)."""


@attrs.frozen
class ReadState:
    """ReadIndex answer: once this node has applied ``index``, a read for request ``request``
    reflects every write committed before the request was made (linearizable)."""

    request: int
    index: int


# -- messages ------------------------------------------------------------------------------


@attrs.frozen
class VoteRequest:
    """Vote for the sender in ``term``. ``pre``: only ask whether you would (PreVote; nobody's
    term changes). ``transfer``: the leader asked for this election (TimeoutNow), so ignore
    the leader lease."""

    term: int
    last_index: int
    last_term: int
    pre: bool = False
    transfer: bool = False


@attrs.frozen
class VoteReply:
    term: int
    granted: bool
    pre: bool = False


@attrs.frozen
class Append:
    """AppendEntries: ``entries`` follow entry ``prev_index`` (of term ``prev_term``); the
    leader has committed up to ``commit``."""

    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@attrs.frozen
class AppendReply:
    """Answer to ``Append`` or ``InstallSnapshot``. ``success``: the log matches the leader's
    up to ``index``. Otherwise ``index`` is the refused ``prev_index`` and ``hint_index`` /
    ``hint_term`` the last entry that might match (for fast back-off)."""

    term: int
    success: bool
    index: int
    hint_index: int = 0
    hint_term: int = 0


@attrs.frozen
class Heartbeat:
    """Leader liveness; ``commit`` is at most what the follower is known to hold.
    ``context`` names the newest ReadIndex round the leader wants confirmed."""

    term: int
    commit: int
    context: int = 0


@attrs.frozen
class HeartbeatReply:
    term: int
    context: int = 0


@attrs.frozen
class InstallSnapshot:
    """Replace your log by ``snapshot`` (you are behind the leader's compacted prefix),
    sent in chunks: ``snapshot.data`` holds the bytes ``offset .. offset + len(data)`` of
    the snapshot's data (index, term and config are the whole snapshot's); ``done``: this
    is the last chunk. A snapshot smaller than one chunk is one message (offset 0, done)."""

    term: int
    snapshot: Snapshot
    offset: int = 0
    done: bool = True


@attrs.frozen
class SnapshotAck:
    """Answer to a chunk of ``InstallSnapshot`` that did not complete it: the follower holds
    the first ``offset`` bytes of the snapshot at ``index`` sent in ``term`` (0: none; send
    from the start). The last chunk is answered by an ``AppendReply`` once installed."""

    term: int
    index: int
    offset: int


@attrs.frozen
class TimeoutNow:
    """Leadership transfer: start an election now, without PreVote."""

    term: int


RaftMessage = (VoteRequest | VoteReply | Append | AppendReply | Heartbeat | HeartbeatReply
               | InstallSnapshot | SnapshotAck | TimeoutNow)
