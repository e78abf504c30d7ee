"""Review of dynamic membership: views, joins, leaves and suspicions (regression tests).

- membership: a member that suspects the coordinator but cannot remove it (no majority)
  must not act as a second coordinator for joins (two different views with one id);
- a joiner redirected to a coordinator that has crashed goes back to its contact, which
  takes over once it suspects the dead coordinator, instead of knocking at the dead
  address until ``join_timeout``;
- a graceful leave right after broadcasting: the others deliver the leaver's messages
  (they are not dropped as frames from a non-member after the view change).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import pytest
import trio
import trio.testing

import rpcx
import rpcx_broadcast
from rpcx_broadcast._generated import broadcast_rpcx as idl
from tests.broadcast._groups import Journals, mem_members
from tests.broadcast.test_membership_agreement import Net as AgreementNet

# -- membership core ----------------------------------------------------------------------


def test_two_members_that_each_believe_they_coordinate_install_one_view_sequence() -> None:
    # b falsely suspects a, so both believe they coordinate, and each is asked to admit a
    # joiner: with the old rule each installed its own view 1. Now one proposal wins
    # (a's join, or b's view without a: a is alive and answers, so a majority of two
    # agrees) and everyone passes through the same views.
    for seed in range(40):
        net = AgreementNet(("a", "b"), random.Random(seed))
        net.add("j")
        net.add("k")
        a, b = net.nodes["a"], net.nodes["b"]
        net.act("b", b.suspect("a", 0.0))
        net.act("a", a.handle_join("j", "J", 0.0))
        net.act("b", b.handle_join("k", "K", 0.0))
        net.settle(5_000, quiet=False)
        net.assert_one_view_per_id()
        assert a.view is not None and b.view is not None
        newest = max((a.view, b.view), key=lambda v: v.id)
        assert newest.id >= 1
        for member in newest.members:  # its members hold it, a removed one is told
            assert net.nodes[member].view == newest
        assert a.view == b.view


def test_a_view_is_only_installed_if_all_its_members_are_told() -> None:
    for seed in range(40):
        net = AgreementNet(("a", "c"), random.Random(seed))
        net.add("j")
        a = net.nodes["a"]
        net.act("a", a.suspect("c", 0.0))  # c is slow, not dead
        net.act("a", a.handle_join("j", "J", 0.0))
        net.settle(5_000, quiet=False)
        assert a.view is not None and a.view.id >= 1 and "j" in a.view.members
        # every member of the view installed received it (c, if it stayed, would
        # otherwise never learn of j and ignore j's frames for ever)
        for member in a.view.members:
            assert net.nodes[member].view == a.view, member


def test_a_suspected_member_is_left_out_of_a_join_view_when_a_majority_remains() -> None:
    net = AgreementNet(("a", "b", "c", "d"))
    net.add("j")
    a = net.nodes["a"]
    net.down.add("d")
    net.act("a", a.suspect("d", 0.0))
    net.act("a", a.handle_join("j", "J", 0.0))
    net.settle()
    assert a.view is not None and a.view.members == ("a", "b", "c", "j")
    assert net.nodes["j"].view == net.nodes["b"].view == a.view


# -- runtime --------------------------------------------------------------------------------


async def _until(condition: Callable[[], bool], what: str = "") -> None:
    with trio.fail_after(120):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.05)


async def _drain(group: rpcx_broadcast.Group) -> None:
    async for _ in group.deliveries:
        pass


async def test_a_joiner_redirected_to_a_crashed_coordinator_is_admitted_by_its_successor(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    crash = trio.CancelScope()

    async def member(me: str, task_status: trio.TaskStatus[None]) -> None:
        with crash if me == "n0" else trio.CancelScope():
            async with rpcx_broadcast.open_group(me, members, "fifo") as group:
                task_status.started()
                await _drain(group)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for me in sorted(members):
                await nursery.start(member, me)
            crash.cancel()  # the coordinator n0 dies: no leave request
            await trio.sleep(0.05)
            # n1 still takes n0 for the coordinator and redirects there; once it
            # suspects n0 (failure_timeout 2 s) it installs a view without it and takes
            # over, so a joiner that returns to its contact is admitted well within 8 s
            async with rpcx_broadcast.open_group("j", order="fifo", join=members["n1"],
                                                 listen=members["n1"] + "-j",
                                                 join_timeout=8.0) as joiner:
                assert "n0" not in joiner.members and joiner.members[-1] == "j"
                assert joiner.coordinator == "n1"
            nursery.cancel_scope.cancel()


async def test_a_graceful_leave_right_after_broadcasting_loses_nothing(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    journals = Journals()
    stayed = {"n0": trio.Event(), "n1": trio.Event()}

    async def member(me: str) -> None:
        async with rpcx_broadcast.open_group(me, members, "fifo",
                                             journal=journals.for_member(me)) as group:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, group)
                if me == "n2":
                    for k in range(10):
                        await group.broadcast(f"{me}/{k}".encode())
                    # leave at once (normally): n2 delivered its own ten messages
                    nursery.cancel_scope.cancel()
                    return
                await group.wait_view(1)
                await trio.sleep(3.0)  # time for any repair
                stayed[me].set()
                await stayed["n0"].wait()
                await stayed["n1"].wait()
                nursery.cancel_scope.cancel()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for me in members:
                nursery.start_soon(member, me)
    assert journals.delivered("n2") == 10
    for me in ("n0", "n1"):
        # n2 did not crash: it left, so what it delivered the others deliver too
        assert journals.delivered(me) == 10, (me, journals.delivered(me))
    history = journals.history()
    assert rpcx_broadcast.check(history, "fifo") is None


class _LosesTheFirstJoin(idl.BroadcastService):
    """A contact whose first join request is lost (its answer never comes); afterwards it
    redirects to ``target``, as a member that is not the coordinator does."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.calls = 0

    async def push(self, sender: str, frames: list[idl.Frame]) -> None:
        pass

    async def deliver(self, sender: str, frames: list[idl.Frame]) -> None:
        pass

    async def join(self, member: str, address: str, order: str) -> idl.JoinReply:
        self.calls += 1
        if self.calls == 1:
            await trio.sleep_forever()
        return idl.JoinReply(redirect=self.target)


