"""Slow clients cannot hold a connection forever: a request that trickles in gets 408 and
the connection is closed; an answer the client never reads is abandoned. Virtual time."""

from __future__ import annotations

import trio
import trio.testing

from examples.payments.service import Payments
from rpcx.gateway import HttpServer
from rpcx.runtime.dispatch import Dispatcher


def _server(**options: float) -> HttpServer:
    return HttpServer(Dispatcher([Payments()]), **options)  # type: ignore[arg-type]


async def _read_all(stream: trio.abc.Stream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return bytes(data)


async def test_a_request_that_trickles_in_gets_408_and_is_disconnected(
        autojump_clock: trio.testing.MockClock) -> None:
    server = _server(idle_timeout=60.0, request_timeout=30.0)
    client, server_end = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_end)
        start = trio.current_time()
        head = b"POST /payments.Payments/get_payment HTTP/1.1\r\nhost: x\r\n"
        try:
            for byte in head:  # one byte every 10 s: each read is well inside idle_timeout
                await client.send_all(bytes([byte]))
                await trio.sleep(10.0)
        except trio.BrokenResourceError:
            pass  # the server hung up on us, as it should
        answer = await _read_all(client)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:40]
    assert b"did not arrive within 30 s" in answer
    assert trio.current_time() - start < 45


async def test_an_idle_keep_alive_connection_is_closed_quietly(
        autojump_clock: trio.testing.MockClock) -> None:
    server = _server(idle_timeout=5.0)
    client, server_end = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_end)
        start = trio.current_time()
        assert await _read_all(client) == b"", "no request, no answer: just closed"
    assert trio.current_time() - start == 5.0


async def test_a_client_that_never_reads_its_answer_is_disconnected(
        autojump_clock: trio.testing.MockClock) -> None:
    server = _server(send_timeout=10.0)
    client, server_end = trio.testing.lockstep_stream_pair()  # writes wait for a reader
    body = b'{"payment_id": "pay_000001"}'
    request = (b"POST /payments.Payments/get_payment HTTP/1.1\r\nhost: x\r\n"
               b"content-type: application/json\r\ncontent-length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
    async with trio.open_nursery() as nursery:
        done = trio.Event()

        async def serve() -> None:
            await server.handle_connection(server_end)
            done.set()

        nursery.start_soon(serve)
        start = trio.current_time()
        await client.send_all(request)
        await done.wait()  # the handler gave up on the write and closed
        assert trio.current_time() - start == 10.0


async def test_a_client_that_hangs_up_cancels_its_handler(
        autojump_clock: trio.testing.MockClock) -> None:
    from tests.runtime.harness import Echo

    impl = Echo()
    server = HttpServer(Dispatcher([impl]))
    client, server_end = trio.testing.memory_stream_pair()
    body = b'{"seconds": 60, "text": "abandoned"}'
    request = (b"POST /echo.Echo/slow HTTP/1.1\r\nhost: x\r\n"
               b"content-type: application/json\r\ncontent-length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_end)
        await client.send_all(request)
        await impl.started.wait()
        start = trio.current_time()
        await client.aclose()  # the browser tab was closed
        await trio.testing.wait_all_tasks_blocked()
        assert impl.cancelled == ["abandoned"]
        assert trio.current_time() - start < 1.0


async def test_a_pipelined_request_read_while_a_handler_runs_is_answered_next(
        autojump_clock: trio.testing.MockClock) -> None:
    from tests.runtime.harness import Echo

    server = HttpServer(Dispatcher([Echo()]))
    client, server_end = trio.testing.memory_stream_pair()

    def post(path: str, body: bytes) -> bytes:
        return (b"POST " + path.encode() + b" HTTP/1.1\r\nhost: x\r\n"
                b"content-type: application/json\r\ncontent-length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_end)
        await client.send_all(post("/echo.Echo/slow", b'{"seconds": 1, "text": "first"}'))
        await trio.sleep(0.5)  # the handler is running when the second request arrives
        await client.send_all(post("/echo.Echo/echo", b'{"text": "second"}'))
        received = b""
        while received.count(b"HTTP/1.1 200") < 2:
            received += await client.receive_some(65536)
        nursery.cancel_scope.cancel()
    assert received.index(b'"first"') < received.index(b'"second"')
