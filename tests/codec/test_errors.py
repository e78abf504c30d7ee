"""Exact error messages and paths, both directions; limits; refused CBOR features."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import cbor2
import pytest

from rpcx.codec import CborCodec, Codec, JsonCodec
from rpcx.errors import CodecError
from rpcx.schema import (
    BOOL,
    BYTES,
    DECIMAL,
    FLOAT,
    INT,
    STRING,
    TIMESTAMP,
    FieldSpec,
    TypeRef,
    list_of,
    map_of,
    struct_ref,
)
from tests.codec.schemas import (
    PAYMENT_METHOD,
    PRICES,
    PROCESS_PAYMENT,
    Card,
    Currency,
    PaymentMethod,
)
from tests.strategies import make_struct

CODECS: list[Codec] = [CborCodec(), JsonCodec()]
IDS = ["cbor", "json"]


def _card(**changes: Any) -> Any:
    fields = {"card_number": "4111", "expiry_date": "12/2030", "cvc": "123", **changes}
    # Bypass attrs typing on purpose: the codec must catch wrong types itself.
    return Card(**fields)


def encode_error(codec: Codec, schema: Any, value: object) -> str:
    with pytest.raises(CodecError) as info:
        codec.encode(schema, value)
    return str(info.value)


def decode_error(codec: Codec, schema: Any, data: bytes) -> str:
    with pytest.raises(CodecError) as info:
        codec.decode(schema, data)
    return str(info.value)


PARAMS = (_card(), Decimal("3.99"), Currency.GBP, "Acme Ltd")


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@pytest.mark.parametrize(("value", "message"), [
    ((_card(expiry_date=12), *PARAMS[1:]), "card.expiry_date: expected string, got int"),
    ((_card(cvc=None), *PARAMS[1:]), "card.cvc: expected string, got null"),
    ((_card(tags=["a", 2]), *PARAMS[1:]), "card.tags[1]: expected string, got int"),
    ((_card(tags="ab"), *PARAMS[1:]), "card.tags: expected list<string>, got string"),
    ((PARAMS[0], 3.99, *PARAMS[2:]), "amount: expected decimal, got float"),
    ((PARAMS[0], Decimal("NaN"), *PARAMS[2:]), "amount: decimal must be finite, got NaN"),
    ((PARAMS[0], Decimal("1E+9999"), *PARAMS[2:]),
     "amount: decimal exponent 9999 out of range [-6144, 6144]"),
    ((PARAMS[0], Decimal("1234567890.1234567890"), *PARAMS[2:]),
     "amount: decimal has 20 digits, more than 19"),
    ((*PARAMS[:2], 1, PARAMS[3]), "currency: expected payments.Currency, got int"),
    (PARAMS[:3], "expected 4 parameters, got 3"),
    ({"card": 1}, "expected parameters of payments.Payments.process_payment, got map"),
    (("x", *PARAMS[1:]), "card: expected payments.Card, got string"),
])
def test_encode_errors(codec: Codec, value: object, message: str) -> None:
    assert encode_error(codec, PROCESS_PAYMENT, value) == message


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@pytest.mark.parametrize(("schema", "value", "message"), [
    (INT, True, "expected int, got bool"),
    (INT, 2**63, "int 9223372036854775808 out of signed 64-bit range"),
    (INT, -(2**63) - 1, "int -9223372036854775809 out of signed 64-bit range"),
    (BOOL, 1, "expected bool, got int"),
    (FLOAT, True, "expected float, got bool"),
    (FLOAT, "1", "expected float, got string"),
    (BYTES, "ab", "expected bytes, got string"),
    (TIMESTAMP, dt.datetime(2020, 1, 1), "timestamp must be timezone-aware (naive datetime given)"),
    (TIMESTAMP, dt.date(2020, 1, 1), "expected timestamp, got date"),
    (PRICES, {"GBP": Decimal(1), 3: Decimal(1)}, "[3]: expected string map key, got int"),
    (PRICES, {"GBP": "x"}, '["GBP"]: expected decimal, got string'),
    (map_of(INT, INT), {1: 2**64}, "[1]: int 18446744073709551616 out of signed 64-bit range"),
    (PAYMENT_METHOD, PaymentMethod(), "union 'payments.PaymentMethod' must have exactly one "
                                      "variant set, got 0"),
    (PAYMENT_METHOD, PaymentMethod(card=_card(), voucher_code="v"),
     "union 'payments.PaymentMethod' must have exactly one variant set, got 2"),
    (PAYMENT_METHOD, PaymentMethod(card=_card(cvc=1)), "card.cvc: expected string, got int"),
])
def test_encode_type_errors(codec: Codec, schema: TypeRef, value: object, message: str) -> None:
    assert encode_error(codec, schema, value) == message


C = CborCodec()


@pytest.mark.parametrize(("schema", "plain", "message"), [
    (PROCESS_PAYMENT, {1: {1: "4111", 2: 12, 3: "1"}, 2: Decimal(1), 3: 1, 4: "m"},
     "card.expiry_date: expected string, got int"),
    (PROCESS_PAYMENT, {1: {1: "4111", 2: "x"}, 2: Decimal(1), 3: 1, 4: "m"},
     "card: missing required field 'cvc'"),
    (PROCESS_PAYMENT, {1: {1: "4", 2: "x", 3: "1", 5: ["a", None]}, 2: Decimal(1), 3: 1},
     "card.tags[1]: expected string, got null"),
    (PROCESS_PAYMENT, {1: {1: "4", 2: "x", 3: None}, 2: Decimal(1), 3: 1, 4: "m"},
     "card.cvc: expected string, got null"),
    (PROCESS_PAYMENT, [1, 2], "expected parameters of payments.Payments.process_payment, "
                              "got list"),
    (PRICES, {"GBP": 1.5}, '["GBP"]: expected decimal, got float'),
    (PRICES, {1: Decimal(1)}, "[1]: expected string map key, got int"),
    (INT, 2**63, "int 9223372036854775808 out of signed 64-bit range"),
    (INT, False, "expected int, got bool"),
    (BOOL, 0, "expected bool, got int"),
    (FLOAT, 1, "expected float, got int"),
    (TIMESTAMP, 2**62, "timestamp 4611686018427387904 out of range (years 1 to 9999)"),
    (PAYMENT_METHOD, {}, "union 'payments.PaymentMethod' needs exactly one variant, "
                         "got 0 entries"),
    (PAYMENT_METHOD, {1: {}, 2: "v"}, "union 'payments.PaymentMethod' needs exactly one "
                                      "variant, got 2 entries"),
    (PAYMENT_METHOD, {3: "v"}, "unknown variant tag 3 of union 'payments.PaymentMethod'"),
    (PAYMENT_METHOD, {2: None}, "voucher_code: expected string, got null"),
    (list_of(INT), {1: 1}, "expected list<int>, got map"),
])
def test_cbor_decode_errors(schema: Any, plain: object, message: str) -> None:
    assert decode_error(C, schema, cbor2.dumps(plain)) == message


@pytest.mark.parametrize(("hex_", "tag"), [
    ("c074323031332d30332d32315432303a30343a30305a", 0),  # datetime string
    ("c11a514b67b0", 1),  # epoch datetime
    ("c249010000000000000000", 2),  # bignum
    ("c349010000000000000000", 3),  # negative bignum
    ("c5820301", 5),  # bigfloat
    ("d81c01", 28),  # shared value
    ("d81d00", 29),  # shared reference
    ("d9010283010203", 258),  # set
    ("d9d9f701", 55799),  # self-described CBOR
    ("d9ffff01", 65535),  # an unknown tag
])
def test_cbor_tags_other_than_decimal_are_refused(hex_: str, tag: int) -> None:
    message = decode_error(C, INT, bytes.fromhex(hex_))
    assert message == f"invalid CBOR: CBOR tag {tag} is not allowed (only tag 4, decimal fraction)"
    # Also inside a field the reader skips.
    inner = bytes.fromhex("a20101" + "09" + hex_)  # {1: 1, 9: <tagged>}
    one = make_struct([FieldSpec(1, "a", INT)], "t.One")
    assert "not allowed" in decode_error(C, struct_ref(one), inner)


@pytest.mark.parametrize(("hex_", "message"), [
    ("c4821a3b9ac9ff01", "decimal exponent 999999999 out of range [-6144, 6144]"),
    ("c4823a3b9ac9fe01", "decimal exponent -999999999 out of range [-6144, 6144]"),
    ("c482001b8ac7230489e80000", "decimal mantissa has more than 19 digits"),
    ("c48200c249010000000000000000", "CBOR tag 2 is not allowed (only tag 4, decimal fraction)"),
    ("c483000101", "decimal fraction must be [int exponent, int mantissa]"),
    ("c482f93c0001", "decimal fraction must be [int exponent, int mantissa]"),
    ("c401", "decimal fraction must be [int exponent, int mantissa]"),
])
def test_cbor_decimal_abuse(hex_: str, message: str) -> None:
    assert decode_error(C, DECIMAL, bytes.fromhex(hex_)) == f"invalid CBOR: {message}"


def test_cbor_limits() -> None:
    small = CborCodec(max_message_bytes=10, max_depth=3, max_collection_len=2)
    assert decode_error(small, STRING, cbor2.dumps("x" * 20)) == (
        "message of 21 bytes exceeds max_message_bytes (10)")
    assert encode_error(small, STRING, "x" * 20) == (
        "message of 21 bytes exceeds max_message_bytes (10)")
    nested = list_of(list_of(list_of(list_of(INT))))
    assert decode_error(small, nested, bytes.fromhex("8181818101")) == (
        "invalid CBOR: maximum container nesting depth (3) exceeded")
    assert decode_error(small, list_of(INT), bytes.fromhex("83010203")) == (
        "list of 3 entries exceeds max_collection_len (2)")
    assert encode_error(small, list_of(INT), [1, 2, 3]) == (
        "list of 3 entries exceeds max_collection_len (2)")
    assert decode_error(small, map_of(INT, INT), bytes.fromhex("a3010102020303")) == (
        "map of 3 entries exceeds max_collection_len (2)")


def test_cbor_refuses_duplicate_keys_and_indefinite_lengths() -> None:
    assert decode_error(C, map_of(INT, INT), bytes.fromhex("a201010102")) == (
        "invalid CBOR: error decoding map: Duplicate map key: 1")
    assert "indefinite length" in decode_error(C, list_of(INT), bytes.fromhex("9f01ff"))


def test_cbor_malformed() -> None:
    assert decode_error(C, STRING, b"") == (
        "invalid CBOR: premature end of stream (expected to read at least 1 bytes, "
        "got 0 instead)")
    assert decode_error(C, STRING, bytes.fromhex("62c328")).startswith("invalid CBOR: ")
    assert decode_error(C, STRING, "text") == "expected bytes to decode, got str"  # type: ignore[arg-type]


def test_constructor_failures_become_codec_errors() -> None:
    import attrs

    @attrs.frozen(kw_only=True)
    class Positive:
        n: int = attrs.field(validator=attrs.validators.gt(0))

    Positive.__rpcx_spec__ = make_struct([FieldSpec(1, "n", INT)]).__rpcx_spec__.__class__(  # type: ignore[attr-defined]
        "t.Positive", Positive, (FieldSpec(1, "n", INT),))
    message = decode_error(C, struct_ref(Positive), cbor2.dumps({1: -1}))
    assert message.startswith("invalid t.Positive: 'n' must be > 0")


def test_encode_of_unserialisable_cycle_is_a_codec_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    schema = list_of(INT)
    assert encode_error(C, schema, loop) == "[0]: expected int, got list"
