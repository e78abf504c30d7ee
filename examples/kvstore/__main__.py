"""The replicated key-value store demo:

    python -m examples.kvstore

Starts 3 replica processes of the ``KvStore`` service of ``store.py`` on loopback TCP
(``python -m rpcx_broadcast.serve examples.kvstore.store:KvStore ...``, each keeping its
log in a temporary directory). Six clients share one channel to all three and read, write
and compare-and-set three keys for a few seconds; partway through, the leader is killed
with SIGKILL. The demo prints how long the group took to acknowledge a write again,
whether every write took effect exactly once, whether any read went back in time and the
linearizability verdict; then it restarts the killed replica and shows it catch up.
Exit status 0 if all held.
"""

from __future__ import annotations

import contextlib
import sys

import trio

import rpcx
from examples.kvstore.kvstore_rpcx import KvStoreClient, NotFound
from rpcx_broadcast.testing.cluster import ProcessCluster
from rpcx_broadcast.testing.workload import Workload


class Register:
    """The store as the workload calls it: versions are the store's revisions."""

    def __init__(self, store: KvStoreClient) -> None:
        self.store = store

    async def read(self, key: str) -> tuple[str | None, int]:
        try:
            entry = await self.store.get(key)
        except NotFound:
            return None, 0
        return entry.value, entry.revision

    async def write(self, key: str, value: str) -> int:
        return await self.store.put(key, value)

    async def cas(self, key: str, expected: str | None, value: str) -> bool:
        return await self.store.compare_and_set(key, expected, value=value)


async def demo(cluster: ProcessCluster, seconds: float = 8.0, kill_after: float = 3.0) -> int:
    async with rpcx.open_channel(cluster.addresses, default_timeout=10) as channel:
        store, workload = KvStoreClient(channel), Workload(keys=3, seed=7)
        await store.summary(timeout=30)  # once the replicas have elected a leader
        print(f"{await cluster.leader()} leads. Six clients read, write and compare-and-set "
              f"keys k0..k2 for {seconds:g} s through one channel to the three addresses.")
        stop_at = trio.current_time() + seconds
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(workload.client, f"c{i}", Register(store),
                                   lambda: trio.current_time() >= stop_at)
            await trio.sleep(kill_after)
            victim = await cluster.leader()
            cluster.kill(victim)
            killed_at = trio.current_time()
            print(f"  SIGKILL to the leader, {victim}, after {kill_after:g} s")
        final = await store.summary()
    failover = workload.first_ack_after(killed_at)
    print(f"{workload.writes_acked} writes acknowledged, {workload.writes_unknown} of unknown "
          f"outcome, {workload.reads_done} reads. The first write after the SIGKILL was "
          f"acknowledged {failover or float('inf'):.2f} s later ({await cluster.leader()} "
          f"leads now).")
    lost_or_twice = workload.exactly_once(final.revision)
    print(f"Exactly once (revision {final.revision}): {lost_or_twice or 'yes'}")
    went_back = workload.went_back[0] if workload.went_back else "yes"
    print(f"Reads never went back in time: {went_back}")
    verdict = workload.linearizable()
    print(f"Linearizability of {len(workload.recorder.history())} operations: {verdict}")
    print(f"Restarting {victim} from its directory ...")
    cluster.start(victim)
    caught_up = False
    with trio.move_on_after(20):
        while not caught_up:
            with contextlib.suppress(rpcx.RpcError):
                async with rpcx.open_channel(cluster.members[victim]) as channel:
                    caught_up = (await KvStoreClient(channel).summary()).sha256 == final.sha256
            await trio.sleep(0.2)
    print(f"  {victim} " + ("caught up: same contents" if caught_up else "did NOT catch up"))
    held = caught_up and verdict.ok and failover and not (lost_or_twice or workload.went_back)
    print("All held." if held else "Something did NOT hold (see above).")
    return 0 if held else 1


def main() -> int:
    with ProcessCluster("examples.kvstore.store:KvStore", ["r1", "r2", "r3"],
                        snapshot_every=5_000) as cluster:
        print("Replicas: " + ", ".join(f"{n} at {a}" for n, a in cluster.members.items()))
        return trio.run(demo, cluster)


if __name__ == "__main__":
    sys.exit(main())
