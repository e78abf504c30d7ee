"""The seeded Raft simulator driving its nodes the way the trio adapter does since the
leader sends before it writes: ``Ready.send_first()`` goes out at once, and the write
itself *takes time* (a random 0.01-0.6 ticks), during which the node keeps being stepped
and ticked (its next Ready waits for ``advance``), and the batch's committed entries are
applied at once, before the write (unless it installs a leader's snapshot). A crash in
that window is a crash
before the node's own write finished: the storage keeps nothing of the batch, while the
messages sent first are already on their way (a leader that crashes before its own
fsync); a *torn* crash keeps a prefix of the batch. Every checker of
``rpcx_broadcast.testing.raft_sim`` runs as usual: Election Safety, Log Matching, Leader
Completeness, State Machine Safety, durability of what was announced, no acknowledged
entry lost, liveness after the heal.
"""

from __future__ import annotations

import random
from typing import cast

from rpcx_broadcast.core.raft import Ready, Role

from .raft_sim import (
    _LOST,
    _RESTART,
    RaftSimConfig,
    RaftSimResult,
    _Member,
    _Sim,
    make_schedule,
)

__all__ = ["SendFirstSim", "run_send_first"]

_WRITTEN, _CRASH_IN_WRITE = 100, 101


class SendFirstSim(_Sim):
    """``_Sim`` with writes that take time and messages sent before them."""

    def __init__(self, config: RaftSimConfig, *, leader_crashes: int = 0) -> None:
        super().__init__(config)
        self.writing: dict[str, Ready] = {}
        self.crash_in_write: dict[str, float] = {}
        self.applied_early: set[int] = set()  # name -> ticks until its restart
        self.early_sent = 0
        """Messages that left a node before its own write of the batch."""
        self.lost_writes = 0
        """Crashes that came after a batch's first messages, before its write."""
        self.leader_lost_writes = 0
        """... of them, of a leader whose Appends had left."""
        rng = random.Random(f"send-first/{config.seed}")
        for _ in range(leader_crashes):
            at = rng.uniform(3, config.fault_end - 10)
            self.push(at, _CRASH_IN_WRITE, rng.uniform(1, 8))

    def dispatch(self, kind: int, data: object) -> None:
        if kind == _CRASH_IN_WRITE:
            # whoever leads now crashes in its next write, after its Appends have left
            found = self.leader()
            if found is not None:
                self.crash_in_write[found[0]] = cast(float, data)
            return
        if kind != _WRITTEN:
            super().dispatch(kind, data)
            return
        name, incarnation, ready = cast(tuple[str, int, Ready], data)
        member = self.live.get(name)
        if member is None or member.incarnation != incarnation:
            return  # crashed before the write finished: nothing of it is stored
        del self.writing[name]
        self.finish(name, member, ready)
        if name in self.live:
            self.after_input(name)

    def crash(self, name: str) -> None:
        ready = self.writing.pop(name, None)
        if ready is not None:
            self.applied_early.discard(id(ready))
            self.lost_writes += 1
            member = self.live.get(name)
            if member is not None and member.node.role == Role.LEADER and ready.entries:
                self.leader_lost_writes += 1
        self.crash_in_write.pop(name, None)
        super().crash(name)

    def after_input(self, name: str) -> None:
        member = self.live[name]
        node = member.node
        if node.role == Role.LEADER:
            self.observe_leader(name, node)
        while name in self.live and name not in self.writing and node.has_ready():
            ready = node.ready()
            for send in ready.send_first():
                self.early_sent += 1
                self.record_sent(name, node, send)
                self.send(name, send)
            if ready.snapshot is None:
                # committed entries (held by a quorum) are applied during the write, as
                # the adapter does; a snapshot from the leader waits for it
                self.applied_early.add(id(ready))
                for entry in ready.committed:
                    self.apply(name, member, entry)
            if ready.must_sync:
                self.writing[name] = ready
                if (name in self.crash_in_write and node.role == Role.LEADER
                        and self.now < self.c.fault_end):
                    self.push(self.now + self.crash_in_write[name], _RESTART, name)
                    self.result.leader_crashes += 1
                    self.crash(name)  # before a byte of the batch is stored
                    for other in list(self.live):
                        self.push(self.now + self.rng.uniform(0, 2), _LOST, (other, name))
                    return
                self.push(self.now + self.rng.uniform(0.01, 0.6), _WRITTEN,
                          (name, member.incarnation, ready))
                return
            self.finish(name, member, ready)

    def finish(self, name: str, member: _Member, ready: Ready) -> None:
        """The write is done (or there was none): persist, send the rest, apply."""
        storage = self.storages[name]
        if name in self.torn_pending and ready.must_sync:
            self.torn_write(name, ready, storage)
            return
        early = id(ready) in self.applied_early
        self.applied_early.discard(id(ready))
        self.complete(name, member, ready, storage, apply=not early)


def run_send_first(seed: int, config: RaftSimConfig | None = None, *,
                   leader_crashes: int = 2) -> tuple[RaftSimResult, SendFirstSim]:
    """Simulate ``make_schedule(seed)`` (or ``config``) with ``SendFirstSim``, plus
    ``leader_crashes`` crashes of whoever leads at a random time, each landing in that
    leader's next write, after its Appends have left and before anything is stored."""
    sim = SendFirstSim(config or make_schedule(seed), leader_crashes=leader_crashes)
    return sim.run(), sim
