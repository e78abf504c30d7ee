"""The HTTP/1.1 face of an rpcx server: JSON over HTTP, callable with ``curl`` or ``fetch``.

``POST /payments.Payments/process_payment`` with a JSON object of the parameters (keyed by
name, the JSON mapping of ``docs/marshalling.md``) answers ``200`` and the JSON result.
Failures answer ``{"code", "message", "details"}`` (plus ``error`` and ``fields`` for an
IDL-declared error) with an HTTP status mapped from the status code (:data:`HTTP_STATUS`).
``GET /openapi.json`` serves the OpenAPI 3.1 description of every method served.

HTTP parsing is h11's (sans-I/O); this module drives it over trio streams. Every call goes
through the same :class:`~rpcx.runtime.dispatch.Dispatcher` as the native protocol, with the
JSON codec, so handlers, server interceptors and deadlines behave identically: request
headers become metadata, and the ``rpcx-timeout`` header (seconds) is the call's deadline.
See ``docs/http.md``.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import h11
import trio

from rpcx.codec.convert import quote
from rpcx.codec.json_codec import JsonCodec
from rpcx.gateway.explorer import EXPLORER_PATH, explorer_page
from rpcx.gateway.idempotency import IDEMPOTENCY_HEADER, BadKey, KeyedCalls, Mismatch, parse_key
from rpcx.protocol.dedup import (
    DEFAULT_DEDUP_WINDOW,
    DEFAULT_IDEMPOTENCY_QUOTA,
    DEFAULT_MAX_IDEMPOTENCY_BYTES,
    DEFAULT_MAX_IDEMPOTENCY_CACHE,
)
from rpcx.runtime.accept import accept_forever, describe_peer
from rpcx.runtime.dispatch import Dispatcher, Failure, Reply, Success
from rpcx.runtime.interceptors import ServerInterceptor
from rpcx.schema import MethodSpec
from rpcx.status import Status
from rpcx.text import describe
from rpcx.transport import Transport, bound_url, parse_address, transport_for
from rpcx.transport.tls import TlsTransport

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_PIPELINED_BYTES",
    "MAX_HEAD_BYTES",
    "HTTP_STATUS",
    "HttpServer",
    "open_http_server",
    "serve_http",
]

logger = logging.getLogger("rpcx.gateway")

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
"""1 MiB: the largest request body accepted; larger ones get 413."""

DEFAULT_MAX_PIPELINED_BYTES: Final = 64 * 1024
"""64 KiB: the most bytes of later requests read ahead while a handler runs. Past it the
server stops reading the connection (TCP backpressure) until the answer is sent."""

MAX_HEAD_BYTES: Final = 16 * 1024
"""16 KiB: the largest request head (request line and headers) accepted; larger ones get
431, whether the head arrives in one piece or in many."""

HTTP_STATUS: Final[Mapping[Status, int]] = {
    Status.OK: 200,
    Status.CANCELLED: 499,
    Status.UNKNOWN: 500,
    Status.INVALID_ARGUMENT: 400,
    Status.DEADLINE_EXCEEDED: 504,
    Status.NOT_FOUND: 404,
    Status.ALREADY_EXISTS: 409,
    Status.PERMISSION_DENIED: 403,
    Status.RESOURCE_EXHAUSTED: 429,
    Status.FAILED_PRECONDITION: 400,
    Status.ABORTED: 409,
    Status.OUT_OF_RANGE: 400,
    Status.UNIMPLEMENTED: 404,
    Status.INTERNAL: 500,
    Status.UNAVAILABLE: 503,
    Status.DATA_LOSS: 500,
    Status.UNAUTHENTICATED: 401,
}
"""Status code → HTTP status: gRPC-gateway's conventional mapping (``docs/http.md``)."""

TIMEOUT_HEADER: Final = "rpcx-timeout"
METADATA_PREFIX: Final = "rpcx-meta-"
_FORWARDED: Final = frozenset({"authorization"})
_READ_SIZE: Final = 64 * 1024

