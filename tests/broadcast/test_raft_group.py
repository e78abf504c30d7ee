"""The ``raft`` order of ``open_group`` in one process (mem:// transport, virtual time):
a crashed leader's group goes on in FIFO-total order with nothing delivered twice; a
minority delivers nothing new and ``broadcast()`` pushes back once ``max_pending`` are
outstanding, then everything resumes when a majority is back; statistics name the
leader; the wire mapping round-trips every Raft message and rejects bad ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
import trio
import trio.testing

import rpcx
import rpcx_broadcast
from rpcx.schema import struct_ref
from rpcx_broadcast import RAFT, MemoryStorage, check
from rpcx_broadcast._generated import raft_rpcx as idl
from rpcx_broadcast.core.layer import ProtocolViolation
from rpcx_broadcast.core.raft_messages import (
    Append,
    AppendReply,
    Config,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    RaftMessage,
    Snapshot,
    SnapshotAck,
    TimeoutNow,
    VoteReply,
    VoteRequest,
)
from rpcx_broadcast.runtime.raft_wire import from_wire, to_wire
from tests.broadcast._groups import Journals, mem_members


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` in virtual time (state spread over several members)."""
    while not condition():  # noqa: ASYNC110
        await trio.sleep(0.01)


async def _wait_leader(groups: Mapping[str, rpcx_broadcast.Group]) -> str:
    while True:
        leaders = {g.statistics().leader for g in groups.values()}
        if len(leaders) == 1 and "" not in leaders:
            return leaders.pop()
        await trio.sleep(0.05)


async def test_a_crashed_leader_is_replaced_and_nothing_is_delivered_twice(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    journals = Journals()
    groups: dict[str, rpcx_broadcast.Group] = {}
    scopes = {me: trio.CancelScope() for me in members}
    per_member = 60
    crashed: set[str] = set()
    done: dict[str, trio.Event] = {me: trio.Event() for me in members}

    async def member(me: str) -> None:
        with scopes[me]:
            async with rpcx_broadcast.open_group(me, members, RAFT, election_timeout=1.0,
                                                 journal=journals.for_member(me)) as group:
                groups[me] = group

                async def reader() -> None:
                    async for _ in group.deliveries:
                        pass

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reader)
                    for k in range(per_member):
                        await group.broadcast(f"{me}/{k}".encode())
                        await trio.sleep(0.05)
                    await group.wait_stable()
                    done[me].set()
                    await trio.sleep_forever()

    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            for me in members:
                nursery.start_soon(member, me)
            await _until(lambda: len(groups) == 3)
            leader = await _wait_leader(groups)
            await _until(lambda: journals.delivered(leader) >= 30)
            scopes[leader].cancel()  # a crash: no leave, no hand-over
            crashed.add(leader)
            for me in members:
                if me != leader:
                    await done[me].wait()
            survivors = {me: g for me, g in groups.items() if me != leader}
            new_leader = await _wait_leader(survivors)
            assert new_leader != leader
            assert groups[new_leader].statistics().term > 1
            nursery.cancel_scope.cancel()
    history = journals.history(crashed=crashed)
    found = check(history, "fifo_total")
    assert found is None, str(found)
    for me in members:
        if me not in crashed:
            ids = [e.id for e in history.deliveries(me)]
            assert len(ids) == len(set(ids))
            assert sum(1 for o, _ in ids if o != leader) == 2 * per_member


