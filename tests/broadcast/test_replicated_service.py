"""Replicated services (``serve_replicated``) in one process, over mem:// in virtual time:
the generated client on a channel to every replica; writes applied once at every replica
in log order with their declared errors; a retry with the same idempotency key reaching
another replica gets the first outcome, also after the replica that ran it crashed;
@readonly reads pass a read barrier (or are served stale when asked by name); the leader's
crash is ridden out within the call's deadline; a non-deterministic handler is reported."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import rpcx
import rpcx_broadcast
from examples.kvstore.kvstore_rpcx import (
    KvStoreClient,
    KvStoreService,
    NotFound,
)
from examples.kvstore.store import KvStore
from rpcx.runtime.dispatch import Failure, Success, unpack_reply
from rpcx.runtime.retry import NO_RETRY
from rpcx_broadcast import MemoryStorage, ReplicatedService
from tests.broadcast._groups import mem_members
from tests.gateway._client import connected


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110
        await trio.sleep(0.01)


class Cluster:
    """Replicas of a service that can be crashed and restarted from their storage."""

    def __init__(self, n: int, make: Callable[[str], KvStoreService], **options: Any
                 ) -> None:
        self.members = mem_members(n)
        self.make = make
        self.options = options
        self.storage = {me: MemoryStorage() for me in self.members}
        self.running: dict[str, ReplicatedService] = {}
        self.services: dict[str, KvStoreService] = {}
        self.scopes: dict[str, trio.CancelScope] = {}
        self.nursery: trio.Nursery | None = None

    async def _replica(self, me: str, task_status: trio.TaskStatus[None]) -> None:
        with self.scopes[me]:
            service = self.services[me] = self.make(me)
            async with rpcx_broadcast.serve_replicated(
                    me, self.members, service, storage=self.storage[me],
                    election_timeout=1.0, **self.options) as replicated:
                self.running[me] = replicated
                task_status.started()
                await trio.sleep_forever()
        self.running.pop(me, None)

    async def start(self, me: str) -> None:
        assert self.nursery is not None
        self.scopes[me] = trio.CancelScope()
        await self.nursery.start(self._replica, me)

    def crash(self, me: str) -> None:
        self.scopes[me].cancel()
        self.running.pop(me, None)

    def leader(self) -> str:
        leaders = {r.group.coordinator for r in self.running.values()}
        leader = leaders.pop() if len(leaders) == 1 else None
        return leader or ""

    async def wait_leader(self) -> str:
        while not (leader := self.leader()):  # noqa: ASYNC110 (state of several replicas)
            await trio.sleep(0.05)
        return leader

    @property
    def addresses(self) -> list[str]:
        return list(self.members.values())


@asynccontextmanager
async def cluster(n: int = 3, make: Callable[[str], KvStoreService] | None = None,
                  **options: Any) -> AsyncIterator[Cluster]:
    running = Cluster(n, make or (lambda me: KvStore()), **options)
    async with trio.open_nursery() as nursery:
        running.nursery = nursery
        for me in running.members:
            await running.start(me)
        await running.wait_leader()
        yield running
        nursery.cancel_scope.cancel()


def _stores(c: Cluster) -> Mapping[str, KvStore]:
    return {me: s for me, s in c.services.items() if me in c.running
            and isinstance(s, KvStore)}


async def test_calls_through_any_replica_apply_once_everywhere_in_one_order(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c, rpcx.open_channel(c.addresses, default_timeout=10) as ch:
        store = KvStoreClient(ch)
        assert await store.put("x", "1") == 1
        assert await store.compare_and_set("x", "1", value="2") is True
        assert await store.compare_and_set("x", "1", value="3") is False
        assert (await store.get("x")).value == "2"
        with pytest.raises(NotFound) as missing:
            await store.get("nothing")
        assert missing.value.key == "nothing", "the declared error arrives typed"
        assert await store.delete("x") is True
        assert await store.delete("x") is False
        # every replica, called on its own address, has applied the same writes
        for address in c.addresses:
            async with rpcx.open_channel(address) as one:
                summary = await KvStoreClient(one).summary(timeout=5)
                assert (summary.revision, summary.keys) == (3, 0)
        stores = _stores(c)
        await _until(lambda: all(s.revision == 3 for s in stores.values()))
        assert len({s.sha256() for s in stores.values()}) == 1


async def test_every_replica_serves_its_status_beside_the_service(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c, rpcx.open_channel(c.addresses, default_timeout=10) as ch:
        for k in range(4):
            await KvStoreClient(ch).put("x", str(k))
        await _until(lambda: all(r.statistics().calls_applied == 4
                                 for r in c.running.values()))
        statuses = []
        for me, address in c.members.items():
            async with rpcx.open_channel(address) as one:
                status = await rpcx_broadcast.ReplicationClient(one).status(timeout=5)
            assert status.name == me
            assert status.members == sorted(c.members)
            assert (status.calls, status.replayed, status.divergent) == (4, 0, [])
            assert status.applied >= 4
            statuses.append(status)
        leader = c.leader()
        assert {s.leader for s in statuses} == {leader}, "one leader, known to all"
        staleness = next(s for s in statuses if s.name == leader).staleness
        assert staleness is not None and 0.0 <= staleness < 0.5, "a leader can vouch"
        c.crash(leader)
        await _until(lambda: c.leader() not in ("", leader))
        survivor = c.members[c.leader()]
        async with rpcx.open_channel(survivor) as one:
            status = await rpcx_broadcast.ReplicationClient(one).status(timeout=5)
        assert status.leader == c.leader() != leader


async def test_a_retry_with_the_same_key_gets_the_first_outcome_at_any_replica(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        spec = rpcx.spec_of(KvStoreService)
        assert isinstance(spec, rpcx.ServiceSpec)
        method = next(m for m in spec.methods if m.name == "put")
        codec = rpcx.CborCodec()
        payload = codec.encode(method.params, ("k", "v"))
        key = os.urandom(16)
        leader = c.leader()
        followers = [m for m in c.members if m != leader]

        async def attempt(member: str) -> int:
            async with rpcx.open_channel(c.members[member], retry=NO_RETRY) as channel:
                reply = await channel._attempt(method, trio.current_time() + 10, {},
                                               payload, key, NO_RETRY)
                result = unpack_reply(method, reply if isinstance(reply, Failure)
                                      else Success(reply), codec)
                assert isinstance(result, int)
                return result

        first = await attempt(followers[0])
        assert first == 1
        assert await attempt(followers[1]) == 1, "replayed at another replica"
        # the replica that ran it crashes; the retry reaches the leader
        c.crash(followers[0])
        assert await attempt(leader) == 1
        # and after a restart from its storage, it answers the same too
        await c.start(followers[0])
        assert await attempt(followers[0]) == 1
        stores = _stores(c)
        await _until(lambda: all(s.revision == 1 for s in stores.values()))
        replayed = {me: r.statistics().replayed for me, r in c.running.items()}
        assert all(n >= 3 for n in replayed.values()), replayed


async def test_the_leaders_crash_is_ridden_out_within_the_deadline_and_nothing_is_doubled(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c, rpcx.open_channel(c.addresses, default_timeout=15) as ch:
        store = KvStoreClient(ch)
        acked: list[int] = []
        unknown = 0
        crashed = trio.Event()

        async def writer(w: int) -> None:
            nonlocal unknown
            for k in range(40):
                try:
                    acked.append(await store.put(f"w{w}", str(k)))
                except rpcx.RpcError as error:
                    assert error.outcome_unknown or error.code == rpcx.Status.UNAVAILABLE
                    unknown += 1
                if k == 10 and w == 0:
                    c.crash(c.leader())
                    crashed.set()

        async with trio.open_nursery() as nursery:
            for w in range(4):
                nursery.start_soon(writer, w)
        assert crashed.is_set()
        assert unknown == 0, "every write completed within its deadline despite the crash"
        assert sorted(acked) == list(range(1, 161)), "each write applied exactly once"
        stores = _stores(c)
        await _until(lambda: all(s.revision == 160 for s in stores.values()))
        assert len({s.sha256() for s in stores.values()}) == 1


async def test_reads_pass_a_barrier_unless_staleness_is_asked_for_by_name(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        follower = next(m for m in c.members if m != c.leader())
        async with rpcx.open_channel(c.addresses, default_timeout=10) as ch, \
                rpcx.open_channel(c.members[follower], default_timeout=10) as one:
            writes, reads = KvStoreClient(ch), KvStoreClient(one)
            for k in range(20):
                revision = await writes.put("x", str(k))
                entry = await reads.get("x")  # at a follower, right after the ack
                assert (entry.value, entry.revision) == (str(k), revision)
            replica = c.running[follower]
            assert replica.statistics().reads == 20
            entry = await reads.get("x", metadata=rpcx_broadcast.stale_reads(5.0))
            assert replica.statistics().stale_reads == 1
            assert entry.value == "19"
            with pytest.raises(rpcx.RpcError) as bad:
                await reads.get("x", metadata={rpcx_broadcast.MAX_STALENESS: "soon"})
            assert bad.value.code == rpcx.Status.INVALID_ARGUMENT
            assert "rpcx-max-staleness" in bad.value.message


class Nondeterministic(KvStore):
    """Answers with a revision that depends on the replica: outcomes diverge."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    async def put(self, key: str, value: str) -> int:
        return await super().put(key, value) + (100 if self.name == "n1" else 0)


