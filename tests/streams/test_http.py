"""Server streaming over HTTP: NDJSON in a chunked response (rpcx.gateway.streaming)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import h11
import pytest
import trio

from examples.payments.payments_rpcx import Card, Currency
from examples.payments.service import DECLINED_CARD, Payments
from rpcx.gateway import HttpServer
from rpcx.gateway.server import build_dispatcher
from tests.gateway._client import connected
from tests.streams.service import Streams

CARD = Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123")


def make_server(*services: object) -> HttpServer:
    return HttpServer(build_dispatcher(list(services), [], True))


def lines(body: bytes) -> list[Any]:
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body.split(b"\n")[:-1]]


async def test_a_server_stream_is_ndjson_items_then_an_end_line() -> None:
    async with connected(make_server(Streams())) as client:
        response = await client.call("/streamtest.Streams/count",
                                     {"start": 5, "count": 3, "text": "t"})
    assert response.status == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["transfer-encoding"] == "chunked"
    assert lines(response.body) == [
        {"message": {"n": 5, "text": "t"}}, {"message": {"n": 6, "text": "t"}},
        {"message": {"n": 7, "text": "t"}},
        {"end": {"code": "OK", "message": "", "details": {}}}]


async def test_a_declared_error_after_items_is_the_end_line() -> None:
    async with connected(make_server(Streams())) as client:
        response = await client.call("/streamtest.Streams/count",
                                     {"start": 0, "count": 5, "fail_after": 2})
        # the connection stays usable after a stream
        again = await client.call("/streamtest.Streams/ping", {"n": 4})
    assert response.status == 200
    got = lines(response.body)
    assert got[:2] == [{"message": {"n": 0, "text": ""}}, {"message": {"n": 1, "text": ""}}]
    end = got[2]["end"]
    assert (end["code"], end["error"], end["fields"]) == (
        "FAILED_PRECONDITION", "streamtest.Boom", {"after": 2})
    assert len(got) == 3
    assert again.json() == 4


async def test_an_error_before_the_first_item_is_an_ordinary_error_answer() -> None:
    async with connected(make_server(Streams())) as client:
        failed = await client.call("/streamtest.Streams/count",
                                   {"start": 0, "count": 5, "fail_after": 0})
        bad = await client.call("/streamtest.Streams/count", {"start": "zero", "count": 1})
        empty = await client.call("/streamtest.Streams/count", {"start": 0, "count": 0})
    assert failed.status == 400
    assert failed.json()["error"] == "streamtest.Boom"
    assert bad.status == 400
    assert bad.json()["code"] == "INVALID_ARGUMENT"
    assert empty.status == 200
    assert lines(empty.body) == [{"end": {"code": "OK", "message": "", "details": {}}}]


async def test_client_streaming_and_bidi_are_refused_with_a_reason() -> None:
    async with connected(make_server(Streams())) as client:
        for method in ("sum", "double"):
            response = await client.call(f"/streamtest.Streams/{method}", {"label": "x"})
            assert response.status == 400
            body = response.json()
            assert body["code"] == "UNIMPLEMENTED"
            assert "stream of messages from the client" in body["message"]
            assert "native protocol" in body["message"]


async def test_payments_watch_streams_events_as_they_happen() -> None:
    """Read the watch incrementally: the first event is there before the second charge
    is even made, so the answer really is streamed."""
    payments = Payments()
    server = make_server(payments)
    client_stream, server_stream = trio.testing.memory_stream_pair()
    conn = h11.Connection(h11.CLIENT)
    body = json.dumps({"from_seq": 1}).encode()
    received: list[Any] = []

    async def next_line(buffer: bytearray) -> Any:
        while b"\n" not in buffer:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await client_stream.receive_some(65536)))
            elif isinstance(event, h11.Data):
                buffer += event.data
            else:
                assert isinstance(event, h11.Response), event
                assert event.status_code == 200
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        return json.loads(line)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_stream)
        await client_stream.send_all(
            conn.send(h11.Request(method="POST", target="/payments.Payments/watch",
                                  headers=[("host", "t"), ("content-type", "application/json"),
                                           ("content-length", str(len(body)))]))
            + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        buffer = bytearray()
        await payments.process_payment(CARD, Decimal("3.99"), Currency.GBP, "")
        received.append(await next_line(buffer))
        try:
            await payments.process_payment(
                Card(card_number=DECLINED_CARD, expiry_date="10/2030", cvc="123"),
                Decimal("1.00"), Currency.EUR, "")
        except Exception as exc:
            assert type(exc).__name__ == "CardDeclined"
        received.append(await next_line(buffer))
        await client_stream.aclose()  # the browser navigates away: the handler is cancelled
        nursery.cancel_scope.cancel()
    assert received == [
        {"message": {"seq": 1, "kind": "charged", "amount": "3.99", "currency": "GBP",
                     "payment_id": "pay_000001"}},
        {"message": {"seq": 2, "kind": "declined", "amount": "1.00", "currency": "EUR",
                     "reason": "insufficient funds"}},
    ]


async def test_the_deadline_covers_an_http_stream(autojump_clock: trio.abc.Clock) -> None:
    payments = Payments()
    await payments.process_payment(CARD, Decimal("2.50"), Currency.USD, "")
    async with connected(make_server(payments)) as client:
        response = await client.call("/payments.Payments/watch", {},
                                     headers=[("rpcx-timeout", "1")])
    got = lines(response.body)
    assert response.status == 200
    assert got[0]["message"]["amount"] == "2.50"
    assert got[1]["end"]["code"] == "DEADLINE_EXCEEDED"
    assert len(got) == 2


async def test_a_client_that_goes_away_mid_stream_cancels_the_handler_quietly(
        caplog: pytest.LogCaptureFixture) -> None:
    streams = Streams()
    server = make_server(streams)
    client_stream, server_stream = trio.testing.memory_stream_pair()
    body = json.dumps({"start": 0, "count": 1_000_000}).encode()
    conn = h11.Connection(h11.CLIENT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_stream)
        await client_stream.send_all(
            conn.send(h11.Request(method="POST", target="/streamtest.Streams/count",
                                  headers=[("host", "t"), ("content-type", "application/json"),
                                           ("content-length", str(len(body)))]))
            + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        assert b'{"message"' in await client_stream.receive_some(65536)
        await client_stream.aclose()
        await streams.stopped.wait()
        nursery.cancel_scope.cancel()
    assert streams.finished == []
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
