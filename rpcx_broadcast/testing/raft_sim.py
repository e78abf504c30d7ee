"""A seeded cluster simulator for the Raft core, with the Raft safety checkers.

Time is counted in ticks (``RaftNode.tick`` is called about once per time unit, with
jitter). One ``random.Random(seed)`` decides every fault, so a schedule replays exactly::

    python -m rpcx_broadcast.testing.raft_sim 1234      # re-run seed 1234, print a summary

Faults (``RaftFaults``): message loss, duplication, delay with occasional long delays
(reordering), directed link cuts (full, partial and asymmetric partitions), crashes with
restart from storage (un-persisted state is lost; a *torn* crash dies in the middle of
``Ready.persist``, keeping only a prefix of the writes and sending nothing), crashes of
every node at once, and membership changes (a learner added, promoted, a voter removed,
a leader removed after a leadership transfer). Each node snapshots and compacts its log
every ``snapshot_every`` applied entries (its data padded to 64 bytes, so that with a
small ``RaftOptions.snapshot_chunk_bytes`` a transfer takes many chunks; the padding is
checked at every install). After ``fault_end`` the network is healed and
every crashed node restarted; the run must then become live within ``quiet`` ticks.

Checkers (each returns the first ``Violation``):

- Election Safety: at most one leader per term.
- Log Matching: two logs holding an entry with the same index and term agree on every
  entry up to it (checked every ``check_every`` ticks and at the end).
- Leader Completeness: a new leader's log holds every entry committed before it won.
- State Machine Safety: no two nodes apply different entries at one index; a node
  applies indices in order without gaps; a snapshot's digest is the digest every other
  node computed at that index (so snapshots carry the same state).
- Durability (persist before send): a restarted node's storage holds every term, vote
  and acknowledged entry it announced before the crash.
- No acknowledged entry lost: every proposal whose commit the client saw is, at the end,
  the entry at its index everywhere.
- Liveness: within ``quiet`` ticks of the heal, a leader exists, a probe proposal
  commits, and every member of the final configuration has applied everything committed.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import struct
import sys
from collections.abc import Callable
from typing import cast

import attrs

from rpcx_broadcast.core.actions import Send
from rpcx_broadcast.core.raft import (
    ConfigChangeRefused,
    NotLeader,
    RaftNode,
    RaftOptions,
    RandomSource,
    Ready,
    Role,
)
from rpcx_broadcast.core.raft_messages import (
    AppendReply,
    Config,
    ConfigChange,
    ConfigOp,
    Entry,
    EntryKind,
    InstallSnapshot,
    RaftMessage,
    ReadState,
    Snapshot,
    VoteReply,
    VoteRequest,
)
from rpcx_broadcast.core.storage import MemoryStorage, Recovered, Storage

from .properties import Violation

__all__ = ["LEADER", "Cluster", "Cut", "NodeFactory", "RaftCrash", "RaftFaults", "RaftSimConfig",
           "RaftSimResult", "StorageFactory", "describe_failure", "make_schedule", "replay",
           "run_schedule", "simulate"]

NodeFactory = Callable[[str, RandomSource, RaftOptions, Recovered, tuple[str, ...]], RaftNode]
StorageFactory = Callable[[], Storage]


def _default_node(name: str, rng: RandomSource, options: RaftOptions, recovered: Recovered,
                  voters: tuple[str, ...]) -> RaftNode:
    return RaftNode(name, rng, options=options, recovered=recovered, voters=voters)


@attrs.frozen
class Cut:
    """From ``start`` until ``end``, messages on each directed link ``(src, dest)`` vanish."""

    start: float
    end: float
    links: frozenset[tuple[str, str]]


@attrs.frozen
class RaftCrash:
    """``node`` crashes at ``at`` (``torn``: inside its next write) and restarts at
    ``restart``. ``node == LEADER`` crashes whoever leads at ``at`` (if anyone)."""

    node: str
    at: float
    restart: float
    torn: bool = False


@attrs.frozen
class RaftFaults:
    loss: float = 0.0
    duplicate: float = 0.0
    delay: tuple[float, float] = (0.05, 0.4)
    long_delay: float = 0.0
    """Probability that a message is held 2-10 ticks more (reordering)."""
    tick_jitter: float = 0.1
    cuts: tuple[Cut, ...] = ()
    crashes: tuple[RaftCrash, ...] = ()


@attrs.frozen
class RaftSimConfig:
    voters: tuple[str, ...]
    proposals: tuple[float, ...] = ()
    changes: tuple[tuple[float, ConfigChange], ...] = ()
    faults: RaftFaults = RaftFaults()
    options: RaftOptions = attrs.Factory(RaftOptions)
    seed: int = 0
    snapshot_every: int = 0
    fault_end: float = 60.0
    quiet: float = 80.0
    check_every: float = 10.0
    make_node: NodeFactory = _default_node
    make_storage: StorageFactory = MemoryStorage
    reopen_storage: Callable[[Storage], Storage] | None = None
    """At a restart, open the crashed node's storage afresh (e.g. ``FileStorage`` again
    from its directory) instead of reusing the object."""


@attrs.define
class RaftSimResult:
    violation: Violation | None = None
    end_time: float = 0.0
    messages: int = 0
    leaders: dict[int, str] = attrs.Factory(dict)
    committed: int = 0
    acked: int = 0
    snapshots_installed: int = 0
    snapshot_chunks: int = 0
    """InstallSnapshot messages sent that carried part of a snapshot, not all of it."""
    compactions: int = 0
    crashes: int = 0
    torn_writes: int = 0
    leader_crashes: int = 0
    configs_committed: int = 0
    final_config: Config = attrs.Factory(Config)
    live_at: float | None = None
    """When the liveness condition first held after ``fault_end``."""


class _Failed(Exception):
    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


_ZERO = bytes(8)


def _digest(prev: bytes, entry: Entry) -> bytes:
    h = hashlib.blake2b(prev, digest_size=8)
    h.update(struct.pack(">QQB", entry.term, entry.index, entry.kind))
    h.update(entry.data)
    if entry.config is not None:
        h.update(repr((entry.config.voters, entry.config.learners)).encode())
    return h.digest()


def _filler(digest: bytes) -> bytes:
    """48 bytes derived from a machine's digest: the padding of the simulator's snapshots
    (a chunk lost, doubled or misplaced in the transfer shows as a wrong padding)."""
    return hashlib.blake2b(digest, digest_size=48).digest()


@attrs.define(eq=False)
class _Machine:
    """The replicated state: a hash chain over the applied entries."""

    index: int = 0
    digest: bytes = _ZERO

    def data(self) -> bytes:
        return struct.pack(">Q", self.index) + self.digest

    @classmethod
    def from_snapshot(cls, snap: Snapshot | None) -> _Machine:
        if snap is None or snap.index == 0:
            return cls()
        (index,) = struct.unpack(">Q", snap.data[:8])
        return cls(index, snap.data[8:16])


@attrs.define(eq=False)
class _Member:
    node: RaftNode
    machine: _Machine
    incarnation: int


_MSG, _TICK, _PROPOSE, _CRASH, _RESTART, _CHANGE, _CHECK, _LOST = range(8)

LEADER = "*leader*"
"""``RaftCrash.node`` for "the current leader"."""


class _Sim:
    def __init__(self, config: RaftSimConfig) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.result = RaftSimResult()
        self.queue: list[tuple[float, int, int, object]] = []
        self.seq = 0
        self.now = 0.0
        self.storages: dict[str, Storage] = {}
        self.live: dict[str, _Member] = {}
        self.incarnation: dict[str, int] = {}
        self.crashed: set[str] = set()
        self.stopped: set[str] = set()
        self.torn_pending: set[str] = set()
        # checker state
        self.leaders: dict[int, str] = self.result.leaders
        self.committed: dict[int, tuple[int, int, bytes, Config | None]] = {}
        self.digest_at: dict[int, bytes] = {}
        self.max_committed = 0
        self.final_config = Config(config.voters)
        self.final_config_index = 0
        self.sent_term: dict[str, int] = {}
        self.votes_sent: dict[str, dict[int, str]] = {}
        self.acks_sent: dict[str, dict[int, tuple[int, int]]] = {}
        # client state
        self.pending: dict[tuple[int, int], bytes] = {}
        self.acked: dict[bytes, int] = {}
        self.probe_acked = False
        self.probes = 0

    # -- events -----------------------------------------------------------------------

    def push(self, at: float, kind: int, data: object) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, data))

    def run(self) -> RaftSimResult:
        c = self.c
        for name in c.voters:
            self.storages[name] = c.make_storage()
            self.start(name)
        for k, at in enumerate(c.proposals):
            self.push(at, _PROPOSE, b"c%d" % k)
        for at, change in c.changes:
            self.push(at, _CHANGE, (change, at))
        for crash in c.faults.crashes:
            self.push(crash.at, _CRASH, crash)
            if crash.node != LEADER:
                self.push(crash.restart, _RESTART, crash.node)
        self.push(c.fault_end, _PROPOSE, None)
        t = c.check_every
        while t < c.fault_end + c.quiet:
            self.push(t, _CHECK, None)
            t += c.check_every
        end = c.fault_end + c.quiet
        try:
            while self.queue:
                at, _, kind, data = heapq.heappop(self.queue)
                if at > end:
                    break
                self.now = at
                self.dispatch(kind, data)
                if self.result.live_at is not None:
                    break
            self.check_log_matching()
            self.check_end()
        except _Failed as failed:
            self.result.violation = failed.violation
        self.result.end_time = self.now
        self.result.committed = self.max_committed
        self.result.acked = len(self.acked)
        self.result.final_config = self.final_config
        return self.result

    def dispatch(self, kind: int, data: object) -> None:
        if kind == _MSG:
            dest, src, msg = cast(tuple[str, str, RaftMessage], data)
            member = self.live.get(dest)
            if member is not None:
                member.node.step(src, msg)
                self.after_input(dest)
        elif kind == _TICK:
            name, incarnation = cast(tuple[str, int], data)
            member = self.live.get(name)
            if member is not None and member.incarnation == incarnation:
                if self.rng.random() < 0.005:
                    # a false alarm: the driver saw its connection to the leader break
                    # while the leader lives on (a network blip)
                    member.node.leader_unreachable()
                member.node.tick()
                self.after_input(name)
                jitter = self.c.faults.tick_jitter
                self.push(self.now + self.rng.uniform(1 - jitter, 1 + jitter), _TICK,
                          (name, incarnation))
        elif kind == _PROPOSE:
            self.propose(data if isinstance(data, bytes) else None)
        elif kind == _CRASH:
            assert isinstance(data, RaftCrash)
            if data.node == LEADER:
                found = self.leader()
                if found is None:
                    return
                data = attrs.evolve(data, node=found[0])
                self.result.leader_crashes += 1
                self.push(data.restart, _RESTART, data.node)
            if data.node in self.live:
                if data.torn:
                    self.torn_pending.add(data.node)
                else:
                    self.crash(data.node)
                    # the others' drivers see their connections to it reset, some later
                    for other in list(self.live):
                        self.push(self.now + self.rng.uniform(0, 2), _LOST,
                                  (other, data.node))
        elif kind == _RESTART:
            assert isinstance(data, str)
            self.torn_pending.discard(data)
            if data in self.crashed and data not in self.stopped:
                self.start(data)
        elif kind == _CHANGE:
            change, first = cast(tuple[ConfigChange, float], data)
            self.change(change, first)
        elif kind == _LOST:
            name, gone = cast(tuple[str, str], data)
            member = self.live.get(name)
            if member is not None and member.node.leader == gone:
                member.node.leader_unreachable()
                self.after_input(name)
        else:
            self.check_log_matching()
            if self.now >= self.c.fault_end:
                self.torn_pending.clear()
                if self.is_live():
                    self.result.live_at = self.now

    # -- nodes ------------------------------------------------------------------------

    def start(self, name: str) -> None:
        storage = self.storages[name]
        if name in self.crashed and self.c.reopen_storage is not None:
            storage = self.storages[name] = self.c.reopen_storage(storage)
        recovered = storage.load()
        self.check_recovered(name, recovered)
        incarnation = self.incarnation.get(name, -1) + 1
        self.incarnation[name] = incarnation
        rng = random.Random(f"{self.c.seed}/{name}/{incarnation}")
        voters = self.c.voters if name in self.c.voters else ()
        node = self.c.make_node(name, rng, self.c.options, recovered, voters)
        machine = _Machine.from_snapshot(recovered.snapshot)
        if recovered.snapshot is not None:
            self.check_snapshot(name, recovered.snapshot, machine)
        self.live[name] = _Member(node, machine, incarnation)
        self.crashed.discard(name)
        self.push(self.now + self.rng.uniform(0, 1), _TICK, (name, incarnation))

    def crash(self, name: str) -> None:
        if self.live.pop(name, None) is not None:
            self.crashed.add(name)
            self.result.crashes += 1
        self.torn_pending.discard(name)

    def after_input(self, name: str) -> None:
        member = self.live[name]
        node = member.node
        if node.role == Role.LEADER:
            self.observe_leader(name, node)
        storage = self.storages[name]
        while name in self.live and node.has_ready():
            ready = node.ready()
            if name in self.torn_pending and ready.must_sync:
                self.torn_write(name, ready, storage)
                return
            self.complete(name, member, ready, storage)

    def complete(self, name: str, member: _Member, ready: Ready, storage: Storage, *,
                 apply: bool = True) -> None:
        """Persist ``ready``, send what it holds, install its snapshot, apply its
        committed entries (unless ``apply`` is false: they were applied already),
        advance, and compact the log when a snapshot is due."""
        node = member.node
        for send in ready.persist(storage):
            self.record_sent(name, node, send)
            self.send(name, send)
        if ready.snapshot is not None:
            member.machine = _Machine.from_snapshot(ready.snapshot)
            self.check_snapshot(name, ready.snapshot, member.machine)
            self.result.snapshots_installed += 1
        if apply:
            for entry in ready.committed:
                self.apply(name, member, entry)
        node.advance(ready)
        every = self.c.snapshot_every
        if every and node.applied - node.log.snapshot_index >= every:
            machine = member.machine
            node.compact(node.applied, machine.data() + _filler(machine.digest))
            self.result.compactions += 1

    def torn_write(self, name: str, ready: Ready, storage: Storage) -> None:
        """Crash in the middle of persisting ``ready``: a prefix of its writes survives."""
        ops: list[Callable[[], None]] = []
        snap, hard = ready.snapshot, ready.hard_state
        if snap is not None:
            ops.append(lambda: storage.save(None, (), snap))
        if hard is not None:
            ops.append(lambda: storage.save(hard, ()))
        for entry in ready.entries:
            ops.append(lambda e=entry: storage.save(None, (e,)))  # type: ignore[misc]
        compaction = ready.compaction
        if compaction is not None:
            ops.append(lambda: storage.compact(compaction))
        for op in ops[:self.rng.randrange(len(ops) + 1)]:
            op()
        self.result.torn_writes += 1
        self.crash(name)

    def send(self, src: str, send: Send) -> None:
        self.result.messages += 1
        if isinstance(send.msg, InstallSnapshot) and not (send.msg.offset == 0
                                                           and send.msg.done):
            self.result.snapshot_chunks += 1
        dest, now, f = send.dest, self.now, self.c.faults
        if dest in self.stopped or dest not in self.storages:
            return
        faulty = now < self.c.fault_end
        if faulty:
            for cut in f.cuts:
                if cut.start <= now < cut.end and (src, dest) in cut.links:
                    return
            if f.loss and self.rng.random() < f.loss:
                return
        copies = 2 if faulty and f.duplicate and self.rng.random() < f.duplicate else 1
        for _ in range(copies):
            delay = self.rng.uniform(*f.delay)
            if faulty and f.long_delay and self.rng.random() < f.long_delay:
                delay += self.rng.uniform(2, 10)
            self.push(now + delay, _MSG, (dest, src, send.msg))

    # -- client and operator ----------------------------------------------------------

    def leader(self) -> tuple[str, RaftNode] | None:
        best: tuple[str, RaftNode] | None = None
        for name, member in self.live.items():
            node = member.node
            if node.role == Role.LEADER and (best is None or node.term > best[1].term):
                best = (name, node)
        return best

    def propose(self, value: bytes | None) -> None:
        if value is None:  # the liveness probe: re-proposed until one commits
            if self.probe_acked:
                return
            self.probes += 1
            value = b"probe%d" % self.probes
            self.push(self.now + 15, _PROPOSE, None)
        found = self.leader()
        if found is None:
            if not value.startswith(b"probe"):
                self.push(self.now + 1, _PROPOSE, value)
            return
        name, node = found
        try:
            index = node.propose(value)
        except NotLeader:
            if not value.startswith(b"probe"):
                self.push(self.now + 1, _PROPOSE, value)
            return
        self.pending[(node.term, index)] = value
        self.after_input(name)

    def change(self, change: ConfigChange, first: float) -> None:
        """Operator: keep trying ``change`` until a committed configuration reflects it."""
        if self.now > self.c.fault_end + self.c.quiet / 2:
            return
        target = change.node
        if change.op == ConfigOp.ADD_LEARNER and target not in self.storages:
            self.storages[target] = self.c.make_storage()
            self.start(target)
        found = self.leader()
        if found is not None:
            name, node = found
            config = node.committed_config
            done = {ConfigOp.ADD_LEARNER: target in config.members,
                    ConfigOp.PROMOTE: target in config.voters,
                    ConfigOp.REMOVE: target not in config.members}[change.op]
            if done:
                return
            try:
                if change.op == ConfigOp.REMOVE and target == name:
                    others = [v for v in config.voters if v != name and v in self.live]
                    if others:
                        node.transfer_leadership(others[self.rng.randrange(len(others))])
                else:
                    node.propose_config(change)
            except (ConfigChangeRefused, NotLeader):
                pass
            self.after_input(name)
        self.push(self.now + 2, _CHANGE, (change, first))

    # -- checkers ---------------------------------------------------------------------

    def fail(self, prop: str, message: str) -> None:
        raise _Failed(Violation(prop, f"t={self.now:.2f}: {message}"))

    def observe_leader(self, name: str, node: RaftNode) -> None:
        known = self.leaders.get(node.term)
        if known == name:
            return
        if known is not None:
            self.fail("election safety", f"{known} and {name} both lead term {node.term}")
        self.leaders[node.term] = name
        log = node.log
        for index in range(log.snapshot_index + 1, self.max_committed + 1):
            found = self.committed.get(index)
            if found is not None and log.term(index) != found[0]:
                self.fail("leader completeness",
                          f"{name} leads term {node.term} without committed entry {index} "
                          f"(term {found[0]}); its log has term {log.term(index)}")

    def apply(self, name: str, member: _Member, entry: Entry) -> None:
        machine = member.machine
        if entry.index != machine.index + 1:
            self.fail("state machine safety", f"{name} applied {entry.index} after "
                      f"{machine.index}")
        machine.digest = _digest(machine.digest, entry)
        machine.index = entry.index
        record = (entry.term, int(entry.kind), entry.data, entry.config)
        known = self.committed.get(entry.index)
        if known is None:
            self.committed[entry.index] = record
            self.digest_at[entry.index] = machine.digest
            self.max_committed = max(self.max_committed, entry.index)
            if entry.kind == EntryKind.CONFIG and entry.config is not None:
                self.result.configs_committed += 1
                if entry.index > self.final_config_index:
                    gone_members = set(self.final_config.members) - set(entry.config.members)
                    self.final_config, self.final_config_index = entry.config, entry.index
                    for gone in sorted(gone_members):
                        self.stopped.add(gone)
                        self.crash(gone)
        elif known != record or self.digest_at[entry.index] != machine.digest:
            self.fail("state machine safety", f"{name} applied {entry} at {entry.index}, "
                      f"another node applied term {known[0]} data {known[2]!r}")
        value = self.pending.pop((entry.term, entry.index), None)
        if value is not None and entry.data == value:
            self.acked[value] = entry.index
            if value.startswith(b"probe"):
                self.probe_acked = True

    def check_snapshot(self, name: str, snap: Snapshot, machine: _Machine) -> None:
        if len(snap.data) > 16 and snap.data[16:] != _filler(machine.digest):
            self.fail("state machine safety", f"{name}: snapshot {snap.index} arrived "
                      f"damaged ({len(snap.data)} bytes)")
        if machine.index != snap.index:
            self.fail("state machine safety", f"{name}: snapshot {snap.index} holds state "
                      f"of {machine.index}")
        known = self.digest_at.get(snap.index)
        if known is not None and known != machine.digest:
            self.fail("state machine safety", f"{name} installed a snapshot at {snap.index} "
                      "whose state differs from what others applied there")

    def record_sent(self, name: str, node: RaftNode, send: Send) -> None:
        msg = send.msg
        if isinstance(msg, VoteRequest | VoteReply) and msg.pre:
            return  # PreVote carries the term the candidate would have, not its own
        term = msg.term  # type: ignore[attr-defined]
        assert isinstance(term, int)
        self.sent_term[name] = max(self.sent_term.get(name, 0), term)
        if isinstance(msg, VoteReply) and msg.granted:
            self.votes_sent.setdefault(name, {})[msg.term] = send.dest
        elif isinstance(msg, AppendReply) and msg.success:
            entry_term = node.log.term(msg.index)
            if entry_term is not None:
                acks = self.acks_sent.setdefault(name, {})
                if msg.index >= acks.get(msg.term, (0, 0))[0]:
                    acks[msg.term] = (msg.index, entry_term)

    def check_recovered(self, name: str, recovered: Recovered) -> None:
        hard = recovered.hard_state
        sent = self.sent_term.get(name, 0)
        if hard.term < sent:
            self.fail("durability", f"{name} restarted at term {hard.term} after sending "
                      f"term {sent}")
        voted = self.votes_sent.get(name, {}).get(hard.term)
        if voted is not None and hard.vote != voted:
            self.fail("durability", f"{name} voted for {voted} in term {hard.term} but "
                      f"restarted with vote {hard.vote!r}")
        ack = self.acks_sent.get(name, {}).get(hard.term)
        if ack is not None:
            index, entry_term = ack
            snap_index = recovered.snapshot.index if recovered.snapshot else 0
            if index > snap_index:
                position = index - snap_index - 1
                if position >= len(recovered.entries) or \
                        recovered.entries[position].term != entry_term:
                    self.fail("durability", f"{name} acknowledged entry {index} in term "
                              f"{hard.term} but restarted without it")

    def check_log_matching(self) -> None:
        names = sorted(self.live)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                la, lb = self.live[a].node.log, self.live[b].node.log
                lo = max(la.first_index, lb.first_index)
                hi = min(la.last_index, lb.last_index)
                top = next((k for k in range(hi, lo - 1, -1) if la.term(k) == lb.term(k)), None)
                if top is None:
                    continue
                for k in range(lo, top + 1):
                    if la.entry(k) != lb.entry(k):
                        self.fail("log matching", f"{a} and {b} agree at {top} (term "
                                  f"{la.term(top)}) but differ at {k}")

    def members(self) -> tuple[str, ...]:
        return self.final_config.members

    def is_live(self) -> bool:
        if not self.probe_acked or self.leader() is None:
            return False
        for name in self.members():
            member = self.live.get(name)
            if member is None or member.machine.index < self.max_committed:
                return False
        return True

    def check_end(self) -> None:
        for value, index in self.acked.items():
            record = self.committed.get(index)
            if record is None or record[2] != value:
                self.fail("acknowledged entry lost", f"{value!r} was acknowledged at {index}")
        if self.result.live_at is None and not self.is_live():
            behind = {n: (self.live[n].machine.index if n in self.live else "down")
                      for n in self.members()}
            leader = self.leader()
            self.fail("liveness", f"{self.c.quiet} ticks after the heal: leader "
                      f"{leader[0] if leader else None}, probe committed: "
                      f"{self.probe_acked}, committed {self.max_committed}, applied {behind}")


# -- a hand-driven cluster for unit tests ----------------------------------------------------


def _pack_values(values: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(v)) + v for v in values)


def _unpack_values(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return out


class Cluster:
    """Raft nodes driven by hand: ``tick``, ``deliver`` (every pending message, until none
    is left, dropping those on ``cut`` links), ``crash`` / ``restart`` from storage.

    The state machine of each node is the list of applied ``NORMAL`` entries' data
    (``state[name]``), or with ``record=False`` only their count and digest (for long
    runs). ``snapshot(name)`` compacts a node's log at its applied index. ``sent`` lists
    every message sent (``keep_sent=False``: none, for long runs).
    """

    def __init__(self, voters: tuple[str, ...], *, options: RaftOptions | None = None,
                 seed: int = 0, make_storage: StorageFactory = MemoryStorage,
                 make_node: NodeFactory = _default_node, record: bool = True,
                 keep_sent: bool = True) -> None:
        self.voters = voters
        self.keep_sent = keep_sent
        self.options = options or RaftOptions()
        self.seed = seed
        self.make_storage = make_storage
        self.make_node = make_node
        self.record = record
        self.nodes: dict[str, RaftNode] = {}
        self.storages: dict[str, Storage] = {}
        self.state: dict[str, list[bytes]] = {}
        self.machines: dict[str, _Machine] = {}
        self.installed: dict[str, int] = {}
        self.read_states: dict[str, list[ReadState]] = {}
        self.inbox: list[tuple[str, str, RaftMessage]] = []
        self.sent: list[tuple[str, str, RaftMessage]] = []
        self.cut: set[tuple[str, str]] = set()
        self._starts = 0
        for name in voters:
            self.storages[name] = make_storage()
            self.restart(name)

    def restart(self, name: str) -> RaftNode:
        """(Re)start ``name`` from its storage (a new node if it has none)."""
        storage = self.storages.setdefault(name, self.make_storage())
        recovered = storage.load()
        self._starts += 1
        rng = random.Random(f"{self.seed}/{name}/{self._starts}")
        voters = self.voters if name in self.voters else ()
        node = self.make_node(name, rng, self.options, recovered, voters)
        self.nodes[name] = node
        self._restore(name, recovered.snapshot)
        self.read_states[name] = []
        return node

    def add(self, name: str) -> RaftNode:
        """Start a new, empty node (it learns its configuration from the leader)."""
        self.storages[name] = self.make_storage()
        return self.restart(name)

    def crash(self, name: str) -> None:
        del self.nodes[name]
        self.inbox = [m for m in self.inbox if m[1] != name]

    def isolate(self, name: str) -> None:
        for other in self.storages:
            self.cut |= {(name, other), (other, name)}

    def partition(self, *sides: set[str]) -> None:
        """Cut every link between different ``sides``."""
        for a_side in sides:
            for b_side in sides:
                if a_side is not b_side:
                    self.cut |= {(a, b) for a in a_side for b in b_side}

    def heal(self) -> None:
        self.cut.clear()

    def process(self, name: str) -> None:
        """Run the Ready loop of ``name``: persist, send, apply, advance."""
        node = self.nodes[name]
        storage = self.storages[name]
        while node.has_ready():
            ready = node.ready()
            for send in ready.persist(storage):
                if self.keep_sent:
                    self.sent.append((name, send.dest, cast(RaftMessage, send.msg)))
                if (name, send.dest) not in self.cut:
                    self.inbox.append((name, send.dest, cast(RaftMessage, send.msg)))
            if ready.snapshot is not None:
                self._restore(name, ready.snapshot)
                self.installed[name] = self.installed.get(name, 0) + 1
            machine = self.machines[name]
            for entry in ready.committed:
                machine.digest = _digest(machine.digest, entry)
                machine.index = entry.index
                if self.record and entry.kind == EntryKind.NORMAL:
                    self.state[name].append(entry.data)
            self.read_states[name].extend(ready.read_states)
            node.advance(ready)

    def _restore(self, name: str, snap: Snapshot | None) -> None:
        if snap is None or snap.index == 0:
            self.machines[name], self.state[name] = _Machine(), []
            return
        self.machines[name] = _Machine.from_snapshot(snap)
        self.state[name] = _unpack_values(snap.data[16:]) if self.record else []

    def snapshot(self, name: str) -> Snapshot | None:
        """Compact ``name``'s log at its applied index; returns the new snapshot."""
        node = self.nodes[name]
        machine = self.machines[name]
        extra = _pack_values(self.state[name]) if self.record else b""
        node.compact(node.applied, machine.data() + extra)
        self.process(name)
        return node.snapshot

    def deliver(self, limit: int = 100_000) -> int:
        """Deliver pending messages (and what they cause) until none is left."""
        count = 0
        while self.inbox and count < limit:
            src, dest, msg = self.inbox.pop(0)
            node = self.nodes.get(dest)
            if node is None or (src, dest) in self.cut:
                continue
            node.step(src, msg)
            self.process(dest)
            count += 1
        return count

    def tick(self, *names: str, times: int = 1) -> None:
        """Tick ``names`` (default: every live node) ``times`` times, delivering after each."""
        for _ in range(times):
            for name in names or tuple(self.nodes):
                if name in self.nodes:
                    self.nodes[name].tick()
                    self.process(name)
            self.deliver()

    def leader(self) -> str | None:
        """The live leader with the highest term, if any."""
        best: str | None = None
        for name, node in self.nodes.items():
            if node.role == Role.LEADER and (best is None or node.term > self.nodes[best].term):
                best = name
        return best

    def elect(self, name: str) -> None:
        """Make ``name`` campaign now (its election timer runs out) and deliver."""
        node = self.nodes[name]
        for _ in range(2 * self.options.election_ticks + 1):
            node.tick()
            if node.role != Role.FOLLOWER:
                break
        self.process(name)
        self.deliver()

    def propose(self, data: bytes, at: str | None = None) -> int:
        """Propose at ``at`` (default: the leader) and process that node."""
        name = at or self.leader()
        assert name is not None, "no leader"
        index = self.nodes[name].propose(data)
        self.process(name)
        return index


