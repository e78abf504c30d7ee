"""A sans-I/O Raft node in the etcd/raft "Ready" shape (docs/consensus.md).

Inputs: ``step(src, msg)`` for a message from peer ``src``, ``tick()`` once per tick of the
driver's clock, ``propose(data)``, ``propose_config(change)``, ``transfer_leadership(to)``,
``read_index()``, ``compact(index, data)`` and ``leader_unreachable()`` (the driver's
connection to the leader was refused or reset). Outputs are collected and handed out in a
``Ready`` batch::

    while node.has_ready():
        ready = node.ready()
        for send in ready.send_first():     # a leader's Appends: may leave before
            transport.send(send.dest, send.msg)  # its own write (optional)
        messages = ready.persist(storage)   # term, vote, entries, snapshot: synced
        for send in messages:               # only now may the rest leave the node
            transport.send(send.dest, send.msg)
        if ready.snapshot is not None:      # from the leader: replace the state machine
            state_machine.restore(ready.snapshot.data)
        for entry in ready.committed:       # in log order
            state_machine.apply(entry)
        node.advance(ready)

``Ready.persist`` is the only way to get the messages that depend on the batch being
durable (votes, a follower's acknowledgements), and ``advance`` refuses a Ready that was
not persisted, so "persist, then send" cannot be skipped by accident. ``send_first`` hands
out early only what a leader sends (its Appends): the followers then write the entries
while the leader writes them too, and the leader counts itself in a commit quorum only
for entries it has persisted (those of Readies it has ``advance``d).

The node does no I/O and reads no clock: time is ``tick()`` calls and the randomised
election timeouts are drawn from the ``rng`` passed in (anything with ``randrange``, e.g.
a seeded ``random.Random``). Safety never depends on timing.

Features: leader election with randomised timeouts, PreVote and CheckQuorum (with the
leader lease: a node that heard from a leader within the election timeout ignores vote
requests), log replication committed by a majority of the current configuration, only
for entries of the leader's own term (Raft figure 8), leadership transfer (TimeoutNow),
single-server configuration changes that take effect when appended, with learners,
snapshots and log compaction (InstallSnapshot for followers behind the compacted prefix,
in chunks of ``snapshot_chunk_bytes``, one in flight per follower),
batching (every proposal between two Readies goes out in one Append per follower, up to
``max_entries_per_append`` / ``max_bytes_per_append``), pipelining (up to ``max_inflight``
Appends in flight per follower), and ReadIndex.
"""

from __future__ import annotations

from collections.abc import Sequence

from .actions import Send
from .raft_log import RaftLog
from .raft_messages import (
    Append,
    AppendReply,
    Config,
    ConfigChange,
    ConfigOp,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    RaftMessage,
    ReadState,
    Snapshot,
    SnapshotAck,
    TimeoutNow,
    VoteReply,
    VoteRequest,
)
from .raft_ready import (
    ConfigChangeRefused,
    NotLeader,
    Progress,
    RaftError,
    RaftOptions,
    RandomSource,
    ReadIndexUnavailable,
    Ready,
    Role,
    _PState,
)
from .storage import Recovered

__all__ = ["ConfigChangeRefused", "NotLeader", "Progress", "RaftError", "RaftNode",
           "RaftOptions", "RandomSource", "ReadIndexUnavailable", "Ready", "Role"]


_Read = tuple[int, int, set[str]]  # request, commit index at request, who confirmed
_SnapKey = tuple[int, int, int]  # leader's term, snapshot index, snapshot term


