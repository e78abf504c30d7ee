"""The transport interface: something that turns an address into byte streams.

A transport is two methods. ``connect`` opens a :class:`trio.abc.Stream` to an address;
``listen`` returns :class:`trio.abc.Listener` objects that accept streams. The RPC
runtime needs nothing else, so TCP, TLS, Unix sockets, in-memory pipes and the simulated
network are interchangeable.
"""

from __future__ import annotations

from typing import Protocol

import attrs
import trio

__all__ = ["Address", "Transport", "parse_address"]


@attrs.frozen
class Address:
    """A parsed ``scheme://rest`` address."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.rest}"

    def host_port(self) -> tuple[str, int]:
        """``host:port`` or ``[v6]:port`` → ``(host, port)``; ValueError if malformed."""
        host, sep, port = self.rest.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{self}: expected {self.scheme}://HOST:PORT")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return host, int(port)


def parse_address(url: str) -> Address:
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not rest:
        raise ValueError(f"{url!r} is not an address: expected SCHEME://WHERE, "
                         "e.g. tcp://127.0.0.1:7000 or unix:///tmp/rpcx.sock")
    return Address(scheme.lower(), rest)


class Transport(Protocol):
    async def connect(self, address: Address) -> trio.abc.Stream:
        """Open a stream to ``address``; raise OSError if it cannot be reached."""
        ...

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        """Bind and return listeners for ``address``."""
        ...
