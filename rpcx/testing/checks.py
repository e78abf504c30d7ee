"""Reusable conformance checks that any transport must pass.

``await check_transport(transport, listen_url)`` opens a listener, connects, and checks
what the RPC runtime relies on: bytes arrive intact and in order in both directions, large
writes are not truncated, EOF is seen after the peer closes, many connections work at
once, and a closed listener stops accepting. It raises AssertionError naming the failed
property.
"""

from __future__ import annotations

import trio

from rpcx.transport import bound_url
from rpcx.transport.base import Transport, parse_address

__all__ = ["check_transport"]


async def _receive_exactly(stream: trio.abc.Stream, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise AssertionError(f"stream ended after {len(chunks)} of {n} bytes")
        chunks += chunk
    return bytes(chunks)


async def check_transport(transport: Transport, listen_url: str,
                          connect_url: str | None = None, *,
                          connector: Transport | None = None) -> None:
    """Run the checks. ``connect_url`` defaults to ``listen_url`` (pass it when the bound
    address differs, e.g. port 0); ``connector`` is the client side's transport if it is
    not ``transport`` (the simulated network has one per node)."""
    listeners = await transport.listen(parse_address(listen_url))
    target = parse_address(connect_url or bound_url(listeners[0], listen_url))
    client_side = connector or transport
    big = bytes(range(256)) * 4096  # 1 MiB, a pattern so reordering would show

    async def echo_server(listener: trio.abc.Listener[trio.abc.Stream]) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    stream = await listener.accept()
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return
                nursery.start_soon(echo, stream)

    async def echo(stream: trio.abc.Stream) -> None:
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                return

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(echo_server, listener)

        # Intact, ordered, both directions, large writes not truncated.
        stream = await client_side.connect(target)
        async with stream:
            await stream.send_all(b"ping")
            assert await _receive_exactly(stream, 4) == b"ping", "small echo differs"
            async with trio.open_nursery() as inner:
                inner.start_soon(stream.send_all, big)
                got = await _receive_exactly(stream, len(big))
            assert got == big, "1 MiB echo arrived changed or out of order"

        # Many connections at once, each with its own bytes.
        async def one(i: int) -> None:
            s = await client_side.connect(target)
            async with s:
                message = f"connection {i}".encode()
                await s.send_all(message)
                assert await _receive_exactly(s, len(message)) == message, \
                    f"connection {i} got another connection's bytes"

        async with trio.open_nursery() as inner:
            for i in range(20):
                inner.start_soon(one, i)

        for listener in listeners:
            await listener.aclose()
        nursery.cancel_scope.cancel()

    # A closed listener no longer accepts.
    try:
        s = await client_side.connect(target)
    except OSError:
        pass
    else:
        await s.aclose()
        raise AssertionError("connect succeeded after the listener was closed")
