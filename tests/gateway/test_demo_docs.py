"""The demo's test data is documented where a client writer looks (issue 13 item 9), and
behaves as documented over HTTP."""

from __future__ import annotations

import json
from typing import Any

import trio

from examples.payments.service import DECLINED_CARD, SLOW_MERCHANT, Ledger, Payments
from rpcx.gateway import HttpServer
from rpcx.gateway.server import build_dispatcher
from tests.gateway._client import connected
from tests.gateway._procs import REPO

PROCESS = "/payments.Payments/process_payment"
CARD = {"card_number": "4111 1111 1111 1111", "expiry_date": "10/2030", "cvc": "123"}
SEED_ARGS: dict[str, Any] = {"card": CARD, "amount": "3.99", "currency": "GBP"}


def test_readme_and_http_md_name_the_declined_card_and_the_slow_merchant() -> None:
    for name in ("README.md", "docs/http.md"):
        text = (REPO / name).read_text(encoding="utf-8")
        assert f"`{DECLINED_CARD}`" in text, name
        assert f'`"{SLOW_MERCHANT}"`' in text, name
        assert "insufficient funds" in text and "3 s" in text, name


def test_http_md_says_vary_origin_for_any_origin_too() -> None:
    text = (REPO / "docs" / "http.md").read_text(encoding="utf-8")
    cors = text.split("\n## CORS\n", 1)[1].split("\n## ", 1)[0]
    assert "every response carries `Vary: Origin`, with a list of origins and with\n`\"*\"`" \
        in cors


def _server(ledger: Ledger) -> HttpServer:
    return HttpServer(build_dispatcher([Payments(ledger)], [], True))


async def test_the_declined_card_answers_as_documented() -> None:
    ledger = Ledger()
    async with connected(_server(ledger)) as client:
        response = await client.call(PROCESS, {**SEED_ARGS, "card": {
            **CARD, "card_number": DECLINED_CARD}})
    assert response.status == 400
    assert json.loads(response.body) == {
        "code": "FAILED_PRECONDITION",
        "message": 'payments.CardDeclined {reason: "insufficient funds"}', "details": {},
        "error": "payments.CardDeclined", "fields": {"reason": "insufficient funds"}}
    assert not ledger.charges


async def test_the_slow_merchant_takes_3_s_and_a_shorter_timeout_charges_nothing(
        autojump_clock: trio.abc.Clock) -> None:
    ledger = Ledger()
    slow = {**SEED_ARGS, "merchant": SLOW_MERCHANT}
    async with connected(_server(ledger)) as client:
        start = trio.current_time()
        late = await client.call(PROCESS, slow, [("rpcx-timeout", "1")])
        cut_after = trio.current_time() - start
        assert not ledger.charges
        start = trio.current_time()
        done = await client.call(PROCESS, slow)
        took = trio.current_time() - start
    assert late.status == 504 and late.json()["code"] == "DEADLINE_EXCEEDED"
    assert 1 <= cut_after < 1.5
    assert done.status == 200 and 3 <= took < 3.5
    assert len(ledger.charges) == 1
