"""A unary call's per-call path, on both sides: the client's attempt and the server's job.

Everything here runs once (or more) per call, so it is compiled in the compiled build
(``rpcx._mypyc.COMPILED_MODULES``), as the protocol core and the link it drives are; the
rest of the runtime stays interpreted, beside it:

- client (``rpcx.runtime.channel``): :class:`Channel <rpcx.runtime.channel.Channel>`
  owns the connections, the options and the statistics; a unary call runs
  :func:`unary` (encode, attempts with retries, decode) and each attempt
  :func:`attempt`; a connection's calls waiting for replies are a :class:`ClientLink`
  of :class:`Pending` calls, resolved by the connection's events.
- server (``rpcx.runtime.server``): :class:`Server <rpcx.runtime.server.Server>` accepts
  connections; a connection's events go to its :class:`ServerLink`, which queues one
  job per request; a unary request's job is :func:`run_call` (a keyed one goes through
  the de-duplication cache: :func:`execute`), with its :class:`CallState`.

The functions take the channel or the server as their first argument and read its
settings from it; they behave exactly as the methods they were written from.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from rpcx.errors import (
    CodecError,
    DeadlineExceeded,
    DeclaredError,
    LocalProtocolError,
    RemoteError,
    RpcError,
    Unavailable,
)
from rpcx.protocol import (
    CallAborted,
    CancelReceived,
    ConnectionState,
    ConnectionTerminated,
    DeadlineExpired,
    ErrorReceived,
    Event,
    Execute,
    GoAwayReceived,
    Overloaded,
    Replay,
    RequestReceived,
    ResponseReceived,
    Wait,
)
from rpcx.protocol.connection import TOO_LARGE
from rpcx.runtime._errors import error_for
from rpcx.runtime.dispatch import Failure, Reply, Route, Success, unpack_reply
from rpcx.runtime.link import Link
from rpcx.runtime.options import enter_call
from rpcx.runtime.retry import RetryPolicy
from rpcx.runtime.streams import STREAM_EVENTS, ServerCallStream, StreamCore
from rpcx.schema import MethodSpec
from rpcx.status import Status

if TYPE_CHECKING:
    from rpcx.runtime.channel import Channel
    from rpcx.runtime.server import Server

__all__ = ["CallState", "ClientLink", "Pending", "ServerLink", "StreamPending", "answer",
           "attempt", "execute", "run_call", "unary"]

logger = logging.getLogger("rpcx.server")  # (answer's, as the server's own)

# -- the client ------------------------------------------------------------------------


class Pending:
    """A call waiting for its reply: the caller parks on it (trio.lowlevel, cheaper than
    an Event on this per-call path) and the reader resolves it. A successful reply is
    kept as its payload (bytes), without a :class:`Success` around it."""

    __slots__ = ("reading", "reply", "task")

    def __init__(self) -> None:
        self.reply: bytes | Failure | None = None
        self.task: trio.lowlevel.Task | None = None
        self.reading = False
        """Its caller reads the connection itself (``Link.take_reading``)."""

    def done(self) -> bool:
        """The reply is in. (A method, not ``reply is None``: after such a test, mypy
        keeps ``reply`` narrowed across awaits, and mypyc compiles the narrowed type.)"""
        return self.reply is not None

    def resolve(self, reply: bytes | Failure) -> bool:
        """Keep the reply and wake the caller; True if a parked caller was woken."""
        if self.reply is None:
            self.reply = reply
            task, self.task = self.task, None
            if task is not None:
                trio.lowlevel.reschedule(task)
                return True
        return False

    async def wait(self) -> None:
        """Until resolved (a checkpoint: cancellable like any trio wait)."""
        if self.reply is not None:
            await trio.lowlevel.checkpoint()
            return
        self.task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self.abort)

    def abort(self, _: object) -> trio.lowlevel.Abort:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED


class StreamPending(Pending):
    """A streaming call's outcome: also wakes the stream's reader and writer."""

    __slots__ = ("core",)

    def __init__(self, core: StreamCore) -> None:
        super().__init__()
        self.core = core

    def resolve(self, reply: bytes | Failure) -> bool:
        super().resolve(reply)
        self.core.wake()
        return False  # (not a unary caller: see Link.woken)


class ClientLink:
    """A client connection and its calls awaiting replies."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.pending: dict[int, Pending] = {}
        # ``link.woken``: unary callers woken with their reply that have not run yet.
        # While there are any, a caller that starts a new call leaves its request
        # queued, and the last of them to run writes what is queued: the requests of
        # callers woken by one read go out in two writes, not one each (64 calls in
        # flight). (The link keeps the count: its reader lets these callers read.)
        self.streams: dict[int, StreamCore] = {}  # streaming calls (rpcx.runtime.streams)

    def on_event(self, event: Event) -> None:
        if isinstance(event, ResponseReceived):
            self.resolve(event.call_id, event.payload)
        elif isinstance(event, STREAM_EVENTS):
            core = self.streams.get(event.call_id)
            if core is not None:
                core.on_event(event)
        elif isinstance(event, ErrorReceived):
            self.resolve(event.call_id, Failure(
                event.status, event.message, dict(event.details),
                error_name=event.error_name, error_payload=event.error_payload))
        elif isinstance(event, DeadlineExpired):
            self.resolve(event.call_id,
                         Failure(Status.DEADLINE_EXCEEDED, "deadline exceeded", local=True))
        elif isinstance(event, CallAborted):
            self.resolve(event.call_id, Failure(event.status, event.message,
                                                dict(event.details),
                                                local=event.outcome_unknown))
        elif isinstance(event, GoAwayReceived):
            self.link.call_ended()  # callers waiting for room here must go elsewhere
        elif isinstance(event, ConnectionTerminated):
            for call_id in list(self.pending):
                self.resolve(call_id, Failure(Status.UNAVAILABLE,
                                              f"connection ended: {event.message}",
                                              local=True))

    def resolve(self, call_id: int, reply: bytes | Failure) -> None:
        pending = self.pending.pop(call_id, None)
        if pending is not None:
            if pending.resolve(reply):
                self.link.woken += 1
            elif pending.reading:
                self.link.interrupt_reading()  # (if it waits for bytes: ended otherwise)
        self.link.call_ended()

    def caller_woke(self) -> None:
        """A unary caller woken by :meth:`resolve` runs: the last of those woken together
        writes the requests the others left queued (see ``link.woken``)."""
        link = self.link
        link.caller_ran()
        if not link.woken and not link.flush_nowait() and not link.closed.is_set():
            link.flush_soon()  # (the socket did not take it all, or not a socket)

    @property
    def usable(self) -> bool:
        return (not self.link.closed.is_set()
                and self.link.conn.state is ConnectionState.OPEN)


