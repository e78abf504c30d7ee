"""Socket streams for ``tcp://`` and ``unix://`` with non-blocking fast paths.

:class:`SocketStream` behaves as :class:`trio.SocketStream` does (a
:class:`trio.abc.HalfCloseableStream`; the same errors: ``ClosedResourceError`` for a
socket closed here, ``BrokenResourceError`` for a failed connection, ``BusyResourceError``
for two tasks sending or receiving at once) and adds two methods that never wait and never
checkpoint:

- :meth:`SocketStream.send_nowait` writes what the socket takes now and says how much;
- :meth:`SocketStream.receive_nowait` returns what has arrived, or None if nothing has;
- :meth:`SocketStream.receive_or_interrupt` receives as :meth:`receive_some` does, but
  another task can end its wait with :meth:`SocketStream.interrupt_receive` (it then
  returns None): a caller that reads its own reply is woken this way when its call ends
  without one (deadline, connection lost).

:class:`rpcx.runtime.link.Link` writes through ``send_nowait`` first: a request or an
answer that fits the socket's buffer (nearly all of them) goes out without a cancel scope,
a conflict detector or a trip through trio's scheduler; only the rest takes the ordinary
``send_all``. Its ``receive_some`` also goes straight to the socket and waits for
readability only when nothing has arrived. Streams of any other kind (TLS, memory, the
simulated network) keep the ordinary path.

The stream owns the socket: it is built from a trio socket stream by taking over its file
descriptor (:meth:`SocketStream.adopt`), so there is one socket object and one owner.
"""

from __future__ import annotations

import errno
import socket as _stdlib_socket

import trio

__all__ = ["DEFAULT_RECEIVE_SIZE", "SocketListener", "SocketStream"]

DEFAULT_RECEIVE_SIZE = 65536

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint
_wait_readable = trio.lowlevel.wait_readable
_wait_writable = trio.lowlevel.wait_writable


