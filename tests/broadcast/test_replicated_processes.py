"""The replicated key-value service with 5 real processes on loopback TCP: clients read,
write and compare-and-set through one channel to all five while the leader is killed with
SIGKILL and restarted from its directory, five times. The history is linearizable, no
acknowledged write is lost, none is applied twice, reads never go back, and every replica
ends with the same contents."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import trio

import rpcx
from examples.kvstore.__main__ import free_ports, start, stop
from examples.kvstore.kvstore_rpcx import KvStoreClient, Summary
from examples.kvstore.workload import RegisterOp, Tally, client, keys_of
from rpcx_broadcast.testing.linearizability import KeyValue, Recorder, check_linearizable

NAMES = tuple(f"r{i}" for i in range(5))


async def _summary(address: str) -> Summary | None:
    try:
        async with rpcx.open_channel(address, retry=rpcx.NO_RETRY) as channel:
            return await KvStoreClient(channel).summary(timeout=2)
    except rpcx.RpcError:
        return None


@pytest.mark.slow
def test_five_replicas_survive_five_sigkills_of_the_leader(tmp_path: Path) -> None:
    members = {n: f"tcp://127.0.0.1:{p}" for n, p in zip(NAMES, free_ports(5), strict=True)}
    dirs = {n: str(tmp_path / n) for n in NAMES}
    procs = {n: start(n, members, dirs[n]) for n in NAMES}
    kills: list[str] = []
    recorder: Recorder[RegisterOp, object] = Recorder()
    tally = Tally()

    async def main() -> list[Summary | None]:
        async with rpcx.open_channel(list(members.values()), default_timeout=15) as channel:
            store = KvStoreClient(channel)
            await store.summary(timeout=60)
            done = False

            async def killer() -> None:
                nonlocal done
                for _ in range(5):
                    await trio.sleep(1.0)
                    leader = (await store.summary()).leader
                    os.kill(procs[leader].pid, signal.SIGKILL)
                    procs[leader].wait()
                    kills.append(leader)
                    await trio.sleep(1.5)  # the survivors elect a leader and go on
                    procs[leader] = start(leader, members, dirs[leader])
                    while await _summary(members[leader]) is None:  # noqa: ASYNC110
                        await trio.sleep(0.1)
                await trio.sleep(1.0)
                done = True

            async with trio.open_nursery() as nursery:
                nursery.start_soon(killer)
                for i in range(4):
                    nursery.start_soon(client, store, recorder, f"c{i}", keys_of(3),
                                       random.Random(i), lambda: done, tally, 15.0)
            final = await store.summary()
            with trio.move_on_after(30):
                while True:
                    summaries = [await _summary(a) for a in members.values()]
                    if all(s is not None and s.sha256 == final.sha256 for s in summaries):
                        break
                    await trio.sleep(0.2)
            return [final, *summaries]

    try:
        final, *summaries = trio.run(main)
    finally:
        stop(procs.values(), grace=10)
    assert len(kills) == 5
    assert final is not None
    verdict = check_linearizable(recorder.history(), KeyValue(), timeout=120)
    assert verdict.ok, str(verdict)
    assert tally.writes_acked <= final.revision <= tally.writes_acked + tally.writes_unknown, (
        f"revision {final.revision}: {tally.writes_acked} acknowledged, "
        f"{tally.writes_unknown} unknown")
    assert len(set(tally.put_revisions)) == len(tally.put_revisions), "a put applied twice"
    assert not tally.went_back, tally.went_back[0]
    assert all(s is not None and s.sha256 == final.sha256 for s in summaries), (
        "replicas differ after the run")
    assert tally.writes_acked > 50
