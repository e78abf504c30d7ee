"""The JSON codec against hostile input (issue 9): every refusal is a CodecError with its own
plain message naming the field path, never Python's text, a RecursionError or a ValueError
raised while formatting the message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcx.codec import CborCodec, JsonCodec
from rpcx.codec.convert import quote, show_int
from rpcx.errors import CodecError
from rpcx.schema import FLOAT, INT, STRING, TIMESTAMP, list_of, map_of
from rpcx.testing.fuzzing import python_notation
from tests.codec.schemas import CURRENCY, PAYMENT_METHOD, PRICES, PROCESS_PAYMENT

J = JsonCodec()
CARD = b'{"card_number":"4111","expiry_date":"10/2030","cvc":"123"}'


def params(rest: bytes) -> bytes:
    """A process_payment body: a good card, then ``rest`` (more members)."""
    return b'{"card":' + CARD + b"," + rest + b"}"


def refusal(schema: Any, data: bytes, codec: JsonCodec = J) -> CodecError:
    with pytest.raises(CodecError) as info:
        codec.decode(schema, data)
    assert python_notation(str(info.value)) is None, str(info.value)
    return info.value


# ---- numbers ----------------------------------------------------------------------

@pytest.mark.parametrize(("rest", "path"), [
    (b'"amount":' + b"1" * 5000, "amount"),
    (b'"amount":-' + b"9" * 5000, "amount"),
    (b'"amount":1' + b"0" * 5000 + b".5", "amount"),
    (b'"amount":1e' + b"0" * 2000 + b"1", "amount"),
    (b'"amount":1,"currency":' + b"1" * 5000, "currency"),
    (b'"amount":1,"currency":"GBP","merchant":' + b"1" * 5000, "merchant"),
], ids=["int", "negative", "fraction", "exponent", "enum", "string"])
def test_a_number_with_too_many_digits_is_refused_at_its_path(rest: bytes, path: str) -> None:
    error = refusal(PROCESS_PAYMENT, params(rest))
    assert str(error) == f"{path}: number has too many digits"
    assert error.path == path


def test_too_many_digits_deep_inside_lists_and_maps() -> None:
    error = refusal(list_of(map_of(STRING, INT)), b'[{}, {"a": 1, "b": ' + b"7" * 6000 + b"}]")
    assert str(error) == '[1]["b"]: number has too many digits'
    assert str(refusal(PRICES, b'{"GBP": ' + b"5" * 4400 + b"}")) == (
        '["GBP"]: number has too many digits')


def test_a_long_number_in_an_ignored_member_is_ignored_like_the_member() -> None:
    args = J.decode(PROCESS_PAYMENT, params(
        b'"amount":"1","currency":"GBP","merchant":"m","junk":[' + b"1" * 5000 + b"]"))
    assert args[1:] == (1, CURRENCY.cls.GBP, "m")  # type: ignore[union-attr]


def test_ints_below_the_conversion_limit_are_range_errors_without_all_their_digits() -> None:
    assert str(refusal(INT, b"8" * 4000)) == "int of about 4000 digits out of signed 64-bit range"
    assert str(refusal(FLOAT, b"8" * 4000)) == "number of about 4000 digits out of float range"
    assert str(refusal(INT, b"9" * 25)) == f"int {'9' * 25} out of signed 64-bit range"


@pytest.mark.parametrize("codec", [J, CborCodec()], ids=["json", "cbor"])
def test_encoding_a_huge_int_names_no_digits_and_raises_codec_error(
        codec: JsonCodec | CborCodec) -> None:
    # str() of an int past 4300 digits raises ValueError: the message must not need it.
    for schema, value in ((INT, 10**5000), (FLOAT, -(10**5000)), (TIMESTAMP, 10**5000)):
        with pytest.raises(CodecError) as info:
            codec.encode(schema, value)
        assert "of about 5001 digits" in str(info.value) or "expected" in str(info.value)
    assert show_int(-(10**5000)) == "of about 5001 digits"
    assert show_int(-12) == "-12"


def test_an_exponent_beyond_decimal_range_is_refused_at_its_path() -> None:
    error = refusal(PROCESS_PAYMENT, params(b'"amount":1e99999999999999999999'))
    assert str(error) == "amount: number 1e99999999999999999999 is out of range"
    assert str(refusal(list_of(FLOAT), b"[1, 1e400]")) == "[1]: number 1E+400 out of float range"


@pytest.mark.parametrize("name", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused_at_their_path(name: str) -> None:
    error = refusal(PROCESS_PAYMENT, params(b'"amount":' + name.encode()))
    assert str(error) == (f'amount: invalid JSON: {name} is not JSON (write the string '
                          f'"{name}" for a float)')


# ---- structure --------------------------------------------------------------------

def test_duplicate_keys_are_refused_at_the_object_that_repeats_them() -> None:
    nested = b'{"card":{"card_number":"1","cvc":"1","cvc":"2","expiry_date":"1"},"amount":1}'
    assert str(refusal(PROCESS_PAYMENT, nested)) == 'card: invalid JSON: duplicate key "cvc"'
    top = params(b'"amount":1,"amount":2')
    assert str(refusal(PROCESS_PAYMENT, top)) == 'invalid JSON: duplicate key "amount"'
    odd = b'{"a\\u0000\\"\'":1,"a\\u0000\\"\'":2}'
    assert str(refusal(PRICES, odd)) == 'invalid JSON: duplicate key "a\\u0000\\"\'"'


@pytest.mark.parametrize("opener", [b"[", b'{"a":', b'[{"a":'])
def test_nesting_past_the_recursion_limit_gives_its_position(opener: bytes) -> None:
    data = opener * 100_000
    error = refusal(PROCESS_PAYMENT, data)
    assert str(error).startswith("invalid JSON: nested deeper than max_depth (64) at 1:")
    column = int(str(error).rpartition(":")[2])
    assert data[:column].count(b"[") + data[:column].count(b"{") == 65


def test_nesting_past_max_depth_names_the_field() -> None:
    data = params(b'"amount":1,"currency":"GBP","merchant":' + b"[" * 70 + b"]" * 70)
    error = refusal(PROCESS_PAYMENT, data)
    assert error.reason == "invalid JSON: nested deeper than max_depth (64)"
    assert error.path.startswith("merchant[0][0]") and error.path.endswith("...")


def test_a_lone_surrogate_is_refused_at_its_path() -> None:
    error = refusal(PROCESS_PAYMENT, params(b'"amount":1,"currency":"GBP","merchant":"\\ud800"'))
    assert str(error) == "merchant: string contains a lone surrogate"
    assert str(refusal(PRICES, b'{"\\udfff": "1"}')) == (
        '["\\udfff"]: string contains a lone surrogate')
    error = refusal(PROCESS_PAYMENT, params(b'"amount":1,"currency":"\\ud800x"'))
    assert str(error).startswith('currency: unknown name "\\ud800x" of enum')


@pytest.mark.parametrize(("data", "byte"), [(b'{"a": "\xff"}', 7), (b"\xc3", 0),
                                             (b'"\xed\xa0\x80"', 1)])
def test_a_body_that_is_not_utf8_gives_the_byte_offset(data: bytes, byte: int) -> None:
    assert str(refusal(PROCESS_PAYMENT, data)) == f"invalid JSON: not UTF-8 at byte {byte}"


def test_peer_text_is_quoted_as_json_and_cut() -> None:
    assert quote("a'b\"c\x00\ud800") == '"a\'b\\"c\\u0000\\ud800"'
    assert quote("x" * 50) == '"' + "x" * 48 + '..." (50 characters)'
    error = refusal(PROCESS_PAYMENT, params(b'"amount":"1\\u0000' + b"x" * 100 + b'"'))
    assert str(error) == ('amount: invalid decimal "1\\u0000' + "x" * 46
                          + '..." (102 characters)')


# ---- fuzz -------------------------------------------------------------------------

_TOKENS = st.sampled_from([
    b"1" * 4301, b"-" + b"2" * 5000, b"3." + b"4" * 1200, b"1e99999999999999999999", b"1e400",
    b"NaN", b"Infinity", b"-Infinity", b'"\\ud800"', b'"\\udc00x"', b'"\xff"', b"[" * 200,
    b'{"a":1,"a":2}', b'"' + b"\\u0000" * 5 + b'"', b"9" * 30, b"-0", b'"GBP"', b"null",
    b"[" * 80 + b"]" * 80, b"[]", b"{}", b'"x"', b"true", b"0.1",
])
_KEYS = st.sampled_from([b"card", b"amount", b"currency", b"merchant", b"tags", b"cvc",
                         b"card_number", b"expiry_date", b"\\ud800", b"x"])


@st.composite
def hostile_json(draw: st.DrawFn, depth: int = 0) -> bytes:
    kind = draw(st.integers(0, 3 if depth < 3 else 0))
    if kind == 0:
        return draw(_TOKENS)
    if kind == 1:
        items = draw(st.lists(hostile_json(depth + 1), max_size=3))
        return b"[" + b",".join(items) + b"]"
    members = draw(st.lists(st.tuples(_KEYS, hostile_json(depth + 1)), max_size=4))
    return b"{" + b",".join(b'"' + k + b'":' + v for k, v in members) + b"}"


_SCHEMAS: list[Any] = [PROCESS_PAYMENT, PRICES, list_of(map_of(STRING, INT)), list_of(FLOAT),
            map_of(CURRENCY, TIMESTAMP), PAYMENT_METHOD]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), hostile_json())
def test_hostile_json_gives_only_plain_codec_errors(data: st.DataObject, text: bytes) -> None:
    schema = data.draw(st.sampled_from(_SCHEMAS))
    cut = data.draw(st.integers(0, len(text)))
    for candidate in (text, params(b'"amount":' + text), text[:cut]):
        try:
            J.decode(schema, candidate)
        except CodecError as exc:
            assert python_notation(str(exc)) is None, str(exc)
            json.dumps({"message": str(exc)})  # the gateway can always send it


def test_the_python_notation_detector_finds_what_it_is_for() -> None:
    for bad in ("illegal request line: bytearray(b'GARBAGE')", "got b'\\x00'",
                "Exceeds the limit (4300 digits) for integer string conversion: use "
                "sys.set_int_max_str_digits()", "ValueError: x", 'File "/x/y.py", line 3',
                "<rpcx.Foo object at 0x7f>", "value '\\x00'", "got None"):
        assert python_notation(bad), bad
    for good in ('unknown method "/b\'x"', "amount: number has too many digits",
                 'invalid decimal "\\u0000"', "card.cvc: expected string, got int"):
        assert python_notation(good) is None, good
