"""Hostile input: random bytes, mutated valid encodings and random JSON text raise only
CodecError (never a cbor2 exception, RecursionError, MemoryError, ...)."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcx.codec import CborCodec, Codec, JsonCodec
from rpcx.errors import CodecError
from rpcx.schema import TypeRef
from tests.codec.schemas import PROCESS_PAYMENT
from tests.strategies import schemas, values

C = CborCodec(max_message_bytes=1 << 16)
J = JsonCodec(max_message_bytes=1 << 16)


def decode_or_codec_error(codec: Codec, schema: Any, data: bytes) -> None:
    with contextlib.suppress(CodecError):
        codec.decode(schema, data)


@settings(max_examples=300)
@given(data=st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    decode_or_codec_error(C, PROCESS_PAYMENT, data)
    decode_or_codec_error(J, PROCESS_PAYMENT, data)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), schemas())
def test_mutated_encodings(data: st.DataObject, schema: TypeRef) -> None:
    value = data.draw(values(schema))
    for codec in (C, J):
        encoded = bytearray(codec.encode(schema, value))
        for _ in range(data.draw(st.integers(1, 4))):
            op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
            if not encoded:
                break
            i = data.draw(st.integers(0, len(encoded) - 1))
            if op == "flip":
                encoded[i] ^= data.draw(st.integers(1, 255))
            elif op == "cut":
                del encoded[i:]
            else:
                encoded[i:i] = data.draw(st.binary(min_size=1, max_size=9))
        decode_or_codec_error(codec, schema, bytes(encoded))


json_text = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda kids: st.one_of(st.lists(kids, max_size=3),
                           st.dictionaries(st.text(max_size=12), kids, max_size=3)),
    max_leaves=10,
)


@settings(max_examples=200)
@given(st.data(), schemas(), json_text)
def test_random_json_values(data: st.DataObject, schema: TypeRef, value: object) -> None:
    import json

    text = json.dumps(value)
    decode_or_codec_error(J, schema, text.encode())
    decode_or_codec_error(J, schema, text.encode()[: data.draw(st.integers(0, len(text)))])


def test_deep_nesting_is_a_codec_error() -> None:
    for codec, data in ((C, b"\x81" * 100_000), (J, b"[" * 100_000)):
        decode_or_codec_error(codec, PROCESS_PAYMENT, data)


def test_huge_declared_lengths_do_not_allocate() -> None:
    for hex_ in ("9b7fffffffffffffff", "bb7fffffffffffffff", "5b7fffffffffffffff",
                 "7b7fffffffffffffff"):
        decode_or_codec_error(C, PROCESS_PAYMENT, bytes.fromhex(hex_))
