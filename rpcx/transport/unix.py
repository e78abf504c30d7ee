"""Unix-domain sockets: ``unix:///path/to.sock``.

The listener removes a stale socket file left by a crashed server before binding, and
removes its own file when closed.
"""

from __future__ import annotations

import os
import stat

import trio

from rpcx.transport.base import Address
from rpcx.transport.sockets import SocketListener, SocketStream

__all__ = ["UnixTransport"]


class _UnixListener(trio.abc.Listener[trio.abc.Stream]):
    def __init__(self, sock: trio.socket.SocketType, path: str) -> None:
        self._inner = SocketListener(trio.SocketListener(sock))
        self._path = path

    async def accept(self) -> trio.abc.Stream:
        return await self._inner.accept()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            try:
                if stat.S_ISSOCK(os.stat(self._path).st_mode):
                    os.unlink(self._path)
            except OSError:
                pass


class UnixTransport:
    async def connect(self, address: Address) -> trio.abc.Stream:
        return SocketStream.adopt(await trio.open_unix_socket(address.rest))

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        path = address.rest
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # a stale socket from a server that did not clean up
        except FileNotFoundError:
            pass
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        try:
            await sock.bind(path)
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        return [_UnixListener(sock, path)]
