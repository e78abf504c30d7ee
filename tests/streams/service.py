"""An implementation of tests/streams' streaming service, instrumented for the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from tests.streams.streams_rpcx import Boom, StreamsService, Tick


class Streams(StreamsService):
    def __init__(self) -> None:
        self.produced = 0
        """Items the ``count`` handler has handed to the runtime so far."""
        self.cancelled: list[str] = []
        self.finished: list[str] = []
        self.received: list[int] = []
        self.stopped = trio.Event()
        """Set when a handler was cancelled (or its generator closed) before it ended."""

    async def count(self, start: int, count: int, fail_after: int,
                    text: str) -> AsyncIterator[Tick]:
        try:
            for i in range(count):
                if i == fail_after:
                    raise Boom(after=i)
                self.produced += 1
                yield Tick(n=start + i, text=text)
        except (trio.Cancelled, GeneratorExit):
            # Cancelled while waiting to send, the runtime closes the generator at its yield
            self.cancelled.append("count")
            self.stopped.set()
            raise
        self.finished.append("count")

    async def sum(self, label: str, ticks: AsyncIterator[Tick]) -> Tick:
        total = 0
        async for tick in ticks:
            self.received.append(tick.n)
            total += tick.n
        return Tick(n=total, text=label)

    async def double(self, ticks: AsyncIterator[Tick]) -> AsyncIterator[Tick]:
        try:
            async for tick in ticks:
                if tick.n < 0:
                    raise Boom(after=len(self.received))
                self.received.append(tick.n)
                yield Tick(n=2 * tick.n, text=tick.text)
        except (trio.Cancelled, GeneratorExit):
            self.cancelled.append("double")
            self.stopped.set()
            raise

    async def ping(self, n: int) -> int:
        return n
