"""The HTTP face against an attacker (issue 9): limits hold however the bytes arrive, and no
text sent to a peer is Python's. Each test failed before its fix."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import h11
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rpcx
from examples.payments.service import Payments
from rpcx.gateway import HttpServer
from rpcx.gateway.server import MAX_HEAD_BYTES, build_dispatcher
from rpcx.runtime.interceptors import CallInfo, Proceed
from tests.gateway._client import HttpClient
from tests.gateway._hostile import CountingStream, exchange, request_bytes
from tests.gateway._procs import PaymentsProcess, payments_process, raw_http
from tests.runtime.harness import Echo

ECHO = "/echo.Echo/echo"
PROCESS = "/payments.Payments/process_payment"
CARD = {"card_number": "4111 1111 1111 1111", "expiry_date": "10/2030", "cvc": "123"}
SEED_ARGS: dict[str, Any] = {"card": CARD, "amount": "3.99", "currency": "GBP"}


def make_server(*interceptors: rpcx.ServerInterceptor, **options: Any) -> HttpServer:
    return HttpServer(build_dispatcher([Payments(), Echo()], list(interceptors), True),
                      **options)


def echo_request(text: str, *headers: tuple[str, str]) -> bytes:
    return request_bytes(ECHO, json.dumps({"text": text}).encode(), headers=headers)


# ---- 1. pipelined bytes while a handler runs ----------------------------------------

class Gate:
    """Holds the first call in its interceptor until released."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.release = trio.Event()

    async def intercept_server(self, call: CallInfo, proceed: Proceed) -> Any:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return await proceed(call)


async def test_pipelined_bytes_while_a_handler_runs_are_bounded_then_all_answered() -> None:
    gate = Gate()
    server = make_server(gate, max_body_bytes=4096, max_pipelined_bytes=10_000)
    client_stream, server_stream = trio.testing.memory_stream_pair()
    counted = CountingStream(server_stream)
    first = echo_request("first")
    later = [echo_request(f"n{i}-" + "x" * 200) for i in range(2000)]  # ~500 KiB
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, counted)
        await client_stream.send_all(first)
        await gate.entered.wait()
        await client_stream.send_all(b"".join(later))
        await trio.testing.wait_all_tasks_blocked()
        # The handler still runs: the server read the first request and at most the bound.
        assert counted.received <= len(first) + 10_000, counted.received
        gate.release.set()
        client = HttpClient(client_stream)
        client.conn.send(h11.Request(method="POST", target=ECHO, headers=[("host", "t")]))
        texts = []
        for i in range(len(later) + 1):
            if i:
                client.conn.start_next_cycle()
                client.conn.send(h11.Request(method="POST", target=ECHO,
                                             headers=[("host", "t")]))
            client.conn.send(h11.EndOfMessage())
            response = await client.read_response()
            assert response.status == 200, response
            texts.append(response.json())
        nursery.cancel_scope.cancel()
    assert texts[0] == "first" and texts[-1].startswith("n1999-") and len(texts) == 2001


async def test_a_client_that_hangs_up_while_its_call_runs_still_cancels_it() -> None:
    gate = Gate()
    server = make_server(gate)
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_stream)
        await client_stream.send_all(echo_request("x"))
        await gate.entered.wait()
        await client_stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert not gate.release.is_set()
        nursery.cancel_scope.cancel()


def test_max_pipelined_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pipelined_bytes"):
        make_server(max_pipelined_bytes=0)


# ---- 2. the head limit, however the bytes arrive ------------------------------------

BODY = json.dumps({"text": "hi"}).encode()


def head_of(size: int, body: bytes = b"") -> bytes:
    """A request head of exactly ``size`` bytes for ``body`` (padded by one header)."""
    base = request_bytes(ECHO, body, headers=[("x-pad", "")])[:-len(body) or None]
    head = base[:-4] + b"p" * (size - len(base)) + b"\r\n\r\n"
    assert len(head) == size
    return head


def sized_request(head_size: int) -> bytes:
    return head_of(head_size, BODY) + BODY


