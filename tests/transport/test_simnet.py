"""The simulated network: seeded faults, partitions, crashes, virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from rpcx.transport import LinkFaults, SimNetwork, parse_address
from rpcx.transport.simnet import TraceEvent

SERVER = parse_address("sim://server")


async def _pair(net: SimNetwork) -> tuple[trio.abc.Stream, trio.abc.Stream,
                                          trio.abc.Listener[trio.abc.Stream]]:
    (listener,) = await net.transport("server").listen(SERVER)
    client = await net.transport("client").connect(SERVER)
    server = await listener.accept()
    return client, server, listener


async def _drain(stream: trio.abc.Stream, seconds: float) -> list[bytes]:
    got: list[bytes] = []
    with trio.move_on_after(seconds):
        while True:
            got.append(bytes(await stream.receive_some()))
    return got


async def _send_numbered(net: SimNetwork, count: int) -> tuple[list[bytes], list[TraceEvent]]:
    client, server, _ = await _pair(net)
    for i in range(count):
        await client.send_all(f"{i:04d}".encode())
    return await _drain(server, 10.0), net.trace


async def test_packets_are_dropped_duplicated_and_reordered_at_the_configured_rates(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=7, faults=LinkFaults(drop=0.3, duplicate=0.1, delay=(0.01, 0.5)))
    got, trace = await _send_numbered(net, 2000)
    fates = [e.fate for e in trace]
    dropped, duplicated = fates.count("dropped"), fates.count("duplicated")
    assert 500 < dropped < 700, dropped  # 30% of 2000, with slack for chance
    assert 100 < duplicated < 180, duplicated  # 10% of the ~1400 not dropped
    assert len(got) == 2000 - dropped + duplicated
    assert got != sorted(got), "different delays must reorder packets"
    assert all(len(p) == 4 for p in got), "a packet is delivered whole, never merged or split"


async def test_the_same_seed_gives_the_same_fates_and_another_seed_does_not(
        autojump_clock: trio.testing.MockClock) -> None:
    faults = LinkFaults(drop=0.2, duplicate=0.2, delay=(0.0, 0.3))
    first, trace1 = await _send_numbered(SimNetwork(seed=42, faults=faults), 300)
    again, trace2 = await _send_numbered(SimNetwork(seed=42, faults=faults), 300)
    other, _ = await _send_numbered(SimNetwork(seed=43, faults=faults), 300)
    assert first == again
    def fates(trace: list[TraceEvent]) -> list[tuple[str, tuple[float, ...]]]:
        return [(e.fate, tuple(round(a - e.time, 9) for a in e.arrives)) for e in trace]

    assert fates(trace1) == fates(trace2)
    assert first != other


async def test_a_partition_loses_packets_until_it_heals(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=1)
    client, server, _ = await _pair(net)
    net.partition({"client"}, {"server"})
    await client.send_all(b"lost")
    assert await _drain(server, 1.0) == []
    assert net.trace[-1].fate == "partitioned"
    with pytest.raises(OSError):
        await net.transport("client").connect(SERVER)
    net.heal()
    await client.send_all(b"found")
    assert await _drain(server, 1.0) == [b"found"]


async def test_nodes_outside_every_partition_group_reach_everyone() -> None:
    net = SimNetwork(seed=1)
    net.partition({"a"}, {"b"})
    assert not net.reachable("a", "b")
    assert net.reachable("a", "c") and net.reachable("c", "b")


async def test_a_crash_resets_connections_and_refuses_new_ones_until_restart(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=1)
    client, _server, listener = await _pair(net)
    net.crash("server")
    with pytest.raises(trio.BrokenResourceError):
        await client.receive_some()
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await listener.accept()
    with pytest.raises(OSError):
        await net.transport("client").connect(SERVER)
    net.restart("server")
    client2, server2, _ = await _pair(net)
    await client2.send_all(b"back")
    assert await server2.receive_some() == b"back"


async def test_close_delivers_pending_data_then_eof(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=3, faults=LinkFaults(delay=(0.1, 0.2)))
    client, server, _ = await _pair(net)
    await client.send_all(b"last words")
    await client.aclose()
    assert await server.receive_some() == b"last words"
    assert await server.receive_some() == b""


async def test_an_hour_of_simulated_traffic_runs_in_virtual_time(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=5, faults=LinkFaults(delay=(0.05, 0.15)))
    client, server, _ = await _pair(net)
    start = trio.current_time()
    received = 0
    for _ in range(3600):  # one message a second for an hour
        await client.send_all(b"tick")
        await trio.sleep(1.0)
    received = len(await _drain(server, 1.0))
    assert received == 3600
    assert trio.current_time() - start >= 3600


def test_fault_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="drop must be a probability"):
        LinkFaults(drop=1.5)
    with pytest.raises(ValueError, match="delay must be"):
        LinkFaults(delay=(0.5, 0.1))
