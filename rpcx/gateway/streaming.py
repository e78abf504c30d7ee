"""Server streaming over HTTP/1.1: newline-delimited JSON in a chunked response.

A ``-> stream T`` method is called like any other (``POST /PACKAGE.SERVICE/METHOD`` with
its arguments as a JSON object). Its answer is ``200`` with ``Content-Type:
application/x-ndjson``, sent chunked as the handler yields; every line is one JSON
object:

- ``{"message": ITEM}`` for each item, in the JSON mapping of docs/marshalling.md;
- last, always: ``{"end": {"code": "OK", "message": "", "details": {}}}``, or for a call
  that failed after its first item ``{"end": ERROR}`` with the same ``code``, ``message``,
  ``details`` (and ``error``/``fields`` for a declared error) as a unary call's error body.

A response without its ``end`` line was cut short (the connection broke). A call that
fails before its first item is answered like a unary call (e.g. ``400`` with the JSON
error body), and so is one refused before it runs (bad arguments). The ``rpcx-timeout``
deadline covers the whole stream; a client that disconnects cancels the handler. A
client that does not read holds the handler (TCP flow control): its memory stays bounded.

Methods that take a stream from the client (client streaming, bidirectional) are refused
with ``400`` (see :data:`CLIENT_STREAM_REFUSED`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import h11
import trio

from rpcx.gateway.idempotency import Mismatch
from rpcx.runtime.dispatch import Failure, Reply, Success
from rpcx.runtime.streams import run_handler
from rpcx.schema import MethodSpec
from rpcx.status import Status

if TYPE_CHECKING:
    from rpcx.gateway.server import HttpServer, _Inbox

__all__ = ["CLIENT_STREAM_REFUSED", "NDJSON", "serve_stream"]

NDJSON = "application/x-ndjson"

CLIENT_STREAM_REFUSED = (
    "{path} takes a stream of messages from the client, which the HTTP face does not "
    "carry: a browser's fetch cannot send a request body while it reads the answer over "
    "HTTP/1.1; call it over the native protocol (a generated client, or rpcx call)")


class _ClientGone(BaseException):
    """Writing a line failed: the client is gone. A BaseException, so that the handler
    runner does not take it for the handler's own failure (it ends the call unlogged)."""


def end_line(code: Status, body: bytes | None = None) -> bytes:
    """The last line: ``body`` is a unary error body (None: success)."""
    if body is None:
        body = json.dumps({"code": code.name, "message": "", "details": {}},
                          separators=(",", ":")).encode()
    return b'{"end":' + body + b"}\n"


async def serve_stream(server: HttpServer, conn: h11.Connection, stream: trio.abc.Stream,
                       inbox: _Inbox, method: MethodSpec, handler: Callable[..., Any],
                       payload: bytes, metadata: Mapping[str, str], deadline: float,
                       request_headers: Sequence[tuple[str, str]],
                       error_body: Callable[[Failure], bytes], peer: str = "",
                       ) -> Reply | None:
    """Run the call, writing NDJSON lines once the first item comes. Returns the reply
    for the caller to answer as a unary call when no item was sent (nothing written
    yet), or None once the whole response has been written."""
    started = False
    broken = False

    def head() -> bytes:
        headers = [("server", "rpcx"), ("content-type", NDJSON), ("cache-control", "no-store"),
                   ("x-content-type-options", "nosniff"), ("rpcx-status", "streaming"),
                   *server._cors_headers(request_headers, preflight=False)]
        return conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))

    async def send(item: bytes) -> None:
        nonlocal started, broken
        data = b"" if started else head()
        started = True
        data += conn.send(h11.Data(data=b'{"message":' + item + b"}\n"))
        try:
            await server._write(stream, data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            broken = True
            raise _ClientGone() from exc

    def run() -> Awaitable[Reply]:
        return run_handler(method, server.codec, handler, payload, metadata, deadline, send,
                           interceptors=server.dispatcher.interceptors, peer=peer)

    try:
        reply = await server._dispatch(run, deadline, stream, inbox)
    except* _ClientGone:
        reply = Failure(Status.CANCELLED, "the client stopped reading")
    assert not isinstance(reply, Mismatch)
    if not started:
        return reply
    if broken:
        raise trio.BrokenResourceError("the client stopped reading its stream")
    last = end_line(Status.OK) if isinstance(reply, Success) else \
        end_line(reply.status, error_body(reply))
    await server._write(stream, conn.send(h11.Data(data=last)) + conn.send(h11.EndOfMessage()))
    return None

