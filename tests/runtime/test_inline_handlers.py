"""Handlers run in their connection's reader (rpcx.runtime.link): a handler that never
waits needs no task of its own; one that waits keeps the reader's task while a new
reader takes over, so nothing else on the connection waits for it; each handler sees
its own copy of the context, as in a task of its own."""

from __future__ import annotations

import contextvars

import pytest
import trio
import trio.testing

import rpcx
from tests.runtime.harness import Echo, echo_pair

_seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


class _Recorder(Echo):
    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[trio.lowlevel.Task] = []
        self.contexts: list[str] = []

    async def echo(self, text: str) -> str:
        self.tasks.append(trio.lowlevel.current_task())
        self.contexts.append(_seen.get())
        _seen.set(text)  # never reset: must not leak into the next call
        return text

    async def slow(self, seconds: float, text: str) -> str:
        self.tasks.append(trio.lowlevel.current_task())
        return await super().slow(seconds, text)


async def test_handlers_that_never_wait_share_the_reader_task(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair(_Recorder()) as (client, impl, _, _):
        assert isinstance(impl, _Recorder)
        for k in range(5):
            assert await client.echo(f"m{k}") == f"m{k}"
    assert len(set(impl.tasks)) == 1, "one reader ran all five, no task per call"
    assert impl.contexts == ["unset"] * 5, "a handler's context leaked into the next"


async def test_a_handler_that_waits_keeps_its_task_and_a_new_reader_takes_over(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair(_Recorder()) as (client, impl, _, _):
        assert isinstance(impl, _Recorder)
        await client.echo("before")
        reader = impl.tasks[-1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.slow, 5.0, "slow")
            await impl.started.wait()
            slow_task = impl.tasks[-1]
            # the slow handler sleeps in the old reader's task ...
            assert slow_task is reader
            start = trio.current_time()
            # ... while calls on the same connection are answered by a new reader
            assert await client.echo("during") == "during"
            assert trio.current_time() - start < 1.0
            assert impl.tasks[-1] is not reader
        assert impl.completed == ["slow"]
        assert await client.echo("after") == "after"
        assert impl.tasks[-1] is impl.tasks[-2], "the new reader stays the reader"


async def test_a_waiting_handler_is_still_cancelled_by_its_deadline(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair(_Recorder()) as (client, impl, server, _):
        with pytest.raises(rpcx.DeadlineExceeded):
            await client.slow(60.0, "late", timeout=1.0)
        await trio.sleep(1.0)  # the server's own timer fired at the same deadline
        assert impl.cancelled == ["late"]
        assert await client.echo("still serving") == "still serving"
        assert server.statistics().calls_in_flight == 0