ARRIVALS = {
    "one write": (),
    "byte by byte": (1,),
    "two pieces": (MAX_HEAD_BYTES // 2,),
    "ragged": (1, 7, 4096, 3, 9000, 1, 2, 30000),
    "16 KiB then the rest": (MAX_HEAD_BYTES, 1 << 20),
}


@pytest.mark.parametrize("arrival", list(ARRIVALS), ids=list(ARRIVALS))
@pytest.mark.parametrize("size", [MAX_HEAD_BYTES + 1, 20 * 1024, 63 * 1024])
async def test_a_head_over_the_limit_is_431_however_it_arrives(size: int, arrival: str) -> None:
    if arrival == "byte by byte" and size > MAX_HEAD_BYTES + 1:
        pytest.skip("byte by byte is tested at the boundary, where it matters")
    responses = await exchange(make_server(), sized_request(size), sizes=ARRIVALS[arrival])
    assert [r.status for r in responses] == [431]
    body = responses[0].json()
    assert body["code"] == "INVALID_ARGUMENT"
    assert body["message"] == (f"malformed HTTP request: request head larger than "
                               f"{MAX_HEAD_BYTES} bytes")
    assert responses[0].headers["connection"] == "close"


@pytest.mark.parametrize("arrival", list(ARRIVALS), ids=list(ARRIVALS))
async def test_a_head_of_exactly_the_limit_is_served_however_it_arrives(arrival: str) -> None:
    request = sized_request(MAX_HEAD_BYTES)
    count = 1 if arrival == "byte by byte" else 2  # pipelined: the second head follows
    responses = await exchange(make_server(), request * count, sizes=ARRIVALS[arrival])
    assert [(r.status, r.json()) for r in responses] == [(200, "hi")] * count


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(MAX_HEAD_BYTES - 3, 40 * 1024),
       sizes=st.lists(st.integers(1, 20_000), min_size=1, max_size=6))
def test_the_head_limit_holds_split_anywhere(size: int, sizes: list[int]) -> None:
    pieces = [*sizes, 1 << 20]  # the last size repeats: the rest comes in one piece
    responses = trio.run(partial(exchange, make_server(), sized_request(size), sizes=pieces))
    expected = 431 if size > MAX_HEAD_BYTES else 200
    assert [r.status for r in responses] == [expected]


# ---- 3. h11's messages are not passed on ---------------------------------------------

MALFORMED = [
    (b"GARBAGE\r\n\r\n", 400, "malformed HTTP request: bad request line"),
    (b"GET /\x00 HTTP/1.1\r\nhost: x\r\n\r\n", 400, "malformed HTTP request: bad request line"),
    (b"POST / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n", 400,
     "malformed HTTP request: bad header line"),
    (b"POST / HTTP/1.1\r\nhost: x\r\nna\x01me: v\r\n\r\n", 400,
     "malformed HTTP request: bad header line"),
    (b"POST / HTTP/1.1\r\nhost: x\r\nv: a\x00b\r\n\r\n", 400,
     "malformed HTTP request: bad header line"),
    (b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n", 400,
     "malformed HTTP request: missing host header"),
    (b"POST / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n", 400,
     "malformed HTTP request: more than one host header"),
    (b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: x1\r\n\r\n", 400,
     "malformed HTTP request: bad content-length header"),
    (b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: " + b"9" * 5000 + b"\r\n\r\n", 400,
     "malformed HTTP request: bad content-length header"),
    (b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", 400,
     "malformed HTTP request: conflicting content-length headers"),
    (b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip\r\n\r\n", 501,
     "malformed HTTP request: unsupported transfer-encoding (only chunked is)"),
    (b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 400,
     "malformed HTTP request: bad chunked body"),
    (b" POST / HTTP/1.1\r\nhost: a\r\n\r\n", 400, "malformed HTTP request: bad request line"),
    (b"\r\n\r\n\r\n", 400, "malformed HTTP request: bad request line"),
]


@pytest.mark.parametrize(("data", "status", "message"), MALFORMED)
async def test_malformed_http_gets_a_plain_message(data: bytes, status: int,
                                                   message: str) -> None:
    responses = await exchange(make_server(), data)
    assert [r.status for r in responses] == [status]
    assert responses[0].json()["message"] == message
    assert responses[0].headers["connection"] == "close"


@pytest.mark.parametrize(("request_", "needle"), [
    (request_bytes("/no\\such'\"/x", b"{}"), 'unknown method "/no\\\\such\'\\"/x"'),
    (request_bytes(ECHO, b"{}", headers=[("rpcx-timeout", "caf\xe9")]),
     'rpcx-timeout must be a positive number of seconds, got "caf\u00e9"'),
    (request_bytes(ECHO, b"{}").replace(b"application/json", b"text/\xe9x"),
     'content-type must be application/json, got "text/\u00e9x"'),
])
async def test_peer_text_in_messages_is_quoted_as_json(request_: bytes, needle: str) -> None:
    responses = await exchange(make_server(), request_)
    assert needle in responses[0].json()["message"], responses[0].json()


