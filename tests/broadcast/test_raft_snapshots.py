"""Snapshots and compaction in the ``raft`` order, in one process (mem:// transport,
virtual time): a group takes a snapshot every ``snapshot_every`` entries and drops its
log; a member that was down while the others wrote past several snapshots restarts from
its storage and catches up from the leader's snapshot, then delivers exactly what the
others deliver at the same positions; a replicated object is carried by its own
``snapshot``/``restore``; a long run keeps the log and the files bounded."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import trio
import trio.testing

import rpcx_broadcast
from rpcx_broadcast import RAFT, FileStorage, MemoryStorage
from rpcx_broadcast.core.raft import RaftOptions
from rpcx_broadcast.runtime.raft_node import RaftMember
from tests.broadcast._groups import mem_members

Record = tuple[int, str, int, bytes]  # Delivery.index, origin, seq, payload


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110
        await trio.sleep(0.01)


def _stat(group: rpcx_broadcast.Group, key: str) -> int:
    return group.statistics().buffer_sizes[key]


async def test_a_member_down_past_several_snapshots_catches_up_from_one(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    storages = {me: MemoryStorage() for me in members}
    groups: dict[str, rpcx_broadcast.Group] = {}
    got: dict[str, list[Record]] = {}
    scopes: dict[str, trio.CancelScope] = {}
    every = 40

    async def member(me: str) -> None:
        got[me] = []  # one list per incarnation
        with scopes[me]:
            async with rpcx_broadcast.open_group(me, members, RAFT, storage=storages[me],
                                                 snapshot_every=every) as group:
                groups[me] = group
                async for d in group.deliveries:
                    got[me].append((d.index, d.origin, d.seq, d.payload))

    async def write(me: str, n: int, tag: str) -> None:
        for k in range(n):
            await groups[me].broadcast(f"{me}/{tag}/{k}".encode())

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for me in members:
                scopes[me] = trio.CancelScope()
                nursery.start_soon(member, me)
            await _until(lambda: len(groups) == 3 and all(
                g.statistics().leader for g in groups.values()))
            leader = groups[sorted(members)[0]].statistics().leader
            victim = next(m for m in sorted(members) if m != leader)
            others = [m for m in sorted(members) if m != victim]
            async with trio.open_nursery() as writers:
                for me in members:
                    writers.start_soon(write, me, 10, "before")
            await _until(lambda: all(len(got[m]) == 30 for m in members))
            scopes[victim].cancel()  # a crash: its storage survives, nothing else
            del groups[victim]
            async with trio.open_nursery() as writers:
                for me in others:
                    writers.start_soon(write, me, 150, "while-down")
            await _until(lambda: all(len(got[m]) == 330 for m in others))
            for me in others:
                # (broadcasts accepted in one turn of the leader share a log entry, so
                # 300 broadcasts make fewer than 300 entries: several snapshots, not 7)
                assert _stat(groups[me], "raft.snapshots_taken") >= 2
                assert _stat(groups[me], "raft.log") <= every + 10
            before = got[victim]
            scopes[victim] = trio.CancelScope()
            nursery.start_soon(member, victim)
            await _until(lambda: victim in groups)
            async with trio.open_nursery() as writers:
                for me in members:
                    writers.start_soon(write, me, 10, "after")
            await _until(lambda: all(len(got[m]) == 360 for m in others))
            await _until(lambda: bool(got[victim]) and got[victim][-1] == got[others[0]][-1])
            assert _stat(groups[victim], "raft.snapshots_installed") >= 1
            nursery.cancel_scope.cancel()
    reference = got[others[0]]
    assert got[others[1]] == reference
    assert before == reference[:30]
    # after the restart the victim re-delivers what its own log holds, then jumps (the
    # leader's snapshot covers the rest) and delivers exactly what the others delivered
    # at the same positions: same index, origin, seq and payload
    after = got[victim]
    assert all(reference[index] == record for record in after
               for index in [record[0]])
    indexes = [record[0] for record in after]
    assert indexes == sorted(set(indexes))
    # (it may re-deliver none, some or all of the 30 entries its own log holds first)
    jumps = [(a, b) for a, b in itertools.pairwise([-1, *indexes]) if b != a + 1]
    assert len(jumps) == 1 and jumps[0][0] < 330 - every, (
        "the victim caught up from the log, not from a snapshot")
    assert indexes[-1] == len(reference) - 1
    assert [payload for index, o, _, payload in after
            if o == victim and index > jumps[0][0]] == [
        f"{victim}/after/{k}".encode() for k in range(10)]


class Ledger:
    """A replicated object with snapshot/restore: a running total and a hash chain of
    every update (so any divergence in order or content shows)."""

    def __init__(self) -> None:
        self.total = 0
        self.chain = b""
        self.restored = 0

    def apply(self, update: bytes) -> int:
        self.total += int(update.split(b"/")[-1])
        self.chain = hashlib.sha256(self.chain + update).digest()
        return self.total

    def snapshot(self) -> bytes:
        return b"%d:" % self.total + self.chain.hex().encode()

    def restore(self, data: bytes) -> None:
        total, chain = data.split(b":")
        self.total, self.chain = int(total), bytes.fromhex(chain.decode())
        self.restored += 1


async def test_a_replica_restarted_after_many_snapshots_is_restored_from_one(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    storages = {me: MemoryStorage() for me in members}
    replicas: dict[str, rpcx_broadcast.Replica[bytes, int]] = {}
    ledgers: dict[str, Ledger] = {}
    scopes: dict[str, trio.CancelScope] = {}

    async def member(me: str) -> None:
        ledgers[me] = Ledger()
        with scopes[me]:
            async with rpcx_broadcast.open_replica(me, members, ledgers[me], bytes, RAFT,
                                                   storage=storages[me],
                                                   snapshot_every=25) as replica:
                replicas[me] = replica
                await trio.sleep_forever()

    async def update(me: str, n: int) -> None:
        for k in range(n):
            await replicas[me].update(f"{me}/{k}".encode())

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for me in members:
                scopes[me] = trio.CancelScope()
                nursery.start_soon(member, me)
            await _until(lambda: len(replicas) == 3)
            victim = sorted(members)[2]
            others = sorted(members)[:2]
            await update(victim, 5)
            await _until(lambda: all(r.applied == 5 for r in replicas.values()))
            scopes[victim].cancel()
            del replicas[victim]
            async with trio.open_nursery() as writers:
                for me in others:
                    writers.start_soon(update, me, 100)
            await _until(lambda: all(replicas[m].applied == 205 for m in others))
            scopes[victim] = trio.CancelScope()
            nursery.start_soon(member, victim)
            await _until(lambda: victim in replicas)
            await update(others[0], 1)
            await _until(lambda: all(r.applied == 206 for r in replicas.values()))
            nursery.cancel_scope.cancel()
    assert ledgers[victim].restored >= 1
    assert {(lg.total, lg.chain) for lg in ledgers.values()} == {
        (ledgers[others[0]].total, ledgers[others[0]].chain)}
    assert ledgers[victim].total == sum(range(5)) + 2 * sum(range(100))


class BigLedger(Ledger):
    """A Ledger whose snapshot is several MiB (more than one rpcx frame can carry): the
    running total and chain, then ``size`` bytes drawn from a generator seeded with the
    chain, which ``restore`` checks (a chunk lost, doubled or misplaced would show)."""

    size = 6 << 20

    def snapshot(self) -> bytes:
        return super().snapshot() + b"|" + random.Random(self.chain).randbytes(self.size)

    def restore(self, data: bytes) -> None:
        head, _, bulk = data.partition(b"|")
        super().restore(head)
        assert bulk == random.Random(self.chain).randbytes(self.size), "damaged snapshot"


async def test_a_replica_with_megabytes_of_state_catches_up_through_many_chunks(
        autojump_clock: trio.testing.MockClock) -> None:
    """A 6 MiB application state (the rpcx frame limit is 4 MiB) reaches a member that
    was down past several snapshots, in 512 KiB InstallSnapshot chunks."""
    members = mem_members(3)
    storages = {me: MemoryStorage() for me in members}
    replicas: dict[str, rpcx_broadcast.Replica[bytes, int]] = {}
    ledgers: dict[str, BigLedger] = {}
    scopes: dict[str, trio.CancelScope] = {}
    groups: dict[str, RaftMember] = {}

    async def member(me: str) -> None:
        ledgers[me] = BigLedger()
        with scopes[me]:
            async with rpcx_broadcast.open_replica(
                    me, members, ledgers[me], bytes, RAFT, storage=storages[me],
                    snapshot_every=20, raft_options=RaftOptions(
                        snapshot_chunk_bytes=512 << 10)) as replica:
                node = replica.group._node
                assert isinstance(node, RaftMember)
                replicas[me], groups[me] = replica, node
                await trio.sleep_forever()

    async def update(me: str, n: int) -> None:
        for k in range(n):
            await replicas[me].update(f"{me}/{k}".encode())

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for me in members:
                scopes[me] = trio.CancelScope()
                nursery.start_soon(member, me)
            await _until(lambda: len(replicas) == 3)
            victim = sorted(members)[2]
            others = sorted(members)[:2]
            await update(victim, 3)
            await _until(lambda: all(r.applied == 3 for r in replicas.values()))
            scopes[victim].cancel()
            del replicas[victim], groups[victim]
            for me in others:  # one at a time: one log entry per update
                await update(me, 30)
            await _until(lambda: all(replicas[m].applied == 63 for m in others))
            leader = groups[others[0]].node.leader
            sent_before = _stat(replicas[leader].group, "raft.snapshot_chunks_sent")
            scopes[victim] = trio.CancelScope()
            nursery.start_soon(member, victim)
            await _until(lambda: victim in replicas)
            await _until(lambda: replicas[victim].applied == 63)
            await update(others[0], 1)
            await _until(lambda: all(r.applied == 64 for r in replicas.values()))
            chunks = _stat(replicas[leader].group, "raft.snapshot_chunks_sent") - sent_before
            received = _stat(replicas[victim].group, "raft.snapshot_chunks_received")
            installed = _stat(replicas[victim].group, "raft.snapshots_installed")
            assert groups[victim].node.receiving is None
            snapshot = groups[victim].node.snapshot
            nursery.cancel_scope.cancel()
    assert installed >= 1 and ledgers[victim].restored >= 1
    assert snapshot is not None and len(snapshot.data) > BigLedger.size
    assert chunks >= BigLedger.size // (512 << 10) and received >= chunks, (chunks, received)
    assert {(lg.total, lg.chain) for lg in ledgers.values()} == {
        (ledgers[others[0]].total, ledgers[others[0]].chain)}
    assert ledgers[victim].total == sum(range(3)) + 2 * sum(range(30))


class BigState:
    """A ``state=`` hook (Snapshottable) whose snapshot is 5 MiB: the delivery count, a
    hash chain of the payloads, then bytes drawn from a generator seeded with the chain
    (checked by ``restore``)."""

    size = 5 << 20

    def __init__(self) -> None:
        self.count = 0
        self.chain = b""
        self.restored = 0

    def apply(self, payload: bytes) -> None:
        self.count += 1
        self.chain = hashlib.sha256(self.chain + payload).digest()

    def applied(self) -> int:
        return self.count

    def snapshot(self) -> bytes:
        return self.chain + random.Random(self.chain).randbytes(self.size)

    def restore(self, data: bytes | None, delivered: int) -> None:
        assert data is not None
        self.chain, bulk = data[:32], data[32:]
        assert bulk == random.Random(self.chain).randbytes(self.size), "damaged snapshot"
        self.count = delivered
        self.restored += 1


async def test_a_joiner_gets_megabytes_of_state_through_many_chunks(
        autojump_clock: trio.testing.MockClock) -> None:
    """A new member (join=) behind the compacted log receives a 5 MiB application state
    in 256 KiB chunks, then holds the same state as the others."""
    members = mem_members(3)
    groups: dict[str, rpcx_broadcast.Group] = {}
    states: dict[str, BigState] = {}
    options = RaftOptions(snapshot_chunk_bytes=256 << 10)

    async def run(me: str, group_members: Mapping[str, str] | None,
                  **extra: str) -> None:
        states[me] = BigState()
        async with rpcx_broadcast.open_group(me, group_members, RAFT, snapshot_every=30,
                                             state=states[me], raft_options=options,
                                             **extra) as group:  # type: ignore[arg-type]
            groups[me] = group
            async for d in group.deliveries:
                states[me].apply(d.payload)

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for me in members:
                nursery.start_soon(run, me, members)
            await _until(lambda: len(groups) == 3)
            for k in range(80):  # one at a time: one log entry each
                await groups["n0"].broadcast(b"%d" % k)
                await _until(lambda: states["n0"].count == k + 1)  # noqa: B023
            await _until(lambda: all(states[m].count == 80 for m in members))
            assert _stat(groups["n0"], "raft.snapshots_taken") >= 1
            nursery.start_soon(lambda: run("new", None, join=members["n1"],
                                           listen=members["n1"] + "-new"))
            await _until(lambda: "new" in groups)
            await groups["new"].broadcast(b"hello")
            await _until(lambda: all(s.count == 81 for s in states.values()))
            received = _stat(groups["new"], "raft.snapshot_chunks_received")
            installed = _stat(groups["new"], "raft.snapshots_installed")
            nursery.cancel_scope.cancel()
    assert installed == 1 and states["new"].restored == 1
    assert received >= BigState.size // (256 << 10), received
    assert len({(s.count, s.chain) for s in states.values()}) == 1


async def test_a_replica_restarts_from_its_own_latest_snapshot(
        autojump_clock: trio.testing.MockClock) -> None:
    members = {"solo": "mem://solo-snap"}
    storage = MemoryStorage()
    for round_ in range(2):
        ledger = Ledger()
        async with rpcx_broadcast.open_replica("solo", members, ledger, bytes, RAFT,
                                               storage=storage, snapshot_every=10) as rep:
            if round_ == 0:
                for k in range(35):
                    await rep.update(b"solo/%d" % k)
                total = ledger.total
            else:
                await rep.wait_applied(35)
                assert ledger.restored == 1
                assert ledger.total == total
                assert rep.applied == 35
                assert storage.snapshot is not None and storage.snapshot.index >= 30


def test_snapshot_every_needs_snapshot_and_restore() -> None:
    class Plain:
        def apply(self, update: bytes) -> None:
            return None

    async def main() -> None:
        async with rpcx_broadcast.open_replica("a", {"a": "mem://plain"}, Plain(), bytes,
                                               RAFT, snapshot_every=10):
            pass

    with pytest.raises(TypeError, match="snapshot"):
        trio.run(main)


def _disk(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.iterdir())


async def test_100k_entries_keep_the_log_and_the_files_bounded(tmp_path: Path) -> None:
    """One member (its own majority) on FileStorage without fsync: 100,000 small
    broadcasts (thousands of entries: broadcasts accepted in one turn share an entry)
    with a snapshot every 100 entries keep the in-memory log under 100 + one window and
    the directory under two segments plus a snapshot, all along."""
    storage = FileStorage(tmp_path, segment_bytes=256 << 10, fsync=False)
    members = {"a": "mem://bounded-a"}
    total = 100_000
    longest = biggest = 0
    with trio.fail_after(300):
        async with rpcx_broadcast.open_group("a", members, RAFT, storage=storage,
                                             snapshot_every=100) as group:
            async def reader() -> None:
                async for _ in group.deliveries:
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)

                async def writer(w: int) -> None:
                    nonlocal longest, biggest
                    for k in range(w, total, writers):
                        await group.broadcast(b"%d" % k)
                        if k % 5000 == 0:
                            longest = max(longest, _stat(group, "raft.log"))
                            biggest = max(biggest, _disk(tmp_path))

                writers = 32  # concurrent broadcasts share Readies (and appends)
                async with trio.open_nursery() as writing:
                    for w in range(writers):
                        writing.start_soon(writer, w)
                await group.wait_stable()
                stats = group.statistics()
                member = group._node
                assert isinstance(member, RaftMember)
                entries = member.node.log.last_index
                nursery.cancel_scope.cancel()
    assert stats.deliveries == total
    assert entries >= 1_000, entries
    assert stats.buffer_sizes["raft.snapshots_taken"] >= entries // (100 + 2 * 256)
    assert longest <= 100 + 2 * 256
    assert biggest <= 2 * (256 << 10) + (64 << 10)
    assert _disk(tmp_path) <= 2 * (256 << 10) + (64 << 10)
    assert len(os.listdir(tmp_path)) <= 4


def test_the_member_refuses_a_snapshot_that_is_not_a_group_state() -> None:
    from rpcx_broadcast.core.raft_messages import Config, HardState, Snapshot

    storage = MemoryStorage(HardState(1, ""), Snapshot(5, 1, Config(("a",)), b"junk"))
    with pytest.raises(ValueError, match="not a raft group's snapshot"):
        RaftMember("a", {"a": "mem://junk"}, storage=storage)
