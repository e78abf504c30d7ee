"""One live connection: a stream plus a sans-I/O :class:`~rpcx.protocol.Connection`, driven
by exactly one reader loop and one timer loop.

Both the client channel and the server use this; they differ only in what they do with
events (``on_event``). Everything that touches the stream is here, and every stream error
is handled here: a broken stream ends the link, and the protocol core reports every open
call as aborted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import trio

from rpcx.errors import RemoteProtocolError
from rpcx.protocol import Connection, ConnectionState, Event
from rpcx.protocol.events import ConnectionTerminated

__all__ = ["Link"]

logger = logging.getLogger("rpcx.link")

RECEIVE_SIZE = 65536
WRITE_HIGH_WATER = 256 * 1024
"""Bytes queued behind a sender at work above which :meth:`Link.flush` waits for it."""
_FINAL_FLUSH_TIMEOUT = 5.0
"""Seconds a finished connection spends sending what is left before it closes anyway."""


class Link:
    def __init__(self, stream: trio.abc.Stream, conn: Connection,
                 on_event: Callable[[Event], None], *, name: str = "") -> None:
        self.stream = stream
        self.conn = conn
        self.name = name
        self._on_event = on_event
        self._sending = False
        self._flushed = trio.Event()
        self._timer_scope: trio.CancelScope | None = None
        self.closed = trio.Event()
        self._room = trio.Event()

    # -- the loops ---------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the connection ends, then close the stream. Never raises for a
        network problem: those end the link and are reported as events."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timer_loop)
                await self.flush()  # our preface
                await self._reader_loop()
                nursery.cancel_scope.cancel()
        finally:
            self.closed.set()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    async def _reader_loop(self) -> None:
        while not self.finished():
            try:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                # Reset, or closed under us: treat as end of stream; the core aborts calls.
                data = b""
            if self.finished():
                break
            try:
                self.conn.receive_data(bytes(data), trio.current_time())
            except RemoteProtocolError as exc:
                # Already reported as events, with an error GOAWAY queued for the peer.
                logger.warning("%s: peer broke the protocol: %s", self.name, exc)
            self.rearm()  # a request just received may carry the earliest deadline
            self._process()
            await self.flush()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.conn.next_deadline()
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            self._timer_scope = None
            if scope.cancelled_caught and trio.current_time() >= scope.deadline:
                self.conn.handle_timeout(trio.current_time())
                self._process()
                await self.flush()
            if self.finished():
                # Send what is left (a last reply, our GOAWAY), then make the reader stop
                # waiting for bytes that may never come.
                with trio.move_on_after(_FINAL_FLUSH_TIMEOUT):  # the peer may not read
                    await self.flush(wait=True)
                await trio.aclose_forcefully(self.stream)
                return

    # -- used by the owners ----------------------------------------------------------------

    def finished(self) -> bool:
        """The connection is CLOSED (the stream may still be flushing)."""
        return self.conn.state is ConnectionState.CLOSED

    def rearm(self) -> None:
        """Call after changing the connection (new call, reply): its next deadline may be
        earlier than the one the timer sleeps until."""
        scope = self._timer_scope
        if scope is not None:
            deadline = self.conn.next_deadline()
            if deadline is not None and deadline < scope.deadline:
                scope.deadline = deadline
            elif self.finished():
                scope.cancel()

    def _process(self) -> None:
        for event in self.conn.events():
            self._on_event(event)
            if isinstance(event, ConnectionTerminated):
                self.rearm()

    async def flush(self, *, wait: bool = False) -> None:
        """Get what the connection has queued written.

        One task at a time writes (the *sender*); it writes everything queued, again and
        again until nothing is left, so frames go out in the order they were queued. A
        flush that finds a sender at work returns at once: that sender takes these
        frames too (trio lets the others run while a ``send_all`` is in progress, so a
        burst of calls shares a few system calls instead of paying one each). It waits
        for the sender instead when ``wait`` is true (the caller needs the bytes
        written, e.g. before closing the stream) or when more than
        :data:`WRITE_HIGH_WATER` bytes are queued (backpressure: a peer that reads
        slowly slows the tasks that write to it rather than growing the buffer).
        """
        while self._sending:
            if not wait and self.conn.bytes_to_send() <= WRITE_HIGH_WATER:
                return
            done = self._flushed
            await done.wait()
            if not self.conn.has_data_to_send():
                return
            # The sender stopped early (cancelled) and left frames queued: take over.
        if not self.conn.has_data_to_send():
            return
        self._sending = True
        try:
            while True:
                data = self.conn.data_to_send()
                if not data:
                    return
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    # The reader sees the same failure and ends the link.
                    return
                except trio.Cancelled:
                    # Cancelled mid-write: ``data`` (other calls' frames too) is gone and
                    # the stream may hold part of a frame. End the link, so every call
                    # on it fails UNAVAILABLE (and is retried) instead of waiting forever.
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(self.stream)
                    raise
        finally:
            self._sending = False
            self._flushed.set()
            self._flushed = trio.Event()

    def call_ended(self) -> None:
        """Wake callers waiting for a free call slot."""
        self._room.set()
        self._room = trio.Event()

    async def wait_for_room(self, limit: int) -> None:
        """Backpressure: wait while ``limit`` calls are open on this connection, and it
        still takes new calls (after a GOAWAY the caller should go elsewhere)."""
        while (self.conn.open_calls >= limit and not self.closed.is_set()
               and self.conn.state is ConnectionState.OPEN):
            await self._room.wait()
