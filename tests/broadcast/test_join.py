"""Joining and leaving a running group over rpcx (open_group(join=...)), with agreed
views: a fourth member joins a group of three mid-run under every joinable order and
broadcasts too; every member's journal (the joiner's from its starting point) passes the
order's checker and all agree on the views. Graceful leave, a join to nowhere, the
Lamport refusal, a lossy simulated network and real processes over TCP."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import trio
import trio.testing

import rpcx
import rpcx_broadcast
from rpcx_broadcast import History, View
from rpcx_broadcast.runtime import FIFO_TOTAL, JOINABLE_ORDERS, ORDERS, TOTAL, JoinError
from rpcx_broadcast.runtime.node import Delivery
from rpcx_broadcast.testing.properties import prior_from_counts
from tests.broadcast._groups import Journals, mem_members

PER_MEMBER = 40
JOINER_COUNT = 20
TOTAL_ORDERS = (TOTAL, FIFO_TOTAL)


class Outcome:
    def __init__(self) -> None:
        self.journals = Journals()
        self.views: dict[str, list[View]] = {}
        self.deliveries: dict[str, list[Delivery]] = {}
        self.start: rpcx_broadcast.runtime.JoinStart | None = None

    def prior(self, order: str, joiner: str, first: str) -> frozenset[tuple[str, int]]:
        """The messages before the joiner's starting point."""
        assert self.start is not None
        if order in TOTAL_ORDERS:
            # the first start.index messages of the group's one order
            return frozenset(_id(d) for d in self.deliveries[first][: self.start.index])
        return prior_from_counts(self.start.delivered)

    def history(self, order: str, joiner: str, first: str) -> History:
        return History.build(self.journals.logs,
                             prior={joiner: self.prior(order, joiner, first)})


def _id(d: Delivery) -> tuple[str, int]:
    return (d.origin, d.seq)


async def run_join(order: str, members: Mapping[str, str], joiner: str, joiner_address: str,
                   *, transports: Mapping[str, rpcx.Transport] | None = None,
                   join_at: float = 0.15, deadline: float = 120.0,
                   failure_timeout: float | None = 2.0) -> Outcome:
    """Members broadcast PER_MEMBER messages every 10 ms; ``joiner`` joins via the second
    member's address at ``join_at`` and broadcasts JOINER_COUNT. Halfway through, members
    wait until the joiner is in, so it joins mid-run in every schedule (a lossy network
    can delay a join past the end otherwise). Everyone reads until it has every message
    past its starting point, then all record their views and leave."""
    out = Outcome()
    joined = trio.Event()
    total = PER_MEMBER * len(members) + JOINER_COUNT
    everyone = [*members, joiner]
    finished = {m: trio.Event() for m in everyone}
    viewed = {m: trio.Event() for m in everyone}
    contact = members[sorted(members)[1]]

    async def body(me: str, group: rpcx_broadcast.Group, count: int) -> None:
        log = out.deliveries.setdefault(me, [])
        expected = total
        if group.start is not None:
            out.start = group.start
            before = (group.start.index if order in TOTAL_ORDERS
                      else sum(group.start.delivered.values()))
            expected = total - before

        async def reader() -> None:
            async for delivery in group.deliveries:
                log.append(delivery)
                if len(log) == expected:
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            for k in range(count):
                if k == count // 2 and me != joiner:
                    await joined.wait()
                await group.broadcast(f"{me}/{k}".encode())
                await trio.sleep(0.01)
        await group.wait_stable()
        finished[me].set()
        for event in finished.values():
            await event.wait()
        # Views are agreed, not installed at one instant: over a lossy network the
        # InstallView may still be on its way (retransmitted until acked).
        assert out.start is not None
        await group.wait_view(out.start.view)
        out.views[me] = list(group.views)
        viewed[me].set()
        for event in viewed.values():  # nobody leaves (a new view) before all recorded
            await event.wait()

    async def member(me: str) -> None:
        transport = transports[me] if transports else None
        async with rpcx_broadcast.open_group(me, members, order, transport=transport,
                                             failure_timeout=failure_timeout,
                                             journal=out.journals.for_member(me)) as group:
            await body(me, group, PER_MEMBER)

    async def newcomer() -> None:
        await trio.sleep(join_at)
        transport = transports[joiner] if transports else None
        async with rpcx_broadcast.open_group(joiner, order=order, join=contact,
                                             listen=joiner_address, transport=transport,
                                             failure_timeout=failure_timeout,
                                             journal=out.journals.for_member(joiner)
                                             ) as group:
            assert group.members[-1] == joiner and group.view >= 1
            joined.set()
            await body(joiner, group, JOINER_COUNT)

    with trio.fail_after(deadline):
        async with trio.open_nursery() as nursery:
            for me in members:
                nursery.start_soon(member, me)
            nursery.start_soon(newcomer)
    return out


