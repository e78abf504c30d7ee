"""Transports, chosen by URL scheme.

=========== ====================================== =========================
scheme      example                                transport
=========== ====================================== =========================
``tcp``     ``tcp://127.0.0.1:7000``               :class:`TcpTransport`
``tls``     ``tls://payments.example:7443``        :class:`TlsTransport`
``unix``    ``unix:///run/payments.sock``          :class:`UnixTransport`
``mem``     ``mem://payments``                     :class:`MemoryTransport`
``sim``     ``sim://server``                       ``SimNetwork.transport(node)``
=========== ====================================== =========================

``tls`` and ``sim`` need an object (an SSL context, a network), so pass a transport
explicitly for them: ``open_channel(url, transport=TlsTransport(ctx))``. The others work
from the URL alone.
"""

from __future__ import annotations

import trio

from rpcx.transport import memory
from rpcx.transport.base import Address, Transport, parse_address
from rpcx.transport.memory import MemoryTransport
from rpcx.transport.simnet import LinkFaults, SimNetwork, SimTransport
from rpcx.transport.sockets import SocketListener, SocketStream
from rpcx.transport.tcp import TcpTransport
from rpcx.transport.tls import TlsTransport
from rpcx.transport.unix import UnixTransport

__all__ = [
    "Address",
    "LinkFaults",
    "MemoryTransport",
    "SimNetwork",
    "SimTransport",
    "SocketListener",
    "SocketStream",
    "TcpTransport",
    "TlsTransport",
    "Transport",
    "UnixTransport",
    "bound_url",
    "connect",
    "listen",
    "parse_address",
    "transport_for",
]

_BY_SCHEME: dict[str, Transport] = {
    "tcp": TcpTransport(),
    "tls": TlsTransport(),
    "unix": UnixTransport(),
    "mem": memory.default,
}


def transport_for(address: Address) -> Transport:
    """The transport a plain URL of this scheme uses."""
    transport = _BY_SCHEME.get(address.scheme)
    if transport is None:
        if address.scheme == "sim":
            raise ValueError(f"{address}: sim:// addresses need the network's transport: "
                             "pass transport=network.transport(node)")
        known = ", ".join(sorted(_BY_SCHEME))
        raise ValueError(f"{address}: unknown scheme {address.scheme!r} (known: {known}, sim)")
    return transport


async def connect(url: str, *, transport: Transport | None = None) -> trio.abc.Stream:
    address = parse_address(url)
    return await (transport or transport_for(address)).connect(address)


async def listen(url: str, *,
                 transport: Transport | None = None) -> list[trio.abc.Listener[trio.abc.Stream]]:
    address = parse_address(url)
    return await (transport or transport_for(address)).listen(address)


def bound_url(listener: trio.abc.Listener[trio.abc.Stream], listen_url: str) -> str:
    """The URL to connect to ``listener``: for TCP and TLS listeners bound to port 0, the
    port the system chose; otherwise ``listen_url``."""
    inner = listener.transport_listener if isinstance(listener, trio.SSLListener) else listener
    if isinstance(inner, trio.SocketListener | SocketListener):
        host, port = inner.socket.getsockname()[:2]
        scheme = parse_address(listen_url).scheme
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
    return listen_url
