"""Regression tests for bugs found in a review of the runtime (one test per bug)."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

import rpcx
from rpcx.errors import RpcError
from rpcx.status import Status
from rpcx.testing import LocalChannel
from rpcx.transport.base import Address
from rpcx.transport.memory import default as memory_transport
from tests.runtime.echo_rpcx import EchoClient
from tests.runtime.harness import Echo, echo_pair, mem_address


class _GatedStream(trio.abc.Stream):
    """A stream whose writes block while ``closed`` is True, like a socket whose send
    buffer is full; ``release_one()`` lets exactly one blocked write through."""

    def __init__(self, inner: trio.abc.Stream, gate: _Gate) -> None:
        self.inner = inner
        self.gate = gate

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.gate.pass_through()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Gate:
    def __init__(self) -> None:
        self.closed = False
        self._event = trio.Event()

    async def pass_through(self) -> None:
        if self.closed:
            await self._event.wait()
        else:
            await trio.lowlevel.checkpoint()

    def release_one(self) -> None:
        self._event.set()
        self._event = trio.Event()

    def open(self) -> None:
        self.closed = False
        self.release_one()


class _GatedTransport:
    def __init__(self) -> None:
        self.gate = _Gate()

    async def connect(self, address: Address) -> trio.abc.Stream:
        return _GatedStream(await memory_transport.connect(address), self.gate)

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        return await memory_transport.listen(address)


class _BadDetails(Echo):
    async def crash(self) -> str:
        # details the wire cannot carry (a non-string key)
        raise RpcError(Status.FAILED_PRECONDITION, "nope", {1: "one"})  # type: ignore[dict-item]


# -- deadlines bound every wait of a call -----------------------------------------------


async def test_a_call_waiting_for_room_still_ends_at_its_deadline(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair(max_concurrent_calls=1) as (client, impl, _server, _channel):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.slow, 10.0, "hog")
            await impl.started.wait()
            start = trio.current_time()
            with pytest.raises(rpcx.DeadlineExceeded):
                await client.echo("waiting", timeout=1.0)
            assert trio.current_time() - start == pytest.approx(1.0, abs=0.1)
            nursery.cancel_scope.cancel()


# -- cancellation ----------------------------------------------------------------------


async def test_a_call_cancelled_while_its_request_waits_to_be_written_is_cancelled_on_the_server(
        autojump_clock: trio.testing.MockClock) -> None:
    transport = _GatedTransport()
    impl = Echo()
    address = mem_address()
    async with rpcx.open_server(address, [impl]), \
            rpcx.open_channel(address, transport=transport) as channel:
        client = EchoClient(channel)
        assert await client.echo("connected") == "connected"
        transport.gate.closed = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.echo, "writer")  # becomes the sender, blocked
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as scope:
                nursery.start_soon(_cancel_then_open, scope, transport.gate)
                await client.slow(5.0, "cancelled")  # queued behind the sender
        await trio.sleep(6.0)
        assert impl.completed == [], "the server ran a call its caller had cancelled"


async def _cancel_then_open(scope: trio.CancelScope, gate: _Gate) -> None:
    await trio.testing.wait_all_tasks_blocked()
    scope.cancel()
    await trio.testing.wait_all_tasks_blocked()
    gate.open()  # the blocked write completes


async def test_a_cancelled_sender_does_not_lose_other_calls_frames(
        autojump_clock: trio.testing.MockClock) -> None:
    transport = _GatedTransport()
    address = mem_address()
    async with rpcx.open_server(address, [Echo()]), \
            rpcx.open_channel(address, transport=transport) as channel:
        client = EchoClient(channel)
        assert await client.echo("connected") == "connected"
        gate = transport.gate
        gate.closed = True
        results: list[str] = []
        answered = trio.Event()

        async def bystander() -> None:
            results.append(await client.echo("bystander"))
            answered.set()

        async with trio.open_nursery() as nursery:
            sender_scope = trio.CancelScope()

            async def sender() -> None:
                with sender_scope:
                    await client.slow(1.0, "sender")

            nursery.start_soon(sender)
            await trio.testing.wait_all_tasks_blocked()  # sender blocked writing its frame
            nursery.start_soon(bystander)
            await trio.testing.wait_all_tasks_blocked()  # bystander queued, waiting
            gate.release_one()
            await trio.testing.wait_all_tasks_blocked()  # sender now writes bystander's frame
            sender_scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            gate.open()
            with trio.fail_after(30):
                await answered.wait()
        assert results == ["bystander"]


# -- errors ----------------------------------------------------------------------------


async def test_a_handler_error_with_unsendable_details_fails_that_call_not_the_server(
        ) -> None:
    async with echo_pair(_BadDetails()) as (client, _impl, _server, _channel):
        with pytest.raises(rpcx.RemoteError) as info:
            await client.crash()
        assert info.value.code is Status.INTERNAL
        assert await client.echo("still serving") == "still serving"


async def test_a_oneway_call_waiting_for_room_on_a_closing_connection_is_unavailable(
        autojump_clock: trio.testing.MockClock) -> None:
    impl = Echo()
    address = mem_address()
    async with rpcx.open_channel(address, max_concurrent_calls=1) as channel:
        client = EchoClient(channel)
        async with rpcx.open_server(address, [impl]) as server:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.slow, 1.0, "hog")
                await impl.started.wait()
                error: list[BaseException] = []

                async def note() -> None:
                    try:
                        await client.note("blocked")
                    except Exception as exc:
                        error.append(exc)

                nursery.start_soon(note)
                await trio.testing.wait_all_tasks_blocked()
                server.shutdown()  # GOAWAY: the hog finishes, nothing new starts
        assert len(error) == 1
        assert isinstance(error[0], rpcx.Unavailable), error


# -- the channel's lifetime ---------------------------------------------------------


async def test_a_call_reconnecting_as_the_channel_closes_is_unavailable(
        autojump_clock: trio.testing.MockClock) -> None:
    address = mem_address()
    errors: list[BaseException] = []
    async with trio.open_nursery() as outer:
        async with rpcx.open_channel(address, retry=rpcx.NO_RETRY,
                                     reconnect_backoff=(1.0, 1.0)) as channel:
            client = EchoClient(channel)
            with pytest.raises(rpcx.Unavailable):
                await client.echo("nobody listens")
            server_scope = trio.CancelScope()

            async def run_server(task_status: trio.TaskStatus[None]) -> None:
                with server_scope:
                    async with rpcx.open_server(address, [Echo()]):
                        task_status.started()
                        await trio.sleep_forever()

            await outer.start(run_server)

            async def late_call() -> None:
                try:
                    await client.echo("late")
                except BaseException as exc:
                    errors.append(exc)

            outer.start_soon(late_call)  # sleeps out the reconnect backoff
            await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(2.0)
        server_scope.cancel()
    assert len(errors) == 1
    assert isinstance(errors[0], rpcx.Unavailable), errors


# -- rpcx.testing ----------------------------------------------------------------------


async def test_local_channel_passes_metadata_and_deadline_to_the_handler(
        autojump_clock: trio.testing.MockClock) -> None:
    client = EchoClient(LocalChannel(Echo()))
    seen = await client.context(metadata={"tenant": "t1"}, timeout=5.0)
    assert seen == {"tenant": "t1", "deadline": "5.000"}
    assert math.isinf(rpcx.current_deadline())


async def test_an_attempt_that_timed_out_gives_back_its_slot(
        autojump_clock: trio.testing.MockClock) -> None:
    """A keyed attempt that times out is forgotten locally (not cancelled on the server),
    and its call slot is free again: it must not block later calls until the server
    finishes the abandoned execution."""

    class Stuck(Echo):
        async def increment(self, by: int) -> int:
            await trio.sleep(100.0)
            return await super().increment(by)

    impl = Stuck()
    policy = rpcx.RetryPolicy(max_attempts=1, attempt_timeout=1.0)
    async with echo_pair(impl, retry=policy, max_concurrent_calls=1) as (client, _, _, channel):
        with pytest.raises(rpcx.DeadlineExceeded, match="attempt timed out"):
            await client.increment(2)
        assert channel.statistics().open_calls == 0, "the slot came back"
        start = trio.current_time()
        assert await client.echo("next", timeout=5.0) == "next"
        assert trio.current_time() - start < 0.1, "the next call did not wait for room"


async def test_a_call_waiting_for_room_on_a_connection_that_goes_away_moves_on(
        autojump_clock: trio.testing.MockClock) -> None:
    """After GOAWAY, a call waiting for a free slot on the draining connection does not
    wait for the old server's calls to finish: it goes to a new connection."""
    address = mem_address()
    first = Echo()
    async with rpcx.open_channel(address, max_concurrent_calls=1) as channel:
        client = EchoClient(channel)
        async with trio.open_nursery() as nursery:
            old: rpcx.Server = await nursery.start(
                lambda task_status: rpcx.serve(address, [first], grace_period=60.0,
                                               task_status=task_status))
            nursery.start_soon(client.slow, 30.0, "old")
            await first.started.wait()
            waited: list[float] = []
            answered = trio.Event()

            async def second_call() -> None:
                start = trio.current_time()
                assert await client.echo("new") == "new"
                waited.append(trio.current_time() - start)
                answered.set()

            nursery.start_soon(second_call)
            await trio.testing.wait_all_tasks_blocked()
            old.shutdown()  # GOAWAY; its listener closes, the slow call may finish
            await trio.testing.wait_all_tasks_blocked()
            await nursery.start(
                lambda task_status: rpcx.serve(address, [Echo()], task_status=task_status))
            await answered.wait()
            assert waited[0] < 1.0, "the waiting call went to the new server"
            nursery.cancel_scope.cancel()