def check_outcome(out: Outcome, order: str, members: Mapping[str, str], joiner: str) -> None:
    first = sorted(members)[0]
    history = out.history(order, joiner, first)
    found = rpcx_broadcast.check(history, ORDERS[order])
    assert found is None, found
    assert out.start is not None
    prior = out.prior(order, joiner, first)
    # the joiner really joined mid-run: some messages before its start, some after
    assert 0 < len(prior) < PER_MEMBER * len(members), len(prior)
    joined = out.deliveries[joiner]
    assert any(d.origin != joiner for d in joined)
    assert all(d.view >= out.start.view for d in joined)
    total = PER_MEMBER * len(members) + JOINER_COUNT
    for me in members:
        assert len(out.deliveries[me]) == total, me
    assert len(joined) == total - len(prior)
    if order in TOTAL_ORDERS:
        # positions in the one order: the joiner continues the group's numbering
        assert [d.index for d in joined] == list(range(out.start.index, total))
        reference = [_id(d) for d in out.deliveries[first]]
        assert [_id(d) for d in joined] == reference[out.start.index:]
    # agreed views: the same sequence everywhere (the joiner's starts at its view)
    admitted = View(out.start.view, (*sorted(members), joiner))
    for me, views in out.views.items():
        assert views[-1] == admitted, (me, views)
        if me != joiner:
            assert views == [View(0, tuple(sorted(members))), admitted], (me, views)
    assert out.views[joiner] == [admitted]


