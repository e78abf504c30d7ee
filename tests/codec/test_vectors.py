"""Fixed wire vectors: the exact bytes of each kind, so the format cannot drift.

These are the examples in docs/marshalling.md. Each vector is checked both ways.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from rpcx.codec import CborCodec, JsonCodec
from rpcx.schema import (
    BOOL,
    BYTES,
    DECIMAL,
    FLOAT,
    INT,
    STRING,
    TIMESTAMP,
    StructSpec,
    TypeRef,
    list_of,
    optional,
)
from tests.codec.schemas import (
    CARD,
    CURRENCY,
    PAYMENT_METHOD,
    PRICES,
    PROCESS_PAYMENT,
    Card,
    Currency,
    PaymentMethod,
)

UTC = dt.UTC
CARD_VALUE = Card(card_number="4111", expiry_date="12/2030", cvc="123")

# (name, schema, value, CBOR hex, JSON text)
VECTORS: list[tuple[str, TypeRef | StructSpec, object, str, str]] = [
    ("bool", BOOL, True, "f5", "true"),
    ("int", INT, -2, "21", "-2"),
    ("int max", INT, 2**63 - 1, "1b7fffffffffffffff", "9223372036854775807"),
    ("float", FLOAT, 1.5, "fb3ff8000000000000", "1.5"),
    ("float inf", FLOAT, float("inf"), "f97c00", '"Infinity"'),
    ("decimal", DECIMAL, Decimal("3.99"), "c4822119018f", '"3.99"'),
    ("decimal exp", DECIMAL, Decimal("1E+5"), "c4820501", '"1E+5"'),
    ("string", STRING, "é", "62c3a9", '"é"'),
    ("bytes", BYTES, b"\x00\xff", "4200ff", '"AP8="'),
    ("timestamp", TIMESTAMP, dt.datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
     "1b00060dedc056fb00", '"2024-01-02T03:04:05.600000Z"'),
    ("list", list_of(INT), [1, 2], "820102", "[1,2]"),
    ("map", PRICES, {"GBP": Decimal("1.5")}, "a163474250c482200f", '{"GBP":"1.5"}'),
    ("optional null", optional(INT), None, "f6", "null"),
    ("enum", CURRENCY, Currency.EUR, "02", '"EUR"'),
    ("enum unknown", CURRENCY, Currency(7), "07", "7"),
    ("struct", CARD, CARD_VALUE, "a3016434313131026731322f323033300363313233",
     '{"card_number":"4111","expiry_date":"12/2030","cvc":"123"}'),
    ("struct full", CARD,
     Card(card_number="4111", expiry_date="12/2030", cvc="123", holder="Ann", tags=["a"]),
     "a5016434313131026731322f3230333003633132330463416e6e05816161",
     '{"card_number":"4111","expiry_date":"12/2030","cvc":"123","holder":"Ann","tags":["a"]}'),
    ("union", PAYMENT_METHOD, PaymentMethod(voucher_code="V1"), "a102625631",
     '{"voucher_code":"V1"}'),
    ("params", PROCESS_PAYMENT, (CARD_VALUE, Decimal("3.99"), Currency.GBP, "Acme Ltd"),
     "a401a3016434313131026731322f32303330036331323302c4822119018f0301046841636d65204c7464",
     '{"card":{"card_number":"4111","expiry_date":"12/2030","cvc":"123"},"amount":"3.99",'
     '"currency":"GBP","merchant":"Acme Ltd"}'),
]


@pytest.mark.parametrize(("schema", "value", "cbor_hex"),
                         [v[1:4] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_cbor_vector(schema: TypeRef | StructSpec, value: object, cbor_hex: str) -> None:
    codec = CborCodec()
    assert codec.encode(schema, value).hex() == cbor_hex
    assert codec.decode(schema, bytes.fromhex(cbor_hex)) == value


@pytest.mark.parametrize(("schema", "value", "text"),
                         [(v[1], v[2], v[4]) for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_json_vector(schema: TypeRef | StructSpec, value: object, text: str) -> None:
    codec = JsonCodec()
    assert codec.encode(schema, value) == text.encode()
    assert codec.decode(schema, text.encode()) == value


@pytest.mark.parametrize(("hex_", "value"), [
    ("f93e00", 1.5),  # half precision accepted on decode
    ("fa3fc00000", 1.5),  # single precision accepted on decode
    ("fb3ff8000000000000", 1.5),
])
def test_cbor_float_widths_accepted(hex_: str, value: float) -> None:
    assert CborCodec().decode(FLOAT, bytes.fromhex(hex_)) == value


def test_cbor_decimal_keeps_exponent() -> None:
    out = CborCodec().decode(DECIMAL, bytes.fromhex("c48222190f96"))  # [-3, 3990]
    assert str(out) == "3.990"
