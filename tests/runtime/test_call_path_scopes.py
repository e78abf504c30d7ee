"""The call path over a socket takes no trio cancel scope per call (issue 12: entering and
leaving one costs ~48,000 instructions), and a handler that waits is still cancellable
through the cancel scope of the reader task it runs in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

import rpcx
from tests.runtime.echo_rpcx import EchoClient
from tests.runtime.harness import Echo


@contextmanager
def counting_cancel_scopes() -> Iterator[list[int]]:
    entered = [0]
    original = trio.CancelScope.__enter__

    def counted(self: trio.CancelScope) -> trio.CancelScope:
        entered[0] += 1
        return original(self)

    trio.CancelScope.__enter__ = counted  # type: ignore[method-assign]
    try:
        yield entered
    finally:
        trio.CancelScope.__enter__ = original  # type: ignore[method-assign]


async def test_calls_that_do_not_wait_take_no_cancel_scope(tmp_path: Path) -> None:
    address = f"unix://{tmp_path / 'scopes.sock'}"
    async with rpcx.open_server(address, [Echo()]), \
            rpcx.open_channel(address, default_timeout=10.0) as channel:
        client = EchoClient(channel)
        assert await client.echo("warm") == "warm"
        with counting_cancel_scopes() as entered:
            for i in range(50):
                assert await client.echo(str(i)) == str(i)
        # Neither side enters a scope per call (the write goes out at once, the handler
        # runs in the reader and never waits); a stray one (a timer re-arming) may.
        assert entered[0] < 5, entered[0]


async def test_a_handler_that_waits_inside_scopes_of_its_own_is_cancelled_by_the_caller(
        tmp_path: Path) -> None:
    address = f"unix://{tmp_path / 'cancel.sock'}"
    impl = Echo()
    async with rpcx.open_server(address, [impl]), \
            rpcx.open_channel(address, default_timeout=10.0) as channel:
        client = EchoClient(channel)
        async with trio.open_nursery() as nursery:
            # trio.sleep enters a cancel scope of its own before it waits: the call's
            # cancellation must still reach it (a scope entered at that moment could not).
            nursery.start_soon(client.slow, 30.0, "gone")
            await impl.started.wait()
            nursery.cancel_scope.cancel()
        # The CANCEL went out before this request, and the server handles it first.
        assert await client.echo("still serving") == "still serving"
        await trio.testing.wait_all_tasks_blocked()
        assert impl.cancelled == ["gone"]


async def test_on_suspend_gets_the_scope_that_cancels_only_that_job() -> None:
    from rpcx.protocol import Connection, Role
    from rpcx.runtime.link import Link

    left, right = trio.testing.memory_stream_pair()
    link = Link(left, Connection(Role.SERVER, now=0.0), lambda _: None)
    scopes: list[trio.CancelScope] = []
    outcome: list[str] = []

    async def quick() -> None:
        outcome.append("quick")

    async def waits() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            outcome.append("cancelled")
            raise

    link.queue_work(quick, scopes.append)
    link.queue_work(waits, scopes.append)
    link.queue_work(quick, scopes.append)
    async with trio.open_nursery() as nursery:
        link._nursery = nursery

        async def reader(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope() as scope:
                task_status.started()
                await link._run_work(scope)

        await nursery.start(reader)
        await trio.testing.wait_all_tasks_blocked()
        # the job that waits got its task's scope; the one after it ran in the new reader
        assert len(scopes) == 1 and outcome == ["quick", "quick"]
        scopes[0].cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert outcome == ["quick", "quick", "cancelled"]
        nursery.cancel_scope.cancel()
    await right.aclose()
