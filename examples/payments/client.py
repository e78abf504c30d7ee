"""The payments client process: the notes' call, then what goes wrong in practice.

    python -m examples.payments.client tcp://127.0.0.1:7000

1. ``process_payment(card, 3.99, GBP)``: the call from the notes, over the network.
2. A declined card: the server raises ``CardDeclined``; it arrives here as that class.
3. A deadline that expires: the "bank" takes 3 s, we wait 0.5 s; the server cancels it.
4. A lost reply: the connection dies after the server charged the card but before the
   reply arrives. The channel retries with the same idempotency key; the server answers
   from its de-duplication cache, so the card is charged once.
5. Streaming: ``watch`` streams the payment events, first those so far, then a new
   payment as it happens; leaving the ``async with`` block cancels the stream.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

import trio

import rpcx
from examples.payments.payments_rpcx import (
    Card,
    CardDeclined,
    Currency,
    NotFound,
    PaymentEvent,
    PaymentsClient,
)
from examples.payments.service import DECLINED_CARD, SLOW_MERCHANT
from rpcx.transport import Address, transport_for


class _LoseReplyStream(trio.abc.Stream):
    """Wraps a stream; when armed, swallows the next bytes received and then breaks, as a
    network that dies between the server's reply and us would."""

    def __init__(self, inner: trio.abc.Stream, owner: LossyTransport) -> None:
        self._inner = inner
        self._owner = owner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._inner.receive_some(max_bytes)
        if self._owner.armed and data:
            self._owner.armed = False
            await trio.aclose_forcefully(self._inner)
            raise trio.BrokenResourceError("connection reset (the reply was lost)")
        return data

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        await self._inner.aclose()


class LossyTransport:
    """A transport whose next reply can be made to vanish (for the demo only)."""

    def __init__(self, inner: rpcx.Transport) -> None:
        self._inner = inner
        self.armed = False

    async def connect(self, address: Address) -> trio.abc.Stream:
        stream = await self._inner.connect(address)
        return _LoseReplyStream(stream, self)

    async def listen(self, address: Address) -> list[trio.abc.Listener[trio.abc.Stream]]:
        return await self._inner.listen(address)


def say(text: str) -> None:
    print(text, flush=True)


async def run(address: str, token: str | None) -> int:
    transport = LossyTransport(transport_for(rpcx.transport.parse_address(address)))
    interceptors = [rpcx.TokenAuth(token=token)] if token else []
    card = Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123")
    async with rpcx.open_channel(address, transport=transport, interceptors=interceptors,
                                 default_timeout=10.0) as channel:
        payments = PaymentsClient(channel)

        say("\n1. The call from the notes: process_payment(card, 3.99, GBP)")
        result = await payments.process_payment(card, Decimal("3.99"), Currency.GBP)
        say(f"   -> success={result.success}, payment id {result.payment_id}")

        say("\n2. A card the issuer declines")
        declined = Card(card_number=DECLINED_CARD, expiry_date="10/2030", cvc="123")
        try:
            await payments.process_payment(declined, Decimal("3.99"), Currency.GBP)
        except CardDeclined as error:
            say(f"   -> CardDeclined raised here, as declared in the IDL: {error.reason!r}")

        say("\n3. A deadline: the bank takes 3 s, but we only wait 0.5 s")
        start = trio.current_time()
        try:
            await payments.process_payment(card, Decimal("12.00"), Currency.EUR,
                                           SLOW_MERCHANT, timeout=0.5)
        except rpcx.DeadlineExceeded:
            waited = trio.current_time() - start
            say(f"   -> DeadlineExceeded after {waited:.2f} s; the deadline travelled with the"
                " call, so the server stopped too and charged nothing")
            await trio.sleep(0.2)  # let the server's log line arrive before the next step

        say("\n4. A lost reply: the network dies after the server charged the card")
        transport.armed = True
        result = await payments.process_payment(card, Decimal("7.50"), Currency.USD, "Books")
        stats = channel.statistics()
        say(f"   -> the channel retried {stats.retries} time(s) with the same idempotency key"
            f" and got payment id {result.payment_id}")
        assert result.payment_id is not None
        following = f"pay_{int(result.payment_id.removeprefix('pay_')) + 1:06d}"
        try:
            await payments.get_payment(following)
            say(f"   !! {following} exists: the retry charged twice")
            return 1
        except NotFound:
            say(f"   -> no payment {following} exists: the card was charged exactly once"
                " (the server log shows one charge)")

        say("\n5. Streaming: watch the payments, past and new, as they happen")
        new_payment = trio.Event()
        last: list[PaymentEvent] = []

        async def watch(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            async with payments.watch(from_seq=1, timeout=30) as events:
                task_status.started()
                async for event in events:
                    what = event.payment_id or f"declined: {event.reason}"
                    say(f"   [watch] #{event.seq} {event.kind} {event.amount} "
                        f"{event.currency.name} ({what})")
                    last.append(event)
                    if event.amount == Decimal("1.25"):
                        new_payment.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(watch)
            await trio.sleep(0.2)  # the history first (only so the demo reads in order)
            say("   (a new payment while the stream is open)")
            await payments.process_payment(card, Decimal("1.25"), Currency.GBP, "Coffee")
            await new_payment.wait()
            nursery.cancel_scope.cancel()  # stop watching: the server cancels the stream
        say(f"   -> {len(last)} events streamed, the last one live; the stream was cancelled")

        await payments.record_event("demo finished")
        say("\nDone: one-way record_event sent (no reply, no retry).")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Call payments.Payments.")
    parser.add_argument("address", nargs="?", default="tcp://127.0.0.1:7000")
    parser.add_argument("--token", help="bearer token to send")
    args = parser.parse_args(argv)
    return trio.run(run, args.address, args.token)


if __name__ == "__main__":
    sys.exit(main())
