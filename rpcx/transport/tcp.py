"""TCP: ``tcp://host:port``. Nagle is off (trio sets TCP_NODELAY) for low call latency.

Streams are :class:`rpcx.transport.sockets.SocketStream` (with the non-blocking fast
paths the runtime uses).
"""

from __future__ import annotations

import trio

from rpcx.transport.base import Address
from rpcx.transport.sockets import SocketListener, SocketStream

__all__ = ["TcpTransport"]


class TcpTransport:
    async def connect(self, address: Address) -> trio.abc.Stream:
        host, port = address.host_port()
        return SocketStream.adopt(await trio.open_tcp_stream(host, port))

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        host, port = address.host_port()
        listeners = await trio.open_tcp_listeners(port, host=host or None)
        return [SocketListener(listener) for listener in listeners]
