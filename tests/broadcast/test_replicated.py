"""open_replica: state machine replication with the order declared next to the object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

import rpcx_broadcast
from rpcx_broadcast import CAUSAL, FIFO, FIFO_TOTAL, RELIABLE, ReplicationWarning, open_replica
from rpcx_broadcast.replicated import Replica, is_commutative
from tests.broadcast._groups import mem_members
from tests.runtime.echo_rpcx import Blob


class Log:
    """Not commutative: the state is the sequence of updates."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []

    def apply(self, update: bytes) -> int:
        if update == b"bad":
            raise ValueError("bad update")   # deterministic: raises at every replica
        self.entries.append(update)
        return len(self.entries)


class Counter:
    """Commutative: the state is a sum of ``Blob`` lengths."""

    def __init__(self) -> None:
        self.total = 0

    def apply(self, update: Blob) -> int:
        self.total += len(update.data)
        return self.total


async def _run_replicas(members: dict[str, str], make: Callable[[], object],
                        update_type: type, order: str,
                        work: Callable[[str, Replica[object, object]], Awaitable[None]],
                        expected_updates: int, **options: Any) -> dict[str, object]:
    machines: dict[str, object] = {}
    finished: list[str] = []
    everyone = trio.Event()

    async def member(me: str) -> None:
        machine = make()
        machines[me] = machine
        replica: Replica[object, object]
        async with open_replica(me, members, machine, update_type, order,  # type: ignore[arg-type]
                                failure_timeout=None, **options) as replica:
            await work(me, replica)
            with trio.fail_after(60):
                await replica.wait_applied(expected_updates)
                # Stay until every replica has applied everything: a member that leaves
                # early (the sequencer above all) would stop the others' progress.
                finished.append(me)
                if len(finished) == len(members):
                    everyone.set()
                await everyone.wait()

    async with trio.open_nursery() as nursery:
        for me in members:
            nursery.start_soon(member, me)
    return machines


async def test_fifo_total_replicas_of_a_non_commutative_log_end_identical(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    answers: dict[str, list[int]] = {}

    async def work(me: str, replica: Replica[object, object]) -> None:
        answers[me] = []
        for k in range(10):
            position = await replica.update(f"{me}-{k}".encode())
            assert isinstance(position, int)
            answers[me].append(position)

    machines = await _run_replicas(members, Log, bytes, FIFO_TOTAL, work, 30)
    logs = [m.entries for m in machines.values() if isinstance(m, Log)]
    assert len(logs) == 3 and len(logs[0]) == 30
    assert logs[0] == logs[1] == logs[2]
    for me, positions in answers.items():
        # update() returned this replica's log length right after applying its own entry
        for k, position in enumerate(positions):
            assert logs[0][position - 1] == f"{me}-{k}".encode()


async def test_causal_replicas_of_a_commutative_counter_converge(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    rpcx_broadcast.commutative(Blob)
    try:
        async def work(me: str, replica: Replica[object, object]) -> None:
            for k in range(1, 8):
                total = await replica.update(Blob(data=b"x" * k))
                assert isinstance(total, int) and total >= k

        machines = await _run_replicas(members, Counter, Blob, CAUSAL, work, 21)
    finally:
        del Blob.__rpcx_commutative__  # type: ignore[attr-defined]
    totals = {m.total for m in machines.values() if isinstance(m, Counter)}
    assert totals == {3 * sum(range(1, 8))}


async def test_a_weaker_order_without_commuting_updates_warns(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(1)
    (me,) = members
    with pytest.warns(ReplicationWarning, match="causal.*concurrent updates to commute"):
        async with open_replica(me, members, Log(), bytes, CAUSAL, failure_timeout=None):
            pass
    for order, needs in [(FIFO, "updates of different members to commute"),
                         (RELIABLE, "all updates to commute")]:
        with pytest.warns(ReplicationWarning, match=needs):
            async with open_replica(me, mem_members(1), Log(), bytes, order,
                                    failure_timeout=None):
                pass


async def test_no_warning_for_total_order_or_a_declared_commutative_type(
        autojump_clock: trio.testing.MockClock, recwarn: pytest.WarningsRecorder) -> None:
    members = mem_members(1)
    (me,) = members
    async with open_replica(me, members, Log(), bytes, FIFO_TOTAL, failure_timeout=None):
        pass
    async with open_replica(me, mem_members(1), Log(), bytes, CAUSAL, commutative=True,
                            failure_timeout=None):
        pass
    assert not [w for w in recwarn if issubclass(w.category, ReplicationWarning)]
    assert not is_commutative(bytes)


async def test_an_update_that_raises_raises_at_its_caller_and_replicas_carry_on(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(2)
    first = min(members)

    async def work(me: str, replica: Replica[object, object]) -> None:
        if me == first:
            with pytest.raises(ValueError, match="bad update"):
                await replica.update(b"bad")
            assert await replica.update(b"good") == 1
        else:
            await replica.update(b"other")

    machines = await _run_replicas(members, Log, bytes, FIFO_TOTAL, work, 3)
    logs = [m.entries for m in machines.values() if isinstance(m, Log)]
    assert logs[0] == logs[1]
    assert sorted(logs[0]) == [b"good", b"other"]


def test_update_types_must_be_bytes_or_generated() -> None:
    from rpcx_broadcast.replicated import _codec_for

    encode, decode = _codec_for(Blob)
    assert decode(encode(Blob(data=b"\x00\x01"))) == Blob(data=b"\x00\x01")
    with pytest.raises(TypeError, match="bytes or a generated rpcx struct or union"):
        _codec_for(int)