async def unary(channel: Channel, method: MethodSpec, args: tuple[Any, ...],
                deadline: float, metadata: Mapping[str, str],
                count_failures: bool = False) -> Any:
    """A unary call on ``channel``: encode, attempts (retried per its policy), decode.
    ``count_failures``: count a call that raises in the channel's statistics."""
    codec = channel.codec
    stats = channel._stats
    try:
        payload = codec.encode(method.params, args)  # bad arguments raise here
    except RpcError:
        if count_failures:
            stats["failures"] += 1
        raise
    key = None if method.idempotent else os.urandom(16)
    policy = channel.retry
    tries = 1
    unknown = False
    while True:
        stats["attempts"] += 1
        try:
            reply = await attempt(channel, method, deadline, metadata, payload, key, policy)
            if isinstance(reply, Failure):
                return unpack_reply(method, reply, codec)  # a declared error
            if method.result is None:
                return None
            try:  # unpack_reply(method, Success(reply), codec) without the Success
                return codec.decode(method.result, reply)
            except CodecError as exc:
                raise RemoteError(Status.INTERNAL,
                                  f"undecodable result from {method.path}: {exc}") from None
        except DeclaredError:
            if count_failures:
                stats["failures"] += 1
            raise
        except RpcError as exc:
            # (an earlier attempt that may have run leaves the outcome unknown)
            unknown = exc.outcome_unknown = exc.outcome_unknown or unknown
            if (exc.code not in policy.retryable or tries >= policy.max_attempts
                    or exc.details == TOO_LARGE):  # the same message is too large again
                if count_failures:
                    stats["failures"] += 1
                raise
            pause = policy.backoff(tries, channel._random)
            if trio.current_time() + pause >= deadline:
                if count_failures:
                    stats["failures"] += 1
                raise
        stats["retries"] += 1
        tries += 1
        await trio.sleep(pause)


