"""A long run: 100,000 FIFO-total broadcasts with loss; buffer sizes stay flat.

Three nodes, sequencer FIFO-total order over batched gossip, 1 % loss, 10-30 ms links,
1,000 broadcasts per second offered. Stability tracking collects the gossip store, the
flow-control window (128 unstable own broadcasts) throttles senders, and the maximum of
every buffer stays under a fixed bound derived from the window, and the average size in
the second half of the run is no larger than in the first (no upward trend; single
peaks come from a lost batch waiting for repair).
"""

from __future__ import annotations

from rpcx_broadcast import GossipBroadcast, SequencerTotal, Stack
from rpcx_broadcast.core import Hub
from rpcx_broadcast.testing.properties import check
from rpcx_broadcast.testing.sim import FaultPlan, SimConfig, simulate

N = 100_000


def _halves(samples: list[tuple[float, dict[str, int]]]) -> tuple[dict[str, float], ...]:
    samples = samples[:-1]  # the last sample is taken after the run drained
    half = len(samples) // 2
    out = []
    for part in (samples[:half], samples[half:]):
        total: dict[str, float] = {}
        for _, sizes in part:
            for name, size in sizes.items():
                total[name] = total.get(name, 0) + size / len(part)
        out.append(total)
    return tuple(out)


def test_hundred_thousand_broadcasts_flat_buffers() -> None:
    nodes = ("a", "b", "c")

    def make(me: str, members: tuple[str, ...]) -> Stack:
        return Stack([GossipBroadcast(me, members, topology=Hub(), batch_delay=0.02,
                                      sync_interval=0.2, window=128),
                      SequencerTotal(me, members, fifo=True)])

    broadcasts = tuple((i / 1000, nodes[i % 3]) for i in range(N))
    config = SimConfig(nodes, make, broadcasts, FaultPlan(loss=0.01, delay=(0.01, 0.03)),
                       seed=7, sample_every=1.0, max_time=1e9)
    result = simulate(config)
    assert result.pending_broadcasts == 0
    assert len(result.broadcast_times) == N
    first, second = _halves(result.buffer_samples)
    means = {k: (round(first[k], 1), round(second[k], 1)) for k in first}
    print(f"{N} broadcasts, {result.messages_sent / N:.2f} msgs/broadcast, "
          f"t_end={result.end_time:.1f}s; mean sizes (1st half, 2nd half) {means}; "
          f"peaks {result.max_buffers}")
    for name, mean in second.items():
        assert mean <= first.get(name, 0) * 1.2 + 8, (name, means)
    assert max(result.max_buffers.values()) <= 3 * 128 * 2, result.max_buffers
    assert check(result.history, "fifo_total") is None