class Waiting(KvStore):
    async def delete(self, key: str) -> bool:
        await trio.sleep(0.001)
        return True


async def test_a_non_deterministic_handler_is_detected_and_reported(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    async with cluster(make=lambda me: Nondeterministic(me), digest_every=5) as c, \
            rpcx.open_channel(c.addresses, default_timeout=10) as ch:
        store = KvStoreClient(ch)
        for k in range(10):
            await store.put("x", str(k))
        # n1 differs from both others; each of them differs from n1
        await _until(lambda: len(c.running["n1"].divergences) >= 4)
        await _until(lambda: all(len(c.running[m].divergences) >= 2 for m in ("n0", "n2")))
        assert {d.replica for d in c.running["n0"].divergences} == {"n1"}
        assert {d.calls for d in c.running["n1"].divergences} == {5, 10}
        async with rpcx.open_channel(c.members["n0"]) as one:
            status = await rpcx_broadcast.ReplicationClient(one).status(timeout=5)
        assert status.divergent == ["n1"]
        assert "not deterministic" in caplog.text


async def test_a_handler_that_waits_is_stopped_with_internal(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(make=lambda me: Waiting()) as c, \
            rpcx.open_channel(c.addresses, default_timeout=10) as ch:
        with pytest.raises(rpcx.RpcError) as failed:
            await KvStoreClient(ch).delete("x")
        assert failed.value.code == rpcx.Status.INTERNAL
        assert "waited" in failed.value.message
        assert await KvStoreClient(ch).put("x", "1") == 1, "the service goes on"


async def test_over_http_an_idempotency_key_retried_at_another_replica_counts_once(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        faces = {}
        async with trio.open_nursery() as nursery:
            for me in ("n0", "n1"):
                faces[me] = await nursery.start(
                    lambda task_status, me=me: rpcx.serve_http(
                        f"mem://http-{c.members[me].rpartition('-')[2]}-{id(c)}",
                        [c.running[me].front], task_status=task_status))
            key = [("idempotency-key", "order-17")]
            answers = []
            for me in ("n0", "n1", "n0"):
                async with connected(faces[me]) as http:
                    response = await http.call("/kvstore.KvStore/put",
                                               {"key": "x", "value": "v"}, headers=key)
                answers.append((response.status, response.json()))
            async with connected(faces["n1"]) as http:
                entry = (await http.call("/kvstore.KvStore/get", {"key": "x"})).json()
            nursery.cancel_scope.cancel()
        assert answers == [(200, 1)] * 3, "the first answer, at either replica"
        assert entry == {"value": "v", "revision": 1}


def test_readonly_reaches_the_generated_spec_reflection_and_back() -> None:
    from rpcx.reflection import describe_services, specs_from_description

    spec = rpcx.spec_of(KvStoreService)
    assert isinstance(spec, rpcx.ServiceSpec)
    flags = {m.name: (m.readonly, m.idempotent) for m in spec.methods}
    assert flags["get"] == (True, True) and flags["put"] == (False, False)
    (rebuilt,) = specs_from_description(describe_services([spec]))
    assert {m.name: (m.readonly, m.idempotent) for m in rebuilt.methods} == flags


async def test_with_a_secret_a_client_cannot_speak_for_a_member(
        autojump_clock: trio.testing.MockClock) -> None:
    from rpcx_broadcast._generated import raft_rpcx

    async with cluster(secret="s3cret") as c, \
            rpcx.open_channel(c.addresses, default_timeout=10) as ch:
        assert await KvStoreClient(ch).put("x", "1") == 1, "the members talk with it"
        forged = [raft_rpcx.RaftMsg(removed=raft_rpcx.Removed(term=99, view=99))]
        for metadata in ({}, {"rpcx-group-secret": "guess"}):
            async with rpcx.open_channel(c.members["n0"], retry=NO_RETRY,
                                         metadata=metadata) as raw:
                with pytest.raises(rpcx.RpcError) as denied:
                    await raft_rpcx.RaftClient(raw).deliver("n1", forged, timeout=5)
                assert denied.value.code == rpcx.Status.PERMISSION_DENIED
        assert await KvStoreClient(ch).put("x", "2") == 2


# -- the command format, written and read without the generated classes ------------------


@pytest.mark.parametrize("key", [None, b"", b"k" * 40])
@pytest.mark.parametrize("when", [0.0, 1.5, 1.7e9])
def test_a_call_command_written_directly_is_the_one_the_codec_reads(
        key: bytes | None, when: float) -> None:
    from rpcx_broadcast import replicated_service as rs
    from rpcx_broadcast._generated import replicated_rpcx as ridl

    data = rs._encode_call("kvstore.KvStore/put", b"\x82ab", key, when)
    assert rs._CODEC.decode(rs._command_ref, data) == ridl.ServiceCommand(
        call=ridl.ServiceCall(method="kvstore.KvStore/put", args=b"\x82ab", key=key,
                              time=when))
    assert rs._decode_call(data) == ("kvstore.KvStore/put", b"\x82ab", key, when)
    by_codec = rs._CODEC.encode(rs._command_ref, ridl.ServiceCommand(call=ridl.ServiceCall(
        method="kvstore.KvStore/put", args=b"\x82ab", key=key, time=when)))
    assert rs._decode_call(by_codec) == ("kvstore.KvStore/put", b"\x82ab", key, when)


def test_anything_but_a_plain_call_goes_through_the_codec() -> None:
    import cbor2

    from rpcx_broadcast import replicated_service as rs
    from rpcx_broadcast._generated import replicated_rpcx as ridl

    digest = rs._CODEC.encode(rs._command_ref, ridl.ServiceCommand(
        digest=ridl.OutcomeDigest(replica="a", count=3, digest=b"1234")))
    odd = [digest, b"", b"\xff", cbor2.dumps([1]), cbor2.dumps({1: {1: 5}}),
           cbor2.dumps({1: {1: "m", 9: 1}}), cbor2.dumps({1: {1: "m", 4: 1}}),
           cbor2.dumps({1: {1: "m", 3: "text"}}), cbor2.dumps({1: {1: "m"}, 2: {}})]
    assert [rs._decode_call(data) for data in odd] == [None] * len(odd)


def test_the_outcome_digest_is_the_same_as_before_for_successes_and_errors() -> None:
    import zlib

    from rpcx.runtime.dispatch import Dispatcher
    from rpcx_broadcast import replicated_service as rs
    from rpcx_broadcast._generated import replicated_rpcx as ridl

    machine = rs._ServiceMachine("a", KvStore(), Dispatcher([KvStore()]), window=300,
                                 max_outcomes=10, digest_every=1000)
    outcomes = [ridl.CallOutcome(status=0, payload=b"\x01"),
                ridl.CallOutcome(status=5, payload=b"p", error_name="kv.NotFound",
                                 message="no such key")]
    crc = 0
    for outcome in outcomes:
        machine._count(outcome)
        words = f"{outcome.status}:{outcome.error_name}:{outcome.message}:".encode()
        crc = zlib.crc32(outcome.payload, zlib.crc32(words, crc))
        assert machine.digest == crc.to_bytes(4, "big")