async def attempt(channel: Channel, method: MethodSpec, deadline: float,
                  metadata: Mapping[str, str], payload: bytes, key: bytes | None,
                  policy: RetryPolicy) -> bytes | Failure:
    """One attempt of a unary call on ``channel``: the reply's payload (success) or a
    Failure carrying a declared error; other failures raise."""
    current: ClientLink | None = channel._link
    now = trio.current_time() if current is None else current.link.now()
    if now >= deadline:
        raise DeadlineExceeded(f"{method.path}: deadline passed before sending")
    # Waiting for a connection or for room on it counts against the deadline too.
    # (The common case, a usable connection with room, takes no cancel scope.)
    max_calls: int = channel._max_calls
    link: ClientLink
    if (current is not None and not channel._closed and current.usable
            and current.link.conn.open_calls < max_calls):
        link = current
    else:
        with trio.move_on_at(deadline):
            while True:
                link = await channel._ready_link(deadline)
                await link.link.wait_for_room(max_calls)
                if link.usable:
                    break
                # The connection stopped taking calls while we waited (GOAWAY, lost):
                # the next round connects anew.
        now = trio.current_time()
        if now >= deadline:
            raise DeadlineExceeded(f"{method.path}: deadline passed before sending")
        if not link.usable:
            raise Unavailable(f"{channel.address}: connection closed while waiting to send")
    conn = link.link.conn
    call_id = conn.start_call(
        method.path, payload, now=now,
        timeout=None if deadline == math.inf else deadline - now,
        metadata=metadata, idempotency_key=key)
    pending = Pending()
    link.pending[call_id] = pending
    link.link.rearm()
    # Without an attempt timeout the connection's own timer ends the call at its
    # deadline (DeadlineExpired), so this waits for no clock of its own.
    attempt_timeout = policy.attempt_timeout
    attempt_deadline = math.inf if attempt_timeout is None else min(
        deadline, now + attempt_timeout)
    try:
        # Inside the try: a caller cancelled while its request waits to be written
        # (another task is sending) must still cancel the call. Writing is bounded by
        # the deadline too: a peer that stops reading must not hold the caller.
        # While callers woken with this one are still to run, the last of them writes
        # this request with theirs (Link.woken).
        if (not link.link.woken and not link.link.flush_nowait()
                and not await link.link.flush(deadline=deadline)):
            link.pending.pop(call_id, None)
            error = DeadlineExceeded(f"{method.path}: deadline passed while the "
                                     "request was being written (is the peer reading?)")
            error.outcome_unknown = True
            raise error
        if attempt_deadline == math.inf:
            if pending.done():
                await trio.lowlevel.checkpoint()
            else:
                if link.link.take_reading():
                    # The only call open: read the reply here rather than be woken by
                    # the reader task (a trip through trio's run loop less; see
                    # rpcx.runtime.link). Every read_once is a checkpoint.
                    pending.reading = True
                    try:
                        while not pending.done():
                            if not await link.link.read_once():
                                break
                    finally:
                        pending.reading = False
                        link.link.release_reading()
                    if not pending.done():
                        # The connection ended and nobody has processed its end yet
                        # (closed outside a read): the call fails as the end would.
                        link.resolve(call_id, Failure(Status.UNAVAILABLE,
                                                      "connection ended", local=True))
                if not pending.done():
                    # pending.wait(), inline: one coroutine less per call
                    pending.task = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(pending.abort)
                    link.caller_woke()  # (only ClientLink.resolve reschedules this task)
        else:
            with trio.move_on_at(attempt_deadline):
                parked = pending.reply is None
                await pending.wait()
                if parked:
                    link.caller_woke()
    except trio.Cancelled:
        # The caller gave up: tell the server, so it cancels the handler.
        if link.pending.pop(call_id, None) is not None:
            conn.cancel_call(call_id)
            with trio.CancelScope(shield=True):
                await link.link.flush()
        raise
    reply = pending.reply
    if reply is None:
        # This attempt timed out before the call's deadline. A call with an
        # idempotency key is left running on the server so its result is stored for
        # the retry (it is only forgotten here, freeing its slot); one without a key
        # is cancelled there.
        link.pending.pop(call_id, None)
        if conn.cancel_call(call_id, notify=key is None):
            link.link.call_ended()
            await link.link.flush()
        error = DeadlineExceeded(f"{method.path}: attempt timed out")
        error.outcome_unknown = True
        raise error
    if isinstance(reply, Failure) and reply.error_name is None:
        failed = error_for(reply.status, reply.message, reply.details)
        # (the server's DEADLINE_EXCEEDED: the handler was running when time ran out)
        failed.outcome_unknown = reply.local or reply.status is Status.DEADLINE_EXCEEDED
        raise failed
    return reply