async def test_a_minority_delivers_nothing_new_and_broadcast_pushes_back(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    a, b, c = sorted(members)
    storages = {me: MemoryStorage() for me in members}
    got: dict[str, list[bytes]] = {me: [] for me in members}
    scopes = {me: trio.CancelScope() for me in members}
    groups: dict[str, rpcx_broadcast.Group] = {}

    async def member(me: str) -> None:
        with scopes[me]:
            async with rpcx_broadcast.open_group(me, members, RAFT, storage=storages[me],
                                                 election_timeout=1.0,
                                                 max_pending=4) as group:
                groups[me] = group
                async for delivery in group.deliveries:
                    got[me].append(delivery.payload)

    async with trio.open_nursery() as nursery:
        for me in members:
            nursery.start_soon(member, me)
        with trio.fail_after(60):
            await _until(lambda: len(groups) == 3)
            await groups[a].broadcast(b"first")
            await _until(lambda: len(got[a]) == 1)
        # b and c crash: a is a minority of one
        scopes[b].cancel()
        scopes[c].cancel()
        await trio.sleep(5.0)
        for k in range(4):  # the window takes max_pending broadcasts ...
            with trio.fail_after(1):
                assert await groups[a].broadcast(b"%d" % k) == k + 1
        with trio.move_on_after(20) as blocked:  # ... then broadcast() waits
            await groups[a].broadcast(b"blocked")
        assert blocked.cancelled_caught
        assert got[a] == [b"first"], "a minority delivered something new"
        assert groups[a].statistics().buffer_sizes["raft.window"] == 4
        # b comes back from its storage: a majority again, everything is delivered once
        scopes[b] = trio.CancelScope()
        got[b] = []
        nursery.start_soon(member, b)
        with trio.fail_after(60):
            assert await groups[a].broadcast(b"after") == 5
            await _until(lambda: len(got[a]) >= 6 and len(got[b]) >= 6)
        assert got[a] == [b"first", b"0", b"1", b"2", b"3", b"after"]
        assert got[b] == got[a]  # b re-delivers the log from the start after a restart
        nursery.cancel_scope.cancel()


async def test_statistics_name_the_leader_and_its_term(
        autojump_clock: trio.testing.MockClock) -> None:
    members = mem_members(3)
    async with trio.open_nursery() as nursery:
        groups: dict[str, rpcx_broadcast.Group] = {}

        async def member(me: str) -> None:
            async with rpcx_broadcast.open_group(me, members, RAFT) as group:
                groups[me] = group
                await trio.sleep_forever()

        for me in members:
            nursery.start_soon(member, me)
        with trio.fail_after(30):
            await _until(lambda: len(groups) == 3)
            leader = await _wait_leader(groups)
        assert leader in members
        assert {g.statistics().term for g in groups.values()} == {groups[leader]
                                                                 .statistics().term}
        assert groups[leader].coordinator == leader
        assert groups[leader].members == tuple(sorted(members))
        nursery.cancel_scope.cancel()


def test_open_group_refuses_options_that_do_not_fit_the_raft_order() -> None:
    members = mem_members(3)
    me = sorted(members)[0]

    async def open_with(**options: object) -> None:
        async with rpcx_broadcast.open_group(me, members, RAFT, **options):  # type: ignore[arg-type]
            pass

    with pytest.raises(ValueError, match="not both"):
        trio.run(lambda: open_with(join="mem://elsewhere"))
    with pytest.raises(ValueError, match="no stack="):
        trio.run(lambda: open_with(stack=lambda me, names: None))
    with pytest.raises(ValueError, match="snapshot_every"):
        trio.run(lambda: open_with(snapshot_every=0))
    with pytest.raises(ValueError, match="remove_after"):
        trio.run(lambda: open_with(remove_after=-1.0))

    async def joiner_without_listen() -> None:
        async with rpcx_broadcast.open_group("z", None, RAFT, join="mem://a"):
            pass
    with pytest.raises(ValueError, match="listen="):
        trio.run(joiner_without_listen)
    with pytest.raises(ValueError, match="for the raft order"):
        async def other() -> None:
            async with rpcx_broadcast.open_group(me, members, "fifo",
                                                 storage=MemoryStorage()):
                pass
        trio.run(other)
    with pytest.raises(ValueError, match="election_timeout"):
        trio.run(lambda: open_with(election_timeout=0.0))


CONFIG = Config(("a", "b"), ("c",))
MESSAGES: list[RaftMessage] = [
    VoteRequest(3, 7, 2, pre=True, transfer=False),
    VoteRequest(3, 7, 2, pre=False, transfer=True),
    VoteReply(3, True, pre=True),
    Append(4, 6, 3, (Entry(4, 7, b"x"), Entry(4, 8, b"", EntryKind.NOOP),
                     Entry(4, 9, b"", EntryKind.CONFIG, CONFIG)), 6),
    Append(4, 0, 0, (), 0),
    AppendReply(4, False, 6, 3, 2),
    Heartbeat(5, 9, 2),
    HeartbeatReply(5, 2),
    InstallSnapshot(6, Snapshot(100, 5, CONFIG, b"state")),
    InstallSnapshot(6, Snapshot(100, 5, CONFIG, b"chunk"), offset=1024, done=False),
    InstallSnapshot(6, Snapshot(100, 5, CONFIG, b"end"), offset=2048, done=True),
    SnapshotAck(6, 100, 2048),
    TimeoutNow(7),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_raft_message_round_trips_through_cbor(msg: RaftMessage) -> None:
    """Encoded and decoded as rpcx sends them (so new fields are in the IDL, not lost)."""
    ref = struct_ref(idl.RaftMsg)
    codec = rpcx.CborCodec()
    assert from_wire(codec.decode(ref, codec.encode(ref, to_wire(msg)))) == msg


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_raft_message_round_trips_over_the_wire(msg: RaftMessage) -> None:
    assert from_wire(to_wire(msg)) == msg


@pytest.mark.parametrize("wire", [
    idl.RaftMsg(vote_request=idl.VoteRequest(term=-1, last_index=0, last_term=0)),
    idl.RaftMsg(append=idl.Append(term=1, prev_index=3, prev_term=1, commit=0, entries=[
        idl.RaftEntry(term=1, index=5)])),
    idl.RaftMsg(append=idl.Append(term=1, prev_index=0, prev_term=0, commit=0, entries=[
        idl.RaftEntry(term=1, index=1, kind=9)])),
    idl.RaftMsg(append=idl.Append(term=1, prev_index=0, prev_term=0, commit=0, entries=[
        idl.RaftEntry(term=1, index=1, kind=2)])),
    idl.RaftMsg(install_snapshot=idl.InstallSnapshot(term=1, snapshot=idl.RaftSnapshot(
        index=1, term=1, config=idl.RaftConfig(voters=["a", "a"])))),
    idl.RaftMsg(install_snapshot=idl.InstallSnapshot(term=1, snapshot=idl.RaftSnapshot(
        index=1, term=1, config=idl.RaftConfig(voters=["a"], learners=["a"])))),
    idl.RaftMsg(install_snapshot=idl.InstallSnapshot(
        term=1, offset=-5, snapshot=idl.RaftSnapshot(
            index=1, term=1, config=idl.RaftConfig(voters=["a"]), data=b"x"))),
    idl.RaftMsg(install_snapshot=idl.InstallSnapshot(term=1, offset=8, done=False,
                                                     snapshot=idl.RaftSnapshot(
        index=1, term=1, config=idl.RaftConfig(voters=["a"])))),
    idl.RaftMsg(snapshot_ack=idl.SnapshotAck(term=1, index=4, offset=-1)),
    idl.RaftMsg(snapshot_ack=idl.SnapshotAck(term=1, index=-4, offset=0)),
], ids=["negative term", "gap", "kind", "config missing", "twice", "voter and learner",
        "negative offset", "empty chunk", "negative ack offset", "negative ack index"])
def test_bad_raft_messages_are_protocol_violations(wire: idl.RaftMsg) -> None:
    with pytest.raises(ProtocolViolation):
        from_wire(wire)
