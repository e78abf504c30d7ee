"""Codec bugs found in review: each test failed before its fix."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rpcx.codec import CborCodec, JsonCodec
from rpcx.errors import CodecError
from rpcx.schema import DECIMAL, INT, STRING, map_of
from tests.codec.schemas import CURRENCY

J = JsonCodec()


def test_a_lone_surrogate_map_key_gives_an_error_message_that_is_valid_unicode() -> None:
    # The path segment of the key used to carry the raw surrogate, so the message could not
    # be encoded as UTF-8 (the HTTP gateway answers with it, the CLI prints it).
    with pytest.raises(CodecError) as info:
        J.decode(map_of(STRING, INT), b'{"\\ud800": 1}')
    message = str(info.value)
    message.encode("utf-8")
    assert "lone surrogate" in message
    assert "\\ud800" in message


@pytest.mark.parametrize(("schema", "text"), [
    (map_of(CURRENCY, STRING), b'{"GBP": "a", "1": "b"}'),  # a name and its number
    (map_of(INT, STRING), b'{"0": "a", "-0": "b"}'),
])
def test_json_map_keys_that_name_the_same_key_are_refused(schema: object,
                                                           text: bytes) -> None:
    # Both keys decode to one map key; one entry used to be dropped silently.
    with pytest.raises(CodecError, match="duplicate map key"):
        J.decode(schema, text)  # type: ignore[arg-type]


def test_a_json_number_beyond_the_decimal_range_is_a_clear_error() -> None:
    with pytest.raises(CodecError) as info:
        J.decode(DECIMAL, b"1e99999999999999999999")
    assert "InvalidOperation" not in str(info.value)
    assert "out of range" in str(info.value)


@pytest.mark.parametrize("codec", [JsonCodec(), CborCodec()], ids=["json", "cbor"])
@pytest.mark.parametrize("text", ["-0.00", "-0", "-0E+3"])
def test_the_sign_of_a_decimal_zero_is_not_kept(codec: JsonCodec | CborCodec,
                                                text: str) -> None:
    # docs/marshalling.md: "The sign of a zero is not kept (-0.00 → 0.00)" — for both codecs.
    value = codec.decode(DECIMAL, codec.encode(DECIMAL, Decimal(text)))
    assert not value.is_signed()
    assert value.as_tuple().exponent == Decimal(text).as_tuple().exponent


@pytest.mark.parametrize("text", [b'"-0.00"', b"-0.00", b"-0", b'"-0E+3"'])
def test_a_json_negative_zero_decimal_decodes_without_its_sign(text: bytes) -> None:
    value = J.decode(DECIMAL, text)
    assert not value.is_signed()
    assert str(value) == str(Decimal(text.decode().strip('"')).copy_abs())