def _stream_error(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    """The stream error for a socket error (as trio.SocketStream maps them)."""
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


class SocketStream(trio.abc.HalfCloseableStream):
    """A connected stream socket (see the module docstring)."""

    def __init__(self, sock: _stdlib_socket.socket) -> None:
        if sock.type != _stdlib_socket.SOCK_STREAM:
            raise ValueError("SocketStream requires a SOCK_STREAM socket")
        self.socket = trio.socket.from_stdlib_socket(sock)  # sets it non-blocking
        """The trio socket (``getpeername``, ``setsockopt``...); the stream owns it."""
        self._sock = sock
        self._send_busy = False
        self._receive_busy = False
        self._receive_waiting = False
        """A :meth:`receive_or_interrupt` waits for readability (and can be interrupted)."""
        self._interrupted = False
        """:meth:`interrupt_receive` was called during the current wait."""

    @classmethod
    def adopt(cls, stream: trio.SocketStream) -> SocketStream:
        """Take over the socket of ``stream`` (which must not be used afterwards)."""
        fd = stream.socket.detach()
        return cls(_stdlib_socket.socket(fileno=fd))

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self.socket.setsockopt(level, option, value)

    def getsockopt(self, level: int, option: int) -> int:
        return self.socket.getsockopt(level, option)

    # -- sending -------------------------------------------------------------------

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Write what the socket takes now, without waiting or checkpointing; returns the
        number of bytes written (0 if its buffer is full). Raises as :meth:`send_all`."""
        if self._send_busy:
            raise trio.BusyResourceError("another task is writing to this stream")
        if self.socket.did_shutdown_SHUT_WR:
            raise trio.ClosedResourceError("can't send data after sending EOF")
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise _stream_error(exc) from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._send_busy:
            raise trio.BusyResourceError("another task is writing to this stream")
        if self.socket.did_shutdown_SHUT_WR:
            raise trio.ClosedResourceError("can't send data after sending EOF")
        self._send_busy = True
        try:
            await _checkpoint_if_cancelled()
            sock = self._sock
            if not data:
                if sock.fileno() == -1:
                    raise trio.ClosedResourceError("socket was already closed")
                await _cancel_shielded_checkpoint()
                return
            view = memoryview(data)
            with view:
                total, size, waited = 0, len(view), False
                while total < size:
                    try:
                        total += sock.send(view[total:] if total else view)
                    except BlockingIOError:
                        waited = True
                        try:
                            await _wait_writable(sock)
                        except trio.ClosedResourceError:
                            if sock.fileno() == -1:
                                raise
                            # interrupt_receive woke every waiter on the socket: try again
                        except OSError as exc:
                            raise _stream_error(exc) from exc
                    except OSError as exc:
                        raise _stream_error(exc) from exc
            if not waited:
                await _cancel_shielded_checkpoint()
        finally:
            self._send_busy = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._send_busy:
            raise trio.BusyResourceError("another task is writing to this stream")
        if self._sock.fileno() == -1:
            raise trio.ClosedResourceError("socket was already closed")
        self._send_busy = True
        try:
            while True:
                try:
                    await _wait_writable(self._sock)
                    return
                except trio.ClosedResourceError:
                    if self._sock.fileno() == -1:
                        raise
                    # (woken by interrupt_receive, not by a close: wait again)
        finally:
            self._send_busy = False

    async def send_eof(self) -> None:
        if self._send_busy:
            raise trio.BusyResourceError("another task is writing to this stream")
        await trio.lowlevel.checkpoint()
        if self.socket.did_shutdown_SHUT_WR:
            return
        try:
            self.socket.shutdown(_stdlib_socket.SHUT_WR)
        except OSError as exc:
            raise _stream_error(exc) from exc

    # -- receiving ----------------------------------------------------------------

    def receive_nowait(self, max_bytes: int = DEFAULT_RECEIVE_SIZE) -> bytes | None:
        """What has arrived (up to ``max_bytes``; ``b""`` at end of stream), or None if
        nothing has; never waits or checkpoints. Raises as :meth:`receive_some`."""
        if self._receive_busy:
            raise trio.BusyResourceError("another task is reading from this stream")
        try:
            return self._sock.recv(max_bytes)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise _stream_error(exc) from exc

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        data = await self.receive_or_interrupt(max_bytes, False, interruptible=False)
        assert data is not None  # (only an interruptible receive returns None)
        return data

    async def receive_after_wait(self, max_bytes: int = DEFAULT_RECEIVE_SIZE) -> bytes:
        """:meth:`receive_some` for a reader that has just emptied the socket (its last
        read returned less than it asked for): waits until the socket is readable before
        the first ``recv``, saving the ``recv`` that would find nothing (a system call and
        a BlockingIOError per read). The same results, errors and checkpoint."""
        data = await self.receive_or_interrupt(max_bytes, True, interruptible=False)
        assert data is not None
        return data

    async def receive_or_interrupt(self, max_bytes: int = DEFAULT_RECEIVE_SIZE,
                                   wait_first: bool = False, *,
                                   interruptible: bool = True) -> bytes | None:
        """:meth:`receive_some` (or, with ``wait_first``, :meth:`receive_after_wait`), except
        that while it waits for bytes another task may end the wait with
        :meth:`interrupt_receive`: it then returns None, having read nothing. The same
        results, errors and checkpoint otherwise. (``interruptible=False``: exactly
        :meth:`receive_some` / :meth:`receive_after_wait`, which use it.)"""
        if self._receive_busy:
            raise trio.BusyResourceError("another task is reading from this stream")
        sock = self._sock
        if wait_first and sock.fileno() == -1:
            raise trio.ClosedResourceError("this socket was already closed")
        self._receive_busy = True
        try:
            if not wait_first:
                await _checkpoint_if_cancelled()
                try:
                    data = sock.recv(max_bytes)
                except BlockingIOError:
                    pass
                except OSError as exc:
                    raise _stream_error(exc) from exc
                else:
                    await _cancel_shielded_checkpoint()
                    return data
            while True:
                if interruptible:
                    self._interrupted = False
                    self._receive_waiting = True
                try:
                    await _wait_readable(sock)
                except trio.ClosedResourceError:
                    if not interruptible or sock.fileno() == -1:
                        raise
                    return None  # interrupt_receive
                except OSError as exc:  # (the registration failed: a bad descriptor)
                    raise _stream_error(exc) from exc
                finally:
                    self._receive_waiting = False
                try:
                    return sock.recv(max_bytes)
                except BlockingIOError:
                    if self._interrupted and interruptible:
                        # interrupt_receive came after epoll had woken this task (so it
                        # woke nobody) and there was nothing to read: it ends the wait.
                        return None
                    continue  # a spurious wake-up
                except OSError as exc:
                    raise _stream_error(exc) from exc
        finally:
            self._receive_busy = False

    def interrupt_receive(self) -> bool:
        """End the wait of a task in :meth:`receive_or_interrupt` (it returns None); True if
        one was waiting. Uses ``trio.lowlevel.notify_closing`` without closing the socket:
        every waiter on the socket wakes with ``ClosedResourceError`` while its descriptor
        is still open, which this class's own waits take as "wait again" (a writer) or
        "interrupted" (that reader). Nothing else may wait on this socket."""
        if not self._receive_waiting:
            return False
        self._receive_waiting = False
        self._interrupted = True  # (in case epoll has woken the waiter already)
        trio.lowlevel.notify_closing(self._sock)
        return True

    # -- closing ------------------------------------------------------------------

    async def aclose(self) -> None:
        self.socket.close()  # wakes any task waiting on it with ClosedResourceError
        await trio.lowlevel.checkpoint()


class SocketListener(trio.abc.Listener[trio.abc.Stream]):
    """A listening socket whose connections are :class:`SocketStream`\\ s."""

    def __init__(self, inner: trio.SocketListener) -> None:
        self.inner = inner
        self.socket = inner.socket
        """The listening trio socket (``getsockname`` for the bound port)."""

    async def accept(self) -> SocketStream:
        return SocketStream.adopt(await self.inner.accept())

    async def aclose(self) -> None:
        await self.inner.aclose()

