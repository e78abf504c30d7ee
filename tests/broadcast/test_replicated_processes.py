"""The replicated key-value service with 5 real processes on loopback TCP: clients read,
write and compare-and-set through one channel to all five while the leader is killed with
SIGKILL and restarted from its directory, five times. The history is linearizable, no
acknowledged write is lost, none is applied twice, reads never go back, and every replica
ends with the same contents."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import rpcx
from examples.kvstore.__main__ import Register
from examples.kvstore.kvstore_rpcx import KvStoreClient, Summary
from rpcx_broadcast.testing.cluster import ProcessCluster
from rpcx_broadcast.testing.workload import Workload

NAMES = tuple(f"r{i}" for i in range(5))


async def _summary(address: str) -> Summary | None:
    try:
        async with rpcx.open_channel(address, retry=rpcx.NO_RETRY) as channel:
            return await KvStoreClient(channel).summary(timeout=2)
    except rpcx.RpcError:
        return None


async def _run(cluster: ProcessCluster, workload: Workload, kills: list[str]
               ) -> list[Summary | None]:
    async with rpcx.open_channel(cluster.addresses, default_timeout=15) as channel:
        store = KvStoreClient(channel)
        await store.summary(timeout=60)
        done = False
        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(workload.client, f"c{i}", Register(store), lambda: done)
            for _ in range(5):
                await trio.sleep(1.0)
                leader = await cluster.leader()
                cluster.kill(leader)
                kills.append(leader)
                await trio.sleep(1.5)  # the survivors elect a leader and go on
                cluster.start(leader)
                while await _summary(cluster.members[leader]) is None:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            await trio.sleep(1.0)
            done = True
        final = await store.summary()
        with trio.move_on_after(30):
            while True:
                summaries = [await _summary(a) for a in cluster.addresses]
                if all(s is not None and s.sha256 == final.sha256 for s in summaries):
                    break
                await trio.sleep(0.2)
        return [final, *summaries]


@pytest.mark.slow
def test_five_replicas_survive_five_sigkills_of_the_leader(tmp_path: Path) -> None:
    workload = Workload(keys=3, seed=5)
    kills: list[str] = []
    with ProcessCluster("examples.kvstore.store:KvStore", NAMES, directory=tmp_path,
                        grace=10) as cluster:
        final, *summaries = trio.run(_run, cluster, workload, kills)
    assert len(kills) == 5
    assert final is not None
    problems = workload.problems(final.revision, timeout=120)
    assert not problems, "; ".join(problems)
    assert all(s is not None and s.sha256 == final.sha256 for s in summaries), (
        "replicas differ after the run")
    assert workload.writes_acked > 50
