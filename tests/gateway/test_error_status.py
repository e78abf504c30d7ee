"""The HTTP face of ``@status``: a declared error answers with the HTTP status of the
status its IDL declaration names (``payments.NotFound`` is ``@status(NOT_FOUND)``)."""

from __future__ import annotations

from examples.payments.service import DECLINED_CARD, Payments
from tests.gateway._client import connected
from tests.gateway.test_http import CARD, PROCESS, SEED_ARGS, assert_error, make_server

GET = "/payments.Payments/get_payment"


async def test_an_unknown_payment_is_404_not_found_with_the_declared_error() -> None:
    async with connected(make_server(Payments())) as client:
        response = await client.call(GET, {"payment_id": "pay_missing"})
    assert_error(response, 404, "NOT_FOUND", 'payments.NotFound {payment_id: "pay_missing"}')
    assert response.headers["rpcx-status"] == "NOT_FOUND"
    body = response.json()
    assert body["error"] == "payments.NotFound"
    assert body["fields"] == {"payment_id": "pay_missing"}


async def test_a_known_payment_is_still_200_and_unannotated_errors_still_400() -> None:
    async with connected(make_server(Payments())) as client:
        created = await client.call(PROCESS, SEED_ARGS)
        payment_id = created.json()["payment_id"]
        found = await client.call(GET, {"payment_id": payment_id})
        declined = await client.call(
            PROCESS, {**SEED_ARGS, "card": {**CARD, "card_number": DECLINED_CARD}})
    assert found.status == 200
    assert found.json() == {"success": True, "payment_id": payment_id}
    assert_error(declined, 400, "FAILED_PRECONDITION", "insufficient funds")
    assert declined.json()["error"] == "payments.CardDeclined"
