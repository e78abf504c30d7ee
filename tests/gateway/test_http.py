"""The HTTP face at the unit level: an h11 client over in-memory streams, against the
same dispatcher a native server uses."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import rpcx
from examples.payments.service import DECLINED_CARD, Payments
from rpcx.gateway import HTTP_STATUS, HttpServer
from rpcx.gateway.server import build_dispatcher
from tests.gateway._client import Response, connected, raw_exchange
from tests.runtime.harness import Echo

PROCESS = "/payments.Payments/process_payment"
CARD = {"card_number": "4111 1111 1111 1111", "expiry_date": "10/2030", "cvc": "123"}
SEED_ARGS: dict[str, Any] = {"card": CARD, "amount": "3.99", "currency": "GBP"}


def make_server(*services: object, interceptors: list[rpcx.ServerInterceptor] | None = None,
                reflection: bool = True, **options: Any) -> HttpServer:
    impls = list(services) or [Payments(), Echo()]
    return HttpServer(build_dispatcher(impls, interceptors or [], reflection), **options)


def assert_error(response: Response, status: int, code: str, *needles: str) -> None:
    assert response.status == status, response
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == code, body
    assert set(body) >= {"code", "message", "details"}
    for needle in needles:
        assert needle in body["message"], body


async def test_the_seed_call_answers_200_with_the_json_result() -> None:
    async with connected(make_server()) as client:
        response = await client.call(PROCESS, SEED_ARGS)
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"success": True, "payment_id": "pay_000001"}


async def test_a_declared_error_carries_its_name_and_fields() -> None:
    async with connected(make_server()) as client:
        response = await client.call(
            PROCESS, {**SEED_ARGS, "card": {**CARD, "card_number": DECLINED_CARD}})
    assert_error(response, 400, "FAILED_PRECONDITION", "insufficient funds")
    body = response.json()
    assert body["error"] == "payments.CardDeclined"
    assert body["fields"] == {"reason": "insufficient funds"}
    assert response.headers["rpcx-status"] == "FAILED_PRECONDITION"


@pytest.mark.parametrize("code", [c for c in rpcx.Status if c is not rpcx.Status.OK])
async def test_every_status_maps_to_its_documented_http_status(code: rpcx.Status) -> None:
    async with connected(make_server()) as client:
        response = await client.call("/echo.Echo/fail", {"code": int(code), "message": "m"})
    assert_error(response, HTTP_STATUS[code], code.name, "m")
    assert response.json()["details"] == {"hint": "from the handler"}


async def test_the_status_table_is_grpc_gateways() -> None:
    S = rpcx.Status
    expected = {S.OK: 200, S.INVALID_ARGUMENT: 400, S.FAILED_PRECONDITION: 400,
                S.OUT_OF_RANGE: 400, S.UNAUTHENTICATED: 401, S.PERMISSION_DENIED: 403,
                S.NOT_FOUND: 404, S.UNIMPLEMENTED: 404, S.ALREADY_EXISTS: 409,
                S.ABORTED: 409, S.RESOURCE_EXHAUSTED: 429, S.CANCELLED: 499,
                S.INTERNAL: 500, S.UNKNOWN: 500, S.DATA_LOSS: 500, S.UNAVAILABLE: 503,
                S.DEADLINE_EXCEEDED: 504}
    assert dict(HTTP_STATUS) == expected


async def test_a_crash_is_500_without_the_secret() -> None:
    async with connected(make_server()) as client:
        response = await client.call("/echo.Echo/crash", {})
    assert_error(response, 500, "INTERNAL")
    assert b"hunter2" not in response.body


async def test_malformed_json_is_400_with_line_and_column() -> None:
    async with connected(make_server()) as client:
        response = await client.request("POST", PROCESS, b'{"card":\n  {"cvc": }}')
    assert_error(response, 400, "INVALID_ARGUMENT", "malformed JSON at 2:11")


@pytest.mark.parametrize(("args", "needle"), [
    ({**SEED_ARGS, "card": {**CARD, "expiry_date": 12}},
     "card.expiry_date: expected string, got int"),
    ({**SEED_ARGS, "amount": True}, "amount"),
    ({**SEED_ARGS, "currency": "JPY"}, "currency"),
    ({"card": CARD, "currency": "GBP"}, "missing required field 'amount'"),
    ({**SEED_ARGS, "card": {"card_number": "4111"}}, "card: missing required field"),
])
async def test_bad_arguments_are_400_naming_the_field(args: dict[str, Any],
                                                      needle: str) -> None:
    async with connected(make_server()) as client:
        response = await client.call(PROCESS, args)
    assert_error(response, 400, "INVALID_ARGUMENT", needle)


async def test_a_body_that_is_not_an_object_is_400() -> None:
    async with connected(make_server()) as client:
        response = await client.request("POST", PROCESS, b"[1, 2]")
    assert_error(response, 400, "INVALID_ARGUMENT")


async def test_unknown_method_and_path_are_404() -> None:
    async with connected(make_server()) as client:
        for path in ("/payments.Payments/refund", "/nope.Nope/x", "/", "/payments.Payments"):
            response = await client.call(path, {})
            assert_error(response, 404, "UNIMPLEMENTED", "unknown method")


async def test_get_instead_of_post_is_405_with_allow() -> None:
    async with connected(make_server()) as client:
        response = await client.request("GET", PROCESS)
        assert_error(response, 405, "UNIMPLEMENTED", "POST")
        assert response.headers["allow"] == "POST, OPTIONS"
        response = await client.request("PUT", PROCESS, b"{}")
        assert response.status == 405


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonx"])
async def test_wrong_content_type_is_415(content_type: str | None) -> None:
    async with connected(make_server()) as client:
        response = await client.request("POST", PROCESS, json.dumps(SEED_ARGS).encode(),
                                        content_type=content_type)
    assert_error(response, 415, "INVALID_ARGUMENT", "application/json")


async def test_content_type_parameters_are_fine() -> None:
    async with connected(make_server()) as client:
        response = await client.request("POST", PROCESS, json.dumps(SEED_ARGS).encode(),
                                        content_type="Application/JSON; charset=utf-8")
    assert response.status == 200


async def test_an_oversized_body_is_413_and_the_connection_closes() -> None:
    server = make_server(max_body_bytes=100)
    async with connected(server) as client:
        response = await client.request("POST", PROCESS, b" " * 101)
        assert_error(response, 413, "RESOURCE_EXHAUSTED", "100")
        assert response.headers["connection"] == "close"


async def test_an_oversized_chunked_body_is_413() -> None:
    chunk = b"x" * 80
    request = (b"POST /echo.Echo/echo HTTP/1.1\r\nhost: t\r\ncontent-type: application/json"
               b"\r\ntransfer-encoding: chunked\r\n\r\n"
               + (b"50\r\n" + chunk + b"\r\n") * 3 + b"0\r\n\r\n")
    reply = await raw_exchange(make_server(max_body_bytes=200), request)
    assert reply.startswith(b"HTTP/1.1 413 ")


async def test_a_chunked_body_within_the_limit_works() -> None:
    body = b'{"text": "hi"}'
    request = (b"POST /echo.Echo/echo HTTP/1.1\r\nhost: t\r\ncontent-type: application/json"
               b"\r\ntransfer-encoding: chunked\r\n\r\n"
               + f"{len(body):x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n")
    reply = await raw_exchange(make_server(), request)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b'"hi"')


@pytest.mark.parametrize("garbage", [b"GARBAGE\r\n\r\n", b"POST / HTTP/1.1\r\nbad header\r\n\r\n",
                                     b"POST /x HTTP/1.1\r\ncontent-length: zz\r\n\r\n"])
async def test_a_malformed_http_request_is_400_and_closes(garbage: bytes) -> None:
    reply = await raw_exchange(make_server(), garbage)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in reply.lower()


async def test_huge_headers_are_431() -> None:
    request = b"POST /x HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * 100_000 + b"\r\n\r\n"
    reply = await raw_exchange(make_server(), request)
    assert reply.startswith(b"HTTP/1.1 431 ")


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async with connected(make_server()) as client:
        for n in range(1, 6):
            response = await client.call("/echo.Echo/increment", {"by": n})
            assert response.status == 200 and response.json() == sum(range(1, n + 1))
        # errors keep the connection too
        assert (await client.call("/echo.Echo/nope", {})).status == 404
        assert (await client.request("GET", "/echo.Echo/echo")).status == 405
        assert (await client.call("/echo.Echo/echo", {"text": "still here"})).json() \
            == "still here"


async def test_headers_become_metadata_and_the_timeout_header_the_deadline() -> None:
    async with connected(make_server()) as client:
        response = await client.call("/echo.Echo/context", {}, headers=[
            ("rpcx-meta-tenant", "acme"), ("authorization", "Bearer t"),
            ("rpcx-timeout", "2.5"), ("x-other", "not forwarded")])
    seen = response.json()
    assert seen["tenant"] == "acme" and seen["authorization"] == "Bearer t"
    assert "x-other" not in seen
    assert 2.0 < float(seen["deadline"]) <= 2.5


async def test_server_interceptors_see_header_metadata() -> None:
    server = make_server(interceptors=[rpcx.TokenAuth(accept={"s3cret"})])
    async with connected(server) as client:
        response = await client.call(PROCESS, SEED_ARGS)
        assert_error(response, 401, "UNAUTHENTICATED", "missing bearer token")
        response = await client.call(PROCESS, SEED_ARGS,
                                     headers=[("authorization", "Bearer s3cret")])
        assert response.status == 200


async def test_the_deadline_cancels_the_handler_with_504() -> None:
    echo = Echo()
    async with connected(make_server(echo)) as client:
        start = trio.current_time()
        response = await client.call("/echo.Echo/slow", {"seconds": 5, "text": "late"},
                                     headers=[("rpcx-timeout", "0.2")])
        assert trio.current_time() - start < 2
    assert_error(response, 504, "DEADLINE_EXCEEDED")
    assert echo.cancelled == ["late"]


@pytest.mark.parametrize("value", ["soon", "-1", "0", "nan", "inf"])
async def test_a_bad_timeout_header_is_400(value: str) -> None:
    async with connected(make_server()) as client:
        response = await client.call("/echo.Echo/echo", {"text": "x"},
                                     headers=[("rpcx-timeout", value)])
    assert_error(response, 400, "INVALID_ARGUMENT", "rpcx-timeout")


async def test_a_repeated_timeout_header_is_400() -> None:
    async with connected(make_server()) as client:
        response = await client.call("/echo.Echo/echo", {"text": "x"},
                                     headers=[("rpcx-timeout", "5"), ("rpcx-timeout", "0.1")])
    assert_error(response, 400, "INVALID_ARGUMENT", "rpcx-timeout given 2 times")


async def test_a_oneway_method_answers_202() -> None:
    echo = Echo()
    async with connected(make_server(echo)) as client:
        response = await client.call("/echo.Echo/note", {"text": "hello"})
    assert response.status == 202 and response.body == b""
    assert echo.notes == ["hello"]


async def test_cors_preflight_and_response_headers() -> None:
    server = make_server(cors_origins=["https://shop.example"])
    async with connected(server) as client:
        preflight = await client.request("OPTIONS", PROCESS, headers=[
            ("origin", "https://shop.example"), ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, rpcx-timeout")])
        assert preflight.status == 204
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-headers"] == "content-type, rpcx-timeout"
        response = await client.call(PROCESS, SEED_ARGS,
                                     headers=[("origin", "https://shop.example")])
        assert response.status == 200
        assert response.headers["access-control-allow-origin"] == "https://shop.example"
        other = await client.call(PROCESS, SEED_ARGS, headers=[("origin", "https://evil.test")])
        assert "access-control-allow-origin" not in other.headers


async def test_without_cors_no_cors_headers_are_sent() -> None:
    async with connected(make_server()) as client:
        preflight = await client.request("OPTIONS", PROCESS, headers=[
            ("origin", "https://shop.example"), ("access-control-request-method", "POST")])
    assert preflight.status == 204
    assert not any(h.startswith("access-control-") for h in preflight.headers)


async def test_openapi_json_is_served() -> None:
    async with connected(make_server()) as client:
        response = await client.request("GET", "/openapi.json")
        assert response.status == 200
        document = response.json()
        assert document["openapi"] == "3.1.0"
        assert PROCESS in document["paths"]
        assert (await client.request("POST", "/openapi.json", b"{}")).status == 405


async def test_reflection_is_served_and_can_be_switched_off() -> None:
    async with connected(make_server()) as client:
        response = await client.call("/rpcx.reflection.Reflection/list_services", {})
        assert response.json() == ["payments.Payments", "echo.Echo",
                                   "rpcx.reflection.Reflection"]
    async with connected(make_server(reflection=False)) as client:
        response = await client.call("/rpcx.reflection.Reflection/list_services", {})
        assert response.status == 404
