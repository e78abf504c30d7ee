"""rpcx.transport.sockets.SocketStream: trio's own stream checks, and the fast paths."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from rpcx.transport import SocketStream, TcpTransport, UnixTransport, parse_address


def _pair() -> tuple[SocketStream, SocketStream]:
    a, b = socket.socketpair()
    return SocketStream(a), SocketStream(b)


async def _stream_maker() -> tuple[SocketStream, SocketStream]:
    return _pair()


async def _clogged_stream_maker() -> tuple[SocketStream, SocketStream]:
    left, right = _pair()
    # Fill the buffers so that the next send_all blocks (as trio's own tests do).
    for stream in (left, right):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    while left.send_nowait(b"x" * 65536):
        pass
    while right.send_nowait(b"x" * 65536):
        pass
    return left, right


async def test_trio_half_closeable_stream_checks() -> None:
    await trio.testing.check_half_closeable_stream(_stream_maker, _clogged_stream_maker)


async def test_send_nowait_and_receive_nowait() -> None:
    left, right = _pair()
    with trio.testing.assert_no_checkpoints():
        assert right.receive_nowait() is None
        assert left.send_nowait(b"hello") == 5
        assert right.receive_nowait(3) == b"hel"
        assert right.receive_nowait() == b"lo"
    # A full buffer takes part of a write, then nothing.
    big = b"y" * (1 << 22)
    sent = left.send_nowait(big)
    assert 0 < sent < len(big)
    while left.send_nowait(big):
        pass
    assert left.send_nowait(b"z") == 0
    await left.aclose()
    with pytest.raises(trio.ClosedResourceError):
        left.send_nowait(b"z")
    received = 0
    while (chunk := right.receive_nowait()) is not None and chunk:
        received += len(chunk)
    assert received > 0
    assert right.receive_nowait() == b""  # end of stream
    await right.aclose()
    with pytest.raises(trio.ClosedResourceError):
        right.receive_nowait()


async def test_receive_after_wait() -> None:
    left, right = _pair()
    async with trio.open_nursery() as nursery:
        got: list[bytes] = []

        async def read() -> None:
            got.append(await right.receive_after_wait(100))

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert not got  # waiting, not busy-reading
        with pytest.raises(trio.BusyResourceError):
            await right.receive_some()
        left.send_nowait(b"hello")
    assert got == [b"hello"]
    left.send_nowait(b"ready")  # already there: no wait needed
    assert await right.receive_after_wait() == b"ready"
    await left.aclose()
    assert await right.receive_after_wait() == b""  # end of stream
    await right.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await right.receive_after_wait()


async def test_send_nowait_after_eof_and_on_a_broken_connection() -> None:
    left, right = _pair()
    await left.send_eof()
    with pytest.raises(trio.ClosedResourceError, match="after sending EOF"):
        left.send_nowait(b"x")
    await left.aclose()
    # The peer closed: the kernel refuses the write (EPIPE), possibly only the second.
    with pytest.raises(trio.BrokenResourceError):
        right.send_nowait(b"x" * 1000)
        right.send_nowait(b"x" * 1000)
    await right.aclose()


async def test_send_nowait_refuses_while_another_task_sends() -> None:
    left, right = _pair()
    while left.send_nowait(b"x" * 65536):
        pass
    async with trio.open_nursery() as nursery:
        nursery.start_soon(left.send_all, b"more")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            left.send_nowait(b"x")
        nursery.cancel_scope.cancel()
    await left.aclose()
    await right.aclose()


def test_requires_a_stream_socket() -> None:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, pytest.raises(ValueError, match="SOCK_STREAM"):
        SocketStream(a)


async def test_tcp_and_unix_transports_use_it(tmp_path: Path) -> None:
    for transport, url in ((TcpTransport(), "tcp://127.0.0.1:0"),
                           (UnixTransport(), f"unix://{tmp_path / 's.sock'}")):
        listeners = await transport.listen(parse_address(url))
        from rpcx.transport import bound_url

        target = parse_address(bound_url(listeners[0], url))
        async with trio.open_nursery() as nursery:
            accepted: list[trio.abc.Stream] = []

            async def accept(listener: trio.abc.Listener[trio.abc.Stream] = listeners[0],
                             out: list[trio.abc.Stream] = accepted) -> None:
                out.append(await listener.accept())

            nursery.start_soon(accept)
            client = await transport.connect(target)
        server = accepted[0]
        assert isinstance(client, SocketStream) and isinstance(server, SocketStream)
        assert client.send_nowait(b"ping") == 4
        assert await server.receive_some() == b"ping"
        await client.aclose()
        await server.aclose()
        for listener in listeners:
            await listener.aclose()


@pytest.fixture
async def closing() -> AsyncIterator[list[SocketStream]]:
    """Streams to close when the test ends."""
    streams: list[SocketStream] = []
    yield streams
    for stream in streams:
        await stream.aclose()


async def test_receive_or_interrupt_reads_as_receive_some_does(closing: list[SocketStream]) -> None:
    left, right = _pair()
    closing.extend((left, right))
    left.send_nowait(b"ready")
    assert await right.receive_or_interrupt(100) == b"ready"  # there: no wait
    async with trio.open_nursery() as nursery:
        got: list[bytes | None] = []

        async def read() -> None:
            got.append(await right.receive_or_interrupt(100, wait_first=True))

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert not got
        with pytest.raises(trio.BusyResourceError):
            await right.receive_or_interrupt()
        left.send_nowait(b"hello")
    assert got == [b"hello"]
    assert not right.interrupt_receive()  # nobody waits: nothing to interrupt
    await left.aclose()
    assert await right.receive_or_interrupt() == b""  # end of stream


async def test_interrupt_receive_ends_the_wait_and_reads_nothing(
        closing: list[SocketStream]) -> None:
    left, right = _pair()
    closing.extend((left, right))
    got: list[bytes | None] = []
    async with trio.open_nursery() as nursery:

        async def read() -> None:
            got.append(await right.receive_or_interrupt(100, wait_first=True))

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert right.interrupt_receive()
    assert got == [None]
    # The stream is intact: what is sent now is read whole, by a new wait.
    left.send_nowait(b"after")
    assert await right.receive_or_interrupt(100, wait_first=True) == b"after"


async def test_a_real_close_is_not_taken_for_an_interrupt(closing: list[SocketStream]) -> None:
    _left, right = _pair()
    closing.extend((_left, right))
    async with trio.open_nursery() as nursery:
        errors: list[BaseException] = []

        async def read() -> None:
            try:
                await right.receive_or_interrupt(100, wait_first=True)
            except trio.ClosedResourceError as exc:
                errors.append(exc)

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        await right.aclose()
    assert len(errors) == 1


async def test_an_interrupt_does_not_break_a_writer_waiting_on_the_same_socket(
        closing: list[SocketStream]) -> None:
    # interrupt_receive wakes every waiter on the socket; a blocked send_all must wait
    # again and deliver every byte, in order.
    left, right = _pair()
    closing.extend((left, right))
    left.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 4096  # 1 MiB: far more than the buffers hold
    received = bytearray()
    interrupted: list[bytes | None] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(left.send_all, payload)

        async def read_left() -> None:
            interrupted.append(await left.receive_or_interrupt(100, wait_first=True))

        nursery.start_soon(read_left)
        await trio.testing.wait_all_tasks_blocked()  # the writer waits for room
        assert left.interrupt_receive()
        await trio.testing.wait_all_tasks_blocked()
        while len(received) < len(payload):
            received += await right.receive_some(65536)
    assert interrupted == [None]
    assert bytes(received) == payload
