"""A caller whose call is the only one open on a socket connection reads its own reply
(``rpcx.runtime.link``, "A caller that reads its own reply"): the reader task parks and
takes the reading back when the caller is done, however the call ends (reply, deadline,
cancellation, the connection lost), and replies to other calls that arrive meanwhile
reach their callers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

import rpcx
from rpcx.errors import DeadlineExceeded, RpcError
from rpcx.runtime.link import Link
from rpcx.status import Status
from tests.runtime.echo_rpcx import EchoClient
from tests.runtime.harness import Echo


@asynccontextmanager
async def _served(tmp_path: Path, impl: Echo) -> AsyncIterator[
        tuple[EchoClient, rpcx.Channel, trio.CancelScope]]:
    """``impl`` served on a Unix socket, a channel to it, and the cancel scope that stops
    the server (dropping its connections)."""
    address = f"unix://{tmp_path / 'echo.sock'}"
    async with trio.open_nursery() as nursery:
        server_scope = trio.CancelScope()

        async def serve(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                        ) -> None:
            with server_scope:
                async with rpcx.open_server(address, [impl]):
                    task_status.started()
                    await trio.sleep_forever()

        await nursery.start(serve)
        async with rpcx.open_channel(address) as channel:
            yield EchoClient(channel), channel, server_scope
        server_scope.cancel()


def _link(channel: rpcx.Channel) -> Link:
    client_link = channel._link
    assert client_link is not None
    return client_link.link


async def _caller_reads(impl: Echo, link: Link, seen: list[str]) -> None:
    """Note who reads once the handler has started (the call waits for its reply)."""
    await impl.started.wait()
    await trio.testing.wait_all_tasks_blocked()
    seen.append(link.reading_by)


# The call to observe is made right after another call's reply, in the same task and
# trio step: then the reading is free (a call started by a new task would find the
# reader task reading again, and wait for it as before).


async def test_the_only_call_is_read_by_its_caller(tmp_path: Path) -> None:
    impl = Echo()
    async with _served(tmp_path, impl) as (client, channel, _):
        assert await client.echo("first") == "first"
        link = _link(channel)
        # The reader task read that reply, woke its caller and let go of the reading.
        assert link.reading_by == "nobody"
        seen: list[str] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_caller_reads, impl, link, seen)
            assert await client.slow(0.2, "mine") == "mine"
        assert seen == ["caller"]
        await trio.testing.wait_all_tasks_blocked()
        assert link.reading_by == "task"  # idle again: the reader task reads
        for i in range(20):  # and back to the callers for a run of calls
            assert await client.echo(str(i)) == str(i)
        assert channel.statistics().failures == 0


async def test_a_deadline_ends_the_callers_wait_for_bytes(tmp_path: Path) -> None:
    # Between channel and server, a relay that stops passing the server's bytes on once
    # the slow call has started: no reply (not even the server's own DEADLINE_EXCEEDED)
    # reaches the caller, which must still fail at its deadline, not wait for bytes.
    impl = Echo()
    silent = trio.Event()
    relay_path = tmp_path / "relay.sock"
    async with _served(tmp_path, impl) as (_, _channel, _):
        relay = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await relay.bind(str(relay_path))
        relay.listen()
        listener = trio.SocketListener(relay)

        async def pass_on(source: trio.abc.Stream, sink: trio.abc.Stream,
                          stop: trio.Event | None) -> None:
            while data := await source.receive_some():
                if stop is None or not stop.is_set():
                    await sink.send_all(data)

        async def run_relay() -> None:
            client_side = await listener.accept()
            server_side = await trio.open_unix_socket(str(tmp_path / "echo.sock"))
            async with client_side, server_side, trio.open_nursery() as relaying:
                relaying.start_soon(pass_on, client_side, server_side, None)
                relaying.start_soon(pass_on, server_side, client_side, silent)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_relay)
            async with rpcx.open_channel(f"unix://{relay_path}") as channel:
                client = EchoClient(channel)
                await client.echo("first")
                link = _link(channel)
                seen: list[str] = []

                async def go_silent() -> None:
                    await _caller_reads(impl, link, seen)
                    silent.set()

                with trio.fail_after(5):  # (the handler would take 10 s)
                    async with trio.open_nursery() as inner:
                        inner.start_soon(go_silent)
                        with pytest.raises(DeadlineExceeded):
                            await client.slow(10, "late", timeout=0.5)
                assert seen == ["caller"]
                await trio.testing.wait_all_tasks_blocked()
                assert link.reading_by == "task"
            nursery.cancel_scope.cancel()
            await listener.aclose()


async def test_a_cancelled_reader_caller_hands_the_reading_back(tmp_path: Path) -> None:
    impl = Echo()
    async with _served(tmp_path, impl) as (client, channel, _):
        await client.echo("first")
        link = _link(channel)
        seen: list[str] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_caller_reads, impl, link, seen)
            with trio.move_on_after(0.3) as scope:
                await client.slow(10, "given up")
        assert scope.cancelled_caught
        assert seen == ["caller"]
        await trio.testing.wait_all_tasks_blocked()
        assert link.reading_by == "task"
        await trio.testing.wait_all_tasks_blocked(0.05)
        assert impl.cancelled == ["given up"]  # the server was told (CANCEL)
        assert await client.echo("after") == "after"


async def test_replies_to_other_calls_reach_their_callers(tmp_path: Path) -> None:
    impl = Echo()
    async with _served(tmp_path, impl) as (client, channel, _):
        await client.echo("first")
        link = _link(channel)
        quick: list[str] = []
        seen: list[str] = []

        async def quick_calls() -> None:
            await _caller_reads(impl, link, seen)
            with trio.fail_after(0.4):  # read by the slow call's caller, well before
                for i in range(10):
                    quick.append(await client.echo(f"quick {i}"))
            assert impl.completed == []

        async with trio.open_nursery() as nursery:
            nursery.start_soon(quick_calls)
            assert await client.slow(0.5, "slow") == "slow"
        assert seen == ["caller"]
        assert quick == [f"quick {i}" for i in range(10)]


async def test_the_connection_lost_while_the_caller_reads(tmp_path: Path) -> None:
    impl = Echo()
    async with _served(tmp_path, impl) as (client, channel, server_scope):
        await client.echo("first")
        link = _link(channel)
        seen: list[str] = []

        async def stop_server() -> None:
            await _caller_reads(impl, link, seen)
            server_scope.cancel()  # the server goes, with its connections

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stop_server)
                with pytest.raises(RpcError) as raised:
                    await client.slow(10, "lost")
        assert seen == ["caller"]
        assert raised.value.code == Status.UNAVAILABLE
        with trio.fail_after(5):
            await link.closed.wait()  # the link ended (its reader task too)
