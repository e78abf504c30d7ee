"""Hostile HTTP input for the gateway tests and ``fuzz/fuzz_http.py``: send bytes to a real
:class:`HttpServer` connection over an in-memory stream and check every answer.

What must hold, whatever the bytes: each response is well-formed HTTP/1.1 with a documented
status; an error carries a JSON body ``{"code", "message", "details"}`` whose text has no
Python notation; the connection task never raises and logs no failure."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import h11
import trio
import trio.testing

from rpcx.gateway import HttpServer
from rpcx.status import Status
from rpcx.testing.fuzzing import capitalised, check_peer_text, python_notation
from tests.gateway._client import Response

DOCUMENTED_STATUSES = frozenset({200, 202, 204, 400, 401, 403, 404, 405, 408, 409, 413, 415,
                                 422, 429, 431, 499, 500, 501, 503, 504})
"""Every status docs/http.md names."""


class CountingStream(trio.abc.Stream):
    """A stream that counts what its reader took, and hands it out in chunks at most
    ``sizes[i]`` bytes long (the last size repeating): how bytes arrive is the test's."""

    def __init__(self, inner: trio.abc.Stream, sizes: Sequence[int] = (1 << 30,)) -> None:
        self.inner = inner
        self.sizes = list(sizes) or [1 << 30]
        self.received = 0
        self._reads = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        size = self.sizes[min(self._reads, len(self.sizes) - 1)]
        self._reads += 1
        limit = size if max_bytes is None else min(size, max_bytes)
        data = bytes(await self.inner.receive_some(limit))
        self.received += len(data)
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:  # pragma: no cover - the server never half-closes
        await self.inner.aclose()

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextmanager
def failures_logged() -> Iterator[list[logging.LogRecord]]:
    """The gateway's error log records while the block runs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.ERROR)
    log = logging.getLogger("rpcx.gateway")
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)


def parse_responses(data: bytes) -> list[Response]:
    """Every response in what a server wrote (answers to pipelined requests follow each
    other); an AssertionError when the bytes are not well-formed HTTP/1.1 responses."""
    responses: list[Response] = []
    rest = data
    while rest:
        # h11 reads a response only to a request it sent: one fresh client per response.
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="POST", target="/", headers=[("host", "x"),
                                                                   ("content-length", "0")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(rest)
        conn.receive_data(b"")
        head: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = conn.next_event()
            assert event is not h11.NEED_DATA, f"a response is cut short: {data[-200:]!r}"
            if isinstance(event, h11.InformationalResponse):
                assert event.status_code == 100, event
                continue
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        assert head is not None
        headers = {n.decode().lower(): v.decode() for n, v in head.headers}
        responses.append(Response(head.status_code, headers, b"".join(chunks)))
        rest = conn.trailing_data[0]
        if headers.get("connection") == "close":
            assert not rest, f"bytes after a closing response: {rest[:200]!r}"
    return responses


def check_response(response: Response) -> None:
    """A documented status; an error has a JSON error body in plain words."""
    assert response.status in DOCUMENTED_STATUSES, response
    if response.status < 300 or response.status == 204:
        return
    assert response.headers.get("content-type") == "application/json", response
    body = json.loads(response.body)
    assert set(body) >= {"code", "message", "details"}, body
    assert body["code"] in Status.__members__, body
    assert response.headers.get("rpcx-status") == body["code"], response
    assert isinstance(body["message"], str), body
    check_peer_text(body["message"])
    assert isinstance(body["details"], dict), body
    for text in _texts(body["details"]):
        found = python_notation(text)
        assert found is None, f"Python notation {found!r} in details {body['details']!r}"
    if body["code"] == "INVALID_ARGUMENT" and "field" in body["details"]:
        # arguments that did not decode: where, and in the codec's words (issue 13)
        assert isinstance(body["details"]["field"], str), body
        assert not capitalised(body["details"]["reason"]), body


def _texts(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [key, *_texts(item)]]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


async def exchange(server: HttpServer, data: bytes, *, sizes: Sequence[int] = (),
                   ) -> list[Response]:
    """Send ``data`` on one connection (the server reads it in chunks of ``sizes``), let
    the server do all it can, close the client's side, and return the checked responses
    once the server has closed."""
    client, server_end = trio.testing.memory_stream_pair()
    stream = CountingStream(server_end, sizes or (1 << 30,))
    received = b""
    with failures_logged() as failures:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle_connection, stream)
            await client.send_all(data)
            await trio.testing.wait_all_tasks_blocked()
            await client.send_eof()
            while True:
                chunk = await client.receive_some(1 << 16)
                if not chunk:
                    break
                received += chunk
    assert not failures, [record.getMessage() for record in failures]
    responses = parse_responses(received)
    for response in responses:
        check_response(response)
    return responses


def request_bytes(path: str, body: bytes, *, headers: Sequence[tuple[str, str]] = (),
                  method: str = "POST") -> bytes:
    """One well-formed request (``host``, JSON content type and length added)."""
    lines = [f"{method} {path} HTTP/1.1", "host: test", "content-type: application/json",
             f"content-length: {len(body)}", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