_REASONS: Final[Mapping[int, bytes]] = {
    200: b"OK", 202: b"Accepted", 204: b"No Content", 400: b"Bad Request",
    401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
    405: b"Method Not Allowed", 408: b"Request Timeout", 409: b"Conflict",
    413: b"Content Too Large",
    415: b"Unsupported Media Type", 422: b"Unprocessable Content", 429: b"Too Many Requests", 431:
    b"Request Header Fields Too Large", 499: b"Client Closed Request",
    500: b"Internal Server Error", 501: b"Not Implemented", 503: b"Service Unavailable",
    504: b"Gateway Timeout",
}

# h11's messages quote peer bytes as Python reprs (``bytearray(b'...')``): a peer gets
# these plain ones instead, chosen by the start of h11's message.
_PROTOCOL_MESSAGES: Final[tuple[tuple[str, str], ...]] = (
    ("illegal request line", "bad request line"),
    ("no request line", "bad request line"),
    ("illegal method", "bad request line"),
    ("illegal target", "bad request line"),
    ("illegal header", "bad header line"),
    ("continuation line", "bad header line"),
    ("missing mandatory host", "missing host header"),
    ("found multiple host", "more than one host header"),
    ("bad content-length", "bad content-length header"),
    ("conflicting content-length", "conflicting content-length headers"),
    ("only transfer-encoding: chunked", "unsupported transfer-encoding (only chunked is)"),
    ("multiple transfer-encoding", "more than one transfer-encoding header"),
    ("illegal chunk", "bad chunked body"),
    ("receive buffer too long", f"request head larger than {MAX_HEAD_BYTES} bytes"),
)


def protocol_message(exc: h11.ProtocolError) -> str:
    """A plain message for an h11 protocol error, with no peer bytes in it."""
    text = str(exc).lower()
    for start, message in _PROTOCOL_MESSAGES:
        if text.startswith(start):
            return f"malformed HTTP request: {message}"
    if exc.error_status_hint == 431:
        return f"malformed HTTP request: request head larger than {MAX_HEAD_BYTES} bytes"
    return "malformed HTTP request"


def _head_size(request: h11.Request) -> int:
    """The bytes of a request head as a client writes it (``NAME: VALUE`` lines ending in
    CRLF); h11 drops optional whitespace, so a padded head is counted without it."""
    size = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n\r\n")
    for name, value in request.headers.raw_items():
        size += len(name) + len(value) + 4
    return size


@attrs.define
class _Inbox:
    """Bytes read from a connection while a handler ran, not yet given to h11 (at most
    ``max_pipelined_bytes``), and whether the client closed its side."""

    pending: bytearray = attrs.Factory(bytearray)
    eof: bool = False
    _eof_given: bool = False

    def feed(self, conn: h11.Connection) -> bool:
        """Give what is pending to h11; False when there was nothing."""
        if self.pending:
            conn.receive_data(bytes(self.pending))
            self.pending.clear()
            return True
        if self.eof and not self._eof_given:
            self._eof_given = True
            conn.receive_data(b"")
            return True
        return False


@attrs.frozen
class _Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    """Close the connection after answering (the request body was not read)."""
    content_type: str = "application/json"


_STREAMED: Final = _Answer(200)
"""What ``_handle`` returns once it has written a streamed answer itself."""


class _Problem(Exception):
    """A request refused before it reaches the dispatcher."""

    def __init__(self, http_status: int, code: Status, message: str, *,
                 headers: tuple[tuple[str, str], ...] = (), close: bool = False) -> None:
        super().__init__(message)
        self.answer = _Answer(http_status, _error_body(code, message),
                              (("rpcx-status", code.name), *headers), close)


def _error_body(code: Status, message: str, details: Mapping[str, Any] | None = None, *,
                error: str | None = None, fields: bytes | None = None) -> bytes:
    body: dict[str, Any] = {"code": code.name, "message": message,
                            "details": _jsonable(dict(details or {}))}
    if error is not None:
        body["error"] = error
        body["fields"] = json.loads(fields) if fields else {}
    # A lone surrogate in a handler's message or details (text decoded with
    # surrogateescape, say) cannot be UTF-8: it is written as the JSON escape \udXXX.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8", "backslashreplace")


_NONFINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _jsonable(value: object, depth: int = 0) -> object:
    """A handler's details value in the JSON mapping of docs/marshalling.md (bytes as
    base64, decimals as strings, non-finite floats as ``"NaN"``/``"Infinity"``,
    timestamps in RFC 3339), never ``str()``'s Python notation (``b'...'``)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NONFINITE.get(value, "NaN")
    if depth >= 32:
        return describe(value)
    if isinstance(value, Mapping):
        return {key if isinstance(key, str) else describe(key): _jsonable(item, depth + 1)
                for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    return describe(value)


def _parse_timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise _Problem(400, Status.INVALID_ARGUMENT,
                       f"{TIMEOUT_HEADER} must be a positive number of seconds, "
                       f"got {quote(value)}")
    return seconds


def metadata_from_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The call metadata carried by HTTP headers: ``authorization`` as is, and every
    ``rpcx-meta-NAME: value`` header as ``NAME`` (names are lower case)."""
    metadata: dict[str, str] = {}
    for name, value in headers:
        if name in _FORWARDED:
            metadata[name] = value
        elif name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX):
            metadata[name.removeprefix(METADATA_PREFIX)] = value
    return metadata


class HttpServer:
    """Serves a :class:`Dispatcher` over HTTP/1.1 with JSON bodies.

    Options: ``max_body_bytes`` (larger bodies get 413), ``max_pipelined_bytes`` (the most
    bytes of later requests read ahead while a handler runs; then the connection is not
    read until the answer is sent), ``cors_origins`` (origins allowed
    to call from a browser, ``"*"`` for any; empty turns CORS off), ``idle_timeout``
    (seconds a keep-alive connection may wait for its next request), ``request_timeout``
    (seconds from a request's first byte until all of it has arrived: a client that
    trickles its request gets 408 and is disconnected), ``send_timeout`` (seconds an answer
    may take to write: a client that stops reading is disconnected), ``openapi`` (serve
    ``/openapi.json``), ``explorer`` (serve the explorer page at ``/explorer``), ``title``
    (of the OpenAPI document and the explorer page), and for calls with an
    ``Idempotency-Key`` header the de-duplication cache's ``dedup_window`` (seconds a reply
    is kept), ``max_idempotency_cache`` (entries), ``max_idempotency_bytes`` and
    ``idempotency_quota`` (entries one client host may hold), as :class:`rpcx.Server`'s.
    """

    def __init__(self, dispatcher: Dispatcher, *,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_pipelined_bytes: int = DEFAULT_MAX_PIPELINED_BYTES,
                 cors_origins: Sequence[str] = (), idle_timeout: float = 60.0,
                 request_timeout: float = 30.0, send_timeout: float = 30.0,
                 openapi: bool = True, explorer: bool = True, title: str = "rpcx services",
                 dedup_window: float = DEFAULT_DEDUP_WINDOW,
                 max_idempotency_cache: int = DEFAULT_MAX_IDEMPOTENCY_CACHE,
                 max_idempotency_bytes: int = DEFAULT_MAX_IDEMPOTENCY_BYTES,
                 idempotency_quota: int = DEFAULT_IDEMPOTENCY_QUOTA) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        if max_pipelined_bytes < 1:
            raise ValueError(f"max_pipelined_bytes must be positive, got "
                             f"{max_pipelined_bytes}")
        self.max_pipelined_bytes = max_pipelined_bytes
        self.dispatcher = dispatcher
        self.codec = JsonCodec(max_message_bytes=max(max_body_bytes, 4 * 1024 * 1024))
        self.max_body_bytes = max_body_bytes
        self.cors_origins = frozenset(cors_origins)
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.send_timeout = send_timeout
        self.openapi = openapi
        self.explorer = explorer
        self._explorer_page: tuple[bytes, str] | None = None
        self.title = title
        self.addresses: list[str] = []
        """URLs the server listens on: ``http://HOST:PORT``, ``https://HOST:PORT`` (TLS)
        or ``unix:///PATH``."""
        self._openapi_body: bytes | None = None
        self._shutdown = trio.Event()
        self.keyed_calls = KeyedCalls(window=dedup_window, max_entries=max_idempotency_cache,
                                      max_bytes=max_idempotency_bytes, quota=idempotency_quota)
        """Replies kept for calls made with an ``Idempotency-Key`` header."""

    # -- running -------------------------------------------------------------------------

    async def serve(self, listeners: Sequence[trio.abc.Listener[trio.abc.Stream]], *,
                    task_status: trio.TaskStatus[HttpServer] = trio.TASK_STATUS_IGNORED,
                    ) -> None:
        """Accept on ``listeners`` until :meth:`shutdown` or cancellation."""
        try:
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(accept_forever, listener, nursery,
                                       self.handle_connection)
                task_status.started(self)
                await self._shutdown.wait()
                nursery.cancel_scope.cancel()
        finally:
            # Cancelled rather than shut down: still release the addresses.
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await trio.aclose_forcefully(listener)

    def shutdown(self) -> None:
        self._shutdown.set()

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        """Serve HTTP requests on one connection until it closes (keep-alive)."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        inbox = _Inbox()
        peer = describe_peer(stream)
        try:
            async with stream:
                while True:
                    if not await self._one_request(conn, stream, inbox, peer):
                        return
                    if (conn.our_state is h11.DONE and conn.their_state is h11.DONE):
                        conn.start_next_cycle()
                    else:
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except Exception:  # a bug must end this connection only, never the server
            logger.exception("the HTTP connection from %s failed", peer)

    async def _next_event(self, conn: h11.Connection, stream: trio.abc.Stream,
                          inbox: _Inbox, timeout: float, started: list[float]) -> Any:
        """The next h11 event. Waits at most ``timeout`` for each read (None if it
        passes), and at most ``request_timeout`` from the request's first byte, whose time
        ``started`` records (408 after that). Bytes read ahead come first."""
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.Request) and _head_size(event) > MAX_HEAD_BYTES:
                    # h11 checks only a head still incomplete: this one came whole
                    raise h11.RemoteProtocolError("Receive buffer too long",
                                                  error_status_hint=431)
                return event
            if inbox.feed(conn):
                if not started:
                    started.append(trio.current_time())
                continue
            wait = trio.current_time() + timeout
            if started:
                wait = min(wait, started[0] + self.request_timeout)
            with trio.move_on_at(wait) as scope:
                data = await stream.receive_some(_READ_SIZE)
            if scope.cancelled_caught:
                if started and trio.current_time() >= started[0] + self.request_timeout:
                    raise _Problem(408, Status.DEADLINE_EXCEEDED,
                                   f"the request did not arrive within "
                                   f"{self.request_timeout:g} s", close=True)
                return None
            if not started:
                started.append(trio.current_time())
            conn.receive_data(bytes(data))

    async def _one_request(self, conn: h11.Connection, stream: trio.abc.Stream,
                           inbox: _Inbox, peer: str) -> bool:
        """Read one request and answer it; False when the connection should close."""
        head = False
        started: list[float] = []
        try:
            try:
                event = await self._next_event(conn, stream, inbox, self.idle_timeout,
                                               started)
            except _Problem as problem:  # the head trickled in too slowly
                await self._send(conn, stream, problem.answer, [])
                return False
            if event is None or isinstance(event, h11.ConnectionClosed):
                return False
            assert isinstance(event, h11.Request), event
            request = event
            head = request.method == b"HEAD"
            headers = [(n.decode("latin-1").lower(), v.decode("latin-1"))
                       for n, v in request.headers]
            try:
                answer = await self._handle(conn, stream, inbox, request, headers, peer,
                                            started)
            except _Problem as problem:
                answer = problem.answer
            except (h11.RemoteProtocolError, trio.BrokenResourceError,
                    trio.ClosedResourceError):
                raise
            except Exception:  # a bug here must not stop the server (its nursery)
                logger.exception("answering %s %s from %s failed",
                                 request.method.decode("latin-1"),
                                 quote(request.target.decode("latin-1"), 200), peer)
                answer = _Answer(500, _error_body(Status.INTERNAL, "internal error"),
                                 (("rpcx-status", Status.INTERNAL.name),), close=True)
        except h11.RemoteProtocolError as exc:
            if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                return False
            status = exc.error_status_hint if exc.error_status_hint in _REASONS else 400
            code = Status.UNIMPLEMENTED if status == 501 else Status.INVALID_ARGUMENT
            answer = _Answer(status, _error_body(code, protocol_message(exc)),
                             (("rpcx-status", code.name),), close=True)
            headers = []
        if answer is _STREAMED:  # a stream, written as it came
            return True
        await self._send(conn, stream, answer, headers, head=head)
        return not answer.close

    async def _send(self, conn: h11.Connection, stream: trio.abc.Stream, answer: _Answer,
                    request_headers: Sequence[tuple[str, str]], *, head: bool = False,
                    ) -> None:
        """Send ``answer``; to a HEAD request, without the body (h11 refuses one)."""
        out: list[tuple[str, str]] = [("server", "rpcx"), *answer.headers]
        if answer.body:
            out.append(("content-type", answer.content_type))
        if answer.status != 204:
            out.append(("content-length", str(len(answer.body))))
        out.extend(self._cors_headers(request_headers, preflight=False))
        if answer.close:
            out.append(("connection", "close"))
        try:
            data = conn.send(h11.Response(status_code=answer.status, headers=out,
                                          reason=_REASONS.get(answer.status, b"")))
            if answer.body and not head:
                data += conn.send(h11.Data(data=answer.body))
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:  # the connection is in no state to answer
            conn.send_failed()
            return
        await self._write(stream, data)

    async def _write(self, stream: trio.abc.Stream, data: bytes) -> None:
        with trio.move_on_after(self.send_timeout) as scope:
            await stream.send_all(data)
        if scope.cancelled_caught:
            raise trio.BrokenResourceError("the client stopped reading its answer")

    # -- one request ---------------------------------------------------------------------

    async def _read_body(self, conn: h11.Connection, stream: trio.abc.Stream,
                         inbox: _Inbox, headers: Sequence[tuple[str, str]],
                         started: list[float]) -> bytes:
        for name, value in headers:
            if name == "content-length" and int(value) > self.max_body_bytes:
                raise _Problem(413, Status.RESOURCE_EXHAUSTED,
                               f"request body of {int(value)} bytes is larger than the "
                               f"limit of {self.max_body_bytes}", close=True)
        if conn.they_are_waiting_for_100_continue:
            # ``Expect: 100-continue`` (curl sends it for large bodies and uploads): say "go on"
            # now rather than make the client wait for its own timeout. A body that is
            # too large was refused above, before the client sent it.
            await self._write(stream, conn.send(h11.InformationalResponse(
                status_code=100, headers=[])))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event(conn, stream, inbox, self.idle_timeout, started)
            if event is None or isinstance(event, h11.ConnectionClosed):
                raise _Problem(400, Status.INVALID_ARGUMENT, "request body ended early",
                               close=True)
            if isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            assert isinstance(event, h11.Data), event
            size += len(event.data)
            if size > self.max_body_bytes:
                raise _Problem(413, Status.RESOURCE_EXHAUSTED,
                               f"request body is larger than the limit of "
                               f"{self.max_body_bytes} bytes", close=True)
            chunks.append(bytes(event.data))

    async def _handle(self, conn: h11.Connection, stream: trio.abc.Stream, inbox: _Inbox,
                      request: h11.Request, headers: Sequence[tuple[str, str]],
                      peer: str, started: list[float]) -> _Answer:
        target = request.target.decode("latin-1")
        path = target.partition("?")[0]
        verb = request.method.decode("latin-1")
        # The body is read (and so the connection kept usable) before any answer.
        body = await self._read_body(conn, stream, inbox, headers, started)
        if verb == "OPTIONS":
            return self._preflight(path, headers)
        if path == "/openapi.json" and self.openapi:
            if verb != "GET":
                raise _Problem(405, Status.UNIMPLEMENTED, f"{quote(verb)} is not allowed on "
                               f"{path}: use GET", headers=(("allow", "GET"),))
            return _Answer(200, self._openapi())
        if path == EXPLORER_PATH and self.explorer:
            if verb not in ("GET", "HEAD"):
                raise _Problem(405, Status.UNIMPLEMENTED, f"{quote(verb)} is not allowed on "
                               f"{path}: use GET", headers=(("allow", "GET, HEAD"),))
            page, policy = self._explorer()
            return _Answer(200, page, (("content-security-policy", policy),
                                       ("x-content-type-options", "nosniff"),
                                       ("referrer-policy", "no-referrer")),
                           content_type="text/html; charset=utf-8")
        route = self.dispatcher.lookup(path[1:]) if path.startswith("/") else None
        if route is None:
            raise _Problem(404, Status.UNIMPLEMENTED,
                           f"unknown method {quote(path, 80)}: POST to /PACKAGE.SERVICE/METHOD "
                           "(GET /openapi.json lists them)")
        if verb != "POST":
            raise _Problem(405, Status.UNIMPLEMENTED,
                           f"{quote(verb)} is not allowed on {path}: rpcx methods are called with "
                           "POST", headers=(("allow", "POST, OPTIONS"),))
        content_type = _header(headers, "content-type")
        media = (content_type or "").partition(";")[0].strip().lower()
        if media != "application/json":
            raise _Problem(415, Status.INVALID_ARGUMENT,
                           f"content-type must be application/json, got "
                           f"{quote(content_type, 60) if content_type is not None else 'none'}",
                           headers=(("accept", "application/json"),))
        method = route.method
        given = [value for name, value in headers if name == TIMEOUT_HEADER]
        if len(given) > 1:
            raise _Problem(400, Status.INVALID_ARGUMENT,
                           f"{TIMEOUT_HEADER} given {len(given)} times; send it once")
        timeout = _parse_timeout(given[0]) if given else method.deadline
        try:
            key = parse_key([value for name, value in headers if name == IDEMPOTENCY_HEADER])
        except BadKey as exc:
            raise _Problem(400, Status.INVALID_ARGUMENT, str(exc)) from None
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        payload = body or b"{}"
        metadata = metadata_from_headers(headers)
        if method.streaming is not None:
            return await self._stream(conn, stream, inbox, method, route.handler, payload,
                                      metadata, deadline, headers, peer)

        def run() -> Awaitable[Reply]:
            return self.dispatcher.dispatch(
                path[1:], payload, self.codec, metadata=metadata, deadline=deadline,
                peer=peer, idempotency_key=None if key is None else key.encode("ascii"))

        if key is None or method.oneway:  # one-way calls are not de-duplicated (natively too)
            reply = await self._dispatch(run, deadline, stream, inbox)
        else:
            authorization = _header(headers, "authorization")

            def keyed() -> Awaitable[Reply | Mismatch]:
                assert key is not None
                return self.keyed_calls.run(path[1:], key, authorization, payload,
                                            _peer_host(stream), run)

            reply = await self._dispatch(keyed, deadline, stream, inbox)
        if isinstance(reply, Mismatch):
            return _Answer(422, _error_body(Status.INVALID_ARGUMENT, reply.message,
                                            {"reason": "idempotency_key_reused"}),
                           (("rpcx-status", Status.INVALID_ARGUMENT.name),))
        if isinstance(reply, Success):
            if method.oneway:
                return _Answer(202, headers=(("rpcx-status", "OK"),))
            return _Answer(200, reply.payload if method.result is not None else b"null",
                           (("rpcx-status", "OK"),))
        if method.oneway and reply.status not in (Status.INVALID_ARGUMENT,
                                                  Status.UNAUTHENTICATED,
                                                  Status.PERMISSION_DENIED):
            # one-way: the caller hears only that it was accepted
            return _Answer(202, headers=(("rpcx-status", "OK"),))
        return _Answer(HTTP_STATUS.get(reply.status, 500),
                       _error_body(reply.status, reply.message, reply.details,
                                   error=reply.error_name, fields=reply.error_payload),
                       (("rpcx-status", reply.status.name),))

    async def _stream(self, conn: h11.Connection, stream: trio.abc.Stream, inbox: _Inbox,
                      method: MethodSpec, handler: Callable[..., Any], payload: bytes,
                      metadata: Mapping[str, str], deadline: float,
                      headers: Sequence[tuple[str, str]], peer: str) -> _Answer:
        """A streaming method: NDJSON (``rpcx.gateway.streaming``); not de-duplicated."""
        from rpcx.gateway.streaming import CLIENT_STREAM_REFUSED, NDJSON, end_line, serve_stream

        if method.client_stream is not None:
            raise _Problem(400, Status.UNIMPLEMENTED,
                           CLIENT_STREAM_REFUSED.format(path=method.path))

        def error_body(reply: Failure) -> bytes:
            return _error_body(reply.status, reply.message, reply.details,
                               error=reply.error_name, fields=reply.error_payload)

        reply = await serve_stream(self, conn, stream, inbox, method, handler, payload,
                                   metadata, deadline, headers, error_body, peer)
        if reply is None:
            return _STREAMED
        if isinstance(reply, Success):
            return _Answer(200, end_line(Status.OK), (("rpcx-status", "OK"),),
                           content_type=NDJSON)
        return _Answer(HTTP_STATUS.get(reply.status, 500), error_body(reply),
                       (("rpcx-status", reply.status.name),))

    async def _dispatch(self, run: Callable[[], Awaitable[Reply | Mismatch]],
                        deadline: float, stream: trio.abc.Stream,
                        inbox: _Inbox) -> Reply | Mismatch:
        """Run the call (``run()``); cancel it at its deadline, or when the client hangs up (it is
        watched while the handler runs). Bytes of pipelined next requests are kept, up to
        ``max_pipelined_bytes``; then the connection is not read until the answer is
        sent (the client's writes block), so a hang-up is noticed only then."""
        reply: Reply | Mismatch | None = None
        gone = False

        async def watch(scope: trio.CancelScope) -> None:
            nonlocal gone
            while not inbox.eof:
                room = self.max_pipelined_bytes - len(inbox.pending)
                if room <= 0:
                    await trio.sleep_forever()  # cancelled when the handler returns
                try:
                    data = await stream.receive_some(min(room, _READ_SIZE))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    inbox.eof = True
                    gone = True
                    scope.cancel()
                    return
                inbox.pending += data

        with trio.move_on_at(deadline) as call_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch, call_scope)
                reply = await run()
                nursery.cancel_scope.cancel()
        if reply is None:
            if gone:
                return Failure(Status.CANCELLED, "the client closed the connection")
            return Failure(Status.DEADLINE_EXCEEDED, "deadline exceeded")
        return reply

    def _explorer(self) -> tuple[bytes, str]:
        if self._explorer_page is None:
            self._explorer_page = explorer_page(self.dispatcher.services, title=self.title,
                                                openapi=self.openapi)
        return self._explorer_page

    def _openapi(self) -> bytes:
        if self._openapi_body is None:
            from rpcx.gateway.openapi import openapi_document

            document = openapi_document(self.dispatcher.services, title=self.title,
                                        server_url=self.addresses[0] if self.addresses
                                        else None)
            self._openapi_body = json.dumps(document, ensure_ascii=False,
                                            separators=(",", ":")).encode("utf-8")
        return self._openapi_body

    # -- CORS ----------------------------------------------------------------------------

    def _allowed_origin(self, headers: Sequence[tuple[str, str]]) -> str | None:
        origin = _header(headers, "origin")
        if origin is None or not self.cors_origins:
            return None
        if "*" in self.cors_origins:
            return "*"
        return origin if origin in self.cors_origins else None

    def _cors_headers(self, headers: Sequence[tuple[str, str]], *,
                      preflight: bool) -> list[tuple[str, str]]:
        origin = self._allowed_origin(headers)
        # With CORS on, the answer depends on Origin: with a list, on which origin it is;
        # with "*", on whether there is one (a request without Origin gets no CORS headers).
        # A cache must not give one request's answer to another.
        vary = [("vary", "Origin")] if self.cors_origins else []
        if origin is None:
            return vary
        out = [("access-control-allow-origin", origin), *vary]
        if not preflight:
            out.append(("access-control-expose-headers", "rpcx-status"))
        return out

    def _preflight(self, path: str, headers: Sequence[tuple[str, str]]) -> _Answer:
        allow = ("GET, OPTIONS" if path in ("/openapi.json", EXPLORER_PATH)
                 else "POST, OPTIONS")
        out: list[tuple[str, str]] = [("allow", allow)]
        if self._allowed_origin(headers) is not None:
            requested = _header(headers, "access-control-request-headers")
            out += [("access-control-allow-methods", allow),
                    ("access-control-allow-headers",
                     requested or f"content-type, authorization, {TIMEOUT_HEADER}, "
                                  f"{IDEMPOTENCY_HEADER}"),
                    ("access-control-max-age", "600")]
        return _Answer(204, b"", tuple(out))


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _peer_host(stream: trio.abc.Stream) -> str:
    """The client's host address (without its port): whom an idempotency key is charged
    to, since a retry usually comes on a new connection."""
    inner = getattr(stream, "transport_stream", stream)
    sock = getattr(inner, "socket", None)
    if sock is not None:
        try:
            name = sock.getpeername()
        except OSError:
            return "unknown"
        return str(name[0]) if isinstance(name, tuple) else "local"
    return "local"


