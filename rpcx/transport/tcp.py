"""TCP: ``tcp://host:port``. Nagle is off (trio sets TCP_NODELAY) for low call latency."""

from __future__ import annotations

import trio

from rpcx.transport.base import Address

__all__ = ["TcpTransport"]


class TcpTransport:
    async def connect(self, address: Address) -> trio.abc.Stream:
        host, port = address.host_port()
        return await trio.open_tcp_stream(host, port)

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        host, port = address.host_port()
        listeners = await trio.open_tcp_listeners(port, host=host or None)
        return list(listeners)
