"""Hostile CBOR: whatever the bytes, decoding gives a value or a CodecError naming the path
in plain words (no Python notation, bounded length), since INVALID_ARGUMENT carries that
text to the peer (issue 9, finding 5). The atheris twin is ``fuzz/fuzz_cbor_codec.py``."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcx.codec import CborCodec
from rpcx.errors import CodecError
from rpcx.schema import INT, STRING, TypeRef, map_of
from rpcx.testing.fuzzing import check_codec_input, check_peer_text
from tests.codec.schemas import PRICES, PROCESS_PAYMENT
from tests.strategies import schemas, values

CODEC = CborCodec(max_message_bytes=1 << 20)
CARD = {1: "4111 1111 1111 1111", 2: "10/2030", 3: "123"}


def error_text(schema: object, value: object) -> str:
    with pytest.raises(CodecError) as info:
        CODEC.decode(schema, cbor2.dumps(value))  # type: ignore[arg-type]
    check_peer_text(str(info.value))
    return str(info.value)


@pytest.mark.parametrize(("schema", "value", "expected"), [
    (map_of(STRING, INT), {b"\x00" * 5_000: 1},
     "[h'00000000000000000000000000000000...' (5000 bytes)]: expected string"),
    (map_of(STRING, INT), {"k": 10**5_000}, "CBOR tag 2 is not allowed"),  # a bignum
    (map_of(INT, INT), {2**64 + 5: 1}, "CBOR tag 2 is not allowed"),
    (map_of(INT, INT), {-(2**63) - 1: 1}, "[-9223372036854775809]: int"),
    (PROCESS_PAYMENT, {1: CARD, 2: cbor2.CBORTag(4, [2**63, 1]), 3: 1},
     "decimal exponent 9223372036854775808 out of range"),
    (PROCESS_PAYMENT, {1: {**CARD, 1: b"\xff" * 30_000}, 2: 1, 3: 1}, "card.card_number"),
    (PRICES, {"\x00" * 30_000: "1.0"}, "expected decimal"),
])
def test_hostile_values_get_plain_messages(schema: TypeRef, value: object, expected: str) -> None:
    assert expected in error_text(schema, value)


def test_bad_cbor_keeps_cbor2s_words_without_python_notation() -> None:
    with pytest.raises(CodecError) as info:
        CODEC.decode(PROCESS_PAYMENT, b"\xa2\x01\x01\x01\x01")  # duplicate key 1
    assert str(info.value).startswith("invalid CBOR")
    check_peer_text(str(info.value))


@settings(max_examples=200)
@given(data=st.binary(max_size=300))
def test_random_bytes_give_plain_errors(data: bytes) -> None:
    check_codec_input(CODEC, PROCESS_PAYMENT, data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), schemas())
def test_mutated_values_of_random_schemas_give_plain_errors(data: st.DataObject,
                                                            schema: TypeRef) -> None:
    encoded = bytearray(CODEC.encode(schema, data.draw(values(schema))))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(encoded)))
        encoded[at:at + data.draw(st.integers(0, 2))] = data.draw(st.binary(max_size=3))
    check_codec_input(CODEC, schema, bytes(encoded))