class _DeafPeer:
    """A transport whose peer accepts the connection but never reads a byte."""

    def __init__(self) -> None:
        self.peers: list[trio.abc.Stream] = []

    async def connect(self, address: Address) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        client, server = trio.testing.lockstep_stream_pair()
        self.peers.append(server)  # held open, never read
        return client

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        raise NotImplementedError


async def test_a_peer_that_stops_reading_cannot_hold_a_call_past_its_deadline_or_a_close(
        autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    async with rpcx.open_channel("mem://deaf", transport=_DeafPeer(),
                                 retry=rpcx.NO_RETRY) as channel:
        with pytest.raises(rpcx.DeadlineExceeded):
            await EchoClient(channel).echo("anyone?", timeout=2.0)
        assert trio.current_time() - start == pytest.approx(2.0, abs=1e-6)
    assert trio.current_time() - start <= 2.0 + 1.0 + 1e-6, "closing did not hang"


async def test_the_reconnect_backoff_survives_thousands_of_failed_connects(
        autojump_clock: trio.testing.MockClock) -> None:
    # found by the broadcast layer over a lossy simulated network: after ~1,000 failed
    # connects first * 2 ** n overflowed a float and the call raised OverflowError
    address = mem_address()
    async with rpcx.open_channel(address, retry=rpcx.NO_RETRY,
                                 reconnect_backoff=(0.02, 0.5)) as channel:
        client = EchoClient(channel)
        channel._failed_connects = 5_000
        with pytest.raises(rpcx.Unavailable):
            await client.echo("nobody listens")
        assert channel._failed_connects == 5_001
