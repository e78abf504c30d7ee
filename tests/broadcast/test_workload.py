"""The Jepsen-style workload (rpcx_broadcast.testing.workload) finds what a broken store
does: writes applied twice, acknowledged writes lost, reads that go back in time; and it
stays sound when calls fail with their outcome unknown."""

from __future__ import annotations

import random

import trio
import trio.testing

import rpcx
from rpcx_broadcast.testing.workload import VersionedStore, Workload


class Store:
    """A correct in-memory store; the subclasses break it one way each."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[str, int]] = {}
        self.version = 0
        self.rng = random.Random(1)

    async def read(self, key: str) -> tuple[str | None, int]:
        await trio.sleep(self.rng.random() / 100)
        value, version = self.data.get(key, (None, 0))
        return value, version

    def apply(self, key: str, value: str) -> int:
        self.version += 1
        self.data[key] = (value, self.version)
        return self.version

    async def write(self, key: str, value: str) -> int:
        await trio.sleep(self.rng.random() / 100)
        return self.apply(key, value)

    async def cas(self, key: str, expected: str | None, value: str) -> bool:
        await trio.sleep(self.rng.random() / 100)
        if self.data.get(key, (None, 0))[0] != expected:
            return False
        self.apply(key, value)
        return True


class AppliesTwice(Store):
    def apply(self, key: str, value: str) -> int:
        super().apply(key, value)
        return super().apply(key, value) if self.version == 9 else self.version


class LosesAWrite(Store):
    async def write(self, key: str, value: str) -> int:
        if self.version == 7:
            await trio.sleep(0.001)
            return self.version  # acknowledged, never stored
        return await super().write(key, value)


class ReadsAnOldCopy(Store):
    def __init__(self) -> None:
        super().__init__()
        self.old: dict[str, tuple[str, int]] = {}

    async def read(self, key: str) -> tuple[str | None, int]:
        if self.version > 20 and not self.old:
            self.old = dict(self.data)
        if self.old and self.rng.random() < 0.3:
            value, version = self.old.get(key, (None, 0))
            return value, version
        return await super().read(key)


class FailsAfterApplying(Store):
    async def write(self, key: str, value: str) -> int:
        version = await super().write(key, value)
        if self.rng.random() < 0.2:
            raise rpcx.DeadlineExceeded("the reply was lost")
        return version


async def run(store: VersionedStore, operations: int = 400) -> Workload:
    workload = Workload(keys=2, seed=3)

    def stop() -> bool:
        return workload.reads_done + workload.writes_acked + workload.errors >= operations

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(workload.client, f"c{i}", store, stop)
    return workload


async def test_a_correct_store_passes_every_check(
        autojump_clock: trio.testing.MockClock) -> None:
    store = Store()
    workload = await run(store)
    assert workload.problems(store.version) == []
    assert workload.writes_acked == store.version > 50
    assert workload.reads_done > 100
    assert len(workload.recorder.history()) >= 400


async def test_a_write_applied_twice_is_found(autojump_clock: trio.testing.MockClock) -> None:
    store = AppliesTwice()
    workload = await run(store)
    problems = workload.problems(store.version)
    assert any(f"the store's version is {store.version}, but {workload.writes_acked} writes"
               in p for p in problems), problems


async def test_an_acknowledged_write_that_was_lost_is_found(
        autojump_clock: trio.testing.MockClock) -> None:
    store = LosesAWrite()
    workload = await run(store)
    problems = workload.problems(store.version)
    assert any(f"the store's version is {store.version}, but {store.version + 1} writes were "
               "acknowledged" in p for p in problems), problems


async def test_reads_of_an_old_copy_are_found(autojump_clock: trio.testing.MockClock) -> None:
    store = ReadsAnOldCopy()
    workload = await run(store)
    problems = workload.problems(store.version)
    assert any(p.startswith("linearizability: not linearizable") for p in problems), problems
    assert any(p.startswith("a read went back: c") for p in problems), problems


async def test_errors_leave_outcomes_open_and_the_check_stays_sound(
        autojump_clock: trio.testing.MockClock) -> None:
    store = FailsAfterApplying()
    workload = await run(store)
    assert workload.writes_unknown > 10
    assert workload.writes_acked < store.version <= workload.writes_acked + \
        workload.writes_unknown
    assert workload.problems(store.version) == []


def test_failover_is_measured_from_a_moment_to_the_next_acknowledged_write() -> None:
    workload = Workload()
    workload.acked_at = [1.0, 2.0, 5.5]
    assert workload.first_ack_after(2.5) == 3.0
    assert workload.first_ack_after(6.0) is None
