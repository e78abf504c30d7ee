"""Streaming calls through rpcx.testing.LocalChannel: in process, fully marshalled."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio

from examples.payments.payments_rpcx import Card, Currency, PaymentsClient
from examples.payments.service import Payments
from rpcx.errors import DeadlineExceeded
from rpcx.testing import LocalChannel
from tests.streams.service import Streams
from tests.streams.streams_rpcx import Boom, StreamsClient, Tick


async def test_every_shape_works_in_process() -> None:
    client = StreamsClient(LocalChannel(Streams()))
    async with client.count(3, 4, text="l") as ticks:
        assert [t async for t in ticks] == [Tick(n=n, text="l") for n in range(3, 7)]
    got = []
    with pytest.raises(Boom):
        async with client.count(0, 9, fail_after=2) as ticks:
            async for tick in ticks:
                got.append(tick.n)
    assert got == [0, 1]
    async with client.sum("s") as call:
        for n in (1, 2, 3):
            await call.send(Tick(n=n))
        assert await call.finish() == Tick(n=6, text="s")
    async with client.double() as call:
        await call.send(Tick(n=5))
        await call.send(Tick(n=6))
        await call.end()
        assert [t.n async for t in call] == [10, 12]


async def test_an_endless_stream_is_read_item_by_item(autojump_clock: trio.abc.Clock) -> None:
    payments = Payments()
    card = Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123")
    await payments.process_payment(card, Decimal("1.00"), Currency.GBP, "")
    client = PaymentsClient(LocalChannel(payments))
    async with client.watch(timeout=5) as events:
        first = await events.__anext__()
        assert (first.seq, first.kind) == (1, "charged")
        with pytest.raises(DeadlineExceeded):
            await events.__anext__()  # nothing more happens: the deadline ends it
