"""``Idempotency-Key`` over HTTP (issue 13 item 5): a retried call runs at most once and
gets the first answer, status and body; the same key with another body is a 422."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from examples.payments.service import DECLINED_CARD, Ledger, Payments
from rpcx.gateway import HttpServer
from rpcx.gateway.idempotency import MAX_KEY_LENGTH, BadKey, parse_key
from rpcx.gateway.server import build_dispatcher
from tests.gateway._client import HttpClient, Response, connected
from tests.runtime.harness import Echo

PROCESS = "/payments.Payments/process_payment"
CARD = {"card_number": "4111 1111 1111 1111", "expiry_date": "10/2030", "cvc": "123"}
SEED_ARGS: dict[str, Any] = {"card": CARD, "amount": "3.99", "currency": "GBP"}
KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"


def make_server(*services: object, **options: Any) -> HttpServer:
    return HttpServer(build_dispatcher(list(services), [], True), **options)


def keyed(key: str = KEY, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [("idempotency-key", f'"{key}"'), *extra]


def same_answer(a: Response, b: Response) -> bool:
    return (a.status, a.body, a.headers["rpcx-status"]) == (b.status, b.body,
                                                           b.headers["rpcx-status"])


async def test_a_retry_with_the_same_key_charges_once_and_gets_the_first_answer() -> None:
    ledger = Ledger()
    server = make_server(Payments(ledger))
    async with connected(server) as first, connected(server) as retry:
        one = await first.call(PROCESS, SEED_ARGS, keyed())
        # the retry comes on another connection, as after a lost response
        two = await retry.call(PROCESS, SEED_ARGS, keyed())
        other = await retry.call(PROCESS, SEED_ARGS, keyed("another key"))
    assert one.status == 200 and one.json()["payment_id"] == "pay_000001"
    assert same_answer(one, two)
    assert other.json()["payment_id"] == "pay_000002"
    assert len(ledger.charges) == 2
    assert server.keyed_calls.replayed == 1


async def test_without_a_key_every_call_runs() -> None:
    ledger = Ledger()
    async with connected(make_server(Payments(ledger))) as client:
        for _ in range(2):
            assert (await client.call(PROCESS, SEED_ARGS)).status == 200
    assert len(ledger.charges) == 2


async def test_a_failure_is_replayed_too_status_and_body() -> None:
    ledger = Ledger()
    declined = {**SEED_ARGS, "card": {**CARD, "card_number": DECLINED_CARD}}
    async with connected(make_server(Payments(ledger))) as client:
        one = await client.call(PROCESS, declined, keyed())
        two = await client.call(PROCESS, declined, keyed())
    assert one.status == 400 and one.json()["error"] == "payments.CardDeclined"
    assert same_answer(one, two)


async def test_the_same_key_with_another_body_is_422_and_runs_nothing() -> None:
    echo = Echo()
    async with connected(make_server(echo)) as client:
        one = await client.call("/echo.Echo/increment", {"by": 1}, keyed())
        two = await client.call("/echo.Echo/increment", {"by": 5}, keyed())
        three = await client.call("/echo.Echo/increment", {"by": 1}, keyed())
    assert one.status == 200 and one.json() == 1
    assert two.status == 422, two
    body = two.json()
    assert body["code"] == "INVALID_ARGUMENT"
    assert body["details"] == {"reason": "idempotency_key_reused"}
    assert "different request body" in body["message"] and KEY in body["message"]
    assert two.headers["rpcx-status"] == "INVALID_ARGUMENT"
    assert same_answer(one, three)
    assert echo.increments == 1


async def test_keys_are_per_method_and_per_authorization() -> None:
    echo = Echo()
    async with connected(make_server(echo)) as client:
        a = await client.call("/echo.Echo/increment", {"by": 1},
                              keyed(KEY, ("authorization", "Bearer alice")))
        b = await client.call("/echo.Echo/increment", {"by": 1},
                              keyed(KEY, ("authorization", "Bearer bob")))
        c = await client.call("/echo.Echo/context", {}, keyed(KEY))
    assert (a.json(), b.json()) == (1, 2)  # bob never gets alice's answer
    assert c.status == 200 and echo.increments == 2


async def test_the_handler_sees_the_key_and_a_bare_token_is_accepted() -> None:
    async with connected(make_server(Echo())) as client:
        quoted = await client.call("/echo.Echo/context", {}, keyed("k-1"))
        bare = await client.call("/echo.Echo/context", {}, [("idempotency-key", "k-2")])
        none = await client.call("/echo.Echo/context", {})
    assert quoted.json()["idempotency-key"] == b"k-1".hex()
    assert bare.json()["idempotency-key"] == b"k-2".hex()
    assert "idempotency-key" not in none.json()


async def test_a_retry_while_the_first_runs_waits_for_it_and_gets_its_answer() -> None:
    echo = Echo()
    server = make_server(echo)
    answers: list[Response] = []

    async def call(client: HttpClient) -> None:
        answers.append(await client.call("/echo.Echo/slow", {"seconds": 1, "text": "x"},
                                         keyed()))

    async with connected(server) as a, connected(server) as b:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, a)
            await echo.started.wait()
            nursery.start_soon(call, b)
    assert len(answers) == 2 and same_answer(*answers)
    assert echo.completed == ["x"]


async def test_a_call_cut_off_by_its_deadline_is_forgotten_so_a_retry_runs() -> None:
    echo = Echo()
    async with connected(make_server(echo)) as client:
        late = await client.call("/echo.Echo/slow", {"seconds": 5, "text": "x"},
                                 keyed(KEY, ("rpcx-timeout", "0.2")))
        again = await client.call("/echo.Echo/slow", {"seconds": 0.01, "text": "x"},
                                  keyed(KEY))
    assert late.status == 504
    assert again.status == 200 and echo.cancelled == ["x"] and echo.completed == ["x"]


async def test_one_way_calls_ignore_the_key_as_natively() -> None:
    echo = Echo()
    async with connected(make_server(echo)) as client:
        for _ in range(2):
            assert (await client.call("/echo.Echo/note", {"text": "n"}, keyed())).status == 202
    assert echo.notes == ["n", "n"]


async def test_a_full_cache_refuses_a_new_key_with_429_without_running_it() -> None:
    echo = Echo()
    server = make_server(echo, max_idempotency_cache=1)
    async with connected(server) as a, connected(server) as b:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.call, "/echo.Echo/slow", {"seconds": 0.5}, keyed("one"))
            await echo.started.wait()
            refused = await b.call("/echo.Echo/increment", {"by": 1}, keyed("two"))
    assert refused.status == 429 and refused.json()["code"] == "RESOURCE_EXHAUSTED"
    assert echo.increments == 0


async def test_replies_are_kept_for_the_window_only(autojump_clock: trio.abc.Clock) -> None:
    echo = Echo()
    async with connected(make_server(echo, dedup_window=10)) as client:
        await client.call("/echo.Echo/increment", {"by": 1}, keyed())
        await trio.sleep(5)
        kept = await client.call("/echo.Echo/increment", {"by": 1}, keyed())
        await trio.sleep(6)
        ran = await client.call("/echo.Echo/increment", {"by": 1}, keyed())
    assert (kept.json(), ran.json()) == (1, 2)


@pytest.mark.parametrize("values", [
    ["a", "b"], [""], ['""'], ["x" * (MAX_KEY_LENGTH + 1)], ["caf\u00e9"], ["tab\there"]])
def test_bad_keys_are_refused(values: list[str]) -> None:
    with pytest.raises(BadKey):
        parse_key(values)


@pytest.mark.parametrize(("given", "key"), [
    ('"abc"', "abc"), ("abc", "abc"), ('  "a b"  ', "a b"), (r'"q\"q"', 'q"q'),
    ("x" * MAX_KEY_LENGTH, "x" * MAX_KEY_LENGTH)])
def test_good_keys(given: str, key: str) -> None:
    assert parse_key([given]) == key


async def test_a_bad_key_is_400_in_plain_words_and_nothing_runs() -> None:
    echo = Echo()
    async with connected(make_server(echo)) as client:
        twice = await client.call("/echo.Echo/increment", {"by": 1},
                                  [("idempotency-key", "a"), ("idempotency-key", "b")])
        long = await client.call("/echo.Echo/increment", {"by": 1},
                                 [("idempotency-key", "k" * 100)])
    assert twice.status == long.status == 400
    assert json.loads(twice.body)["message"] == "idempotency-key given 2 times; send it once"
    assert long.json()["message"].startswith(
        f"idempotency-key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, got ")
    assert echo.increments == 0


async def test_a_preflight_allows_the_header_by_default() -> None:
    async with connected(make_server(Echo(), cors_origins=["*"])) as client:
        answer = await client.request("OPTIONS", "/echo.Echo/increment",
                                      headers=[("origin", "https://a.test"),
                                               ("access-control-request-method", "POST")])
    assert "idempotency-key" in answer.headers["access-control-allow-headers"]
