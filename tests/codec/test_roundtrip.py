"""decode(encode(x)) == x for random values of random schemas, both codecs."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcx.codec import CborCodec, Codec, JsonCodec, get_codec
from rpcx.schema import FLOAT, INT, FieldSpec, StructSpec, TypeRef, list_of, optional, struct_ref
from tests.strategies import make_struct, schemas, struct_schemas, struct_values, values

CODECS: list[Codec] = [CborCodec(), JsonCodec()]
IDS = ["cbor", "json"]


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@settings(max_examples=150)
@given(data=st.data(), schema=schemas())
def test_random_types_round_trip(codec: Codec, data: st.DataObject, schema: TypeRef) -> None:
    value = data.draw(values(schema))
    encoded = codec.encode(schema, value)
    assert codec.decode(schema, encoded) == value
    assert codec.encode(schema, value) == encoded  # deterministic


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@settings(max_examples=80)
@given(data=st.data(), spec=struct_schemas())
def test_random_params_round_trip(codec: Codec, data: st.DataObject, spec: StructSpec) -> None:
    value = data.draw(struct_values(spec))
    decoded = codec.decode(spec, codec.encode(spec, value))
    assert isinstance(decoded, tuple)
    assert decoded == value


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@pytest.mark.parametrize("x", [math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308])
def test_special_floats(codec: Codec, x: float) -> None:
    out = codec.decode(FLOAT, codec.encode(FLOAT, x))
    assert out == x and math.copysign(1, out) == math.copysign(1, x)


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_nan(codec: Codec) -> None:
    assert math.isnan(codec.decode(FLOAT, codec.encode(FLOAT, math.nan)))


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_int_accepted_for_float_on_encode(codec: Codec) -> None:
    assert codec.decode(FLOAT, codec.encode(FLOAT, 3)) == 3.0


Node = make_struct([
    FieldSpec(1, "value", INT),
    FieldSpec(2, "children", list_of(INT), []),
], "test.Node")


def _recursive() -> tuple[TypeRef, Any]:
    """A linked list: Link { 1: head: int; 2: tail: Link? }."""
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
    return ref, value


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_recursive_schema(codec: Codec) -> None:
    ref, value = _recursive()
    assert codec.decode(ref, codec.encode(ref, value)) == value


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_list_defaults_are_copied(codec: Codec) -> None:
    ref = struct_ref(Node)
    a = codec.decode(ref, codec.encode(ref, Node(value=1)))
    b = codec.decode(ref, codec.encode(ref, Node(value=2)))
    assert a.children == [] and a.children is not b.children


def test_get_codec() -> None:
    assert get_codec("cbor").content_type == "application/cbor"
    assert get_codec("json").content_type == "application/json"
    assert get_codec("json").name == "json"
    with pytest.raises(ValueError, match="unknown codec 'xml'"):
        get_codec("xml")


@pytest.mark.parametrize("limit", ["max_message_bytes", "max_depth", "max_collection_len"])
def test_limits_must_be_positive(limit: str) -> None:
    with pytest.raises(ValueError, match=limit):
        CborCodec(**{limit: 0})
    with pytest.raises(ValueError, match=limit):
        JsonCodec(**{limit: -1})
