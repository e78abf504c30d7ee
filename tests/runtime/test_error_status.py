"""``@status(NAME)`` on an IDL error: the status a declared error travels with, end to end.

``payments.NotFound`` is declared ``@status(NOT_FOUND)``; ``payments.CardDeclined`` has no
annotation and keeps the default, FAILED_PRECONDITION.
"""

from __future__ import annotations

import decimal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

import rpcx
from examples.payments.payments_rpcx import (
    Card,
    CardDeclined,
    Currency,
    NotFound,
    PaymentsClient,
)
from examples.payments.service import DECLINED_CARD, Payments
from rpcx.reflection import REFLECTION_SERVICE, ReflectionClient, specs_from_description
from rpcx.schema import spec_of
from tests.runtime.harness import mem_address

CARD = Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123")


@asynccontextmanager
async def payments_pair() -> AsyncIterator[tuple[PaymentsClient, rpcx.Channel]]:
    address = mem_address()
    async with rpcx.open_server(address, [Payments()]) as _, \
            rpcx.open_channel(address, retry=rpcx.NO_RETRY) as channel:
        yield PaymentsClient(channel), channel


def test_the_generated_class_carries_the_declared_status() -> None:
    assert NotFound.rpcx_code is rpcx.Status.NOT_FOUND
    assert NotFound(payment_id="pay_1").code is rpcx.Status.NOT_FOUND
    assert CardDeclined.rpcx_code is rpcx.Status.FAILED_PRECONDITION


async def test_an_annotated_error_reaches_the_client_as_its_class_with_its_status() -> None:
    async with payments_pair() as (client, _):
        with pytest.raises(NotFound) as caught:
            await client.get_payment("pay_missing")
    assert type(caught.value) is NotFound
    assert caught.value.payment_id == "pay_missing"
    assert caught.value.code is rpcx.Status.NOT_FOUND
    assert caught.value.message == 'payments.NotFound {payment_id: "pay_missing"}'


async def test_an_error_without_status_still_travels_as_failed_precondition() -> None:
    async with payments_pair() as (client, _):
        declined = attrs.evolve(CARD, card_number=DECLINED_CARD)
        with pytest.raises(CardDeclined) as caught:
            await client.process_payment(declined, decimal.Decimal("3.99"), Currency.GBP)
    assert caught.value.code is rpcx.Status.FAILED_PRECONDITION


async def test_the_status_is_on_the_wire_for_a_client_that_does_not_know_the_error() -> None:
    # Without NotFound in `throws` the client cannot rebuild the class: what it reports
    # is the status the server sent, so the annotation changed the wire, not only the class.
    async with payments_pair() as (_, channel):
        service = spec_of(PaymentsClient)
        assert isinstance(service, rpcx.schema.ServiceSpec)
        get = service.method("get_payment")
        assert get is not None
        blind = attrs.evolve(get, throws=())
        with pytest.raises(rpcx.RemoteError) as caught:
            await channel.call(blind, ("pay_missing",))
    assert caught.value.code is rpcx.Status.NOT_FOUND
    assert "payments.NotFound" in caught.value.message


async def test_reflection_describes_the_status_and_the_dynamic_client_raises_with_it() -> None:
    async with payments_pair() as (_, channel):
        desc = await ReflectionClient(channel).describe([])
        statuses = {s.name: s.status for s in desc.structs if s.is_error}
        assert statuses["payments.NotFound"] == "NOT_FOUND"
        assert statuses["payments.CardDeclined"] == "FAILED_PRECONDITION"

        specs = {s.name: s for s in specs_from_description(desc)}
        assert REFLECTION_SERVICE in specs
        get = specs["payments.Payments"].method("get_payment")
        assert get is not None
        (dynamic,) = get.throws
        assert dynamic is not NotFound and issubclass(dynamic, rpcx.DeclaredError)
        with pytest.raises(dynamic) as caught:
            await channel.call(get, ("pay_missing",))
    error: Any = caught.value  # a class built at run time: its fields are not typed
    assert error.code is rpcx.Status.NOT_FOUND
    assert error.payment_id == "pay_missing"


async def test_rpcx_describe_shows_the_status_of_an_annotated_error() -> None:
    async with rpcx.open_server("tcp://127.0.0.1:0", [Payments()]) as server:
        done = await trio.run_process(
            [sys.executable, "-m", "rpcx", "describe", server.addresses[0]],
            capture_stdout=True, capture_stderr=True, check=False)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "  @status(NOT_FOUND) error payments.NotFound { 1: payment_id: string; }" in out
    # the default status is not spelled out, so the listing reads like the IDL
    assert "  error payments.CardDeclined { 1: reason: string; }" in out
