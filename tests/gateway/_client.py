"""A tiny HTTP/1.1 client driven by h11 over any trio stream, for the gateway tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import h11
import trio
import trio.testing

from rpcx.gateway import HttpServer


@attrs.frozen
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpClient:
    """Requests one after another on one connection (keep-alive)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(self, method: str, path: str, body: bytes | None = None, *,
                      headers: Sequence[tuple[str, str]] = (),
                      content_type: str | None = "application/json") -> Response:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        out = [("host", "test"), *headers]
        if content_type is not None and body is not None:
            out.append(("content-type", content_type))
        if body is not None:
            out.append(("content-length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=path, headers=out))
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)
        return await self.read_response()

    async def read_response(self) -> Response:
        response: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(bytes(await self.stream.receive_some(65536)))
                continue
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                headers = {n.decode().lower(): v.decode() for n, v in response.headers}
                return Response(response.status_code, headers, b"".join(chunks))
            else:
                raise AssertionError(f"unexpected {event!r}")

    async def call(self, path: str, args: dict[str, Any],
                   headers: Sequence[tuple[str, str]] = ()) -> Response:
        return await self.request("POST", path, json.dumps(args).encode(), headers=headers)


@asynccontextmanager
async def connected(server: HttpServer) -> AsyncIterator[HttpClient]:
    """An h11 client connected to ``server`` over an in-memory stream pair."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_stream)
        yield HttpClient(client_stream)
        nursery.cancel_scope.cancel()


async def raw_exchange(server: HttpServer, data: bytes) -> bytes:
    """Send raw bytes, return everything the server writes until it closes or goes quiet."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    received = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_stream)
        await client_stream.send_all(data)
        while True:
            with trio.move_on_after(0.5) as scope:
                chunk = await client_stream.receive_some(65536)
            if scope.cancelled_caught or not chunk:
                break
            received += chunk
        nursery.cancel_scope.cancel()
    return received
