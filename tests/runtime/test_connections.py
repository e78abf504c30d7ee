"""Connections: lazy connect, UNAVAILABLE when unreachable, reconnect with backoff after a
restart, keepalive detecting a dead peer, graceful shutdown, nothing left behind."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import rpcx
from rpcx.transport import LinkFaults, SimNetwork
from tests.runtime.echo_rpcx import EchoClient
from tests.runtime.harness import Echo, echo_pair, mem_address


async def test_channels_connect_lazily_on_the_first_call() -> None:
    address = mem_address()
    async with rpcx.open_server(address, [Echo()]) as server, \
            rpcx.open_channel(address) as channel:
        assert channel.statistics().connects == 0
        assert server.statistics().connections_total == 0
        assert await EchoClient(channel).echo("x") == "x"
        assert channel.statistics().connects == 1


async def test_an_unreachable_server_is_unavailable_not_a_hang(
        autojump_clock: trio.testing.MockClock) -> None:
    async with rpcx.open_channel(mem_address(), default_timeout=5.0) as channel:
        with pytest.raises(rpcx.Unavailable, match="nothing is listening"):
            await EchoClient(channel).echo("anyone?")
        stats = channel.statistics()
        assert stats.connect_failures >= 2, "connection attempts were retried with backoff"
        assert not stats.connected


async def test_the_channel_reconnects_after_the_server_restarts(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=3, faults=LinkFaults(delay=(0.01, 0.01)))
    async with rpcx.open_channel("sim://server", transport=net.transport("client"),
                                 default_timeout=10.0) as channel:
        client = EchoClient(channel)
        async with trio.open_nursery() as nursery:
            first: rpcx.Server = await nursery.start(
                lambda task_status: rpcx.serve("sim://server", [Echo()],
                                               transport=net.transport("server"),
                                               task_status=task_status))
            assert await client.echo("before") == "before"
            net.crash("server")
            nursery.cancel_scope.cancel()
        assert first.statistics().connections == 0
        with pytest.raises(rpcx.Unavailable):
            await client.echo("while down", timeout=1.0)
        net.restart("server")
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: rpcx.serve("sim://server", [Echo()],
                                               transport=net.transport("server"),
                                               task_status=task_status))
            assert await client.echo("after") == "after", "the same channel reconnected"
            assert channel.statistics().connects == 2
            nursery.cancel_scope.cancel()


async def test_keepalive_detects_a_peer_that_went_silent(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=4, faults=LinkFaults(delay=(0.01, 0.01)))
    async with rpcx.open_server("sim://server", [Echo()], transport=net.transport("server")), \
            rpcx.open_channel("sim://server", transport=net.transport("client"),
                              keepalive_interval=5.0, keepalive_timeout=2.0,
                              retry=rpcx.NO_RETRY) as channel:
        client = EchoClient(channel)
        assert await client.echo("hi") == "hi"
        net.partition({"client"}, {"server"})  # the server vanishes without a word
        start = trio.current_time()
        with pytest.raises(rpcx.Unavailable):
            await client.slow(600.0)  # no deadline of its own: only keepalive can end it
        assert trio.current_time() - start <= 5.0 + 2.0 + 0.1


async def test_graceful_shutdown_finishes_calls_in_flight_and_refuses_new_ones(
        autojump_clock: trio.testing.MockClock) -> None:
    impl = Echo()
    address = mem_address()
    result: list[str] = []
    async with rpcx.open_channel(address, retry=rpcx.NO_RETRY) as channel:
        client = EchoClient(channel)
        async with rpcx.open_server(address, [impl], grace_period=10.0) as server:
            async with trio.open_nursery() as nursery:
                async def slow() -> None:
                    result.append(await client.slow(3.0, "finished"))
                nursery.start_soon(slow)
                await impl.started.wait()
                server.shutdown()
                await server.wait_stopped()
        assert result == ["finished"] and impl.cancelled == []
        with pytest.raises(rpcx.Unavailable):
            await client.echo("too late")


async def test_calls_still_running_after_the_grace_period_are_cancelled(
        autojump_clock: trio.testing.MockClock) -> None:
    impl = Echo()
    async with echo_pair(impl, server_options={"grace_period": 1.0},
                         retry=rpcx.NO_RETRY) as (client, _, server, _):
        async with trio.open_nursery() as nursery:
            async def slow() -> None:
                with pytest.raises(rpcx.RpcError):
                    await client.slow(60.0, "cut short")
            nursery.start_soon(slow)
            await impl.started.wait()
            start = trio.current_time()
            server.shutdown()
            await server.wait_stopped()
            assert trio.current_time() - start == pytest.approx(1.0, abs=1e-6)
    assert impl.cancelled == ["cut short"]


async def test_concurrency_limit_applies_backpressure_not_errors(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair(max_concurrent_calls=2,
                         server_options={"max_concurrent_calls": 2}) as (client, _, _, _):
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(client.slow, 1.0, str(i))
        assert trio.current_time() - start == pytest.approx(5.0, abs=1e-6), \
            "ten 1 s calls, two at a time"


async def test_nothing_is_left_running_after_the_blocks_exit() -> None:
    before = len(trio.lowlevel.current_task().child_nurseries)
    async with echo_pair() as (client, _, _, _):
        assert await client.echo("x") == "x"
    assert len(trio.lowlevel.current_task().child_nurseries) == before
    root = trio.lowlevel.current_root_task()
    assert root is not None

    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    # Only pytest-trio's own tasks remain: the test task and its fixtures' runner.
    assert count(root) <= 4


async def test_a_server_serves_many_connections(
        autojump_clock: trio.testing.MockClock) -> None:
    address = mem_address()
    async with rpcx.open_server(address, [Echo()]) as server:
        async def one(i: int) -> None:
            async with rpcx.open_channel(address) as channel:
                assert await EchoClient(channel).echo(str(i)) == str(i)
        async with trio.open_nursery() as nursery:
            for i in range(25):
                nursery.start_soon(one, i)
        assert server.statistics().connections_total == 25


async def test_a_cancelled_server_releases_its_address() -> None:
    address = mem_address()
    with trio.move_on_after(0.1):
        await rpcx.serve(address, [Echo()])
    async with rpcx.open_server(address, [Echo()]), rpcx.open_channel(address) as channel:
        assert await EchoClient(channel).echo("again") == "again"
