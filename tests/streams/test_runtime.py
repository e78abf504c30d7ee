"""Streaming calls end to end over mem://: every shape, errors after messages, flow
control, cancellation from either side, deadlines covering the whole stream."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import rpcx
from rpcx.errors import DeadlineExceeded, RpcError
from rpcx.protocol.streams import INITIAL_WINDOW
from rpcx.status import Status
from tests.streams.service import Streams
from tests.streams.streams_rpcx import Boom, StreamsClient, Tick

_names = itertools.count()


@asynccontextmanager
async def pair(impl: Streams | None = None, **channel_options: Any
               ) -> AsyncIterator[tuple[StreamsClient, Streams, rpcx.Channel]]:
    impl = impl or Streams()
    address = f"mem://streams-{next(_names)}"
    async with rpcx.open_server(address, [impl]), \
            rpcx.open_channel(address, **channel_options) as channel:
        yield StreamsClient(channel), impl, channel


async def test_server_stream_delivers_every_item_in_order() -> None:
    async with pair() as (client, _, _):
        async with client.count(10, 1000, text="x") as ticks:
            got = [tick async for tick in ticks]
    assert got == [Tick(n=10 + i, text="x") for i in range(1000)]


async def test_empty_server_stream_ends_at_once() -> None:
    async with pair() as (client, _, _):
        async with client.count(0, 0) as ticks:
            assert [tick async for tick in ticks] == []


async def test_declared_error_arrives_typed_after_the_items_sent_before_it() -> None:
    async with pair() as (client, _, _):
        got: list[int] = []
        with pytest.raises(Boom) as raised:
            async with client.count(0, 100, fail_after=7) as ticks:
                async for tick in ticks:
                    got.append(tick.n)
    assert got == list(range(7))
    assert raised.value.after == 7


async def test_client_stream_sums_what_it_sent() -> None:
    async with pair() as (client, impl, _):
        async with client.sum("total") as call:
            for n in range(500):
                await call.send(Tick(n=n))
            result = await call.finish()
    assert result == Tick(n=sum(range(500)), text="total")
    assert impl.received == list(range(500))


async def test_bidi_stream_answers_each_item_while_the_client_still_sends() -> None:
    async with pair() as (client, _, _):
        async with client.double() as call:
            answers = []
            for n in range(50):
                await call.send(Tick(n=n, text=str(n)))
                answers.append(await call.__anext__())  # one answer before the next send
            await call.end()
            rest = [tick async for tick in call]
    assert answers == [Tick(n=2 * n, text=str(n)) for n in range(50)]
    assert rest == []


async def test_bidi_declared_error_mid_stream_ends_the_call_for_the_sender_too() -> None:
    async with pair() as (client, _, _):
        async with client.double() as call:
            await call.send(Tick(n=1))
            assert (await call.__anext__()).n == 2
            await call.send(Tick(n=-1))
            with pytest.raises(Boom):
                await call.__anext__()
            with pytest.raises(Boom):
                await call.send(Tick(n=3))


async def test_a_slow_reader_holds_the_writer_at_its_window() -> None:
    impl = Streams()
    async with pair(impl) as (client, _, _):
        async with client.count(0, 1_000_000, text="y" * 100) as ticks:
            first = await ticks.__anext__()
            assert first.n == 0
            await trio.testing.wait_all_tasks_blocked()
            # The handler is blocked on credit: it produced about one window of items
            # (each about 110 bytes), not the million it was asked for.
            item_size = 110
            assert impl.produced < 2 * INITIAL_WINDOW // item_size + 10
            held = impl.produced
            for _ in range(3000):
                await ticks.__anext__()
            await trio.testing.wait_all_tasks_blocked()
            assert impl.produced > held  # credit given back as items were taken
            assert impl.produced < 3001 + 2 * INITIAL_WINDOW // item_size + 10


async def test_one_stalled_stream_does_not_stall_the_others_on_the_connection() -> None:
    async with pair() as (client, _, channel):
        async with client.count(0, 1_000_000, text="z" * 100) as stalled:
            await stalled.__anext__()  # then never read again
            await trio.testing.wait_all_tasks_blocked()
            async with client.count(0, 20_000) as other:
                assert len([t async for t in other]) == 20_000
            assert await client.ping(5) == 5
            assert channel.statistics().connects == 1


async def test_leaving_the_block_early_cancels_the_handler() -> None:
    impl = Streams()
    async with pair(impl) as (client, _, _):
        async with client.count(0, 1_000_000) as ticks:
            await ticks.__anext__()
        await impl.stopped.wait()
        assert impl.cancelled == ["count"]
        assert await client.ping(1) == 1


async def test_deadline_covers_the_whole_stream(autojump_clock: trio.abc.Clock) -> None:
    impl = Streams()
    async with pair(impl) as (client, _, _):
        got = 0
        start = trio.current_time()
        with pytest.raises(DeadlineExceeded):
            async with client.count(0, 1_000_000, timeout=5) as ticks:
                async for _ in ticks:
                    got += 1
                    await trio.sleep(0.01)  # a reader too slow for the deadline
        assert got > 0  # items came, and then the deadline ended the call
        assert trio.current_time() - start < 6  # (virtual time) it ended at the deadline
        await impl.stopped.wait()
        assert impl.finished == []


async def test_server_side_error_status_is_the_callers_exception() -> None:
    class Failing(Streams):
        async def count(self, start: int, count: int, fail_after: int,
                        text: str) -> AsyncIterator[Tick]:
            yield Tick(n=1)
            raise RpcError(Status.PERMISSION_DENIED, "Not yours")

    async with pair(Failing()) as (client, _, _):
        got = []
        with pytest.raises(RpcError) as raised:
            async with client.count(0, 5) as ticks:
                async for tick in ticks:
                    got.append(tick.n)
    assert got == [1]
    assert raised.value.code is Status.PERMISSION_DENIED
    assert raised.value.message == "not yours"


async def test_a_crashing_handler_is_internal_and_the_server_lives_on() -> None:
    class Crashing(Streams):
        async def sum(self, label: str, ticks: AsyncIterator[Tick]) -> Tick:
            async for _ in ticks:
                raise ValueError("secret")
            return Tick(n=0)

    async with pair(Crashing()) as (client, _, _):
        with pytest.raises(RpcError) as raised:
            async with client.sum("x") as call:
                await call.send(Tick(n=1))
                await call.finish()
        assert raised.value.code is Status.INTERNAL
        assert "secret" not in raised.value.message
        assert await client.ping(3) == 3


async def test_the_dispatcher_refuses_a_streaming_method_as_a_unary_call() -> None:
    from rpcx.codec import get_codec
    from rpcx.runtime.dispatch import Dispatcher, Failure

    reply = await Dispatcher([Streams()]).dispatch(
        "streamtest.Streams/count", b"\xa0", get_codec("cbor"))
    assert isinstance(reply, Failure)
    assert reply.status is Status.FAILED_PRECONDITION
    assert "streams" in reply.message


async def test_bad_stream_input_fails_the_call_or_the_connection_never_the_server() -> None:
    import cbor2

    from rpcx.protocol import Connection, Role
    from rpcx.protocol.events import ErrorReceived, GoAwayReceived, ResponseReceived
    from rpcx.protocol.streams import encode_message
    from rpcx.transport import parse_address, transport_for

    address = f"mem://streams-{next(_names)}"
    async with rpcx.open_server(address, [Streams()]):
        parsed = parse_address(address)

        async def exchange(conn: Connection, stream: trio.abc.Stream,
                           until: type) -> list[object]:
            events: list[object] = []
            await stream.send_all(conn.data_to_send())
            while not any(isinstance(e, until) for e in events):
                data = await stream.receive_some(65536)
                conn.receive_data(bytes(data), trio.current_time())
                events += conn.events()
                if not data:
                    break
            return events

        stream = await transport_for(parsed).connect(parsed)
        conn = Connection(Role.CLIENT, now=trio.current_time())
        # an undecodable item of a client stream: that call fails INVALID_ARGUMENT
        bad = conn.start_call("streamtest.Streams/sum", cbor2.dumps({1: "x"}), now=0)
        conn.send_message(bad, cbor2.dumps({1: 1}))
        conn.send_message(bad, cbor2.dumps({1: "two"}))  # item 1: n is not an int
        conn.send_message(bad, b"\xff")
        conn.end_stream(bad)
        events = await exchange(conn, stream, ErrorReceived)
        (error,) = [e for e in events if isinstance(e, ErrorReceived)]
        assert error.call_id == bad and error.status is Status.INVALID_ARGUMENT
        assert error.message == ("invalid stream item to streamtest.Streams/sum: "
                                 "ticks[1].n: expected int, got string")
        assert error.details == {"field": "ticks[1].n", "expected": "int",
                                 "reason": "expected int, got string"}
        # messages on a unary call are ignored: it is answered as usual
        ping = conn.start_call("streamtest.Streams/ping", cbor2.dumps({1: 7}), now=0)
        conn.send_message(ping, cbor2.dumps({1: 1}))
        events = await exchange(conn, stream, ResponseReceived)
        assert [e.payload for e in events if isinstance(e, ResponseReceived)] == [
            cbor2.dumps(7)]
        # a MESSAGE beyond the window breaks the protocol: the connection ends
        third = conn.start_call("streamtest.Streams/sum", cbor2.dumps({1: "y"}), now=0)
        conn._queue(encode_message(third, b"\x01" * INITIAL_WINDOW)
                    + encode_message(third, b"\x01"))
        events = await exchange(conn, stream, GoAwayReceived)
        (goaway,) = [e for e in events if isinstance(e, GoAwayReceived)]
        assert goaway.status is Status.INTERNAL
        assert "without flow-control credit" in goaway.message
        await stream.aclose()
        # the server serves on
        async with rpcx.open_channel(address) as channel:
            assert await StreamsClient(channel).ping(9) == 9


async def test_the_server_may_end_a_client_stream_early() -> None:
    """Cancellation from the server's side: it answers after the first item; the client's
    further sends (more than a window of them) are dropped, not blocked, and finish()
    gives the answer."""

    class Impatient(Streams):
        async def sum(self, label: str, ticks: AsyncIterator[Tick]) -> Tick:
            async for tick in ticks:
                return Tick(n=tick.n, text="first only")
            return Tick(n=-1)

    async with pair(Impatient()) as (client, _, _):
        async with client.sum("x") as call:
            for n in range(5000):
                await call.send(Tick(n=n, text="p" * 50))
            assert await call.finish() == Tick(n=0, text="first only")
        assert await client.ping(2) == 2


async def test_interceptors_guard_streams_too() -> None:
    """TokenAuth on both sides: the client's interceptor adds the token to a stream's
    start, the server's refuses a stream without it (natively and over HTTP)."""
    from rpcx.gateway import HttpServer
    from rpcx.gateway.server import build_dispatcher
    from tests.gateway._client import connected

    address = f"mem://streams-{next(_names)}"
    guard = rpcx.TokenAuth(accept={"s3cret"})
    async with rpcx.open_server(address, [Streams()], interceptors=[guard]):
        async with rpcx.open_channel(address) as anonymous:
            with pytest.raises(RpcError) as raised:
                async with StreamsClient(anonymous).count(0, 3) as ticks:
                    async for _ in ticks:
                        pass
            assert raised.value.code is Status.UNAUTHENTICATED
        async with rpcx.open_channel(address,
                                     interceptors=[rpcx.TokenAuth(token="s3cret")]) as ok:
            async with StreamsClient(ok).count(0, 3) as ticks:
                assert [t.n async for t in ticks] == [0, 1, 2]
    http = HttpServer(build_dispatcher([Streams()], [guard], True))
    async with connected(http) as client:
        refused = await client.call("/streamtest.Streams/count", {"start": 0, "count": 2})
        allowed = await client.call("/streamtest.Streams/count", {"start": 0, "count": 2},
                                    headers=[("authorization", "Bearer s3cret")])
    assert refused.status == 401 and refused.json()["code"] == "UNAUTHENTICATED"
    assert allowed.status == 200 and allowed.body.count(b'{"message"') == 2
