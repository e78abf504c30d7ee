"""A review of handlers-in-the-reader (``rpcx.runtime.link``: ``Link.queue_work``,
``_RunJob``), the flush that returns at once behind a sender, and the client's parked
calls. Each test states the behaviour that matters; the ones that pinned a bug say so."""

from __future__ import annotations

import contextvars
import math
from collections.abc import Coroutine
from typing import Any

import pytest
import trio
import trio.testing

import rpcx
from rpcx.codec import CborCodec
from rpcx.protocol import Connection, ErrorReceived, Event, ResponseReceived, Role
from rpcx.runtime.link import WRITE_HIGH_WATER, Link, _RunJob
from rpcx.runtime.unary import Pending
from rpcx.schema import ServiceSpec, StructSpec, spec_of
from rpcx.transport.base import Address, parse_address
from rpcx.transport.memory import default as memory_transport
from tests.runtime.echo_rpcx import EchoClient, EchoService
from tests.runtime.harness import Echo, echo_pair, mem_address
from tests.runtime.test_link_flush import _RecordingStream

_codec = CborCodec()


def _method(name: str) -> tuple[str, StructSpec]:
    spec = spec_of(EchoService)
    assert isinstance(spec, ServiceSpec)
    method = next(m for m in spec.methods if m.py_name == name)
    return method.path, method.params


class _RawClient:
    """A protocol client driven by hand: frames are queued with ``call``/``cancel`` and
    go out together with ``send`` (so several arrive in one read on the server)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = Connection(Role.CLIENT, now=trio.current_time(), keepalive_interval=None)

    @classmethod
    async def connect(cls, address: str) -> _RawClient:
        return cls(await memory_transport.connect(parse_address(address)))

    @classmethod
    async def connect_with(cls, transport: Any, address: str) -> _RawClient:
        stream = await transport.connect(parse_address(address))
        assert isinstance(stream, trio.abc.Stream)
        return cls(stream)

    def call(self, name: str, *args: Any, timeout: float | None = None,
             key: bytes | None = None, oneway: bool = False) -> int:
        path, params = _method(name)
        return self.conn.start_call(path, _codec.encode(params, args),
                                    now=trio.current_time(), timeout=timeout,
                                    idempotency_key=key, oneway=oneway)

    def cancel(self, call_id: int) -> None:
        self.conn.cancel_call(call_id)

    async def send(self) -> None:
        await self.stream.send_all(self.conn.data_to_send())

    async def answers(self, count: int) -> dict[int, Event]:
        """Read until ``count`` calls are answered; their answers by call id."""
        got: dict[int, Event] = {}
        while len(got) < count:
            data = await self.stream.receive_some(65536)
            self.conn.receive_data(bytes(data), trio.current_time())
            for event in self.conn.events():
                if isinstance(event, ResponseReceived | ErrorReceived):
                    got[event.call_id] = event
        return got


def _text(event: Event) -> str:
    assert isinstance(event, ResponseReceived), event
    path, _ = _method("echo")
    spec = spec_of(EchoService)
    assert isinstance(spec, ServiceSpec)
    method = next(m for m in spec.methods if m.path == path)
    assert method.result is not None
    value = _codec.decode(method.result, event.payload)
    assert isinstance(value, str)
    return value


# -- _RunJob: the same semantics as ``await coro`` ----------------------------------------


class _Suspends:
    """Counts hand-overs, like ``Link._hand_over`` without a link."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def _drive(coro: Coroutine[Any, Any, None]) -> _Suspends:
    suspends = _Suspends()
    await _RunJob(coro, suspends)
    return suspends


async def test_a_job_that_never_waits_runs_to_completion_without_handing_over() -> None:
    seen: list[str] = []

    async def job() -> None:
        seen.append("ran")

    assert (await _drive(job())).count == 0
    assert seen == ["ran"]


