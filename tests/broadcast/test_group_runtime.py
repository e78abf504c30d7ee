"""open_group over rpcx: groups of 3 in one process, over mem:// and a lossy SimNetwork,
for every order; the journals (in stack order) go through the checkers."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import rpcx
import rpcx_broadcast
from rpcx_broadcast.runtime import ORDERS, make_stack
from tests.broadcast._groups import Journals, mem_members, run_group

ALL_ORDERS = sorted(ORDERS)


@pytest.mark.parametrize("order", ALL_ORDERS)
async def test_three_members_over_memory_streams(order: str,
                                                 autojump_clock: trio.testing.MockClock
                                                 ) -> None:
    members = mem_members(3)
    journals = await run_group(members, order, per_member=40)
    history = journals.history()
    assert rpcx_broadcast.check(history, ORDERS[order]) is None, \
        rpcx_broadcast.check(history, ORDERS[order])
    for me in members:
        assert journals.delivered(me) == 120


@pytest.mark.parametrize("order", ALL_ORDERS)
async def test_three_members_over_a_lossy_simulated_network(
        order: str, autojump_clock: trio.testing.MockClock) -> None:
    net = rpcx.SimNetwork(seed=7, faults=rpcx.LinkFaults(drop=0.1, duplicate=0.05,
                                                         delay=(0.001, 0.02)))
    members = {f"s{i}": f"sim://s{i}" for i in range(3)}
    transports = {me: net.transport(me) for me in members}
    journals = await run_group(members, order, per_member=30, transports=transports,
                               deadline=600.0)
    found = rpcx_broadcast.check(journals.history(), ORDERS[order])
    assert found is None, f"seed 7: {found}"
    assert sum(1 for e in net.trace if e.fate == "dropped") > 0, "the network lost packets"


async def test_broadcast_waits_while_the_stack_is_not_writable(
        autojump_clock: trio.testing.MockClock) -> None:
    # b never runs: a's gossip window (4) fills with unstable messages, and the fifth
    # broadcast waits instead of growing a buffer.
    members = mem_members(2)
    a, _ = sorted(members)

    def small_window(me: str, names: tuple[str, ...]) -> rpcx_broadcast.Stack:
        return make_stack("fifo", me, names, window=4)

    async with rpcx_broadcast.open_group(a, members, "fifo", stack=small_window,
                                         failure_timeout=None) as group:
        for k in range(4):
            assert await group.broadcast(b"%d" % k) == k
        with trio.move_on_after(5.0) as waited:
            await group.broadcast(b"blocked")
        assert waited.cancelled_caught, "the fifth broadcast should wait for b"
        stats = group.statistics()
        assert stats.broadcasts == 4 and stats.pending_broadcasts == 0
        assert stats.deliveries == 4, "own messages are delivered at once under FIFO"


async def test_leaving_the_block_stops_everything(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    before = _count_tasks(trio.lowlevel.current_root_task())
    for _ in range(2):  # the same addresses again: the first groups released them
        await run_group(members, "causal", per_member=5)
    assert _count_tasks(trio.lowlevel.current_root_task()) == before


def _count_tasks(task: trio.lowlevel.Task | None) -> int:
    if task is None:
        return 0
    return 1 + sum(_count_tasks(child) for nursery in task.child_nurseries
                   for child in nursery.child_tasks)


async def test_a_crashed_member_is_suspected_and_the_rest_carry_on(
        autojump_clock: trio.testing.MockClock) -> None:
    net = rpcx.SimNetwork(seed=11, faults=rpcx.LinkFaults(delay=(0.001, 0.005)))
    members = {f"s{i}": f"sim://s{i}" for i in range(3)}
    journals = Journals()
    victim = "s2"
    survivors_done = {m: trio.Event() for m in members if m != victim}

    async def member(me: str, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            async with rpcx_broadcast.open_group(
                    me, members, "fifo_total", transport=net.transport(me),
                    journal=journals.for_member(me), failure_timeout=1.0) as group:
                task_status.started(scope)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_drain, group)
                    for k in range(200):
                        await group.broadcast(f"{me}/{k}".encode())
                        await trio.sleep(0.01)
                    await group.wait_stable()
                    if me != victim:
                        assert victim not in group.members
                        assert group.view == 1
                        survivors_done[me].set()
                        for done in survivors_done.values():  # stay for the others
                            await done.wait()
                    nursery.cancel_scope.cancel()

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            scopes = {me: await nursery.start(member, me) for me in members}
            await trio.sleep(0.7)
            net.crash(victim)
            scopes[victim].cancel()
            for done in survivors_done.values():
                await done.wait()
    history = journals.history(crashed={victim})
    assert rpcx_broadcast.check(history, "fifo_total") is None, \
        rpcx_broadcast.check(history, "fifo_total")
    for me in survivors_done:
        assert journals.delivered(me) >= 400


async def _drain(group: rpcx_broadcast.Group) -> None:
    async for _ in group.deliveries:
        pass
