"""The JSON mapping's own conventions and errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from rpcx.codec import JsonCodec
from rpcx.errors import CodecError
from rpcx.schema import (
    BYTES,
    DECIMAL,
    FLOAT,
    INT,
    STRING,
    TIMESTAMP,
    list_of,
    map_of,
)
from tests.codec.schemas import CARD, CURRENCY, PAYMENT_METHOD, PROCESS_PAYMENT, Card, Currency

J = JsonCodec()
UTC = dt.UTC


def error(schema: Any, text: str | bytes) -> str:
    with pytest.raises(CodecError) as info:
        J.decode(schema, text.encode() if isinstance(text, str) else text)
    return str(info.value)


@pytest.mark.parametrize(("schema", "text", "value"), [
    (INT, '"-9007199254740993"', -9007199254740993),
    (FLOAT, "1", 1.0),
    (FLOAT, "1e2", 100.0),
    (FLOAT, '"-Infinity"', float("-inf")),
    (DECIMAL, "3.99", Decimal("3.99")),
    (DECIMAL, "3", Decimal(3)),
    (DECIMAL, "1e-3", Decimal("0.001")),
    (DECIMAL, '"0.10"', Decimal("0.10")),
    (BYTES, '"AP8"', b"\x00\xff"),
    (BYTES, '"-_8="', b"\xfb\xff"),
    (TIMESTAMP, '"2024-01-02T04:04:05+01:00"', dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    (TIMESTAMP, '"2024-01-02t03:04:05.1234567z"',
     dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
    (CURRENCY, "2", Currency.EUR),
    (CURRENCY, "9", Currency(9)),
    (map_of(INT, INT), '{"-5":1}', {-5: 1}),
    (map_of(CURRENCY, INT), '{"GBP":1,"7":2}', {Currency.GBP: 1, Currency(7): 2}),
    (CARD, '{"card_number":"1","expiry_date":"2","cvc":"3","holder":null,"extra":[1,{}]}',
     Card(card_number="1", expiry_date="2", cvc="3")),
])
def test_accepted_inputs(schema: Any, text: str, value: object) -> None:
    got = J.decode(schema, text.encode())
    assert got == value
    if isinstance(value, Decimal):
        assert str(got) == str(value)  # exact, not via float


def test_decimal_number_is_read_exactly() -> None:
    assert str(J.decode(DECIMAL, b"0.1000000000000000055")) == "0.1000000000000000055"
    assert error(DECIMAL, "0.10000000000000000555") == "decimal has 20 digits, more than 19"


def test_map_keys_and_unknown_enum_output() -> None:
    schema = map_of(CURRENCY, map_of(INT, STRING))
    assert J.encode(schema, {Currency.GBP: {3: "a"}, Currency(8): {}}) == (
        b'{"GBP":{"3":"a"},"8":{}}')


@pytest.mark.parametrize(("schema", "text", "message"), [
    (INT, "{", "malformed JSON at 1:2: expecting property name enclosed in double quotes"),
    (INT, "1 2", "malformed JSON at 1:3: extra data"),
    (INT, "\n  [1,]", "malformed JSON at 2:6: expecting value"),
    (INT, "NaN", 'invalid JSON: NaN is not JSON (write the string "NaN" for a float)'),
    (CARD, '{"cvc":"1","cvc":"2"}', 'invalid JSON: duplicate key "cvc"'),
    (INT, b"\xff", "invalid JSON: not UTF-8 at byte 0"),
    (INT, "1.0", "expected int, got decimal"),
    (INT, '"1x"', 'invalid int string "1x"'),
    (INT, "true", "expected int, got bool"),
    (INT, "9223372036854775808", "int 9223372036854775808 out of signed 64-bit range"),
    (FLOAT, "1e999", "number 1E+999 out of float range"),
    (FLOAT, '"nan"', "expected float, got string"),
    (DECIMAL, '"NaN"', 'invalid decimal "NaN"'),
    (DECIMAL, '" 1"', 'invalid decimal " 1"'),
    (DECIMAL, '"1_000"', 'invalid decimal "1_000"'),
    (DECIMAL, "1e999999999", "decimal exponent 999999999 out of range [-6144, 6144]"),
    (DECIMAL, "true", "expected decimal, got bool"),
    (BYTES, '"a*"', "invalid base64"),
    (TIMESTAMP, '"2024-01-02T03:04:05"', 'invalid RFC 3339 timestamp "2024-01-02T03:04:05"'),
    (TIMESTAMP, '"2024-02-30T03:04:05Z"', 'invalid RFC 3339 timestamp "2024-02-30T03:04:05Z"'),
    (CURRENCY, '"JPY"', 'unknown name "JPY" of enum \'payments.Currency\' '
                        "(expected one of GBP, EUR, USD)"),
    (map_of(INT, INT), '{"01":1}', '["01"]: invalid int map key "01"'),
    (STRING, '"\\ud800"', "string contains a lone surrogate"),
    (list_of(STRING), '["a", 1]', "[1]: expected string, got int"),
    (CARD, '{"card_number":"1","expiry_date":2,"cvc":"3"}',
     "expiry_date: expected string, got int"),
    (CARD, '{"card_number":"1","expiry_date":"2"}', "missing required field 'cvc'"),
    (PAYMENT_METHOD, '{"cash":1}',
     """unknown variant name "cash" of union 'payments.PaymentMethod'"""),
    (PAYMENT_METHOD, "{}", "union 'payments.PaymentMethod' needs exactly one variant, "
                           "got 0 entries"),
    (PROCESS_PAYMENT, '{"card":{"card_number":"1","expiry_date":"2","cvc":3}}',
     "card.cvc: expected string, got int"),
])
def test_rejected_inputs(schema: Any, text: str | bytes, message: str) -> None:
    assert error(schema, text) == message


def test_limits() -> None:
    small = JsonCodec(max_message_bytes=50, max_depth=3, max_collection_len=2)
    nested = list_of(list_of(list_of(list_of(INT))))
    assert error_with(small, nested, b"[[[[1]]]]") == (
        "[0][0][0]: invalid JSON: nested deeper than max_depth (3)")
    assert error_with(small, list_of(INT), b"[1,2,3]") == (
        "list of 3 entries exceeds max_collection_len (2)")
    assert error_with(small, STRING, b'"' + b"x" * 60 + b'"') == (
        "message of 62 bytes exceeds max_message_bytes (50)")
    assert error(INT, "[" * 100_000 + "]" * 100_000) == (
        "invalid JSON: nested deeper than max_depth (64) at 1:65")


def error_with(codec: JsonCodec, schema: Any, data: bytes) -> str:
    with pytest.raises(CodecError) as info:
        codec.decode(schema, data)
    return str(info.value)


def test_output_is_compact_utf8_and_timestamp_has_z() -> None:
    when = dt.datetime(2024, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert J.encode(TIMESTAMP, when) == b'"2024-01-02T03:04:05Z"'
    assert J.encode(list_of(STRING), ["é", "a"]) == '["é","a"]'.encode()
    assert J.encode(FLOAT, float("nan")) == b'"NaN"'