async def test_a_job_that_returns_a_value_or_raises_on_its_first_step() -> None:
    async def returns() -> Any:
        return 42

    assert (await _drive(returns())).count == 0

    async def raises() -> None:
        raise ValueError("first step")

    with pytest.raises(ValueError, match="first step"):
        await _drive(raises())

    async def stops() -> None:
        raise StopIteration  # PEP 479: a coroutine cannot end by raising StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await _drive(stops())


async def test_a_job_that_waits_hands_over_once_and_is_driven_to_the_end() -> None:
    steps: list[str] = []

    async def job() -> None:
        steps.append("a")
        await trio.sleep(1)
        steps.append("b")
        await trio.sleep(1)
        steps.append("c")
        raise KeyError("late")

    suspends = _Suspends()
    with pytest.raises(KeyError):
        await _RunJob(job(), suspends)
    assert suspends.count == 1 and steps == ["a", "b", "c"]


async def test_cancellation_reaches_a_driven_job_which_may_catch_it_and_go_on(
        autojump_clock: trio.testing.MockClock) -> None:
    steps: list[str] = []

    async def stubborn() -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            steps.append("caught")
        with trio.CancelScope(shield=True):
            await trio.sleep(1)  # cleanup still waits
        steps.append("done")

    with trio.move_on_after(1) as scope:
        await _drive(stubborn())
    # the job swallowed the Cancelled: just as with ``await stubborn()``, the scope sees
    # no exception and the clean-up ran after the cancel
    assert steps == ["caught", "done"]
    assert not scope.cancelled_caught
    assert trio.current_time() == pytest.approx(2.0)

    async def plain() -> None:
        await trio.sleep(10)

    with trio.move_on_after(1) as scope:
        await _drive(plain())
    assert scope.cancelled_caught


async def test_close_and_exceptions_thrown_in_reach_the_job() -> None:
    events: list[str] = []

    async def job() -> None:
        try:
            await trio.sleep_forever()
        except KeyboardInterrupt:
            events.append("interrupted")
            raise
        finally:
            events.append("finally")

    gen = _RunJob(job(), lambda: None).__await__()
    trap = gen.send(None)  # the job's first trap, passed through as ``await`` would
    assert trap is not None
    with pytest.raises(KeyboardInterrupt):
        gen.throw(KeyboardInterrupt())
    assert events == ["interrupted", "finally"]

    events.clear()
    gen = _RunJob(job(), lambda: None).__await__()
    gen.send(None)
    gen.close()  # GeneratorExit closes the job too
    assert events == ["finally"]


_var: contextvars.ContextVar[str] = contextvars.ContextVar("review_var", default="unset")


async def test_a_jobs_context_is_its_own_across_its_suspension() -> None:
    seen: list[str] = []

    async def job(name: str) -> None:
        _var.set(name)
        await trio.lowlevel.checkpoint()
        seen.append(_var.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drive, job("one"))
        nursery.start_soon(_drive, job("two"))
    assert sorted(seen) == ["one", "two"]
    assert _var.get() == "unset", "a job's ContextVar.set leaked into its driver"


# -- contexts through the server ---------------------------------------------------------


class _ContextEcho(Echo):
    async def echo(self, text: str) -> str:
        before = _var.get()
        _var.set(text)
        if text.startswith("wait"):
            await trio.sleep(1)  # suspends: the reader hands over in this context
        return f"{before}/{_var.get()}"


async def test_no_context_leaks_between_calls_through_a_hand_over(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair(_ContextEcho()) as (client, _, _, _):
        assert await client.echo("wait-1") == "unset/wait-1"
        # the reader that took over must not carry the waiting handler's context
        assert await client.echo("after") == "unset/after"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.echo, "wait-2")
            await trio.testing.wait_all_tasks_blocked()
            assert await client.echo("during") == "unset/during"


async def test_an_ambient_deadline_and_metadata_reach_calls_a_handler_makes(
        autojump_clock: trio.testing.MockClock) -> None:
    inner_address = mem_address()
    async with rpcx.open_server(inner_address, [Echo()]), \
            echo_pair() as (client, _, _, _):
        seen = await client.relay(inner_address, timeout=5.0)
        assert seen["deadline"] == "5.000"
        # and nothing ambient is left for a call without a deadline on the same reader
        seen = await client.relay(inner_address)
        assert seen["deadline"] == "none"


