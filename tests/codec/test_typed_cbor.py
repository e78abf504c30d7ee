"""rpcx.codec._typed (the compiled build's typed CBOR path) against the ordinary path
(generated converter + cbor2): for random schemas and values it writes the same bytes and
reads the same values, or gives up; on hostile or damaged input it gives up or agrees.
The compiled build runs these tests on the compiled module."""

from __future__ import annotations

import decimal
import math
from typing import Any

import attrs
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcx.codec import CborCodec, _cbor, _typed
from rpcx.codec._plan import plan
from rpcx.codec.cbor_codec import _SEMANTIC, _decimal, _tag_hook
from rpcx.codec.convert import PathError
from rpcx.errors import CodecError
from rpcx.schema import (
    DECIMAL,
    INT,
    STRING,
    FieldSpec,
    StructSpec,
    TypeRef,
    list_of,
    optional,
    struct_ref,
)
from tests.codec.schemas import CARD, PROCESS_PAYMENT, Card, Currency, Result
from tests.strategies import schemas, struct_schemas, struct_values, values

CODEC = CborCodec()


def _node(schema: TypeRef | StructSpec, codec: CborCodec = CODEC) -> _typed.Node | None:
    return plan(schema, codec._encoders, codec._decoders, codec.max_collection_len)


def _ordinary_encode(schema: TypeRef | StructSpec, value: Any) -> bytes:
    return cbor2.dumps(CODEC._encoders.get(schema)(value))


def _ordinary_decode(schema: TypeRef | StructSpec, data: bytes) -> Any:
    plain = cbor2.loads(data, semantic_decoders=_SEMANTIC, tag_hook=_tag_hook,
                        max_depth=CODEC.max_depth, allow_indefinite=False,
                        allow_duplicate_keys=False)
    return CODEC._decoders.get(schema)(plain)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (a float's sign too)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, decimal.Decimal):
        return a.as_tuple() == b.as_tuple() or (a.is_nan() and b.is_nan())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if attrs.has(type(a)):
        return all(_same(getattr(a, f.name), getattr(b, f.name))
                   for f in attrs.fields(type(a)))
    return bool(a == b)


def _check_both_ways(schema: TypeRef | StructSpec, value: Any) -> bytes:
    node = _node(schema)
    expected = _ordinary_encode(schema, value)
    if node is None:
        return expected
    data = _typed.encode(node, value)
    assert data is _cbor.FALLBACK or data == expected
    back = _typed.decode(node, expected, CODEC.max_depth, _decimal)
    assert back is _cbor.FALLBACK or _same(back, _ordinary_decode(schema, expected))
    return expected


@settings(max_examples=200, deadline=None)
@given(data=st.data(), schema=schemas())
def test_random_types_same_bytes_and_values(data: st.DataObject, schema: TypeRef) -> None:
    _check_both_ways(schema, data.draw(values(schema)))


@settings(max_examples=120, deadline=None)
@given(data=st.data(), spec=struct_schemas())
def test_random_parameters_same_bytes_and_values(data: st.DataObject,
                                                 spec: StructSpec) -> None:
    _check_both_ways(spec, data.draw(struct_values(spec)))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), spec=struct_schemas())
