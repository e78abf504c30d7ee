"""One live connection: a stream plus a sans-I/O :class:`~rpcx.protocol.Connection`, driven
by one reader (at a time) and one timer loop.

Both the client channel and the server use this; they differ only in what they do with
events (``on_event``). Everything that touches the stream is here, and every stream error
is handled here: a broken stream ends the link, and the protocol core reports every open
call as aborted.

**Work run by the reader.** ``on_event`` may queue *work* (:meth:`Link.queue_work`: the
server queues one job per request). The reader runs queued work itself, right after the
bytes that produced it, before it reads again or writes: a handler that never waits is
answered without a task of its own, and the answers of one read go out in one write. A
job that does wait (its first ``await`` that really suspends: I/O, a sleep, a lock) keeps
the task it started in, and a new reader task takes over the connection at that moment,
so a slow handler never holds up the others. Each job runs in a copy of the reader's
``contextvars`` context, as a task of its own would.

**Cancelling a job without a cancel scope per job.** Each reader task runs inside one
cancel scope of its own, entered when the task starts. A job that never waits cannot be
cancelled (nothing else runs meanwhile), so it needs no scope; a job that waits is, from
that moment, the only thing its task does, so the task's scope is the job's: it is handed
to the job's ``on_suspend`` callback, and cancelling it cancels just that job. (Entering
and leaving a trio cancel scope costs about 48,000 instructions; a scope per request was
the largest single cost of a call on the server.)

**A caller that reads its own reply** (client, socket streams). A reader task that wakes a
caller takes one more trip through trio's run loop before the caller runs: on a
sequential call that trip is on the critical path. So when the reader's read woke callers
and left no call open, it lets go of the reading (the role is *free*) and parks; a caller
that then starts the connection's only call reads for itself (:meth:`Link.take_reading`,
:meth:`Link.read_once`, :meth:`Link.release_reading`), processing whatever arrives as the
reader would (other calls' replies included) until its own reply is in; then the reading
is free again and the reader task is woken, to take it if no caller did meanwhile. The
reader task parks without a cancel scope; a caller whose call ends while it waits for
bytes (its deadline; the connection lost) is woken by
:meth:`rpcx.transport.sockets.SocketStream.interrupt_receive`.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

import trio

from rpcx.errors import RemoteProtocolError
from rpcx.protocol import Connection, ConnectionState, Event
from rpcx.protocol.events import ConnectionTerminated
from rpcx.status import Status
from rpcx.transport.sockets import SocketStream

__all__ = ["Link", "Waiter"]

logger = logging.getLogger("rpcx.link")

RECEIVE_SIZE = 65536
WRITE_HIGH_WATER = 256 * 1024
"""Bytes queued behind a sender at work above which :meth:`Link.flush` waits for it."""
_FINAL_FLUSH_TIMEOUT = 5.0
"""Seconds a finished connection spends sending what is left before it closes anyway."""

# Who reads the stream (Link._role); see "A caller that reads its own reply" above.
_READER = 0
"""The reader task (waiting for bytes, or processing them)."""
_FREE = 1
"""Nobody: the reader task is woken or parked until ``woken`` falls to 0; a caller that
starts the only call may take the reading."""
_CALLER = 2
"""A caller, until its reply is in; the reader task is parked."""


Job = Callable[[], Coroutine[Any, Any, None]]
"""Work for the reader: called (with no arguments) to make the coroutine to run."""
OnSuspend = Callable[[trio.CancelScope], None]
"""Told, when its job first waits, the cancel scope that now belongs to the job alone."""


class _RunJob(Awaitable[None]):
    """Drive one job's coroutine from the reader: to completion if it never suspends;
    at its first suspension call ``on_suspend`` (which hands the reading to a new task),
    then ``notify(scope)`` if given (the job now owns the task and its cancel scope), and
    go on driving it in this task, passing trio's traps through as ``await`` would."""

    __slots__ = ("context", "coro", "notify", "on_suspend", "scope", "suspended")

    def __init__(self, coro: Coroutine[Any, Any, None], on_suspend: Callable[[], None],
                 notify: Callable[[trio.CancelScope], None] | None = None,
                 scope: trio.CancelScope | None = None) -> None:
        self.coro = coro
        self.context = contextvars.copy_context()
        self.on_suspend = on_suspend
        self.notify = notify
        self.scope = scope
        self.suspended = False

    def __await__(self) -> Generator[Any, Any, None]:
        run, coro = self.context.run, self.coro
        try:
            trap = run(coro.send, None)
        except StopIteration:
            return
        self.suspended = True
        self.on_suspend()
        if self.notify is not None and self.scope is not None:
            self.notify(self.scope)
        while True:
            try:
                sent = yield trap
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # Cancelled and friends go to the job
                try:
                    trap = run(coro.throw, exc)
                except StopIteration:
                    return
            else:
                try:
                    trap = run(coro.send, sent)
                except StopIteration:
                    return