# -- cancellation of a call in each state --------------------------------------------------


class _Counting(Echo):
    async def slow(self, seconds: float, text: str) -> str:
        self.notes.append(f"start {text}")
        return await super().slow(seconds, text)


async def test_a_cancel_in_the_same_read_as_its_request_runs_nothing(
        autojump_clock: trio.testing.MockClock) -> None:
    """Bug: the handler of a call cancelled before it started ran anyway (until its
    first checkpoint: side effects included) because its cancel scope only bites at a
    checkpoint."""
    impl = _Counting()
    async with rpcx.open_server(address := mem_address(), [impl]) as server:
        raw = await _RawClient.connect(address)
        first = raw.call("increment", 1)
        raw.cancel(first)
        second = raw.call("slow", 5.0, "x")
        raw.cancel(second)
        third = raw.call("echo", "alive")
        await raw.send()  # one write: the server reads all five frames at once
        with trio.fail_after(1):
            answers = await raw.answers(1)
        assert _text(answers[third]) == "alive"
        assert impl.increments == 0, "a call cancelled before it started was run"
        assert impl.notes == [] and impl.cancelled == []
        assert server.statistics().calls_in_flight == 0
        await raw.stream.aclose()


# -- a peer that stops reading -----------------------------------------------------------


class _Deafening(trio.abc.Stream):
    """Wraps a stream; once ``deaf`` is set, writes never complete (the peer stopped
    reading and the buffers are full)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.deaf = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.deaf:
            await trio.sleep_forever()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _DeafeningTransport:
    def __init__(self) -> None:
        self.streams: list[_Deafening] = []
        """Client ends, in connection order."""
        self.accepted: list[_Deafening] = []
        """Server ends, in accept order."""

    async def connect(self, address: Address) -> trio.abc.Stream:
        stream = _Deafening(await memory_transport.connect(address))
        self.streams.append(stream)
        return stream

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        listeners = await memory_transport.listen(address)
        return [_DeafeningListener(listener, self) for listener in listeners]


class _DeafeningListener(trio.abc.Listener[trio.abc.Stream]):
    def __init__(self, inner: trio.abc.Listener[trio.abc.Stream],
                 owner: _DeafeningTransport) -> None:
        self.inner = inner
        self.owner = owner

    async def accept(self) -> trio.abc.Stream:
        stream = _Deafening(await self.inner.accept())
        self.owner.accepted.append(stream)
        return stream

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_call_behind_a_stuck_timer_write_still_ends_at_its_deadline(
        autojump_clock: trio.testing.MockClock) -> None:
    """Bug: the connection's timer loop wrote frames itself (a CANCEL at a deadline); when
    the peer stopped reading, that write never ended, so no later deadline fired: a call
    whose flush returned at once behind that stuck sender waited forever."""
    transport = _DeafeningTransport()
    async with echo_pair(retry=rpcx.NO_RETRY, transport=transport,
                         keepalive_interval=None) as (client, impl, _, _):
        assert await client.echo("connected") == "connected"

        async def stop_reading_once_it_runs() -> None:
            await impl.started.wait()  # its request went out ...
            transport.streams[0].deaf = True  # ... then our writes stop

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_reading_once_it_runs)
            with pytest.raises(rpcx.DeadlineExceeded):
                # at its deadline the timer queues its CANCEL and writes it: forever
                await client.slow(10.0, "first", timeout=1.0)
        start = trio.current_time()
        with trio.fail_after(10), pytest.raises(rpcx.DeadlineExceeded):
            await client.echo("second", timeout=2.0)
        assert trio.current_time() - start == pytest.approx(2.0)


async def test_a_graceful_shutdown_with_a_client_that_does_not_read_ends_after_grace(
        autojump_clock: trio.testing.MockClock) -> None:
    """Bug: the drain waited, with no bound, for each connection's GOAWAY to be written
    (``flush(wait=True)``) before the grace period even began: one client that stopped
    reading hung ``open_server``'s exit for ever (and kept the GOAWAY from the others)."""
    transport = _DeafeningTransport()
    address = mem_address()
    impl = Echo()
    start = math.inf
    with trio.fail_after(60):
        async with rpcx.open_server(address, [impl], transport=transport,
                                    grace_period=1.0) as server, \
                rpcx.open_channel(address, transport=transport) as channel:
            client = EchoClient(channel)
            assert await client.echo("polite") == "polite"
            deaf = await _RawClient.connect_with(transport, address)
            await trio.testing.wait_all_tasks_blocked()  # accepted
            assert len(transport.accepted) == 2
            transport.accepted[1].deaf = True  # the server's writes to it never end
            deaf.call("blob", 1000)
            await deaf.send()
            await trio.testing.wait_all_tasks_blocked()
            # the stuck connection holds up nobody else
            assert await client.echo("still served") == "still served"
            assert server.statistics().connections == 2
            start = trio.current_time()
    assert trio.current_time() - start <= 1.0 + 1e-6