async def test_json_errors_reach_the_peer_in_the_codec_s_words() -> None:
    body = (b'{"card": ' + json.dumps(CARD).encode() + b', "amount": ' + b"1" * 5000 +
            b', "currency": "GBP"}')
    responses = await exchange(make_server(), request_bytes(PROCESS, body))
    assert responses[0].status == 400
    assert responses[0].json()["message"] == (
        "invalid arguments to payments.Payments/process_payment: amount: number has too "
        "many digits")


# ---- fuzz ----------------------------------------------------------------------------

SERVER = make_server(max_body_bytes=2048, max_pipelined_bytes=4096)
"""One server for every example: it must keep serving whatever came before."""

_PATHS = st.sampled_from([ECHO, PROCESS, "/openapi.json", "/", "/x", "/echo.Echo/increment",
                          "/rpcx.reflection.Reflection/list_services", "*", "/%00", "//"])
_METHODS = st.sampled_from(["POST", "GET", "OPTIONS", "PUT", "DELETE", "PATCH", "CONNECT",
                            "TRACE", "P\x00ST", ""])
_HEADER_NAMES = st.sampled_from(["host", "content-length", "transfer-encoding", "expect",
                                 "content-type", "rpcx-timeout", "connection", "origin",
                                 "rpcx-meta-x", "authorization", "idempotency-key", "x",
                                 ""])
_HEADER_VALUES = st.one_of(
    st.sampled_from(["0", "1", "-1", "99999999999", "chunked", "gzip", "100-continue",
                     "close", "application/json", "text/plain", "nan", "1e999", "0.001",
                     "9" * 30, "", " ", "*"]),
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=20))
_BODIES = st.one_of(
    st.just(json.dumps(SEED_ARGS)), st.just('{"text": "hi"}'), st.just("{}"),
    st.just('{"amount": ' + "1" * 5000 + "}"), st.just("[" * 3000), st.just('{"a":NaN}'),
    st.just('{"text": "\\ud800"}'), st.text(max_size=40))


@st.composite
def hostile_request(draw: st.DrawFn) -> bytes:
    method: str = draw(_METHODS)
    path: str = draw(_PATHS)
    version: str = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", ""]))
    headers = [("host", "t")] if draw(st.booleans()) else []
    headers += draw(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=4))
    text: str = draw(_BODIES)
    body = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        headers.append(("content-length", str(len(body))))
    chunked = draw(st.booleans())
    if chunked:
        headers.append(("transfer-encoding", "chunked"))
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = f"{method} {path} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    data = head.encode("latin-1") + b"\r\n" + body
    if draw(st.booleans()):  # damage it
        at = draw(st.integers(0, len(data)))
        junk: bytes = draw(st.binary(max_size=8))
        data = data[:at] + junk + data[at + draw(st.integers(0, 4)):]
    return data


async def _serves_a_normal_request_after(data: bytes, sizes: list[int]) -> None:
    await exchange(SERVER, data, sizes=sizes)
    responses = await exchange(SERVER, echo_request("still here"))
    assert [(r.status, r.json()) for r in responses] == [(200, "still here")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=st.lists(hostile_request(), min_size=1, max_size=3),
       sizes=st.lists(st.integers(1, 3000), max_size=4))
def test_fuzz_hostile_requests_get_documented_answers(requests: list[bytes],
                                                      sizes: list[int]) -> None:
    trio.run(_serves_a_normal_request_after, b"".join(requests), sizes)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"POST / HTTP/1.1\r\n",
                                                             echo_request("a")]))
def test_fuzz_arbitrary_bytes_get_documented_answers(data: bytes, prefix: bytes) -> None:
    trio.run(_serves_a_normal_request_after, prefix + data, [])


# ---- the same over TCP, against a server process --------------------------------------

@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with payments_process(tmp_path_factory.mktemp("hostile")) as running:
        yield running


@pytest.mark.parametrize("size", [20 * 1024, 63 * 1024])
def test_a_server_process_answers_431_to_a_big_head_in_one_write(
        process: PaymentsProcess, size: int) -> None:
    data = head_of(size).replace(b"/echo.Echo/echo", PROCESS.encode())
    reply = raw_http(process.http, data)
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert b"request head larger than 16384 bytes" in reply


def test_a_server_process_answers_garbage_in_plain_words(process: PaymentsProcess) -> None:
    reply = raw_http(process.http, b"GARBAGE\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    body = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert body["message"] == "malformed HTTP request: bad request line"
    assert b"bytearray" not in reply and b"b'" not in reply
