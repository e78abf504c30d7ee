"""The replicated key-value service verified the way Jepsen would, in the seeded simulator.

Each schedule (a seed) runs 3 replicas of ``examples.kvstore`` with ``serve_replicated``
over a simulated network that loses and delays packets, and 3 clients doing random reads,
writes and compare-and-sets on 2 keys through channels to every replica, while a nemesis
crashes replicas (the leader most often) and restarts them from their storage, and cuts
the network into partitions and heals it. Afterwards:

- the history of every call is linearizable (``check_linearizable``, key-value model);
- no acknowledged write is lost and none was applied twice: the store's final revision
  counts every acknowledged write once and at most every write of unknown outcome, and
  no two acknowledged puts got the same revision;
- every replica ends with the same contents.

``RPCX_JEPSEN_SCHEDULES`` sets how many schedules run (default 300, seeds 0..N-1);
``RPCX_JEPSEN_SEED`` runs one (replay a failure: the same seed takes the same path).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable

import attrs
import pytest
import trio
import trio.testing

import rpcx
import rpcx_broadcast
from examples.kvstore.__main__ import Register
from examples.kvstore.kvstore_rpcx import KvStoreClient
from examples.kvstore.store import KvStore
from rpcx.transport import LinkFaults, SimNetwork
from rpcx_broadcast import MemoryStorage, ReplicatedService
from rpcx_broadcast.testing.workload import Workload
from tests.runtime.harness import replay_exactly

SCHEDULES = int(os.environ.get("RPCX_JEPSEN_SCHEDULES", "300"))
ONE = os.environ.get("RPCX_JEPSEN_SEED")
SEEDS = [int(ONE)] if ONE is not None else list(range(SCHEDULES))
NAMES = ("n0", "n1", "n2")
RUN_FOR = 6.0
"""Seconds of simulated time the clients run (faults during the first 5)."""


@attrs.define
class Schedule:
    seed: int
    net: SimNetwork
    members: dict[str, str]
    storage: dict[str, MemoryStorage]
    running: dict[str, ReplicatedService] = attrs.Factory(dict)
    stores: dict[str, KvStore] = attrs.Factory(dict)
    scopes: dict[str, trio.CancelScope] = attrs.Factory(dict)
    events: list[str] = attrs.Factory(list)

    async def replica(self, me: str, task_status: trio.TaskStatus[None]) -> None:
        with self.scopes[me]:
            store = self.stores[me] = KvStore()
            async with rpcx_broadcast.serve_replicated(
                    me, self.members, store, storage=self.storage[me],
                    transport=self.net.transport(me), election_timeout=1.0,
                    snapshot_every=200, seed=self.seed * 10 + NAMES.index(me)) as replicated:
                self.running[me] = replicated
                task_status.started()
                await trio.sleep_forever()

    def leader(self) -> str | None:
        leaders = {r.group.coordinator for r in self.running.values()}
        return leaders.pop() if len(leaders) == 1 else None


async def nemesis(s: Schedule, nursery: trio.Nursery, rng: random.Random,
                  until: float) -> None:
    """Crash (and later restart) replicas, partition and heal, at random."""
    down: set[str] = set()
    while trio.current_time() + 1.0 < until:
        await trio.sleep(rng.uniform(0.3, 1.2))
        dice = rng.random()
        if dice < 0.45 and not down:
            victim = s.leader() if rng.random() < 0.7 else rng.choice(NAMES)
            victim = victim or rng.choice(NAMES)
            s.events.append(f"{trio.current_time():.2f} crash {victim}")
            s.net.crash(victim)
            s.scopes[victim].cancel()
            s.running.pop(victim, None)
            down.add(victim)
        elif dice < 0.75 and down:
            back = down.pop()
            s.events.append(f"{trio.current_time():.2f} restart {back}")
            s.net.restart(back)
            s.scopes[back] = trio.CancelScope()
            await nursery.start(s.replica, back)
        elif dice < 0.9:
            alone = rng.choice(NAMES)
            s.events.append(f"{trio.current_time():.2f} partition {alone} | rest")
            s.net.partition([alone], [n for n in NAMES if n != alone])
        else:
            s.events.append(f"{trio.current_time():.2f} heal")
            s.net.heal()
    s.net.heal()
    for back in sorted(down):
        s.events.append(f"{trio.current_time():.2f} restart {back}")
        s.net.restart(back)
        s.scopes[back] = trio.CancelScope()
        await nursery.start(s.replica, back)


async def _until(condition: Callable[[], bool], limit: float) -> bool:
    with trio.move_on_after(limit):
        while not condition():  # noqa: ASYNC110 (state spread over replicas)
            await trio.sleep(0.05)
        return True
    return False


async def run_schedule(seed: int) -> tuple[Schedule, Workload]:
    replay_exactly(seed)
    rng = random.Random(seed)
    net = SimNetwork(seed, faults=LinkFaults(drop=rng.choice((0.0, 0.002, 0.01)),
                                             delay=(0.001, 0.01)))
    s = Schedule(seed, net, {n: f"sim://{n}" for n in NAMES},
                 {n: MemoryStorage() for n in NAMES})
    workload = Workload(keys=2, seed=rng.randrange(2**32))
    policy = rpcx.RetryPolicy(max_attempts=100, initial_backoff=0.05, max_backoff=0.5,
                              attempt_timeout=2.0)
    async with trio.open_nursery() as nursery:
        for name in NAMES:
            s.scopes[name] = trio.CancelScope()
            await nursery.start(s.replica, name)
        start = trio.current_time()
        stop_at = start + RUN_FOR
        nursery.start_soon(nemesis, s, nursery, random.Random(rng.random()), stop_at - 1.0)
        async with contextlib.AsyncExitStack() as stack:
            channels = [await stack.enter_async_context(rpcx.open_channel(
                list(s.members.values()), transport=s.net.transport(f"c{i}"), retry=policy,
                seed=seed, keepalive_interval=1.0, keepalive_timeout=1.0,
                default_timeout=8.0)) for i in range(3)]
            async with trio.open_nursery() as clients:  # until every client has stopped
                for i, channel in enumerate(channels):
                    clients.start_soon(workload.client, f"c{i}",
                                       Register(KvStoreClient(channel)),
                                       lambda: trio.current_time() >= stop_at)
        # everything healed and restarted: every replica converges
        s.net.heal()
        converged = await _until(lambda: len(s.running) == 3 and len(
            {(st.revision, st.sha256()) for st in s.stores.values()}) == 1
            and s.leader() is not None, 60.0)
        assert converged, f"seed {seed}: replicas did not converge: " + ", ".join(
            f"{n}: revision {st.revision}" for n, st in s.stores.items()) + _events(s)
        nursery.cancel_scope.cancel()
    return s, workload


def _events(s: Schedule) -> str:
    return f" (replay: RPCX_JEPSEN_SEED={s.seed}; nemesis: {'; '.join(s.events)})"


@pytest.mark.parametrize("seed", SEEDS)
async def test_every_history_is_linearizable_and_every_write_counts_once(
        seed: int, autojump_clock: trio.testing.MockClock) -> None:
    s, workload = await run_schedule(seed)
    revision = next(iter(s.stores.values())).revision
    problems = workload.problems(revision)
    assert not problems, f"seed {seed}: {'; '.join(problems)}" + _events(s)
    assert workload.writes_acked > 0 and workload.reads_done > 0, f"seed {seed}: no progress"
