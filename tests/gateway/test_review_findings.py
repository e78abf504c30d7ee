"""HTTP gateway bugs found in review: each test failed before its fix."""

from __future__ import annotations

from typing import Any

import trio

import rpcx
from rpcx.gateway import HttpServer, open_http_server, serve_http
from rpcx.gateway.server import build_dispatcher
from rpcx.runtime.interceptors import CallInfo, Proceed
from tests.gateway._client import HttpClient, connected, raw_exchange
from tests.gateway.test_http import make_server
from tests.runtime.harness import Echo, mem_address

ECHO = "/echo.Echo/echo"


class SurrogateRefusal:
    """Refuses every call with a message holding a lone surrogate, as text decoded with
    ``surrogateescape`` (a file name, say) does."""

    async def intercept_server(self, call: CallInfo, proceed: Proceed) -> Any:
        raise rpcx.RpcError(rpcx.Status.PERMISSION_DENIED, "no access to /data/caf\udce9",
                            {"file": "caf\udce9"})


async def test_an_error_message_with_a_lone_surrogate_does_not_stop_the_server() -> None:
    dispatcher = build_dispatcher([Echo()], [SurrogateRefusal()], True)
    async with open_http_server("tcp://127.0.0.1:0", dispatcher) as server:
        port = int(server.addresses[0].rpartition(":")[2])
        for _ in range(2):  # the second connection is served too
            with trio.fail_after(5):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    response = await HttpClient(stream).call(ECHO, {"text": "x"})
            assert response.status == 403
            body = response.json()
            assert body["code"] == "PERMISSION_DENIED"
            assert body["message"] == "no access to /data/caf\udce9"
            assert body["details"] == {"file": "caf\udce9"}


async def test_a_bug_while_answering_is_a_500_and_the_server_keeps_serving(
        monkeypatch: Any) -> None:
    def broken(self: HttpServer) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr(HttpServer, "_openapi", broken)
    async with open_http_server("tcp://127.0.0.1:0", [Echo()]) as server:
        port = int(server.addresses[0].rpartition(":")[2])
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                response = await HttpClient(stream).request("GET", "/openapi.json")
            assert response.status == 500
            assert response.json()["code"] == "INTERNAL"
            assert response.headers["connection"] == "close"
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                response = await HttpClient(stream).call(ECHO, {"text": "still here"})
            assert response.json() == "still here"


async def test_a_cancelled_http_server_releases_its_address() -> None:
    address = mem_address()
    with trio.move_on_after(0.1):
        await serve_http(address, [Echo()])
    async with open_http_server(address, [Echo()]) as server:
        assert server.addresses


async def test_a_head_request_is_answered_without_a_body() -> None:
    # h11 refuses a body in the answer to HEAD: the connection used to close unanswered.
    head = b"HEAD /openapi.json HTTP/1.1\r\nhost: x\r\n\r\n"
    reply = await raw_exchange(make_server(), head + head)
    assert reply.count(b"HTTP/1.1 405 Method Not Allowed\r\n") == 2, reply
    assert b"allow: GET\r\n" in reply
    assert b"{" not in reply  # no body


async def test_requests_refused_before_dispatch_carry_rpcx_status() -> None:
    # docs/http.md: "Responses carry rpcx-status: OK (or the status name)".
    async with connected(make_server(max_body_bytes=100)) as client:
        unknown = await client.call("/nope.Nope/x", {})
        wrong_verb = await client.request("GET", ECHO)
        media = await client.request("POST", ECHO, b"{}", content_type="text/plain")
        timeout = await client.call(ECHO, {"text": "x"}, headers=[("rpcx-timeout", "nan")])
        too_big = await client.call(ECHO, {"text": "x" * 200})
    assert unknown.headers["rpcx-status"] == "UNIMPLEMENTED"
    assert wrong_verb.headers["rpcx-status"] == "UNIMPLEMENTED"
    assert media.headers["rpcx-status"] == "INVALID_ARGUMENT"
    assert timeout.headers["rpcx-status"] == "INVALID_ARGUMENT"
    assert too_big.status == 413
    assert too_big.headers["rpcx-status"] == "RESOURCE_EXHAUSTED"


async def test_malformed_http_and_one_way_answers_carry_rpcx_status() -> None:
    reply = await raw_exchange(make_server(), b"GARBAGE\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"rpcx-status: INVALID_ARGUMENT\r\n" in reply
    async with connected(make_server()) as client:
        note = await client.call("/echo.Echo/note", {"text": "hi"})
    assert note.status == 202 and note.headers["rpcx-status"] == "OK"


async def test_with_an_origin_list_every_answer_varies_by_origin() -> None:
    # Without Vary: Origin on the answer to another origin (or to none), a shared cache
    # may give it to an allowed origin, which the browser then blocks (or the reverse).
    async with connected(make_server(cors_origins=["https://shop.example"])) as client:
        other = await client.request("GET", "/openapi.json",
                                     headers=[("origin", "https://evil.test")])
        none = await client.request("GET", "/openapi.json")
        allowed = await client.request("GET", "/openapi.json",
                                       headers=[("origin", "https://shop.example")])
    assert "access-control-allow-origin" not in other.headers
    assert other.headers["vary"] == none.headers["vary"] == "Origin"
    assert allowed.headers["vary"] == "Origin"



async def test_with_any_origin_allowed_every_answer_still_varies_by_origin() -> None:
    # With "*" an answer to a request with Origin carries Access-Control-Allow-Origin and
    # one without Origin does not: a cache that gave the second to a browser would make
    # it block the call. So Vary: Origin here too (issue 13: docs/http.md promised it).
    async with connected(make_server(cors_origins=["*"])) as client:
        anyone = await client.request("GET", "/openapi.json",
                                      headers=[("origin", "https://evil.test")])
        none = await client.request("GET", "/openapi.json")
        call = await client.call("/payments.Payments/get_payment", {"payment_id": "x"},
                                 headers=[("origin", "https://shop.example")])
        preflight = await client.request(
            "OPTIONS", "/payments.Payments/get_payment",
            headers=[("origin", "https://shop.example"),
                     ("access-control-request-method", "POST")])
    assert anyone.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in none.headers
    for answer in (anyone, none, call, preflight):
        assert answer.headers["vary"] == "Origin", answer