# -- ordering: one read, many requests ---------------------------------------------------


async def test_requests_behind_a_waiting_handler_in_the_same_read_are_answered_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    impl = Echo()
    async with rpcx.open_server(address := mem_address(), [impl]) as server:
        raw = await _RawClient.connect(address)
        slow = raw.call("slow", 5.0, "slow")
        quick = [raw.call("echo", f"q{k}") for k in range(20)]
        await raw.send()
        with trio.fail_after(0.5):  # not after the slow one
            answers = await raw.answers(len(quick))
        assert [_text(answers[c]) for c in quick] == [f"q{k}" for k in range(20)]
        assert server.statistics().calls_in_flight == 1
        answers = await raw.answers(1)
        assert _text(answers[slow]) == "slow"
        assert trio.current_time() == pytest.approx(5.0)
        assert server.statistics().calls_in_flight == 0
        await raw.stream.aclose()


class _TwoWaits(Echo):
    async def echo(self, text: str) -> str:
        if text.startswith("wait"):
            await trio.sleep(float(text[4:]))
        return text


async def test_replies_of_handlers_that_waited_are_written_promptly(
        autojump_clock: trio.testing.MockClock) -> None:
    """Each waiting handler's reply is written when it is ready, whichever task is the
    sender at the time; none waits for the next read."""
    async with rpcx.open_server(address := mem_address(), [_TwoWaits()]):
        raw = await _RawClient.connect(address)
        ids = {raw.call("echo", f"wait{k}"): float(k) for k in (3, 1, 2)}
        await raw.send()
        when: dict[int, float] = {}
        while len(when) < 3:
            for call_id in await raw.answers(1):
                when[call_id] = trio.current_time()
        assert when == pytest.approx(ids)
        await raw.stream.aclose()


# -- idempotency: a duplicate waits for the first execution -----------------------------


class _SlowIncrement(Echo):
    async def increment(self, by: int) -> int:
        await trio.sleep(1.0)
        return await super().increment(by)


async def test_a_duplicate_in_the_same_read_waits_for_the_first_and_is_replayed(
        autojump_clock: trio.testing.MockClock) -> None:
    impl = _SlowIncrement()
    async with rpcx.open_server(address := mem_address(), [impl]) as server:
        raw = await _RawClient.connect(address)
        key = b"k" * 16
        first = raw.call("increment", 5, key=key)
        again = raw.call("increment", 5, key=key)
        other = raw.call("echo", "meanwhile")
        await raw.send()
        answers = await raw.answers(1)
        assert _text(answers[other]) == "meanwhile"
        assert trio.current_time() < 1.0
        answers = await raw.answers(2)
        one, two = answers[first], answers[again]
        assert isinstance(one, ResponseReceived) and isinstance(two, ResponseReceived)
        assert one.payload == two.payload
        assert impl.increments == 1
        assert server.statistics().replayed == 1
        assert server.statistics().calls_in_flight == 0
        await raw.stream.aclose()


