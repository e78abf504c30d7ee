"""Snapshots and log compaction keep memory and storage bounded over long runs."""

from __future__ import annotations

import pytest

from rpcx_broadcast.core.storage import MemoryStorage
from rpcx_broadcast.testing.raft_sim import Cluster


def run(entries: int, snapshot_every: int, batch: int = 1000) -> tuple[int, int, Cluster]:
    """Replicate ``entries`` small entries on 3 nodes, each compacting every
    ``snapshot_every`` applied entries; the largest log and stored log seen."""
    cluster = Cluster(("a", "b", "c"), record=False, keep_sent=False)
    cluster.elect("a")
    leader = cluster.nodes["a"]
    largest_log = largest_stored = 0
    for _ in range(entries // batch):
        for _ in range(batch):
            leader.propose(b"x")
        cluster.process("a")
        cluster.deliver()
        for name, node in cluster.nodes.items():
            if node.applied - node.log.snapshot_index >= snapshot_every:
                cluster.snapshot(name)
            storage = cluster.storages[name]
            assert isinstance(storage, MemoryStorage)
            largest_log = max(largest_log, len(node.log))
            largest_stored = max(largest_stored, len(storage.entries))
    return largest_log, largest_stored, cluster


def test_200000_entries_with_periodic_snapshots_keep_the_logs_bounded() -> None:
    largest_log, largest_stored, cluster = run(200_000, snapshot_every=10_000)
    assert largest_log < 10_000 + 1000 and largest_stored < 10_000 + 1000
    assert {m.index for m in cluster.machines.values()} == {200_001}  # + the leader's no-op
    assert len({m.digest for m in cluster.machines.values()}) == 1


def test_without_snapshots_the_log_grows_with_the_run() -> None:
    largest_log, largest_stored, _ = run(30_000, snapshot_every=10**9)
    assert largest_log > 30_000 and largest_stored > 30_000


@pytest.mark.slow
def test_1000000_entries_with_periodic_snapshots_keep_the_logs_bounded() -> None:
    largest_log, largest_stored, cluster = run(1_000_000, snapshot_every=20_000)
    assert largest_log < 21_000 and largest_stored < 21_000
    assert {m.index for m in cluster.machines.values()} == {1_000_001}