class Waiter:
    """One task waits until something changes (cheaper than a fresh trio.Event each
    time on a per-message or per-call path): the link's parked reader task, a stream's
    reader and writer."""

    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._task: trio.lowlevel.Task | None = None

    def wake(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def wait(self) -> None:
        self._task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._task = None
        return trio.lowlevel.Abort.SUCCEEDED


class Link:
    def __init__(self, stream: trio.abc.Stream, conn: Connection,
                 on_event: Callable[[Event], None], *, name: str = "") -> None:
        self.stream = stream
        self.conn = conn
        self.name = name
        self.on_event = on_event
        """Told each event of the connection (the owner may set it after construction)."""
        self._sending = False
        # Sockets take a write without waiting (see _write_nowait); what they did not
        # take waits here, ahead of anything the connection queues later.
        self._send_nowait = stream.send_nowait if isinstance(stream, SocketStream) else None
        # ... and a reader that has just emptied one waits before its next recv; its
        # wait can be interrupted (a caller reading its own reply).
        self._receive_or_interrupt: Callable[[int, bool], Awaitable[bytes | None]] | None = \
            stream.receive_or_interrupt if isinstance(stream, SocketStream) else None
        self._interrupt_receive: Callable[[], bool] | None = \
            stream.interrupt_receive if isinstance(stream, SocketStream) else None
        self._drained = False  # the last read emptied the socket: wait before the next recv
        self._role = _READER
        self._parked = Waiter()  # the reader task, while the reading is not its own
        self.woken = 0
        """Callers woken with their reply (by the client's event handler) that have not
        run yet: while there are any, the reader does not take the reading back."""
        self._unsent = b""
        self._flushed = trio.Event()
        self._timer_scope: trio.CancelScope | None = None
        self.closed = trio.Event()
        self._room = trio.Event()
        self._room_waiters = 0
        self._work: collections.deque[tuple[Job, OnSuspend | None]] = collections.deque()
        self._nursery: trio.Nursery | None = None
        self._reading_done = trio.Event()
        self.now: Callable[[], float] = trio.current_time
        """``trio.current_time``; from :meth:`run` on, the run's clock's own
        ``current_time``: the same value, read through one Python call instead of three
        (for the per-call path)."""

    # -- the loops ---------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the connection ends, then close the stream. Never raises for a
        network problem: those end the link and are reported as events."""
        self.now = trio.lowlevel.current_clock().current_time
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timer_loop)
                await self.flush()  # our preface
                nursery.start_soon(self._reader_loop)
                await self._reading_done.wait()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # (``except* Exception``, written out: mypyc compiles no ``except*``)
            bugs, rest = group.split(Exception)
            if bugs is None:
                raise  # (Cancelled, KeyboardInterrupt...: none of this method's business)
            self._ended_by_bug(bugs)
            if rest is not None:
                raise rest from None  # (as except* re-raises what it did not match)
        except Exception as exc:  # (the nursery wraps everything; just in case)
            self._ended_by_bug(exc)
        finally:
            self.closed.set()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    def _ended_by_bug(self, bug: BaseException) -> None:
        # A bug on this connection (in rpcx or in an owner's event handler) ends this
        # connection, never the server or channel that owns it: its calls are reported
        # aborted, so nobody waits for them.
        logger.error("%s: connection ended by an internal error", self.name, exc_info=bug)
        if not self.finished():
            self.conn.close(trio.current_time(), status=Status.INTERNAL,
                            message="internal error; the connection was closed")
            self._process()

    async def _reader_loop(self) -> None:
        # The task's one cancel scope: a job that waits in this task gets it (see the
        # module docstring); cancelling it ends the job and, with it, this task.
        with trio.CancelScope() as scope:
            await self._read(scope)

    async def _read(self, scope: trio.CancelScope) -> None:
        # A reader that took over from one whose job suspended finishes that read's work.
        if not await self._run_work(scope):
            return
        await self.flush()
        self._drained = False  # (a reader taking over: try the socket first)
        receive_or_interrupt = self._receive_or_interrupt
        received: bytes | None
        data: bytes | bytearray
        while not self.finished():
            role = self._role
            if role != _READER:
                if role == _FREE and not self.woken:
                    self._role = _READER
                else:
                    await self._parked.wait()  # until a caller lets go of the reading
                    continue
            try:
                if receive_or_interrupt is not None:
                    received = await receive_or_interrupt(RECEIVE_SIZE, self._drained)
                    if received is None:
                        continue  # (interrupted: not done to this task; look again)
                    data = received
                else:
                    data = await self.stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                # Reset, or closed under us: treat as end of stream; the core aborts calls.
                data = b""
            self._drained = len(data) < RECEIVE_SIZE
            if self.finished():
                break
            self._take_in(bytes(data))
            if (self.woken and receive_or_interrupt is not None
                    and self.conn.open_calls == 0):
                # The callers just woken may start the next calls: let one of them read
                # its own reply (see the module docstring).
                self._role = _FREE
            if self._work and not await self._run_work(scope):
                return  # a job suspended: another task reads now
            if not self.flush_nowait():
                await self.flush()
        self._reading_done.set()

    def queue_work(self, job: Job, on_suspend: OnSuspend | None = None) -> None:
        """Have the reader run ``job()`` once the current input is processed (see the
        module docstring). Call from ``on_event``. If the job waits, ``on_suspend`` gets
        the cancel scope that cancels it."""
        self._work.append((job, on_suspend))

    async def _run_work(self, scope: trio.CancelScope | None = None) -> bool:
        """Run queued jobs in this (reader) task. False if one suspended: this task then
        finished it, a new reader has taken over, and this one must stop reading."""
        work = self._work
        while work:
            make, notify = work.popleft()
            job = _RunJob(make(), self._hand_over, notify, scope)
            await job
            if job.suspended:
                await self.flush()  # its answer: the new reader may be waiting for input
                return False
            if self._bytes_to_send() > WRITE_HIGH_WATER:
                # Answers pile up faster than the peer reads them: write (and so stop
                # reading) before running more, so memory stays bounded.
                await self.flush()
        return True

    # -- a caller that reads its own reply (see the module docstring) ---------------------

    @property
    def reading_by(self) -> str:
        """Who reads the stream now: ``"task"`` (the reader task), ``"caller"`` (a caller
        reading its own reply) or ``"nobody"`` (free, until the reader task or a caller
        takes it). For tests and diagnostics."""
        return ("task", "nobody", "caller")[self._role]

    def take_reading(self) -> bool:
        """For a caller whose call is the only one open, its request sent: True if it now
        reads the stream itself (nobody else does) until its reply is in, with
        :meth:`read_once`, and then calls :meth:`release_reading`."""
        if self._role == _FREE and self.conn.open_calls == 1 and not self.finished():
            self._role = _CALLER
            return True
        return False

    async def read_once(self) -> bool:
        """Wait for bytes and process them, as the reader task does (a caller that took the
        reading). False once the connection has ended. Cancellable while it waits, and
        then nothing was read; a wait ended by :meth:`interrupt_reading` reads nothing."""
        receive = self._receive_or_interrupt
        assert receive is not None and self._role == _CALLER
        received: bytes | None
        try:
            received = await receive(RECEIVE_SIZE, self._drained)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            received = b""
        if received is None:
            return not self.finished()
        self._drained = len(received) < RECEIVE_SIZE
        if self.finished():
            return False
        try:
            self._take_in(received)
        except Exception as bug:
            # (As a bug in the reader task's processing: it ends this connection only.)
            self._ended_by_bug(bug)
            return False
        if not self.flush_nowait() and not self.finished():
            # (The caller does not wait for another sender's write. RuntimeError: the
            # link's nursery is closing, as the link is ending.)
            with contextlib.suppress(RuntimeError):
                self.flush_soon()
        return not self.finished()

    def _take_in(self, data: bytes) -> None:
        """Bytes read (by the reader task or a reading caller) into the connection, and
        its events to the owner."""
        try:
            self.conn.receive_data(data, self.now())
        except RemoteProtocolError as exc:
            # Already reported as events, with an error GOAWAY queued for the peer.
            logger.warning("%s: peer broke the protocol: %s", self.name, exc)
        self.rearm()  # a request just received may carry the earliest deadline
        self._process()

    def interrupt_reading(self) -> None:
        """End the wait of the caller reading (:meth:`read_once`) if it waits for bytes:
        its call has ended by other means (deadline, connection lost)."""
        interrupt = self._interrupt_receive
        if interrupt is not None and self._role == _CALLER:
            interrupt()

    def release_reading(self) -> None:
        """The caller that took the reading is done (reply in, cancelled, or the
        connection ended): the reading is free; the reader task takes it when it runs
        (woken now, or by the last of the callers this one woke: :meth:`caller_ran`)."""
        self._role = _FREE
        if not self.woken or self.finished():
            self._parked.wake()

    def caller_ran(self) -> None:
        """A caller woken with its reply runs (the client's ``woken`` count just fell by
        one): the last of them wakes the reader task if the reading is still free."""
        self.woken -= 1
        if not self.woken and self._role == _FREE:
            self._parked.wake()

    def _hand_over(self) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._reader_loop)

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
                self.flush_soon()  # never write here: see flush_soon
            if self.finished():
                # Send what is left (a last reply, our GOAWAY), then make the reader stop
                # waiting for bytes that may never come.
                with trio.move_on_after(_FINAL_FLUSH_TIMEOUT):  # the peer may not read
                    await self.flush(wait=True)
                await trio.aclose_forcefully(self.stream)
                return

    def flush_soon(self) -> None:
        """Have what is queued written by a task of its own, unless a sender is at work
        (it takes these frames too). The timer must never be the sender: a write to a
        peer that stopped reading may never end, and then no later deadline (nor the
        keepalive timeout) would fire."""
        if not self._sending and self._has_output():
            assert self._nursery is not None
            self._nursery.start_soon(self.flush)

    # -- used by the owners ----------------------------------------------------------------

    def finished(self) -> bool:
        """The connection is CLOSED (the stream may still be flushing)."""
        return self.conn.state is ConnectionState.CLOSED

    def rearm(self) -> None:
        """Call after changing the connection (new call, reply): its next deadline may be
        earlier than the one the timer sleeps until."""
        scope = self._timer_scope
        if scope is not None:
            deadline = self.conn.new_deadline()  # O(1): only an added deadline is earlier
            if deadline < scope.deadline:
                scope.deadline = deadline
            elif self.finished():
                scope.cancel()

    def _process(self) -> None:
        for event in self.conn.events():
            self.on_event(event)
            if isinstance(event, ConnectionTerminated):
                self.rearm()
                self._parked.wake()  # a parked reader task must see the end too

    def _has_output(self) -> bool:
        return bool(self._unsent) or self.conn.has_data_to_send()

    def _bytes_to_send(self) -> int:
        return len(self._unsent) + self.conn.bytes_to_send()

    def _write_nowait(self) -> bool:
        """With no sender at work: write what is queued without waiting (a socket stream
        only). True if nothing is left to write (or the stream has failed: the reader
        sees the same failure and ends the link); False if the socket took only part,
        the rest kept in ``_unsent`` for the ordinary path. Nothing here can be
        cancelled, so the stream never holds part of a frame because of a cancellation,
        and nothing here waits, so it needs neither a cancel scope nor a checkpoint."""
        assert self._send_nowait is not None and not self._sending
        data = self._unsent + self.conn.data_to_send() if self._unsent else \
            self.conn.data_to_send()
        try:
            sent = self._send_nowait(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._unsent = b""
            return True
        self._unsent = data[sent:] if sent < len(data) else b""
        return not self._unsent

    def flush_nowait(self) -> bool:
        """Write what is queued if that needs no waiting: True if nothing is left to
        write (nothing was queued, or the socket took it all at once); False if
        :meth:`flush` must be awaited (a sender is at work, the socket took only part, or
        the stream is not a socket). Saves making a coroutine on the common path."""
        if self._sending:
            return False
        if not self._has_output():
            return True
        return self._send_nowait is not None and self._write_nowait()

    async def flush(self, *, wait: bool = False, deadline: float = math.inf) -> bool:
        """Get what the connection has queued written; False if ``deadline`` (trio time)
        passed first (the peer is not reading). If it passed while this task was
        writing, the connection is ended, as a cancelled write leaves the stream in an
        unknown state; if it passed while waiting for another sender (past the
        high-water mark), the frames stay queued for that sender. Details in
        :meth:`_flush`. On a socket, what the socket takes at once is written without a
        cancel scope or a checkpoint (:meth:`_write_nowait`)."""
        if self._sending:
            if not wait and self._bytes_to_send() <= WRITE_HIGH_WATER:
                return True  # the sender at work takes these frames too
        elif not self._has_output() or (self._send_nowait is not None
                                        and self._write_nowait()):
            return True  # nothing to write, or the socket took it all at once
        if deadline == math.inf:
            await self._flush(wait)
            return True
        with trio.move_on_at(deadline) as scope:
            await self._flush(wait)
        return not scope.cancelled_caught

    async def _flush(self, wait: bool) -> None:
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
            if not wait and self._bytes_to_send() <= WRITE_HIGH_WATER:
                return
            done = self._flushed
            await done.wait()
            if not self._has_output():
                return
            # The sender stopped early (cancelled) and left frames queued: take over.
        if not self._has_output():
            return
        self._sending = True
        try:
            while True:
                if self._unsent:
                    data, self._unsent = self._unsent, b""
                else:
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
        """Wake callers waiting for a free call slot (a new event only if any waited)."""
        if self._room_waiters:  # a counter: this runs once per reply
            self._room.set()
            self._room = trio.Event()

    async def wait_for_room(self, limit: int) -> None:
        """Backpressure: wait while ``limit`` calls are open on this connection, and it
        still takes new calls (after a GOAWAY the caller should go elsewhere)."""
        while (self.conn.open_calls >= limit and not self.closed.is_set()
               and self.conn.state is ConnectionState.OPEN):
            self._room_waiters += 1
            try:
                await self._room.wait()
            finally:
                self._room_waiters -= 1
