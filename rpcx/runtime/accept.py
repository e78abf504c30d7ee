"""What every rpcx server (native and HTTP) does with a listener."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

__all__ = ["accept_forever", "describe_peer"]

logger = logging.getLogger("rpcx.server")


async def accept_forever(listener: trio.abc.Listener[trio.abc.Stream], nursery: trio.Nursery,
                         handle: Callable[[trio.abc.Stream], Awaitable[None]]) -> None:
    """Accept connections and start ``handle(stream)`` for each in ``nursery``, until the
    listener is closed. A failing accept (out of file descriptors, say) is logged and
    retried after a pause; it never stops the server."""
    while True:
        try:
            stream = await listener.accept()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        except OSError as exc:
            logger.error("accept failed: %s", exc)
            await trio.sleep(0.1)
            continue
        nursery.start_soon(handle, stream)


def describe_peer(stream: trio.abc.Stream) -> str:
    """Who is at the other end, for logs and interceptors: an address when there is a
    socket (under TLS too), else the stream's ``remote`` (simulated network) or type."""
    inner = getattr(stream, "transport_stream", stream)
    sock = getattr(inner, "socket", None)
    if sock is not None:
        try:
            return str(sock.getpeername()) or "unix"
        except OSError:
            return "unknown"
    remote = getattr(inner, "remote", None)
    return str(remote) if remote else type(inner).__name__