def test_damaged_input_gives_up_or_agrees(data: st.DataObject, spec: StructSpec) -> None:
    encoded = bytearray(_ordinary_encode(spec, data.draw(struct_values(spec))))
    for _ in range(data.draw(st.integers(1, 3))):
        if encoded and data.draw(st.booleans()):
            encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(
                st.integers(0, 255))
        else:
            encoded = encoded[:data.draw(st.integers(0, len(encoded)))]
    node = _node(spec)
    assert node is not None
    back = _typed.decode(node, bytes(encoded), CODEC.max_depth, _decimal)
    if back is not _cbor.FALLBACK:
        assert _same(back, _ordinary_decode(spec, bytes(encoded)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_arbitrary_bytes_give_up_or_agree(data: bytes) -> None:
    node = _node(PROCESS_PAYMENT)
    assert node is not None
    back = _typed.decode(node, data, CODEC.max_depth, _decimal)
    if back is not _cbor.FALLBACK:
        assert _same(back, _ordinary_decode(PROCESS_PAYMENT, data))


REQUEST = (Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123"),
           decimal.Decimal("3.99"), Currency.GBP, "Acme Ltd")


def test_the_payments_request_takes_the_typed_path() -> None:
    node = _node(PROCESS_PAYMENT)
    assert node is not None
    data = _typed.encode(node, REQUEST)
    assert data == _ordinary_encode(PROCESS_PAYMENT, REQUEST)
    assert isinstance(data, bytes)
    back = _typed.decode(node, data, CODEC.max_depth, _decimal)
    assert _same(back, REQUEST)
    assert _same(CODEC.decode(PROCESS_PAYMENT, CODEC.encode(PROCESS_PAYMENT, REQUEST)), REQUEST)


@pytest.mark.parametrize("value", [
    (REQUEST[0], decimal.Decimal("1E+7000"), Currency.GBP, "x"),  # exponent out of range
    (REQUEST[0], decimal.Decimal("NaN"), Currency.GBP, "x"),
    (REQUEST[0], decimal.Decimal("3.99"), 7, "x"),  # not a Currency
    ("not a card", decimal.Decimal("3.99"), Currency.GBP, "x"),
    (REQUEST[0], decimal.Decimal("3.99"), Currency.GBP),  # too few
])
def test_bad_values_raise_what_the_ordinary_path_raises(value: Any) -> None:
    node = _node(PROCESS_PAYMENT)
    assert node is not None
    assert _typed.encode(node, value) is _cbor.FALLBACK
    with pytest.raises(CodecError) as typed:
        CODEC.encode(PROCESS_PAYMENT, value)
    with pytest.raises(PathError) as plain:
        CODEC._encoders.get(PROCESS_PAYMENT)(value)
    expected = CODEC._encoders.explain(PROCESS_PAYMENT, value, plain.value)
    assert (str(typed.value), typed.value.path) == (str(expected), expected.path)


def test_a_string_that_is_not_utf8_is_left_to_cbor2() -> None:
    node = _node(PROCESS_PAYMENT)
    assert node is not None
    value = (REQUEST[0], decimal.Decimal("3.99"), Currency.GBP, "\ud800")  # lone surrogate
    assert _typed.encode(node, value) is _cbor.FALLBACK
    with pytest.raises(CodecError, match="cannot encode"):
        CODEC.encode(PROCESS_PAYMENT, value)


def test_defaults_and_optional_fields() -> None:
    # Absent fields take their defaults; a list default is a new list each time; None in
    # an optional field with a non-None default is sent as null.
    spec = StructSpec("t.Params", None, (
        FieldSpec(1, "a", INT, 5),
        FieldSpec(2, "b", list_of(STRING), []),
        FieldSpec(3, "c", optional(STRING), "dflt"),
        FieldSpec(4, "d", list_of(INT), [1, 2]),
        FieldSpec(5, "e", DECIMAL, decimal.Decimal("1.5")),
    ))
    node = _node(spec)
    assert node is not None
    empty = cbor2.dumps({})
    first = _typed.decode(node, empty, CODEC.max_depth, _decimal)
    second = _typed.decode(node, empty, CODEC.max_depth, _decimal)
    assert isinstance(first, tuple) and isinstance(second, tuple)
    assert _same(first, _ordinary_decode(spec, empty))
    assert first[1] is not second[1] and first[3] is not second[3]
    value: Any = (7, [], None, [1, 2], decimal.Decimal("2.50"))
    assert _typed.encode(node, value) == _ordinary_encode(spec, value)


def test_a_recursive_schema() -> None:
    @attrs.frozen(kw_only=True)
    class Link:
        head: int
        tail: Link | None = None

    ref = struct_ref(Link)
    Link.__rpcx_spec__ = StructSpec(  # type: ignore[attr-defined]
        "test.Link", Link, (FieldSpec(1, "head", INT), FieldSpec(2, "tail", optional(ref), None)))
    value: Any = None
    for i in range(10):
        value = Link(head=i, tail=value)
    node = _node(ref)
    assert node is not None
    data = _typed.encode(node, value)
    assert data == _ordinary_encode(ref, value)
    assert isinstance(data, bytes)
    assert _typed.decode(node, data, CODEC.max_depth, _decimal) == value


def test_results_and_structs_take_the_typed_path() -> None:
    for schema, value in [(struct_ref(Result), Result(success=True, payment_id="p-1")),
                          (CARD, REQUEST[0])]:
        node = _node(schema)
        assert node is not None
        data = _typed.encode(node, value)
        assert isinstance(data, bytes)
        assert _same(_typed.decode(node, data, CODEC.max_depth, _decimal), value)


def test_the_codec_uses_the_typed_path_in_the_compiled_build_only() -> None:
    assert _typed.encode is not None
    CODEC.encode(PROCESS_PAYMENT, REQUEST)
    assert (id(PROCESS_PAYMENT) in CODEC._plans) is _cbor.COMPILED