def simulate(config: RaftSimConfig) -> RaftSimResult:
    """Run ``config`` and check it; ``result.violation`` is the first property broken."""
    return _Sim(config).run()


# -- random schedules -----------------------------------------------------------------------


def make_schedule(seed: int, *, make_node: NodeFactory = _default_node,
                  make_storage: StorageFactory = MemoryStorage) -> RaftSimConfig:
    """A random faulty run: 3 or 5 voters, tens of proposals, faults until ``fault_end``."""
    rng = random.Random(f"raft/{seed}")
    n = rng.choice((3, 3, 5))
    voters = tuple(f"n{i}" for i in range(n))
    fault_end = 60.0
    proposals = tuple(sorted(round(rng.uniform(0, fault_end), 3)
                             for _ in range(rng.randint(10, 40))))
    cuts: list[Cut] = []
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        start = rng.uniform(0, fault_end - 5)
        end = min(fault_end, start + rng.uniform(5, 30))
        kind = rng.random()
        if kind < 0.4:  # a full partition: one side cannot talk to the other
            side = set(rng.sample(voters, rng.randint(1, n // 2)))
            links = {(a, b) for a in voters for b in voters if (a in side) != (b in side)}
        elif kind < 0.7:  # partial: some pairs cut both ways (the others still talk)
            pairs = [(a, b) for a in voters for b in voters if a < b]
            chosen = rng.sample(pairs, rng.randint(1, max(1, len(pairs) // 2)))
            links = {link for a, b in chosen for link in ((a, b), (b, a))}
        else:  # asymmetric: one node hears nobody, or nobody hears it
            node = rng.choice(voters)
            inbound = rng.random() < 0.5
            links = {(b, node) if inbound else (node, b) for b in voters if b != node}
        cuts.append(Cut(start, end, frozenset(links)))
    crashes: list[RaftCrash] = []
    if rng.random() < 0.15:  # the whole cluster goes down
        at = rng.uniform(5, fault_end - 20)
        for name in voters:
            crashes.append(RaftCrash(name, at + rng.uniform(0, 1),
                                     at + rng.uniform(2, 10), rng.random() < 0.3))
    for _ in range(rng.choice((0, 1, 2, 3))):
        at = rng.uniform(0, fault_end - 10)
        crashes.append(RaftCrash(rng.choice(voters), at, min(fault_end - 1,
                                                             at + rng.uniform(1, 20)),
                                 rng.random() < 0.4))
    for _ in range(rng.choice((0, 1, 1, 2))):  # crash whoever leads then
        at = rng.uniform(3, fault_end - 10)
        crashes.append(RaftCrash(LEADER, at, min(fault_end - 1, at + rng.uniform(1, 15)),
                                 rng.random() < 0.3))
    changes: list[tuple[float, ConfigChange]] = []
    if rng.random() < 0.35:
        at = rng.uniform(0, 30)
        changes.append((at, ConfigChange(ConfigOp.ADD_LEARNER, "j0")))
        changes.append((at + rng.uniform(3, 20), ConfigChange(ConfigOp.PROMOTE, "j0")))
    if rng.random() < 0.25:
        changes.append((rng.uniform(5, 50), ConfigChange(ConfigOp.REMOVE,
                                                         rng.choice(voters))))
    lo = rng.uniform(0.02, 0.2)
    faults = RaftFaults(loss=rng.choice((0.0, 0.02, 0.1, 0.3)),
                        duplicate=rng.choice((0.0, 0.05)),
                        delay=(lo, lo + rng.choice((0.0, 0.3, 1.0))),
                        long_delay=rng.choice((0.0, 0.02)),
                        cuts=tuple(cuts), crashes=tuple(crashes))
    options = RaftOptions(election_ticks=10, heartbeat_ticks=rng.choice((1, 2)),
                          max_entries_per_append=rng.choice((1, 4, 64)),
                          max_inflight=rng.choice((1, 4, 64)),
                          # (from the seed, not rng: the other draws stay as they were)
                          snapshot_chunk_bytes=(5, 13, 512 << 10)[seed % 3])
    return RaftSimConfig(voters, proposals, tuple(sorted(changes, key=lambda c: c[0])),
                         faults, options, seed=seed,
                         snapshot_every=rng.choice((0, 3, 10)), fault_end=fault_end,
                         quiet=100.0, make_node=make_node, make_storage=make_storage)


def run_schedule(seed: int, *, make_node: NodeFactory = _default_node,
                 make_storage: StorageFactory = MemoryStorage,
                 reopen_storage: Callable[[Storage], Storage] | None = None) -> RaftSimResult:
    """Simulate ``make_schedule(seed)`` (with these factories) and check it."""
    config = make_schedule(seed, make_node=make_node, make_storage=make_storage)
    return simulate(attrs.evolve(config, reopen_storage=reopen_storage))


def describe_failure(seed: int, violation: Violation) -> str:
    return (f"raft schedule seed {seed}: {violation}\n"
            f"replay: RPCX_RAFT_SEED={seed} pytest tests/broadcast/test_raft_sim.py  or  "
            f"python -m rpcx_broadcast.testing.raft_sim {seed}")


def replay(seed: int) -> Violation | None:
    """Re-run one seed and print what happened."""
    config = make_schedule(seed)
    result = simulate(config)
    print(f"raft seed {seed}: voters={config.voters} snapshot_every={config.snapshot_every} "
          f"snapshot_chunk_bytes={config.options.snapshot_chunk_bytes}")
    print(f"  faults={config.faults}")
    print(f"  changes={config.changes}")
    print(f"  ended t={result.end_time:.2f} live_at={result.live_at} messages="
          f"{result.messages} committed={result.committed} acked={result.acked} "
          f"crashes={result.crashes} torn={result.torn_writes} "
          f"snapshots={result.snapshots_installed} chunks={result.snapshot_chunks} "
          f"terms={len(result.leaders)}")
    print(f"  result: {result.violation or 'ok'}")
    return result.violation


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1 if replay(int(sys.argv[1])) else 0)