async def test_a_lost_join_request_is_retried_within_the_join_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(2)
    contact = _LosesTheFirstJoin(members["n0"])
    lossy = members["n0"] + "-lossy"

    async def member(me: str, task_status: trio.TaskStatus[None]) -> None:
        async with rpcx_broadcast.open_group(me, members, "causal") as group:
            task_status.started()
            await _drain(group)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for me in sorted(members):
                await nursery.start(member, me)
            await nursery.start(functools.partial(rpcx.serve, lossy, [contact]))
            start = trio.current_time()
            async with rpcx_broadcast.open_group("j", order="causal", join=lossy,
                                                 listen=members["n0"] + "-j",
                                                 join_timeout=10.0) as joiner:
                assert joiner.members == ("n0", "n1", "j")
            assert contact.calls >= 2
            assert trio.current_time() - start < 10.0
            nursery.cancel_scope.cancel()


async def test_a_retried_join_is_admitted_after_another_joiner(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    first = members["n0"] + "-j1"

    async def member(me: str, task_status: trio.TaskStatus[None]) -> None:
        async with rpcx_broadcast.open_group(me, members, "fifo") as group:
            task_status.started()
            await _drain(group)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for me in sorted(members):
                await nursery.start(member, me)
            # j1's first request is admitted, but its answer never reaches j1
            async with trio.open_nursery() as calls:
                channel = rpcx.Channel(members["n0"], calls, retry=rpcx.NO_RETRY)
                lost = await idl.BroadcastClient(channel).join("j1", first, "fifo")
                await channel.aclose()
            assert lost.view is not None and lost.view.members[-1] == "j1"
            async with rpcx_broadcast.open_group("j2", order="fifo", join=members["n1"],
                                                 listen=members["n0"] + "-j2") as j2:
                assert j2.members == ("n0", "n1", "n2", "j1", "j2")
                # j1 asks again (same name, same address): a retry, admitted
                async with rpcx_broadcast.open_group("j1", order="fifo", join=members["n2"],
                                                     listen=first) as j1:
                    assert j1.members == ("n0", "n1", "n2", "j1", "j2")
                    assert j1.start is not None and j1.start.view == 2
            nursery.cancel_scope.cancel()


async def test_the_split_brain_schedule_over_a_network_installs_one_view_per_id(
        autojump_clock: trio.testing.MockClock) -> None:
    """Issue 10, item 3, with whole groups on a simulated network (``fifo`` order, so
    ``DynamicMembership``): b is cut off and removed by a, c, d; then {a, d} and {b, c}
    are split. The coordinator rule installed (a, d) and (b, c) both as view 2; agreed
    views give {a, d} (a majority of (a, c, d)) view 2, and {b, c} nothing. After the
    heal, b and c learn that they were removed, and cannot broadcast."""
    net = rpcx.SimNetwork(seed=3)
    names = ("a", "b", "c", "d")
    members = {m: f"sim://{m}" for m in names}
    groups: dict[str, rpcx_broadcast.Group] = {}

    async def run(me: str) -> None:
        async with rpcx_broadcast.open_group(me, members, "fifo",
                                             transport=net.transport(me)) as group:
            groups[me] = group
            await _drain(group)

    def chain() -> dict[int, tuple[str, ...]]:
        seen: dict[int, tuple[str, ...]] = {}
        for group in groups.values():
            for view in group.views:
                known = seen.setdefault(view.id, view.members)
                assert known == view.members, f"view {view.id}: {known} and {view.members}"
        return seen

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for me in names:
                nursery.start_soon(run, me)
            await _until(lambda: len(groups) == 4)
            net.partition(["a", "c", "d"], ["b"])
            await _until(lambda: "b" not in groups["a"].members + groups["c"].members)
            assert chain()[1] == ("a", "c", "d")
            net.partition(["a", "d"], ["b", "c"])
            await _until(lambda: "c" not in groups["a"].members)
            await trio.sleep(20.0)  # {b, c}: b was removed, c alone is no majority
            views = chain()
            assert views[2] == ("a", "d") and max(views) == 2, views
            net.heal()
            await _until(lambda: groups["b"].view == groups["c"].view == 2)
            nursery.cancel_scope.cancel()
    views = chain()
    assert max(views) == 2 and views[2] == ("a", "d")
    for m in ("b", "c"):
        with pytest.raises(rpcx_broadcast.NotAMember):
            await groups[m].broadcast(b"x")


async def test_after_a_sequencer_crash_broadcast_waits_instead_of_ending_the_group(
        autojump_clock: trio.testing.MockClock) -> None:
    """Issue 10, item 4: survivors of a crashed sequencer that kept broadcasting ended the
    group with HoldBackOverflow after 32,768 broadcasts each. Now ``broadcast()`` waits
    once a window of them is unordered, and the group stays up."""
    members = mem_members(3)
    crash = trio.CancelScope()
    taken: dict[str, int] = {}

    async def member(me: str, task_status: trio.TaskStatus[None]) -> None:
        with crash if me == "n0" else trio.CancelScope():
            async with rpcx_broadcast.open_group(me, members, "fifo_total") as group:
                task_status.started()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_drain, group)
                    if me != "n0":
                        await group.wait_view(1)  # n0 (the sequencer) is gone
                        with trio.move_on_after(30):
                            for k in range(40_000):
                                await group.broadcast(b"%d" % k)
                                taken[me] = k + 1
                        assert group.statistics().members == ("n1", "n2")
                        nursery.cancel_scope.cancel()

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for me in sorted(members):
                await nursery.start(member, me)
            crash.cancel()
    assert set(taken) == {"n1", "n2"}
    assert all(1_000 <= count <= 1_100 for count in taken.values()), taken
