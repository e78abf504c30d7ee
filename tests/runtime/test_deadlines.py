"""Deadlines: per call, per method (@deadline), per channel; enforced on both sides; and
inherited by a handler's own outgoing calls. Cancellation reaches the server. All under
trio's autojump clock, so the times asserted are exact virtual times."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

import rpcx
from rpcx.transport import LinkFaults, SimNetwork
from tests.runtime.echo_rpcx import EchoClient
from tests.runtime.harness import Echo, echo_pair, mem_address


async def test_the_caller_gets_deadline_exceeded_on_time_and_the_handler_stops(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair(retry=rpcx.NO_RETRY) as (client, impl, _, _):
        start = trio.current_time()
        with pytest.raises(rpcx.DeadlineExceeded):
            await client.slow(10.0, "late", timeout=0.5)
        assert trio.current_time() - start == pytest.approx(0.5, abs=1e-6)
        await trio.testing.wait_all_tasks_blocked()
        assert impl.cancelled == ["late"] and impl.completed == []


async def test_deadline_exceeded_even_when_the_server_never_answers(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=1, faults=LinkFaults(delay=(0.01, 0.01)))
    async with rpcx.open_server("sim://server", [Echo()], transport=net.transport("server")), \
            rpcx.open_channel("sim://server", transport=net.transport("client"),
                              retry=rpcx.NO_RETRY) as channel:
        client = EchoClient(channel)
        assert await client.echo("up") == "up"
        net.partition({"client"}, {"server"})  # every packet from now on is lost
        start = trio.current_time()
        with pytest.raises(rpcx.DeadlineExceeded):
            await client.echo("lost", timeout=2.0)
        assert trio.current_time() - start == pytest.approx(2.0, abs=1e-6)


async def test_the_idl_deadline_and_the_channel_default_apply(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair(default_timeout=3.0, retry=rpcx.NO_RETRY) as (client, _, _, _):
        start = trio.current_time()
        with pytest.raises(rpcx.DeadlineExceeded):
            await client.slow(10.0)
        assert trio.current_time() - start == pytest.approx(3.0, abs=1e-6)
        seen = await client.context()
        assert float(seen["deadline"]) == pytest.approx(3.0, abs=1e-3)
        seen = await client.context(timeout=1.25)
        assert float(seen["deadline"]) == pytest.approx(1.25, abs=1e-3), "timeout= wins"


async def test_without_any_deadline_the_handler_sees_none() -> None:
    async with echo_pair() as (client, _, _, _):
        assert (await client.context())["deadline"] == "none"


async def test_a_handlers_outgoing_calls_inherit_its_remaining_deadline(
        autojump_clock: trio.testing.MockClock) -> None:
    inner_address = mem_address()
    async with rpcx.open_server(inner_address, [Echo()]), \
            echo_pair() as (client, _, _, _):
        seen = await client.relay(inner_address, timeout=4.0)
        assert float(seen["deadline"]) == pytest.approx(4.0, abs=1e-3)
        assert math.isinf(rpcx.current_deadline()), "outside a handler there is none"


async def test_metadata_reaches_the_handler() -> None:
    async with echo_pair(metadata={"tenant": "acme"}) as (client, _, _, _):
        seen = await client.context(metadata={"request-id": "r1"})
        assert seen["tenant"] == "acme" and seen["request-id"] == "r1"


async def test_cancelling_the_caller_cancels_the_handler_on_the_server(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair() as (client, impl, server, _):
        with trio.move_on_after(1.0):
            await client.slow(60.0, "abandoned")
        await trio.testing.wait_all_tasks_blocked()
        assert impl.cancelled == ["abandoned"]
        assert server.statistics().calls_in_flight == 0
        assert await client.echo("after") == "after"
