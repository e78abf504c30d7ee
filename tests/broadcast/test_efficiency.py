"""Efficiency in the simulator: 25 nodes, 100 ms links (the Maelstrom 3d/3e setting).

Targets (BROADCAST.md c, both rows at once): < 20 messages per broadcast, median stable
latency < 400 ms, max < 600 ms. "Stable latency" is the time from broadcast until every
node delivered the value. Messages count every network message, acks and repair
included. The workload is 100 broadcasts per second from random nodes for 10 s.
"""

from __future__ import annotations

import random
import statistics

from rpcx_broadcast import GossipBroadcast, Stack
from rpcx_broadcast.core import Hub
from rpcx_broadcast.testing.properties import check
from rpcx_broadcast.testing.sim import FaultPlan, Partition, SimConfig, SimResult, simulate

NODES = tuple(f"n{i}" for i in range(25))


def _run(rate: float, seconds: float, faults: FaultPlan, seed: int = 1) -> SimResult:
    rng = random.Random(seed)
    t, broadcasts = 0.0, []
    while t < seconds:
        t += rng.expovariate(rate)
        broadcasts.append((t, rng.choice(NODES)))

    def make(me: str, members: tuple[str, ...]) -> Stack:
        return Stack([GossipBroadcast(me, members, topology=Hub())])

    return simulate(SimConfig(NODES, make, tuple(broadcasts), faults, seed=seed))


def test_maelstrom_targets_both_rows() -> None:
    result = _run(100, 10, FaultPlan(delay=(0.1, 0.1)))
    count = len(result.broadcast_times)
    latencies = result.stable_latencies()
    per_op = result.messages_sent / count
    median, worst = statistics.median(latencies), max(latencies)
    summary = (f"{count} broadcasts: {per_op:.2f} msgs/broadcast, median {median * 1000:.0f} ms,"
               f" max {worst * 1000:.0f} ms")
    print(summary)
    assert check(result.history, "fifo") is None
    assert len(latencies) == count, summary
    assert per_op < 20, summary
    assert median < 0.4, summary
    assert worst < 0.6, summary


def test_agreement_after_a_partition_heals_at_scale() -> None:
    faults = FaultPlan(delay=(0.1, 0.1), loss=0.02,
                       partitions=(Partition(2.0, 4.0, frozenset(NODES[:5])),))
    result = _run(100, 6, faults, seed=2)
    assert check(result.history, "fifo") is None
    assert len(result.stable_latencies()) == len(result.broadcast_times)