class RaftNode:
    """One Raft member. ``voters`` is the initial configuration of a bootstrapped cluster
    (only used when ``recovered`` has no snapshot); a node joining a running cluster starts
    with ``voters=()`` and learns its configuration from the leader."""

    def __init__(self, node_id: str, rng: RandomSource, *, options: RaftOptions | None = None,
                 recovered: Recovered | None = None, voters: Sequence[str] = ()) -> None:
        if not node_id:
            raise ValueError("node_id must be non-empty")
        self.id = node_id
        self.options = options or RaftOptions()
        self._rng = rng
        rec = recovered or Recovered()
        self.term = rec.hard_state.term
        self.vote = rec.hard_state.vote
        snap = rec.snapshot
        self._snapshot = snap
        if snap is not None:
            self.log = RaftLog(snap.index, snap.term, rec.entries)
            self._configs: list[tuple[int, Config]] = [(snap.index, snap.config)]
        else:
            self.log = RaftLog(0, 0, rec.entries)
            self._configs = [(0, Config(tuple(voters)))]
        for entry in rec.entries:
            if entry.kind == EntryKind.CONFIG and entry.config is not None:
                self._configs.append((entry.index, entry.config))
        self.commit = self.log.snapshot_index
        self.applied = self.log.snapshot_index
        self.role = Role.FOLLOWER
        self.leader = ""
        self._handed = self.applied
        self._prev_hard = rec.hard_state
        self._unstable_from = self.log.last_index + 1
        # the last index of the log as it is in memory that is durable here: what this
        # node counts for itself in a commit quorum (a leader sends its entries before it
        # has persisted them: ``Ready.send_first``)
        self._stable = self.log.last_index
        self._msgs: list[Send] = []
        self._read_states: list[ReadState] = []
        self._pending_install: Snapshot | None = None
        # follower: the one snapshot being received in chunks, and the bytes so far
        self._incoming: tuple[_SnapKey, bytearray] | None = None
        self._pending_compaction: Snapshot | None = None
        self._outstanding: Ready | None = None
        self._votes: dict[str, bool] = {}
        self._progress: dict[str, Progress] = {}
        self._pending_conf_index = 0
        self._transferee = ""
        self._transfer_elapsed = 0
        self._reads: list[_Read] = []
        self._read_seq = 0
        self._commit_sent = 0
        self._heartbeat_elapsed = 0
        self._election_elapsed = 0
        self._timeout = 0
        self._reset_election_timer()

    # -- introspection --------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The latest configuration in the log (in force as soon as it is appended)."""
        return self._configs[-1][1]

    @property
    def committed_config(self) -> Config:
        """The latest configuration at or below the commit index."""
        for index, config in reversed(self._configs):
            if index <= self.commit:
                return config
        return self._configs[0][1]

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (taken here or installed from the leader)."""
        return self._snapshot

    @property
    def receiving(self) -> tuple[int, int] | None:
        """Follower: the snapshot being received in chunks, as (its index, bytes held so
        far); ``None`` if none. At most one is held at a time."""
        if self._incoming is None:
            return None
        return self._incoming[0][1], len(self._incoming[1])

    @property
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote)

    def progress(self, member: str) -> Progress | None:
        """The leader's replication state of ``member`` (``None`` if not leader)."""
        return self._progress.get(member)

    # -- inputs ---------------------------------------------------------------------------

    def tick(self) -> None:
        """One tick of the driver's clock has passed."""
        if self.role == Role.LEADER:
            self._tick_leader()
        else:
            self._election_elapsed += 1
            if self._promotable() and self._election_elapsed >= self._timeout:
                self._campaign(pre=self.options.pre_vote)

    def propose(self, data: bytes) -> int:
        """Append ``data`` as a new entry (leader only); returns its index. The entry is
        ``(node.term, index)``: if a different entry is later committed at ``index``, this
        one was lost (outcome known only then). Raises ``NotLeader`` if not appended."""
        self._check_proposable()
        index = self.log.last_index + 1
        self._leader_append([Entry(self.term, index, bytes(data))])
        return index

    def propose_config(self, change: ConfigChange) -> int:
        """Append a configuration change (leader only); returns its index. One at a time:
        refused while an earlier change is not committed, before the leader has committed
        an entry of its own term, for removing the leader itself (transfer leadership
        first), and for promoting a learner that has not caught up with the commit index."""
        self._check_proposable()
        if self._pending_conf_index > self.commit or self.log.term(self.commit) != self.term:
            raise ConfigChangeRefused("a configuration change (or this leader's first entry)"
                                      " is not committed yet")
        if change.op == ConfigOp.REMOVE and change.node == self.id:
            raise ConfigChangeRefused("the leader cannot remove itself; transfer leadership "
                                      "first")
        try:
            new = self.config.changed(change)
        except ValueError as error:
            raise ConfigChangeRefused(str(error)) from None
        if change.op == ConfigOp.PROMOTE:
            pr = self._progress.get(change.node)
            if pr is None or pr.match < self.commit:
                raise ConfigChangeRefused(f"learner {change.node!r} has not caught up "
                                          f"(match {pr.match if pr else 0} < commit "
                                          f"{self.commit})")
        index = self.log.last_index + 1
        self._leader_append([Entry(self.term, index, b"", EntryKind.CONFIG, new)])
        self._pending_conf_index = index
        return index

    def transfer_leadership(self, to: str) -> None:
        """Hand leadership to voter ``to``: proposals are refused until it takes over (or an
        election timeout passes); once ``to`` has the whole log it gets ``TimeoutNow``."""
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        if to == self.id:
            return
        if to not in self.config.voters:
            raise ValueError(f"{to!r} is not a voter")
        self._transferee, self._transfer_elapsed = to, 0
        if self._progress[to].match == self.log.last_index:
            self._send(to, TimeoutNow(self.term))

    def leader_unreachable(self) -> None:
        """The driver's connection to the leader failed outright (refused, or reset: what
        a crashed process leaves behind), evidence that the leader is gone. A follower of
        that leader gives up its lease on it and campaigns (PreVote first) within a few
        ticks, staggered at random, instead of after its whole election timeout. Safety
        does not depend on it (a vote still needs a quorum); if the leader is in fact alive
        the other followers still hear it, their leases refuse the PreVote, and nothing
        changes. Silence without such evidence (a partition) still waits the full timeout."""
        if self.role != Role.FOLLOWER or not self.leader or not self._promotable():
            return
        e = self.options.election_ticks
        self._election_elapsed = max(self._election_elapsed, e)  # the lease is over
        soon = self._election_elapsed + self._rng.randrange(1, max(2, e // 2 + 1))
        self._timeout = min(self._timeout, soon)

    def read_index(self) -> int:
        """Start a linearizable read (leader only); returns the request id. A ``ReadState``
        with that id appears in a later Ready once a quorum confirmed this leadership;
        it is dropped if this node stops leading (retry elsewhere)."""
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        if self.log.term(self.commit) != self.term:
            raise ReadIndexUnavailable("no entry of the current term committed yet")
        self._read_seq += 1
        request = self._read_seq
        if self.config.quorum <= 1 and self.config.voters == (self.id,):
            self._read_states.append(ReadState(request, self.commit))
        else:
            self._reads.append((request, self.commit, {self.id}))
            self._broadcast_heartbeat()
        return request

    def compact(self, index: int, data: bytes) -> None:
        """The application's state after applying ``1..index`` is ``data``: keep it as the
        snapshot and drop the log up to ``index`` (at most ``applied``)."""
        if index <= self.log.snapshot_index:
            return
        if index > self.applied:
            raise ValueError(f"cannot snapshot at {index}: only {self.applied} applied")
        term = self.log.term(index)
        assert term is not None
        config = self._config_at(index)
        snap = Snapshot(index, term, config, bytes(data))
        self.log.compact(index)
        self._configs = [(index, config)] + [(i, c) for i, c in self._configs if i > index]
        self._snapshot = snap
        self._pending_compaction = snap

    def step(self, src: str, msg: RaftMessage) -> None:
        """Handle message ``msg`` from peer ``src``."""
        if src == self.id:
            return
        if msg.term > self.term:
            if isinstance(msg, VoteRequest):
                in_lease = (self.options.check_quorum and self.leader != ""
                            and self._election_elapsed < self.options.election_ticks)
                if in_lease and not msg.transfer:
                    return
                if not msg.pre:
                    self._become_follower(msg.term, "")
            elif isinstance(msg, VoteReply) and msg.pre and msg.granted:
                pass
            elif isinstance(msg, Append | Heartbeat | InstallSnapshot):
                self._become_follower(msg.term, src)
            else:
                self._become_follower(msg.term, "")
        elif msg.term < self.term:
            if isinstance(msg, Append | Heartbeat | InstallSnapshot) and (
                    self.options.check_quorum or self.options.pre_vote):
                # a stale leader learns our term and steps down (it may be cut off and
                # would otherwise never hear of the newer term)
                self._send(src, AppendReply(self.term, False, 0))
            elif isinstance(msg, VoteRequest) and msg.pre:
                self._send(src, VoteReply(self.term, False, pre=True))
            return

        if isinstance(msg, VoteRequest):
            self._on_vote_request(src, msg)
        elif isinstance(msg, VoteReply):
            self._on_vote_reply(src, msg)
        elif isinstance(msg, Append | Heartbeat | InstallSnapshot):
            if self.role == Role.LEADER:
                return  # impossible: one leader per term
            if self.role != Role.FOLLOWER:
                self._become_follower(msg.term, src)
            self.leader = src
            self._election_elapsed = 0
            if isinstance(msg, Append):
                self._on_append(src, msg)
            elif isinstance(msg, Heartbeat):
                self._advance_commit(msg.commit)
                self._send(src, HeartbeatReply(self.term, msg.context))
            else:
                self._on_snapshot(src, msg)
        elif isinstance(msg, AppendReply):
            if self.role == Role.LEADER:
                self._on_append_reply(src, msg)
        elif isinstance(msg, HeartbeatReply):
            if self.role == Role.LEADER:
                self._on_heartbeat_reply(src, msg)
        elif isinstance(msg, SnapshotAck):
            if self.role == Role.LEADER:
                self._on_snapshot_ack(src, msg)
        elif (isinstance(msg, TimeoutNow) and self.role != Role.LEADER
              and self._promotable()):
            self._campaign(pre=False, transfer=True)

    # -- output ---------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether ``ready()`` has anything (always ``False`` while a Ready is out)."""
        if self._outstanding is not None:
            return False
        self._flush()
        return bool(self._msgs or self._read_states or self._pending_install is not None
                    or self._pending_compaction is not None
                    or self._unstable_from <= self.log.last_index
                    or self._handed < self.commit or self.term != self._prev_hard.term
                    or self.vote != self._prev_hard.vote)

    def ready(self) -> Ready:
        """Everything to persist, send and apply since the last Ready."""
        if self._outstanding is not None:
            raise RuntimeError("advance() the previous Ready first")
        self._flush()
        hard = self.hard_state
        committed = tuple(self.log.slice(self._handed + 1, self.commit + 1))
        ready = Ready(
            hard_state=hard if hard != self._prev_hard else None,
            entries=tuple(self.log.slice(self._unstable_from, self.log.last_index + 1)),
            snapshot=self._pending_install, compaction=self._pending_compaction,
            committed=committed, read_states=tuple(self._read_states),
            messages=tuple(self._msgs))
        self._msgs, self._read_states = [], []
        self._pending_install = self._pending_compaction = None
        self._prev_hard = hard
        self._unstable_from = self.log.last_index + 1
        if committed:
            self._handed = committed[-1].index
        self._outstanding = ready
        return ready

    def advance(self, ready: Ready) -> None:
        """``ready`` was persisted, its messages sent and its entries applied."""
        if ready is not self._outstanding:
            raise RuntimeError("advance() takes the Ready last returned by ready()")
        if not ready.persisted:
            raise RuntimeError("Ready.persist(storage) must run before advance()")
        self._outstanding = None
        # every entry handed out so far is durable now (a truncation since ``ready()``
        # moved ``_unstable_from`` back: what it cut off is not counted)
        self._stable = min(self.log.last_index, self._unstable_from - 1)
        if ready.snapshot is not None:
            self.applied = max(self.applied, ready.snapshot.index)
        if ready.committed:
            self.applied = max(self.applied, ready.committed[-1].index)

    # -- elections ------------------------------------------------------------------------

    def _promotable(self) -> bool:
        return self.id in self.config.voters

    def _reset_election_timer(self) -> None:
        self._election_elapsed = 0
        e = self.options.election_ticks
        self._timeout = self._rng.randrange(e, 2 * e)

    def _become_follower(self, term: int, leader: str) -> None:
        if term > self.term:
            self.term, self.vote = term, ""
            self._incoming = None  # a new leader restarts any snapshot transfer
        self.role, self.leader = Role.FOLLOWER, leader
        self._reset_election_timer()
        self._progress.clear()
        self._reads.clear()
        self._transferee = ""

    def _campaign(self, *, pre: bool, transfer: bool = False) -> None:
        self._reset_election_timer()
        self._progress.clear()
        self._reads.clear()
        if pre:
            self.role, self.leader = Role.PRE_CANDIDATE, ""
            term = self.term + 1
        else:
            self.role, self.leader = Role.CANDIDATE, ""
            self.term, self.vote = self.term + 1, self.id
            self._incoming = None
            term = self.term
        self._votes = {self.id: True}
        if self._tally()[0] >= self.config.quorum:
            self._won(pre)
            return
        request = VoteRequest(term, self.log.last_index, self.log.last_term, pre, transfer)
        for voter in self.config.voters:
            if voter != self.id:
                self._send(voter, request)

    def _tally(self) -> tuple[int, int]:
        voters = self.config.voters
        granted = sum(1 for n, g in self._votes.items() if g and n in voters)
        refused = sum(1 for n, g in self._votes.items() if not g and n in voters)
        return granted, refused

    def _won(self, pre: bool) -> None:
        if pre:
            self._campaign(pre=False)
        else:
            self._become_leader()

    def _vote_log_ok(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: grant only to a candidate whose log is at least as up to date."""
        return self.log.up_to_date(last_index, last_term)

    def _on_vote_request(self, src: str, msg: VoteRequest) -> None:
        can_vote = (self.vote == src or (self.vote == "" and self.leader == "")
                    or (msg.pre and msg.term > self.term))
        if can_vote and self._vote_log_ok(msg.last_index, msg.last_term):
            self._send(src, VoteReply(msg.term, True, msg.pre))
            if not msg.pre:
                self.vote = src
                self._reset_election_timer()
        else:
            self._send(src, VoteReply(self.term, False, msg.pre))

    def _on_vote_reply(self, src: str, msg: VoteReply) -> None:
        if self.role == Role.PRE_CANDIDATE and msg.pre:
            if msg.granted and msg.term != self.term + 1:
                return
        elif not (self.role == Role.CANDIDATE and not msg.pre):
            return
        self._votes[src] = msg.granted
        granted, refused = self._tally()
        if granted >= self.config.quorum:
            self._won(msg.pre)
        elif refused >= self.config.quorum:
            self._become_follower(self.term, "")

    def _become_leader(self) -> None:
        self.role, self.leader = Role.LEADER, self.id
        self._heartbeat_elapsed = self._election_elapsed = 0
        last = self.log.last_index
        self._progress = {m: Progress(next=last + 1) for m in self.config.members
                          if m != self.id}
        self._transferee = ""
        self._reads = []
        self._commit_sent = 0
        self._leader_append([Entry(self.term, last + 1, b"", EntryKind.NOOP)])
        self._pending_conf_index = last + 1

    # -- leader ---------------------------------------------------------------------------

    def _check_proposable(self) -> None:
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        if self._transferee:
            raise NotLeader(self._transferee, "leadership transfer in progress")

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.options.election_ticks:
            self._election_elapsed = 0
            if self.options.check_quorum:
                active = sum(1 for v in self.config.voters
                             if v == self.id or (v in self._progress
                                                 and self._progress[v].recent_active))
                for pr in self._progress.values():
                    pr.recent_active = False
                if active < self.config.quorum:
                    self._become_follower(self.term, "")
                    return
        if self._transferee:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= self.options.election_ticks:
                self._transferee = ""  # the target did not take over: accept proposals again
        if self._heartbeat_elapsed >= self.options.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat()

    def _broadcast_heartbeat(self) -> None:
        context = self._reads[-1][0] if self._reads else 0
        for member, pr in self._progress.items():
            self._send(member, Heartbeat(self.term, min(pr.match, self.commit), context))

    def _leader_append(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        self._unstable_from = min(self._unstable_from, entries[0].index)
        if self._add_configs(entries):
            self._config_changed()

    def _config_changed(self) -> None:
        if self.role != Role.LEADER:
            return
        for member in self.config.members:
            if member != self.id and member not in self._progress:
                self._progress[member] = Progress(next=self.log.last_index + 1)
        if self._transferee and self._transferee not in self.config.voters:
            self._transferee = ""
        self._prune_progress()

    def _prune_progress(self) -> None:
        """Forget members removed by a *committed* configuration (until then they still
        get the log, so they learn of their removal and stop campaigning)."""
        keep = set(self.config.members) | set(self.committed_config.members)
        for member in [m for m in self._progress if m not in keep]:
            pr = self._progress.pop(member)
            # a last word, so that the removed member can learn the removal committed
            self._send(member, Heartbeat(self.term, min(pr.match, self.commit)))

    def _maybe_commit(self) -> None:
        voters = self.config.voters
        if not voters:
            return
        matches = sorted((self._stable if v == self.id
                          else self._progress[v].match if v in self._progress else 0)
                         for v in voters)
        n = matches[len(matches) - self.config.quorum]
        if n > self.commit and self.log.term(n) == self.term:
            self.commit = n

    def _flush(self) -> None:
        """Leader: commit what a quorum holds, then send what each follower lacks."""
        if self.role != Role.LEADER:
            return
        self._maybe_commit()
        commit_news = self._commit_sent < self.commit
        if commit_news and len(self._configs) > 1:
            self._prune_progress()
        for member in self._progress:
            sent = self._send_append(member, allow_empty=commit_news)
            while sent:
                sent = self._send_append(member, allow_empty=False)
        self._commit_sent = self.commit

    def _send_append(self, to: str, *, allow_empty: bool) -> bool:
        """Send ``to`` the next batch if flow control allows; whether entries went out."""
        pr = self._progress[to]
        if (pr.state == _PState.SNAPSHOT or (pr.state == _PState.PROBE and pr.paused)
                or (pr.state == _PState.REPLICATE
                    and len(pr.inflight) >= self.options.max_inflight)):
            return False
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        if prev_term is None:
            self._start_snapshot(to, pr)
            return False
        entries = self.log.slice(pr.next, pr.next + self.options.max_entries_per_append)
        size = 0
        for count, entry in enumerate(entries):
            size += len(entry.data)
            if size > self.options.max_bytes_per_append and count:
                del entries[count:]
                break
        if not entries and not allow_empty and pr.state != _PState.PROBE:
            return False
        self._send(to, Append(self.term, prev, prev_term, tuple(entries), self.commit))
        if pr.state == _PState.PROBE:
            pr.paused = True
            return False
        if entries:
            pr.next = entries[-1].index + 1
            pr.inflight.append(pr.next - 1)
        return bool(entries)

    def _start_snapshot(self, to: str, pr: Progress) -> None:
        """Send ``to`` the current snapshot, from the start (or, if it is the one last sent
        to it, from the offset it acknowledged: it tells us if it holds less)."""
        snap = self._snapshot
        assert snap is not None
        offset = pr.snapshot_offset if pr.pending_snapshot == snap.index else 0
        pr.state, pr.pending_snapshot, pr.stalled = _PState.SNAPSHOT, snap.index, 0
        self._send_chunk(to, pr, offset)

    def _send_chunk(self, to: str, pr: Progress, offset: int) -> None:
        """Send ``to`` the chunk of the current snapshot at ``offset`` (the only one in
        flight); if the leader compacted since the transfer began, start the new one."""
        snap = self._snapshot
        assert snap is not None
        if snap.index != pr.pending_snapshot:
            self._start_snapshot(to, pr)
            return
        size = len(snap.data)
        if not 0 <= offset < size:
            offset = 0
        end = min(size, offset + self.options.snapshot_chunk_bytes)
        pr.snapshot_offset, pr.snapshot_end, pr.stalled = offset, end, 0
        if offset == 0 and end == size:
            self._send(to, InstallSnapshot(self.term, snap))  # the whole of it at once
            return
        chunk = Snapshot(snap.index, snap.term, snap.config, snap.data[offset:end])
        self._send(to, InstallSnapshot(self.term, chunk, offset, end == size))

    def _on_snapshot_ack(self, src: str, msg: SnapshotAck) -> None:
        pr = self._progress.get(src)
        if pr is None:
            return
        pr.recent_active = True
        if pr.state != _PState.SNAPSHOT or msg.index != pr.pending_snapshot:
            return  # about a transfer that is over
        if msg.offset == pr.snapshot_offset:
            return  # an older answer (the chunk in flight starts there)
        # the follower holds msg.offset bytes: the next chunk (or a lost one again)
        self._send_chunk(src, pr, msg.offset)

    def _on_append_reply(self, src: str, msg: AppendReply) -> None:
        pr = self._progress.get(src)
        if pr is None:
            return
        pr.recent_active = True
        if not msg.success:
            if pr.state == _PState.REPLICATE and msg.index <= pr.match:
                return
            if pr.state == _PState.PROBE and msg.index != pr.next - 1:
                return
            if pr.state == _PState.SNAPSHOT:
                return
            hint, _ = self.log.conflict_hint(msg.hint_index, msg.hint_term)
            pr.probe(max(pr.match + 1, min(msg.index, hint + 1)))
            return
        if msg.index > pr.match or (msg.index == pr.match and pr.state == _PState.PROBE):
            pr.match, pr.stalled = msg.index, 0
            pr.next = max(pr.next, msg.index + 1)
            if pr.state == _PState.REPLICATE:
                while pr.inflight and pr.inflight[0] <= msg.index:
                    pr.inflight.popleft()
            elif pr.state == _PState.PROBE or pr.match >= pr.pending_snapshot:
                pr.replicate()  # (a reply to an older Append leaves a snapshot in flight)
                pr.snapshot_offset = 0
            if src == self._transferee and pr.match == self.log.last_index:
                self._send(src, TimeoutNow(self.term))

    def _on_heartbeat_reply(self, src: str, msg: HeartbeatReply) -> None:
        pr = self._progress.get(src)
        if pr is None:
            return
        pr.recent_active = True
        if pr.state == _PState.PROBE:
            pr.paused = False
        elif pr.match < self.log.last_index:
            # an Append or a snapshot chunk may be lost: after a few heartbeats, probe
            # again or send the chunk in flight again
            pr.stalled += 1
            if pr.stalled >= 2:
                if pr.state == _PState.SNAPSHOT:
                    self._send_chunk(src, pr, pr.snapshot_offset)
                else:
                    pr.probe(pr.match + 1)
        if self._reads and msg.context and src in self.config.voters:
            for request, _, acks in self._reads:
                if request <= msg.context:
                    acks.add(src)
            while self._reads and len(self._reads[0][2] & set(self.config.voters)) \
                    >= self.config.quorum:
                request, index, _ = self._reads.pop(0)
                self._read_states.append(ReadState(request, index))

    # -- follower -------------------------------------------------------------------------

    def _on_append(self, src: str, msg: Append) -> None:
        prev, prev_term, entries = msg.prev_index, msg.prev_term, msg.entries
        if prev < self.commit:
            # the committed prefix matches the leader's log: skip what we already have
            entries = tuple(e for e in entries if e.index > self.commit)
            if not entries:
                self._send(src, AppendReply(self.term, True, self.commit))
                return
            prev = self.commit
            term = self.log.term(prev)
            assert term is not None
            prev_term = term
        if self.log.matches(prev, prev_term):
            position = self.log.find_conflict(entries)
            if position < len(entries):
                self._follower_append(entries[position:])
            last_new = prev + len(entries)
            self._advance_commit(min(msg.commit, last_new))
            self._send(src, AppendReply(self.term, True, last_new))
        else:
            hint_index, hint_term = self.log.conflict_hint(min(prev, self.log.last_index),
                                                           prev_term)
            self._send(src, AppendReply(self.term, False, msg.prev_index, hint_index,
                                        hint_term))

    def _follower_append(self, entries: Sequence[Entry]) -> None:
        first = entries[0].index
        if first <= self.commit:
            raise AssertionError(f"refusing to overwrite committed entry {first}")
        if first <= self.log.last_index:
            self._stable = min(self._stable, first - 1)
            self._configs = [(i, c) for i, c in self._configs if i < first] \
                or self._configs[:1]
        self.log.append(entries)
        self._unstable_from = min(self._unstable_from, first)
        self._add_configs(entries)

    def _on_snapshot(self, src: str, msg: InstallSnapshot) -> None:
        snap = msg.snapshot
        if snap.index <= self.commit or self.log.matches(snap.index, snap.term):
            if self._incoming is not None and self._incoming[0][1] <= snap.index:
                self._incoming = None  # (a partial snapshot no newer than what we have)
            if snap.index <= self.commit:
                self._send(src, AppendReply(self.term, True, self.commit))
            else:
                self._advance_commit(snap.index)
                self._send(src, AppendReply(self.term, True, snap.index))
            return
        if not (msg.offset == 0 and msg.done):
            # chunks of one snapshot from this leader are taken in order; a first chunk
            # of another one replaces it (one snapshot is assembled at a time)
            key = (msg.term, snap.index, snap.term)
            incoming = self._incoming
            if msg.offset == 0 and (incoming is None or incoming[0] != key):
                incoming = self._incoming = (key, bytearray())
            held = len(incoming[1]) if incoming is not None and incoming[0] == key else 0
            if incoming is None or msg.offset != held or incoming[0] != key:
                self._send(src, SnapshotAck(self.term, snap.index, held))
                return
            incoming[1].extend(snap.data)
            if not msg.done:
                self._send(src, SnapshotAck(self.term, snap.index, len(incoming[1])))
                return
            self._incoming = None
            snap = Snapshot(snap.index, snap.term, snap.config, bytes(incoming[1]))
        else:
            self._incoming = None
        self.log.reset(snap.index, snap.term)
        self._stable = min(self._stable, snap.index)
        self._configs = [(snap.index, snap.config)]
        self._snapshot = self._pending_install = snap
        self._pending_compaction = None
        self.commit = snap.index
        self._handed = max(self._handed, snap.index)
        self._unstable_from = snap.index + 1
        self._send(src, AppendReply(self.term, True, snap.index))

    def _advance_commit(self, index: int) -> None:
        index = min(index, self.log.last_index)
        if index > self.commit:
            self.commit = index

    # -- helpers --------------------------------------------------------------------------

    def _add_configs(self, entries: Sequence[Entry]) -> bool:
        added = False
        for entry in entries:
            if entry.kind == EntryKind.CONFIG and entry.config is not None:
                self._configs.append((entry.index, entry.config))
                added = True
        return added

    def _config_at(self, index: int) -> Config:
        for i, config in reversed(self._configs):
            if i <= index:
                return config
        return self._configs[0][1]

    def _send(self, to: str, msg: RaftMessage) -> None:
        self._msgs.append(Send(to, msg))
