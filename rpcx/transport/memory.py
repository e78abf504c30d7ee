"""In-process streams: ``mem://name``. No sockets, no faults; for embedding and tests.

A :class:`MemoryTransport` is a namespace of listeners; the module's :data:`default`
instance serves ``mem://`` addresses given as plain URLs.
"""

from __future__ import annotations

import errno

import trio
import trio.testing

from rpcx.transport.base import Address

__all__ = ["MemoryListener", "MemoryTransport", "default"]


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    def __init__(self, owner: MemoryTransport, name: str) -> None:
        self._owner = owner
        self._name = name
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](64)

    def _offer(self, stream: trio.abc.Stream) -> None:
        try:
            self._send.send_nowait(stream)
        except trio.WouldBlock:
            raise OSError(errno.ECONNREFUSED, f"mem://{self._name}: backlog full") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise OSError(errno.ECONNREFUSED, f"mem://{self._name}: not listening") from None

    async def accept(self) -> trio.abc.Stream:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError("listener is closed") from None

    async def aclose(self) -> None:
        if self._owner._listeners.get(self._name) is self:
            del self._owner._listeners[self._name]
        await self._send.aclose()
        await self._receive.aclose()


class MemoryTransport:
    def __init__(self) -> None:
        self._listeners: dict[str, MemoryListener] = {}

    async def connect(self, address: Address) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        listener = self._listeners.get(address.rest)
        if listener is None:
            raise OSError(errno.ECONNREFUSED, f"{address}: nothing is listening")
        client, server = trio.testing.memory_stream_pair()
        listener._offer(server)
        return client

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        await trio.lowlevel.checkpoint()
        if address.rest in self._listeners:
            raise OSError(errno.EADDRINUSE, f"{address}: already listening")
        listener = MemoryListener(self, address.rest)
        self._listeners[address.rest] = listener
        return [listener]


default = MemoryTransport()
"""The transport behind plain ``mem://`` URLs."""