def _http_url(listener: trio.abc.Listener[trio.abc.Stream], address: str) -> str:
    url = bound_url(listener, address)
    scheme, _, rest = url.partition("://")
    return {"tcp": f"http://{rest}", "tls": f"https://{rest}"}.get(scheme, url)


def build_dispatcher(services: Iterable[object], interceptors: Sequence[ServerInterceptor],
                     reflection: bool) -> Dispatcher:
    """The dispatcher for ``services``, with the reflection service unless turned off."""
    impls = list(services)
    if reflection:
        from rpcx.reflection import with_reflection

        impls = with_reflection(impls)
    return Dispatcher(impls, interceptors)


async def serve_http(address: str, services: Iterable[object] | Dispatcher, *,
                     interceptors: Sequence[ServerInterceptor] = (),
                     reflection: bool = True, transport: Transport | None = None,
                     task_status: trio.TaskStatus[HttpServer] = trio.TASK_STATUS_IGNORED,
                     **options: Any) -> None:
    """Serve ``services`` over HTTP on ``address`` until cancelled.

    ``tcp://HOST:PORT`` serves plain HTTP; ``unix:///PATH`` serves HTTP on a Unix socket
    (``curl --unix-socket PATH http://localhost/...``); ``tls://HOST:PORT`` with
    ``transport=rpcx.TlsTransport(server_context)`` serves HTTPS (its listeners are made
    ``https_compatible``, since HTTP clients may close without a TLS ``close_notify``).

    ``services`` may also be an existing :class:`Dispatcher` (``server.dispatcher``), to
    serve exactly what a native :class:`~rpcx.Server` serves. ``options`` are
    :class:`HttpServer`'s. ``await nursery.start(serve_http, ...)`` returns the
    :class:`HttpServer` once it listens (``addresses`` holds ``http://`` URLs).
    """
    dispatcher = (services if isinstance(services, Dispatcher)
                  else build_dispatcher(services, interceptors, reflection))
    parsed = parse_address(address)
    chosen = transport or transport_for(parsed)
    if isinstance(chosen, TlsTransport) and not chosen.https_compatible:
        chosen = TlsTransport(chosen.ssl_context, server_hostname=chosen.server_hostname,
                              https_compatible=True)
    listeners = await chosen.listen(parsed)
    server = HttpServer(dispatcher, **options)
    server.addresses = [_http_url(listener, address) for listener in listeners]
    await server.serve(listeners, task_status=task_status)


@asynccontextmanager
async def open_http_server(address: str, services: Iterable[object] | Dispatcher,
                           **options: Any) -> AsyncIterator[HttpServer]:
    """Serve over HTTP while the block runs (see :func:`serve_http`)."""
    async with trio.open_nursery() as nursery:
        server: HttpServer = await nursery.start(
            lambda task_status: serve_http(address, services, task_status=task_status,
                                           **options))
        try:
            yield server
        finally:
            server.shutdown()
