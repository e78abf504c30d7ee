"""TLS over TCP: ``tls://host:port`` with an :class:`ssl.SSLContext`.

Clients verify the server against ``server_hostname`` (the address's host by default).
For mutual TLS, give the server a context with ``verify_mode = CERT_REQUIRED`` and a CA,
and the client a context with ``load_cert_chain``.

``https_compatible`` (default False) is trio's switch for peers that close without a TLS
``close_notify`` (as HTTP clients do); the HTTP face turns it on for its listeners.
"""

from __future__ import annotations

import ssl

import trio

from rpcx.transport.base import Address

__all__ = ["TlsTransport"]


class TlsTransport:
    def __init__(self, ssl_context: ssl.SSLContext | None = None, *,
                 server_hostname: str | None = None, https_compatible: bool = False) -> None:
        self.ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self.server_hostname = server_hostname
        self.https_compatible = https_compatible

    async def connect(self, address: Address) -> trio.abc.Stream:
        host, port = address.host_port()
        tcp = await trio.open_tcp_stream(host, port)
        stream = trio.SSLStream(tcp, self.ssl_context,
                                server_hostname=self.server_hostname or host,
                                https_compatible=self.https_compatible)
        try:
            await stream.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(tcp)
            raise
        return stream

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        host, port = address.host_port()
        listeners = await trio.open_tcp_listeners(port, host=host or None)
        return [trio.SSLListener(listener, self.ssl_context,
                                 https_compatible=self.https_compatible)
                for listener in listeners]