# -- cancellation of a waiting handler, and connections that end -------------------------


async def test_a_client_cancel_reaches_a_handler_waiting_in_a_former_reader(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair() as (client, impl, server, _):
        with trio.move_on_after(1.0):
            await client.slow(30.0, "cancelled")
        await trio.testing.wait_all_tasks_blocked()
        assert impl.cancelled == ["cancelled"]
        assert server.statistics().calls_in_flight == 0
        assert await client.echo("next") == "next"


@pytest.mark.parametrize("how", ["eof", "protocol error", "keepalive"])
async def test_a_connection_that_ends_cancels_its_waiting_handlers(
        autojump_clock: trio.testing.MockClock, how: str) -> None:
    impl = Echo()
    async with rpcx.open_server(address := mem_address(), [impl], keepalive_interval=1.0,
                                keepalive_timeout=1.0) as server:
        raw = await _RawClient.connect(address)
        raw.call("slow", 60.0, "a")
        raw.call("slow", 60.0, "b")
        await raw.send()
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().calls_in_flight == 2
        (link,) = server._links
        start = trio.current_time()
        if how == "eof":
            await raw.stream.aclose()
        elif how == "protocol error":
            await raw.stream.send_all(b"\xff" * 64)
        # "keepalive": the raw client never answers the server's PING
        with trio.fail_after(10):
            await link.closed.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().connections == 0
        assert sorted(impl.cancelled) == ["a", "b"]
        assert server.statistics().calls_in_flight == 0
        if how == "keepalive":
            assert trio.current_time() - start == pytest.approx(2.0, abs=0.2)
        else:
            assert trio.current_time() - start < 0.2


# -- shutdown -------------------------------------------------------------------------------


async def test_a_graceful_drain_lets_waiting_handlers_finish_then_cancels_the_rest(
        autojump_clock: trio.testing.MockClock) -> None:
    impl = Echo()
    results: dict[str, object] = {}
    async with rpcx.open_channel(address := mem_address(), retry=rpcx.NO_RETRY) as channel:
        client = EchoClient(channel)

        async def call(seconds: float, text: str) -> None:
            try:
                results[text] = await client.slow(seconds, text)
            except rpcx.RpcError as exc:
                results[text] = exc.code

        async with trio.open_nursery() as nursery:
            async with rpcx.open_server(address, [impl], grace_period=2.0) as server:
                nursery.start_soon(call, 1.0, "in time")
                nursery.start_soon(call, 10.0, "too slow")
                await trio.testing.wait_all_tasks_blocked()
                assert server.statistics().calls_in_flight == 2
                start = trio.current_time()
            assert trio.current_time() - start == pytest.approx(2.0)
            assert server.statistics().calls_in_flight == 0
            assert server.statistics().connections == 0
    assert results["in time"] == "in time"
    assert results["too slow"] is not None and results["too slow"] != "too slow"
    assert impl.completed == ["in time"] and impl.cancelled == ["too slow"]


async def test_cancelling_the_server_cancels_waiting_handlers_and_leaves_nothing_running(
        autojump_clock: trio.testing.MockClock) -> None:
    impl = Echo()
    with trio.CancelScope() as scope:
        async with rpcx.open_server(address := mem_address(), [impl]):
            raw = await _RawClient.connect(address)
            for k in range(3):
                raw.call("slow", 60.0, f"s{k}")
            await raw.send()
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert sorted(impl.cancelled) == ["s0", "s1", "s2"]


async def test_a_client_that_stops_reading_and_sending_is_dropped_at_its_keepalive_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    """The server's side of the stuck-timer bug: its keepalive PING to a client that no
    longer reads was written by the timer, which then never fired again: the keepalive
    timeout never came, and the dead client kept its connection and handlers for ever."""
    transport = _DeafeningTransport()
    impl = Echo()
    async with rpcx.open_server(address := mem_address(), [impl], transport=transport,
                                keepalive_interval=1.0, keepalive_timeout=1.0) as server:
        raw = await _RawClient.connect_with(transport, address)
        raw.call("slow", 60.0, "a")
        await raw.send()
        await trio.testing.wait_all_tasks_blocked()
        transport.accepted[0].deaf = True
        (link,) = server._links
        with trio.fail_after(30):
            await link.closed.wait()
        # PING at 1 s, dead at 2 s, then at most the final flush's 5 s for what is left
        assert trio.current_time() <= 2.0 + 5.0 + 1e-6
        assert impl.cancelled == ["a"]
        await raw.stream.aclose()


# -- the client: parked calls and bounded writes -------------------------------------------


async def test_a_pending_call_resolved_before_it_waits_returns_at_once() -> None:
    pending = Pending()
    pending.resolve(b"early")
    pending.resolve(b"late")  # the first answer wins
    with trio.fail_after(1):
        await pending.wait()
    assert pending.reply == b"early"


async def test_a_pending_call_is_woken_by_its_answer_and_a_cancelled_wait_is_forgotten(
        autojump_clock: trio.testing.MockClock) -> None:
    pending = Pending()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pending.wait)
        await trio.testing.wait_all_tasks_blocked()
        pending.resolve(b"x")
    assert pending.reply == b"x"

    abandoned = Pending()
    with trio.move_on_after(1) as scope:
        await abandoned.wait()
    assert scope.cancelled_caught
    abandoned.resolve(b"after")  # must not reschedule the task that gave up
    await trio.sleep(1)  # (trio would fail this task if it had been rescheduled)
    assert abandoned.reply == b"after"