@pytest.mark.parametrize("order", JOINABLE_ORDERS)
async def test_a_fourth_member_joins_a_running_group(
        order: str, autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    joiner_address = f"{members['n0']}-joiner"
    out = await run_join(order, members, "j3", joiner_address)
    check_outcome(out, order, members, "j3")


async def test_joining_over_a_lossy_simulated_network(
        autojump_clock: trio.testing.MockClock) -> None:
    net = rpcx.SimNetwork(seed=5, faults=rpcx.LinkFaults(drop=0.05, duplicate=0.02,
                                                         delay=(0.001, 0.01)))
    members = {f"s{i}": f"sim://s{i}" for i in range(3)}
    transports = {me: net.transport(me) for me in [*members, "sj"]}
    # No failure detector: this is about joining under loss; with one, a lossy stretch
    # can (rightly) suspect and remove a live member, which other tests cover.
    out = await run_join("fifo_total", members, "sj", "sim://sj", transports=transports,
                         deadline=600.0, failure_timeout=None)
    check_outcome(out, "fifo_total", members, "sj")
    assert sum(1 for e in net.trace if e.fate == "dropped") > 0, "the network lost packets"


async def test_a_member_leaves_and_the_rest_carry_on(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    journals = Journals()
    views: dict[str, list[View]] = {}
    done = {"n0": trio.Event(), "n1": trio.Event()}

    async def member(me: str) -> None:
        async with rpcx_broadcast.open_group(me, members, "fifo_total",
                                             journal=journals.for_member(me)) as group:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, group)
                for k in range(10):
                    await group.broadcast(f"{me}/{k}".encode())
                await group.wait_stable()
                if me == "n2":
                    nursery.cancel_scope.cancel()
                    return  # leave the block normally: a graceful leave
                with trio.fail_after(1.5):  # before any failure detection (2 s) could
                    view = await group.wait_view(1)
                assert view == View(1, ("n0", "n1")) == group.views[-1]
                assert group.members == ("n0", "n1") and group.view == 1
                for k in range(10, 30):  # the rest carry on in the new view
                    await group.broadcast(f"{me}/{k}".encode())
                await group.wait_stable()
                views[me] = group.views
                done[me].set()
                await done["n0"].wait()  # nobody leaves before both have recorded views
                await done["n1"].wait()
                nursery.cancel_scope.cancel()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for me in members:
                nursery.start_soon(member, me)
    assert views["n0"] == views["n1"] == [View(0, ("n0", "n1", "n2")), View(1, ("n0", "n1"))]
    # n2 stopped early (it left), so agreement is only asked of n0 and n1
    history = journals.history(crashed={"n2"})
    assert rpcx_broadcast.check(history, "fifo_total") is None
    for me in ("n0", "n1"):
        assert journals.delivered(me) == 10 + 2 * 30  # n2: 10, n0 and n1: 30 each


async def test_joining_where_nobody_listens_fails_within_the_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    with pytest.raises(JoinError, match="could not join the group via mem://nobody-here"):
        async with rpcx_broadcast.open_group("x", order="fifo", join="mem://nobody-here",
                                             listen="mem://x-joiner", join_timeout=3.0):
            raise AssertionError("admitted to a group that does not exist")
    assert trio.current_time() - start == pytest.approx(3.0, abs=0.5)


async def test_lamport_total_order_refuses_joiners() -> None:
    with pytest.raises(ValueError, match="needs a fixed set of members"):
        async with rpcx_broadcast.open_group("x", order="lamport_fifo_total",
                                             join="mem://anyone", listen="mem://x"):
            raise AssertionError("unreachable")


async def test_a_joiner_with_another_order_is_refused(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)

    async def member(me: str, task_status: trio.TaskStatus[None]) -> None:
        async with rpcx_broadcast.open_group(me, members, "causal"):
            task_status.started()
            await trio.sleep_forever()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for me in members:
                await nursery.start(member, me)
            with pytest.raises(JoinError, match="runs order 'causal', not 'fifo'"):
                async with rpcx_broadcast.open_group("j", order="fifo", join=members["n2"],
                                                     listen=members["n0"] + "-j"):
                    pass
            nursery.cancel_scope.cancel()


async def _drain(group: rpcx_broadcast.Group) -> None:
    async for _ in group.deliveries:
        pass


async def test_a_member_that_left_cannot_join_again_under_its_old_name(
        autojump_clock: trio.testing.MockClock) -> None:
    # Its broadcasts would be numbered from 0 again, under old messages counted as
    # delivered everywhere: the coordinator refuses the name, and a new one is fine.
    members = mem_members(3)
    left = trio.Event()

    async def member(me: str, task_status: trio.TaskStatus[None]) -> None:
        async with rpcx_broadcast.open_group(me, members, "fifo") as group:
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, group)
                for k in range(3):
                    await group.broadcast(f"{me}/{k}".encode())
                await group.wait_stable()
                if me == "n2":
                    nursery.cancel_scope.cancel()
                    return  # a graceful leave
                await group.wait_view(1)
                left.set()
                await trio.sleep_forever()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for me in members:
                await nursery.start(member, me)
            await left.wait()
            with pytest.raises(JoinError, match="'n2' broadcast 3 messages in an earlier "
                               "membership; a process joining again needs a new name"):
                async with rpcx_broadcast.open_group("n2", order="fifo", join=members["n0"],
                                                     listen=members["n2"] + "-again"):
                    raise AssertionError("admitted under a used name")
            async with rpcx_broadcast.open_group("n2b", order="fifo", join=members["n0"],
                                                 listen=members["n2"] + "-b") as group:
                assert group.members == ("n0", "n1", "n2b")
                await group.broadcast(b"hello")
                async for delivery in group.deliveries:
                    assert (delivery.origin, delivery.seq) == ("n2b", 0)
                    break
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("order", [TOTAL, FIFO_TOTAL])
async def test_the_sequencer_leaves_and_hands_over_to_the_next_oldest(
        order: str, autojump_clock: trio.testing.MockClock) -> None:
    # n0 (the oldest, so the sequencer) broadcasts 10 and leaves while n1 and n2 are
    # still broadcasting: n1 takes over the numbering, and the order goes on.
    members = mem_members(3)
    journals = Journals()
    logs: dict[str, list[tuple[str, int]]] = {}
    views: dict[str, list[View]] = {}
    total = 10 + 2 * 30
    finished = {"n1": trio.Event(), "n2": trio.Event()}

    async def member(me: str) -> None:
        log = logs.setdefault(me, [])
        complete = trio.Event()
        async with rpcx_broadcast.open_group(me, members, order,
                                             journal=journals.for_member(me)) as group:
            async def reader() -> None:
                async for delivery in group.deliveries:
                    log.append((delivery.origin, delivery.seq))
                    if len(log) == total:
                        complete.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                for k in range(10 if me == "n0" else 30):
                    await group.broadcast(f"{me}/{k}".encode())
                    await trio.sleep(0.01)
                if me == "n0":
                    nursery.cancel_scope.cancel()
                    return  # leave the block normally: a graceful leave
                with trio.fail_after(30):
                    await complete.wait()
                views[me] = list(group.views)
                finished[me].set()
                for event in finished.values():
                    await event.wait()
                nursery.cancel_scope.cancel()

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for me in members:
                nursery.start_soon(member, me)
    assert logs["n1"] == logs["n2"] and len(logs["n1"]) == total
    assert logs["n0"] == logs["n1"][:len(logs["n0"])], "the leaver saw a prefix"
    assert len(logs["n0"]) < total
    found = rpcx_broadcast.check(journals.history(crashed={"n0"}), ORDERS[order])
    assert found is None, found
    for me in ("n1", "n2"):
        assert views[me][-1] == View(1, ("n1", "n2")), views[me]
