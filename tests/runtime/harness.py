"""An implementation of the echo service and helpers to serve it in tests."""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

import rpcx
from rpcx.errors import RpcError
from rpcx.status import Status
from tests.runtime.echo_rpcx import Blob, EchoClient, EchoService, Refused

_names = itertools.count()


def replay_exactly(seed: int) -> None:
    """Make trio's scheduler deterministic from here on, so that a simulation with the same
    seed takes the same path every time (trio's hypothesis integration does the same).
    Uses trio's private scheduler state: only for tests."""
    import trio._core._run as trio_run

    trio_run._r.seed(seed)


def mem_address() -> str:
    """A fresh in-memory address, so tests never share a listener."""
    return f"mem://test-{next(_names)}"


class Echo(EchoService):
    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self.completed: list[str] = []
        self.notes: list[str] = []
        self.counter = 0
        self.increments = 0
        self.started = trio.Event()

    async def echo(self, text: str) -> str:
        return text

    async def slow(self, seconds: float, text: str) -> str:
        self.started.set()
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            self.cancelled.append(text)
            raise
        self.completed.append(text)
        return text

    async def fail(self, code: int, message: str) -> str:
        if code == 0:
            raise Refused(why=message)
        raise RpcError(Status(code), message, {"hint": "from the handler"})

    async def crash(self) -> str:
        raise RuntimeError("the database password is hunter2")

    async def blob(self, size: int) -> Blob:
        return Blob(data=bytes(size))

    async def context(self) -> dict[str, str]:
        seen = dict(rpcx.incoming_metadata())
        deadline = rpcx.current_deadline()
        seen["deadline"] = ("none" if deadline == math.inf
                            else f"{deadline - trio.current_time():.3f}")
        key = rpcx.current_idempotency_key()
        if key is not None:
            seen["idempotency-key"] = key.hex()
        return seen

    async def relay(self, address: str) -> dict[str, str]:
        async with rpcx.open_channel(address) as channel:
            return await EchoClient(channel).context()

    async def note(self, text: str) -> None:
        self.notes.append(text)

    async def increment(self, by: int) -> int:
        self.increments += 1
        self.counter += by
        return self.counter


@asynccontextmanager
async def echo_pair(impl: Echo | None = None, *, server_options: dict[str, Any] | None = None,
                    **channel_options: Any) -> AsyncIterator[tuple[EchoClient, Echo,
                                                                   rpcx.Server, rpcx.Channel]]:
    """Serve ``impl`` on a fresh mem:// address and open a channel to it."""
    impl = impl or Echo()
    address = mem_address()
    async with rpcx.open_server(address, [impl], **(server_options or {})) as server, \
            rpcx.open_channel(address, **channel_options) as channel:
        yield EchoClient(channel), impl, server, channel