class _FirstAttemptHangs(Echo):
    async def echo(self, text: str) -> str:
        self.counter += 1
        if self.counter == 1:
            await trio.sleep(100)
        return text


async def test_an_attempt_timeout_retries_and_the_retry_is_answered(
        autojump_clock: trio.testing.MockClock) -> None:
    impl = _FirstAttemptHangs()
    policy = rpcx.RetryPolicy(max_attempts=3, attempt_timeout=1.0)
    async with echo_pair(impl, retry=policy) as (client, _, server, channel):
        assert await client.echo("retried", timeout=10.0) == "retried"
        assert 1.0 <= trio.current_time() < 1.5
        assert channel.statistics().retries == 1 and channel.statistics().open_calls == 0
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().calls_in_flight == 0, "the timed-out attempt cancelled"


def _link() -> tuple[Link, _RecordingStream]:
    stream = _RecordingStream()
    return Link(stream, Connection(Role.CLIENT, now=0.0), lambda event: None), stream


async def test_flush_with_a_deadline_behind_a_busy_sender(
        autojump_clock: trio.testing.MockClock) -> None:
    link, stream = _link()
    stream.blocked = True  # the peer does not read
    link.conn.start_call("echo.Echo/echo", b"first", now=0.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.flush)
        await trio.testing.wait_all_tasks_blocked()
        # a small frame behind the sender: left to it, True at once
        link.conn.start_call("echo.Echo/echo", b"small", now=0.0)
        assert await link.flush(deadline=trio.current_time() + 1.0)
        assert trio.current_time() == 0.0
        # past the high-water mark it waits for the sender, but only until the deadline
        link.conn.start_call("echo.Echo/echo", b"x" * (WRITE_HIGH_WATER + 1), now=0.0)
        assert not await link.flush(deadline=trio.current_time() + 1.0)
        assert trio.current_time() == pytest.approx(1.0)
        nursery.cancel_scope.cancel()


async def test_flush_with_a_deadline_as_the_writer_to_a_peer_that_does_not_read(
        autojump_clock: trio.testing.MockClock) -> None:
    link, stream = _link()
    stream.blocked = True
    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(True)

    stream.aclose = aclose  # type: ignore[method-assign]
    link.conn.start_call("echo.Echo/echo", b"first", now=0.0)
    assert not await link.flush(deadline=trio.current_time() + 2.0)
    assert trio.current_time() == pytest.approx(2.0)
    assert closed, "a write cut short ends the connection (the stream is in pieces)"
