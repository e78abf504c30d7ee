"""Hand-written schemas shared by the codec tests (the IDL example, built by hand)."""

from __future__ import annotations

from rpcx.schema import (
    BOOL,
    DECIMAL,
    STRING,
    FieldSpec,
    OpenEnum,
    StructSpec,
    enum_ref,
    list_of,
    map_of,
    optional,
    struct_ref,
    union_ref,
)
from tests.strategies import attach_enum, make_struct, make_union


class Currency(OpenEnum):
    GBP = 1
    EUR = 2
    USD = 3


attach_enum(Currency, "payments.Currency")
CURRENCY = enum_ref(Currency)

Card = make_struct([
    FieldSpec(1, "card_number", STRING),
    FieldSpec(2, "expiry_date", STRING),
    FieldSpec(3, "cvc", STRING),
    FieldSpec(4, "holder", optional(STRING), None),
    FieldSpec(5, "tags", list_of(STRING), []),
], "payments.Card")
CARD = struct_ref(Card)

PaymentMethod = make_union([
    FieldSpec(1, "card", CARD),
    FieldSpec(2, "voucher_code", STRING),
], "payments.PaymentMethod")
PAYMENT_METHOD = union_ref(PaymentMethod)

Result = make_struct([
    FieldSpec(1, "success", BOOL),
    FieldSpec(2, "payment_id", optional(STRING), None),
], "payments.Result")

PROCESS_PAYMENT = StructSpec("payments.Payments.process_payment", None, (
    FieldSpec(1, "card", CARD),
    FieldSpec(2, "amount", DECIMAL),
    FieldSpec(3, "currency", CURRENCY),
    FieldSpec(4, "merchant", STRING),
))

PRICES = map_of(STRING, DECIMAL)