# -- the server ------------------------------------------------------------------------


class CallState:
    """One request on the server: cancelled yet, and the cancel scope that cancels its
    handler once the handler has waited (before that, nothing can interrupt it)."""

    __slots__ = ("cancelled", "scope")

    def __init__(self) -> None:
        self.cancelled = False
        self.scope: trio.CancelScope | None = None

    def suspended(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        if self.cancelled:
            scope.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class ServerLink:
    """A server connection's calls: each request becomes a job for the link's reader
    (:func:`run_call`, or the server's ``_run_stream`` for a streaming call); a cancel,
    an expired deadline or a lost connection cancels its job."""

    def __init__(self, server: Server, link: Link, peer: str, owner: int) -> None:
        self.server = server
        self.link = link
        self.peer = peer
        self.owner = owner
        """The connection's number: it owns the idempotency keys it sends."""
        self.calls: dict[int, CallState] = {}
        self.streams: dict[int, ServerCallStream] = {}
        self.streaming: dict[str, MethodSpec] = server.dispatcher.streaming

    def on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            state = self.calls[event.call_id] = CallState()
            streaming = self.streaming
            server = self.server
            if streaming and event.method in streaming and not event.oneway:
                self.streams[event.call_id] = ServerCallStream(
                    self.link, event.call_id, streaming[event.method], server.codec)
                self.link.queue_work(functools.partial(
                    server._run_stream, self.link, event, state, self.calls, self.streams,
                    self.peer), state.suspended)
                return
            self.link.queue_work(functools.partial(
                run_call, server, self.link, event, state, self.calls, self.peer,
                self.owner), state.suspended)
        elif isinstance(event, (CancelReceived, DeadlineExpired, CallAborted)):
            running = self.calls.pop(event.call_id, None)
            if running is not None:
                running.cancel()
        elif isinstance(event, STREAM_EVENTS):
            call_stream = self.streams.get(event.call_id)
            if call_stream is not None:
                call_stream.on_event(event)


async def run_call(server: Server, link: Link, event: RequestReceived, state: CallState,
                   calls: dict[int, CallState], peer: str, owner: int) -> None:
    """The job that answers a unary (or one-way) request on ``link``."""
    server._stats["calls"] += 1
    if state.cancelled or (event.deadline is not None
                           and link.now() >= event.deadline):
        # Cancelled before it started (CANCEL in the same read, connection lost) or
        # arrived with no time left (timeout_ms 0): not run at all. The connection
        # answers it (its timer sends DEADLINE_EXCEEDED).
        return
    server._in_flight += 1
    dispatcher = server.dispatcher
    try:
        # No cancel scope here: if the handler waits, the reader task it runs in
        # becomes its own and that task's scope is this call's (state.suspended).
        # A cancel (CANCEL, deadline, lost connection) raises Cancelled in the
        # handler, which ends the task; the protocol core has answered already.
        key = event.idempotency_key
        reply: Reply | None
        route = None if event.oneway else dispatcher.unary_route(event.method)
        if key is not None and not event.oneway and server._deduplicate:
            reply = await execute(server, link, event, peer, owner, route)
        elif route is not None:
            # The common call, with Dispatcher.dispatch's steps written out (one
            # coroutine less, no Success): this job runs in a context of its own
            # (rpcx.runtime.link), so the ambient values need no resetting.
            metadata = event.metadata
            enter_call(math.inf if event.deadline is None else event.deadline,
                       dict(metadata) if metadata else {}, key)
            method = route.method
            codec = server.codec
            try:
                result = await route.handler(*dispatcher.decode_args(route, event.payload,
                                                                     codec))
            except Exception as exc:
                reply = dispatcher.failure(method, exc, codec)
            else:
                payload = dispatcher.result_reply(method, result, codec)
                if isinstance(payload, bytes):
                    link.conn.send_response(event.call_id, payload)
                    reply = None
                else:
                    reply = payload
        else:
            reply = await dispatcher.dispatch(
                event.method, event.payload, server.codec, metadata=event.metadata,
                deadline=math.inf if event.deadline is None else event.deadline,
                peer=peer, idempotency_key=event.idempotency_key)
    finally:
        server._in_flight -= 1
        if calls.get(event.call_id) is state:
            del calls[event.call_id]  # finished: no cancel may reach its task now
    if event.oneway:
        link.conn.finish_oneway(event.call_id)
    elif reply is not None:
        answer(link, event, reply)
    link.rearm()  # the link writes the answer (after the read, or after this job)


async def execute(server: Server, link: Link, event: RequestReceived, peer: str,
                  owner: int, route: Route | None) -> Reply:
    """A call with an idempotency key: through the server's de-duplication cache.
    ``route``: the method's when the handler may run without ``Dispatcher.dispatch``
    (see :func:`run_call`)."""
    deadline = math.inf if event.deadline is None else event.deadline
    key = event.idempotency_key
    assert key is not None
    entry = (event.method, key)
    dedup = server._dedup
    dispatcher = server.dispatcher
    while True:
        decision = dedup.begin(event.method, key, link.now(), owner)
        if isinstance(decision, Replay):
            server._stats["replayed"] += 1
            reply: Reply = decision.reply
            return reply
        if isinstance(decision, Overloaded):
            return Failure(Status.RESOURCE_EXHAUSTED, decision.reason)
        if isinstance(decision, Wait):
            # Only a duplicate pays for an event: the first execution sets it if present.
            waiter = server._dedup_done.get(entry)
            if waiter is None:
                waiter = server._dedup_done[entry] = trio.Event()
            await waiter.wait()
            continue
        assert isinstance(decision, Execute)
        try:
            if route is not None:
                # Dispatcher.dispatch's steps, as in run_call (a context of its own)
                metadata = event.metadata
                enter_call(deadline, dict(metadata) if metadata else {}, key)
                codec = server.codec
                try:
                    result = await route.handler(
                        *dispatcher.decode_args(route, event.payload, codec))
                except Exception as exc:
                    reply = dispatcher.failure(route.method, exc, codec)
                else:
                    payload = dispatcher.result_reply(route.method, result, codec)
                    reply = Success(payload) if isinstance(payload, bytes) else payload
            else:
                reply = await dispatcher.dispatch(
                    event.method, event.payload, server.codec, metadata=event.metadata,
                    deadline=deadline, peer=peer, idempotency_key=key)
        except BaseException:
            dedup.abandon(event.method, key)  # not finished: a retry may run it
            raise
        else:
            dedup.complete(event.method, key, reply, link.now())
            return reply
        finally:
            done = server._dedup_done.pop(entry, None)
            if done is not None:
                done.set()


def answer(link: Link, event: RequestReceived, reply: Reply) -> None:
    """Queue the reply to ``event`` on its connection."""
    if isinstance(reply, Success):
        link.conn.send_response(event.call_id, reply.payload)
        return
    try:
        link.conn.send_error(event.call_id, reply.status, reply.message, reply.details,
                             error_name=reply.error_name, error_payload=reply.error_payload)
    except LocalProtocolError as exc:
        # Say, details the wire cannot carry: fail this call, not the server.
        logger.error("handler for %s: %s", event.method, exc)
        link.conn.send_error(event.call_id, Status.INTERNAL,
                             f"internal error in {event.method}")
