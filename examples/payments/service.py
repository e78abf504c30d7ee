"""The payments service: a small, real implementation of ``idl/payments.rpcx``.

It keeps an in-memory ledger. Cards are checked the way a card form would (Luhn check
digit, ``MM/YYYY`` expiry, three or four digit CVC); test card ``4000 0000 0000 0002`` is
always declined by the "issuer", as with the well-known card-network test numbers.
"""

from __future__ import annotations

import datetime
import decimal
import logging
from collections.abc import AsyncIterator

import trio

from examples.payments.payments_rpcx import (
    Card,
    CardDeclined,
    Currency,
    NotFound,
    PaymentEvent,
    PaymentsService,
    Result,
)

__all__ = ["DECLINED_CARD", "SLOW_MERCHANT", "Ledger", "Payments"]

DECLINED_CARD = "4000 0000 0000 0002"
SLOW_MERCHANT = "slow bank"
"""Payments for this merchant take 3 s at the "bank": long enough for a deadline to pass."""


def luhn_ok(number: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "³" and "٣", which int() may refuse.
    digits = [int(c) for c in number if c in "0123456789"]
    if len(digits) < 12 or any(c not in "0123456789 " for c in number):
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


log = logging.getLogger("payments")


class Ledger:
    """Every charge the service has made: what the retry tests count."""

    def __init__(self) -> None:
        self.charges: dict[str, tuple[str, decimal.Decimal, Currency, str]] = {}
        self.events: list[str] = []
        self.history: list[PaymentEvent] = []
        """Every charge and decline, in order (``history[i].seq == i + 1``): what
        ``watch`` streams."""
        self._changed = trio.Event()

    def record(self, kind: str, amount: decimal.Decimal, currency: Currency, *,
               payment_id: str | None = None, reason: str | None = None) -> None:
        self.history.append(PaymentEvent(seq=len(self.history) + 1, kind=kind, amount=amount,
                                         currency=currency, payment_id=payment_id,
                                         reason=reason))
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_more(self, seen: int) -> None:
        """Until ``history`` holds more than ``seen`` events."""
        while len(self.history) <= seen:
            await self._changed.wait()


class Payments(PaymentsService):
    def __init__(self, ledger: Ledger | None = None, *,
                 today: datetime.date | None = None) -> None:
        self.ledger = ledger if ledger is not None else Ledger()
        self._today = today or datetime.date(2026, 1, 1)

    def _check_card(self, card: Card) -> None:
        if not luhn_ok(card.card_number):
            raise CardDeclined(reason="card number is not valid")
        month, _, year = card.expiry_date.partition("/")
        if not (month.isdigit() and year.isdigit() and 1 <= int(month) <= 12 and len(year) == 4):
            raise CardDeclined(reason="expiry date must be MM/YYYY")
        if (int(year), int(month)) < (self._today.year, self._today.month):
            raise CardDeclined(reason="card has expired")
        if not (card.cvc.isdigit() and len(card.cvc) in (3, 4)):
            raise CardDeclined(reason="cvc must be 3 or 4 digits")
        if card.card_number == DECLINED_CARD:
            raise CardDeclined(reason="insufficient funds")

    async def process_payment(self, card: Card, amount: decimal.Decimal, currency: Currency,
                              merchant: str) -> Result:
        if amount <= 0:
            raise CardDeclined(reason=f"amount must be positive, got {amount}")
        try:
            self._check_card(card)
        except CardDeclined as declined:
            self.ledger.record("declined", amount, currency, reason=declined.reason)
            raise
        if merchant == SLOW_MERCHANT:
            try:
                await trio.sleep(3)
            except trio.Cancelled:
                log.info("payment for %r cancelled before charging: the caller gave up",
                         merchant)
                raise
        payment_id = f"pay_{len(self.ledger.charges) + 1:06d}"
        self.ledger.charges[payment_id] = (card.card_number[-4:], amount, currency, merchant)
        self.ledger.record("charged", amount, currency, payment_id=payment_id)
        log.info("charged card ending %s: %s %s (%s)", card.card_number[-4:], amount,
                 currency.name, payment_id)
        return Result(success=True, payment_id=payment_id)

    async def get_payment(self, payment_id: str) -> Result:
        if payment_id not in self.ledger.charges:
            raise NotFound(payment_id=payment_id)
        return Result(success=True, payment_id=payment_id)

    async def record_event(self, text: str) -> None:
        self.ledger.events.append(text)

    async def watch(self, from_seq: int) -> AsyncIterator[PaymentEvent]:
        seen = max(from_seq, 1) - 1
        history = self.ledger.history
        while True:
            while seen < len(history):
                yield history[seen]
                seen += 1
            await self.ledger.wait_for_more(seen)
