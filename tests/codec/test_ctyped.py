"""rpcx.codec._ctyped (the compiled build's C typed CBOR path) against rpcx.codec._typed
(the plan interpreter it replaces): for random schemas and values, valid or not, it
writes the same bytes and reads the same values (the same types all the way down), and
gives up (FALLBACK) exactly where _typed does; on hostile input (random bytes,
truncations, flipped bytes, deep nesting, huge lengths, edge numbers, bad UTF-8...) the
same, without crashing or leaking.

The C module is built by the compiled build only (``python hatch_build.py --inplace``):
elsewhere this module is skipped, except when ``RPCX_EXPECT_COMPILED=1`` (CI's compiled
run), where a missing C module is a failure."""

from __future__ import annotations

import decimal
import enum
import gc
import math
import os
import struct
import sys
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcx.codec import CborCodec, _cbor, _typed
from rpcx.codec.cbor_codec import _decimal
from rpcx.schema import (
    BOOL,
    BYTES,
    DECIMAL,
    FLOAT,
    INT,
    MISSING,
    STRING,
    TIMESTAMP,
    EnumSpec,
    FieldSpec,
    Kind,
    OpenEnum,
    StructSpec,
    TypeRef,
    enum_ref,
    list_of,
    map_of,
    optional,
    spec_of,
    struct_ref,
)
from tests.codec.schemas import PAYMENT_METHOD, PROCESS_PAYMENT, Card, Currency
from tests.codec.test_typed_cbor import _node, _ordinary_encode, _same
from tests.strategies import (
    _fields,
    decimals,
    enums,
    make_struct,
    schemas,
    struct_values,
    values,
)

try:
    from rpcx.codec import _ctyped
except ImportError as exc:  # the pure build
    if os.environ.get("RPCX_EXPECT_COMPILED") == "1":
        pytest.fail(f"rpcx.codec._ctyped must be importable in the compiled build: {exc}",
                    pytrace=False)
    pytest.skip("rpcx.codec._ctyped is not built (only the compiled build has it: "
                "python hatch_build.py --inplace)", allow_module_level=True)

FALLBACK = _cbor.FALLBACK
CODEC = CborCodec()
DEPTH = CODEC.max_depth
Schema = TypeRef | StructSpec


# -- helpers -------------------------------------------------------------------------------


def _plans(schema: Schema, codec: CborCodec = CODEC) -> tuple[_typed.Node, _ctyped.Plan]:
    node = _node(schema, codec)
    assert node is not None
    plan = _ctyped.prepare(node, FALLBACK, decimal.Decimal)
    assert plan is not None, "prepare() refused a plan without maps, unions or timestamps"
    return node, plan


def _check_encode(node: _typed.Node, plan: _ctyped.Plan, value: Any) -> bytes | None:
    """C encodes ``value`` exactly as _typed does (or both give up); the bytes, or None."""
    expected = _typed.encode(node, value)
    got = _ctyped.encode(plan, value)
    if expected is FALLBACK:
        assert got is FALLBACK, f"C encoded what _typed gives up on: {value!r} -> {got!r}"
        return None
    assert got is not FALLBACK, f"C gave up on what _typed encodes: {value!r}"
    assert type(got) is bytes
    assert got == expected, f"{value!r}: C {got.hex()} != _typed {expected!r}"
    return got


def _check_decode(node: _typed.Node, plan: _ctyped.Plan, data: bytes,
                  max_depth: int = DEPTH) -> Any:
    """C decodes ``data`` to exactly _typed's value (or both give up); the value."""
    expected = _typed.decode(node, data, max_depth, _decimal)
    got = _ctyped.decode(plan, data, max_depth)
    if expected is FALLBACK:
        assert got is FALLBACK, f"C decoded what _typed gives up on: {data.hex()} -> {got!r}"
        return FALLBACK
    assert got is not FALLBACK, f"C gave up on what _typed decodes: {data.hex()}"
    assert _same(got, expected), f"{data.hex()}: C {got!r} != _typed {expected!r}"
    return got


def _check_value(schema: Schema, value: Any) -> None:
    """Both ways: the value's bytes, then the ordinary path's bytes of it decoded."""
    node, plan = _plans(schema)
    data = _check_encode(node, plan, value)
    if data is not None:
        _check_decode(node, plan, data)
    try:
        ordinary = _ordinary_encode(schema, value)
    except Exception:
        return  # not a valid value: the ordinary path refuses it
    _check_decode(node, plan, ordinary)


def _has_convert(node: _typed.Node, seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    if id(node) in seen:
        return False
    seen.add(id(node))
    if node.kind == _typed.K_CONVERT:
        return True
    children = [f.node for f in node.fields]
    if node.item is not None:
        children.append(node.item)
    return any(_has_convert(child, seen) for child in children)


def _head(major: int, value: int, size: int | None = None) -> bytes:
    """A CBOR head; ``size`` forces the argument's width (0: in the initial byte)."""
    if size is None:
        size = 0 if value < 24 else 1 if value < 0x100 else 2 if value < 0x10000 \
            else 4 if value < 0x100000000 else 8
    if size == 0:
        return bytes([major << 5 | value])
    info = {1: 24, 2: 25, 4: 26, 8: 27}[size]
    return bytes([major << 5 | info]) + value.to_bytes(size, "big")


def _int(value: int, size: int | None = None) -> bytes:
    return _head(0, value, size) if value >= 0 else _head(1, -1 - value, size)


def _text(data: bytes) -> bytes:
    return _head(3, len(data)) + data


def _map(entries: list[tuple[bytes, bytes]]) -> bytes:
    return _head(5, len(entries)) + b"".join(k + v for k, v in entries)


def _decimal_item(exponent: int, mantissa: int) -> bytes:
    return b"\xc4\x82" + _int(exponent) + _int(mantissa)


# -- schemas the C module takes: no maps, unions or timestamps -----------------------------


def _c_extend(children: st.SearchStrategy[TypeRef]) -> st.SearchStrategy[TypeRef]:
    non_optional = children.filter(lambda t: t.kind is not Kind.OPTIONAL)
    return st.one_of(
        children.map(list_of),
        non_optional.map(optional),
        _fields(children, union=False).map(lambda fs: struct_ref(make_struct(fs))),
    )


def c_schemas(max_leaves: int = 8) -> st.SearchStrategy[TypeRef]:
    base = st.one_of(st.sampled_from([BOOL, INT, FLOAT, DECIMAL, STRING, BYTES]), enums())
    return st.recursive(base, _c_extend, max_leaves=max_leaves)


def c_struct_schemas() -> st.SearchStrategy[StructSpec]:
    return _fields(c_schemas(6), union=False).map(
        lambda fs: StructSpec("test.Svc.m", None, tuple(fs)))


# -- values that may be wrong: subclasses, out of range, other types -----------------------


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyBytes(bytes):
    pass


class MyDecimal(decimal.Decimal):
    pass


class MyList(list[Any]):
    pass


class MyTuple(tuple[Any, ...]):
    pass


class Shuffled(list[Any]):
    """A list whose len() and iteration do not agree with its contents."""

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Any]:
        return iter(list(super().__iter__())[::-1])


class Plain(enum.IntEnum):
    ONE = 1


_JUNK = st.sampled_from([
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 2**64, 1.5, -0.0, math.nan, math.inf,
    "x", "", "\ud800", MyStr("x"), b"", b"x", bytearray(b"x"), MyBytes(b"x"),
    decimal.Decimal("NaN"), decimal.Decimal("1.5"), MyDecimal("1.5"), MyInt(3), MyFloat(1.0),
    [], (), {}, [1, 2], ("a",), MyList(), Plain.ONE, Currency.GBP, object(),
])

_INT_EDGES = [2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64 - 1, -(2**64), 2**64, 23, 24,
              -24, -25, 255, 256, 65535, 65536, 2**32 - 1, 2**32]

_DECIMAL_EDGES = [decimal.Decimal(text) for text in [
    "9999999999999999999", "-9999999999999999999", "10000000000000000000",
    "1E+6125", "1E+6126", "1E-6125", "1E-6126", "9.99999999999999999E+6125",
    "1E+6144", "1E-6144", "0E+6200", "0E-6200", "-0", "0", "-0.00", "1E+2", "1.000000000000000000",
    "12345678901234567.8", "123456789012345678.9", "NaN", "-NaN", "sNaN", "Infinity",
    "-Infinity", "1E+999999", "0.000000000000001"]]


def _wild(t: TypeRef) -> st.SearchStrategy[Any]:
    """Values of ``t`` that are often not quite valid, at any depth."""
    return st.integers(0, 7).flatmap(lambda n: _JUNK if n == 0 else _wild_inner(t))


def _wild_inner(t: TypeRef) -> st.SearchStrategy[Any]:
    k = t.kind
    if k is Kind.BOOL:
        return st.booleans()
    if k is Kind.INT:
        return st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from(_INT_EDGES),
                         st.integers(-(2**70), 2**70), st.integers(0, 99).map(MyInt))
    if k is Kind.FLOAT:
        return st.one_of(st.floats(), st.floats().map(MyFloat))
    if k is Kind.DECIMAL:
        return st.one_of(decimals(), st.sampled_from(_DECIMAL_EDGES), st.decimals(),
                         decimals().map(MyDecimal))
    if k is Kind.STRING:
        return st.one_of(st.text(max_size=30), st.text(max_size=30).map(MyStr),
                         st.sampled_from(["\ud800", "a\udfffb", "\U0010ffff", "é" * 30]))
    if k is Kind.BYTES:
        return st.one_of(st.binary(max_size=30), st.binary(max_size=3).map(bytearray),
                         st.binary(max_size=3).map(MyBytes))
    if k is Kind.LIST:
        assert t.item is not None
        items = st.lists(_wild(t.item), max_size=4)
        return st.one_of(items, items.map(tuple), items.map(MyList), items.map(MyTuple),
                         items.map(Shuffled))
    if k is Kind.OPTIONAL:
        assert t.item is not None
        return st.one_of(st.none(), _wild(t.item))
    assert t.cls is not None
    spec = spec_of(t.cls)
    if isinstance(spec, EnumSpec):
        enum_cls = spec.cls
        return st.one_of(values(t), st.sampled_from(_INT_EDGES).map(enum_cls),
                         st.sampled_from([1, Plain.ONE, Currency.USD]))
    assert isinstance(spec, StructSpec)
    return _wild_struct(spec)


_subclasses: dict[type, type] = {}


def _subclass(cls: type) -> type:
    """A plain subclass of a struct class (its instances are encoded as the class's)."""
    if cls not in _subclasses:
        _subclasses[cls] = type(f"Sub{cls.__name__}", (cls,), {})
    return _subclasses[cls]


def _wild_struct(spec: StructSpec) -> st.SearchStrategy[Any]:
    parts = st.tuples(*(_wild(f.type) for f in spec.fields))
    cls = spec.cls
    if cls is None:
        return st.one_of(parts, parts.map(list), parts.map(MyTuple), parts.map(lambda p: p[1:]),
                         parts.map(lambda p: (*p, None)))
    names = [f.py_name for f in spec.fields]
    struct_cls = cls

    def build(parts: tuple[Any, ...], sub: bool) -> Any:
        kind = _subclass(struct_cls) if sub else struct_cls
        return kind(**dict(zip(names, parts, strict=True)))

    return st.builds(build, parts, st.booleans())


# -- random schemas and values -------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(data=st.data(), schema=schemas())
def test_prepare_refuses_exactly_the_plans_with_maps_unions_or_timestamps(
        data: st.DataObject, schema: TypeRef) -> None:
    node = _node(schema)
    if node is None:
        return
    plan = _ctyped.prepare(node, FALLBACK, decimal.Decimal)
    assert (plan is None) is _has_convert(node)
    if plan is not None:
        _check_value(schema, data.draw(values(schema)))


@pytest.mark.parametrize("schema", [
    struct_ref(make_struct([FieldSpec(1, "m", map_of(STRING, INT))])),
    struct_ref(make_struct([FieldSpec(1, "a", INT), FieldSpec(2, "u", PAYMENT_METHOD)])),
    struct_ref(make_struct([FieldSpec(1, "t", TIMESTAMP)])),
    struct_ref(make_struct([FieldSpec(1, "t", optional(TIMESTAMP), None)])),
    list_of(list_of(optional(map_of(INT, STRING)))),
    StructSpec("t.m", None, (FieldSpec(1, "a", INT), FieldSpec(2, "t", list_of(TIMESTAMP)))),
    struct_ref(make_struct([FieldSpec(1, "s", struct_ref(make_struct([
        FieldSpec(7, "u", optional(PAYMENT_METHOD), None)])))])),
], ids=["map", "union", "timestamp", "optional-timestamp", "nested-map", "params-timestamps",
        "deep-union"])
def test_prepare_gives_none_for_maps_unions_and_timestamps(schema: Schema) -> None:
    node = _node(schema)
    assert node is not None
    assert _ctyped.prepare(node, FALLBACK, decimal.Decimal) is None


@settings(max_examples=200, deadline=None)
@given(data=st.data(), schema=c_schemas())
def test_random_types_same_bytes_and_values(data: st.DataObject, schema: TypeRef) -> None:
    _check_value(schema, data.draw(values(schema)))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), spec=c_struct_schemas())
def test_random_parameters_same_bytes_and_values(data: st.DataObject,
                                                 spec: StructSpec) -> None:
    _check_value(spec, data.draw(struct_values(spec)))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), schema=c_schemas())
def test_random_wild_values_encode_alike(data: st.DataObject, schema: TypeRef) -> None:
    _check_value(schema, data.draw(_wild(schema)))


@settings(max_examples=120, deadline=None)
@given(data=st.data(), spec=c_struct_schemas())
def test_random_wild_parameters_encode_alike(data: st.DataObject, spec: StructSpec) -> None:
    _check_value(spec, data.draw(_wild_struct(spec)))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), spec=c_struct_schemas())
def test_every_truncation_and_flipped_byte(data: st.DataObject, spec: StructSpec) -> None:
    node, plan = _plans(spec)
    encoded = _ordinary_encode(spec, data.draw(struct_values(spec)))
    for end in range(len(encoded)):
        _check_decode(node, plan, encoded[:end])
    masks = data.draw(st.lists(st.integers(1, 255), min_size=len(encoded),
                               max_size=len(encoded)))
    for i, mask in enumerate(masks):
        flipped = bytearray(encoded)
        flipped[i] ^= mask
        _check_decode(node, plan, bytes(flipped))
    for depth in range(4):
        _check_decode(node, plan, encoded, depth)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48))
def test_arbitrary_bytes(data: bytes) -> None:
    for schema in (PROCESS_PAYMENT, SINK_REF, SINK_PARAMS, LINK_REF):
        node, plan = _plans(schema)
        _check_decode(node, plan, data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(sorted({b"\xa1", b"\xa2", b"\x81", b"\x82", b"\x01",
                                        b"\x02", b"\x0c", b"\x18\x0d", b"\xf6", b"\xf5",
                                        b"\x61a", b"\x42ab", b"\xc4\x82\x01\x02",
                                        b"\xfb" + bytes(8), b"\x80", b"\xa0", b"\x20"})),
                max_size=24))
def test_cbor_shaped_noise(parts: list[bytes]) -> None:
    """Sequences of plausible CBOR pieces (more likely to get deep than random bytes)."""
    data = b"".join(parts)
    for schema in (SINK_REF, SINK_PARAMS, LINK_REF):
        node, plan = _plans(schema)
        _check_decode(node, plan, data)
        _check_decode(node, plan, data, 3)


# -- a struct with every kind of field, and hostile items in each --------------------------


class Edge(OpenEnum):
    """An enum at the edges of CBOR's integers (beyond int64 both ways)."""

    MIN65 = -(2**64)
    MIN64 = -(2**63)
    MINUS = -1
    ZERO = 0
    SMALL = 23
    BYTE = 24
    MAX64 = 2**63 - 1
    BIG = 2**63
    MAX65 = 2**64 - 1


setattr(Edge, "__rpcx_spec__", EnumSpec("test.Edge", Edge))  # noqa: B010
EDGE = enum_ref(Edge)

Inner = make_struct([FieldSpec(1, "s", STRING), FieldSpec(2, "n", optional(INT), None)],
                    "test.Inner")
INNER = struct_ref(Inner)

SINK_FIELDS = [
    FieldSpec(1, "b", BOOL),
    FieldSpec(2, "i", INT),
    FieldSpec(3, "f", FLOAT),
    FieldSpec(4, "d", DECIMAL),
    FieldSpec(5, "s", STRING),
    FieldSpec(6, "y", BYTES),
    FieldSpec(7, "e", EDGE),
    FieldSpec(8, "li", list_of(INT), []),
    FieldSpec(9, "o", optional(STRING), None),
    FieldSpec(10, "n", optional(INT), 5),
    FieldSpec(11, "k", optional(INNER), None),
    FieldSpec(12, "ll", list_of(list_of(DECIMAL)), [[decimal.Decimal(1)]]),
    FieldSpec(13, "z", INT, 7),
    FieldSpec(24, "t", STRING, "dflt"),
    FieldSpec(300, "lk", list_of(INNER), []),
    FieldSpec(70000, "oe", optional(EDGE), None),
]
Sink = make_struct(SINK_FIELDS, "test.Sink")
SINK_REF = struct_ref(Sink)
SINK_PARAMS = StructSpec("test.Svc.sink", None, tuple(SINK_FIELDS))


@attrs.frozen(kw_only=True)
class Link:
    head: int
    tail: Link | None = None


LINK_REF = struct_ref(Link)
setattr(Link, "__rpcx_spec__", StructSpec(  # noqa: B010
    "test.Link", Link, (FieldSpec(1, "head", INT), FieldSpec(2, "tail", optional(LINK_REF), None))))

_VALID: dict[int, bytes] = {
    1: b"\xf5", 2: _int(-7), 3: b"\xfb" + struct.pack(">d", 2.5), 4: _decimal_item(-2, 399),
    5: _text(b"card"), 6: b"\x43xyz", 7: _int(2**64 - 1),
}

_HOSTILE: list[bytes] = [
    # integers, minimal and not, at the int64 and uint64 edges, and cut short
    *(_int(v) for v in _INT_EDGES if -(2**64) <= v < 2**64), *(_int(v, size) for v in (0, 5, 23, -1)
                                      for size in (1, 2, 4, 8)),
    b"\x1b\x7f\xff\xff\xff\xff\xff\xff\xff", b"\x1b\x80" + bytes(7), b"\x1b" + b"\xff" * 8,
    b"\x3b\x7f\xff\xff\xff\xff\xff\xff\xff", b"\x3b\x80" + bytes(7), b"\x3b" + b"\xff" * 8,
    b"\x18", b"\x19\x01", b"\x1a\x00\x00", b"\x1b\x00", b"\x38", b"\x3b\x00\x00",
    # reserved and indefinite additional information, for every major type
    *(bytes([major << 5 | info]) for major in range(8) for info in (28, 29, 30, 31)),
    # simple values and floats of every width, NaN, infinities, -0.0, cut short
    b"\xf4", b"\xf5", b"\xf6", b"\xf7", b"\xf8\x20", b"\xe0", b"\xf3",
    b"\xf9\x3c\x00", b"\xf9\x7e\x00", b"\xfa\x3f\xc0\x00\x00", b"\xfa\x7f\x80\x00\x00",
    *(b"\xfb" + struct.pack(">d", v) for v in (0.0, -0.0, 1.5, math.inf, -math.inf,
                                                math.nan, 5e-324, -1.7976931348623157e308)),
    b"\xfb\x7f\xf0\x00\x00\x00\x00\x00\x01", b"\xfb\xff\xf8\x00\x00\x00\x00\xde\xad",
    b"\xfb\x00\x00", b"\xfb",
    # text and bytes: valid, bad UTF-8, lone surrogates, huge or cut lengths, indefinite
    _text(b""), _text("é€😀".encode()), _text(b"\xff"), _text(b"\xed\xa0\x80"),
    _text(b"\xc0\x80"), _text(b"\xe2\x82"), _text(b"\xf4\x90\x80\x80"), _text(b"a" * 30),
    b"\x7b" + b"\xff" * 8, b"\x7b\x7f" + b"\xff" * 7, b"\x7a\xff\xff\xff\xff", b"\x65ab",
    b"\x7f\x61a\xff", b"\x40", b"\x43abc", b"\x5b" + b"\xff" * 8, b"\x5f\x41a\xff", b"\x45ab",
    # arrays: empty, of each thing, huge or indefinite counts, nested deep
    b"\x80", b"\x83\x01\x02\x03", b"\x82\x20\x3b" + b"\xff" * 8, b"\x81\xf5", b"\x81\x61a",
    b"\x81\x81\xc4\x82\x00\x01", b"\x81\xa1\x01\x61a", b"\x82\xa1\x01\x61a\xa0",
    b"\x9b" + b"\xff" * 8, b"\x9a\xff\xff\xff\xff", b"\x99\xff\xff", b"\x9f\x01\xff",
    b"\x81" * 70 + b"\x01", b"\x81" * 70 + b"\x80",
    # maps: inner structs, duplicate, unknown and non-int keys, huge or indefinite counts
    b"\xa0", b"\xa1\x01\x61a", b"\xa2\x01\x61a\x02\x05", b"\xa2\x01\x61a\x01\x61b",
    b"\xa2\x01\x61a\x09\x05", b"\xa1\x61\x31\x61a", b"\xa1\x20\x61a", b"\xa1\x41\x01\x61a",
    b"\xa1\xf9\x3c\x00\x61a", b"\xa1\x81\x01\x61a", b"\xa1\x1b" + b"\xff" * 8 + b"\x61a",
    b"\xa1\x19\x00\x01\x61a", b"\xa1\x02\x05", b"\xa2\x02\x05\x02\x05",
    b"\xbb" + b"\xff" * 8, b"\xba\xff\xff\xff\xff\x01", b"\xbf\x01\x61a\xff",
    b"\xa1\x01" * 40 + b"\x61a",
    # tags: decimals at and past the limits, malformed decimals, other tags
    *(_decimal_item(e, m) for e in (0, 6144, -6144, 6145, -6145, 2**63, -(2**64))
      for m in (0, 1, -1, 10**19 - 1, -(10**19) + 1, 10**19, -(10**19), 2**64 - 1)),
    b"\xc4\x82\x00", b"\xc4\x82", b"\xc4", b"\xc4\x81\x00", b"\xc4\x83\x00\x01\x02",
    b"\xc4\x80", b"\xc4\x01", b"\xc4\x9f\x00\x01\xff", b"\xc4\x82\xf5\x01",
    b"\xc4\x82\x00\xc2\x41\x01", b"\xc4\x82\xfb" + bytes(8) + b"\x01",
    b"\xc4\x82\x00\xc4\x82\x00\x01", b"\xd8\x04\x82\x00\x01", b"\xd9\x00\x04\x82\x00\x01",
    b"\xc4\x82\x38\x01\x18\x64", b"\xc2\x41\x01", b"\xc3\x41\x01", b"\xc0\x61a", b"\xc1\x01",
    b"\xc5\x82\x00\x01", b"\xd8\x1e\x82\x01\x02", b"\xd9\xd9\xf7\x01", b"\xdb" + b"\xff" * 8,
    b"\xc6\x01", b"\xd8\x04", b"\xc4\xc4\x82\x00\x01",
]


def _sink_inputs() -> Iterator[bytes]:
    base = dict(_VALID)
    yield _map([(_int(t), v) for t, v in sorted(base.items())])
    yield _map([(_int(t), v) for t, v in sorted(base.items(), reverse=True)])
    for tag in [*_VALID, 8, 9, 10, 11, 12, 13, 24, 300, 70000]:
        for item in _HOSTILE:
            entries = dict(base)
            entries[tag] = item
            yield _map([(_int(t), v) for t, v in sorted(entries.items())])
    for tag in _VALID:  # each required field missing
        yield _map([(_int(t), v) for t, v in sorted(base.items()) if t != tag])
    yield _map([(_int(t), v) for t, v in sorted(base.items())] + [(_int(1), b"\xf4")])
    yield _map([(_int(t), v) for t, v in sorted(base.items())] + [(_int(99), b"\x01")])
    for item in _HOSTILE:  # as the whole message
        yield item


SINK_INPUTS = list(_sink_inputs())


@pytest.mark.parametrize("schema", [SINK_REF, SINK_PARAMS], ids=["struct", "parameters"])
def test_hostile_input_in_every_field(schema: Schema) -> None:
    node, plan = _plans(schema)
    decoded = 0
    for data in SINK_INPUTS:
        for max_depth in (DEPTH, 3, 1):
            if _check_decode(node, plan, data, max_depth) is not FALLBACK:
                decoded += 1
            if max_depth == DEPTH:
                for extra in (b"\x00", b"\xff\xff"):  # bytes after the item are ignored
                    _check_decode(node, plan, data + extra)
    assert decoded > 100  # (the valid messages among them did decode)


@pytest.mark.parametrize("data", [
    _map([(_int(1), _int(2**63 - 1))]), _map([(_int(1), _int(-(2**63)))]),
    _map([(_int(1), _int(2**63))]), _map([(_int(1), _int(-(2**63) - 1))]),
], ids=["max", "min", "max+1", "min-1"])
def test_int64_edges(data: bytes) -> None:
    spec = StructSpec("t.m", None, (FieldSpec(1, "i", INT),))
    node, plan = _plans(spec)
    _check_decode(node, plan, data)


def test_enum_members_at_the_cbor_integer_edges() -> None:
    node, plan = _plans(EDGE)
    for member in Edge:
        data = _int(member.value)
        assert _ctyped.decode(plan, data, DEPTH) is member
        _check_decode(node, plan, data)
        _check_encode(node, plan, member)
        _check_encode(node, plan, Edge(member.value))
    for undeclared in (1, 2, 25, -2, 2**63 - 2, -(2**63) + 1, 2**64 - 2):
        _check_decode(node, plan, _int(undeclared))  # gives up: the open-enum path
        _check_encode(node, plan, Edge(undeclared))  # a pseudo-member: encoded (in range)
    for other in (1, True, Plain.ONE, Currency.GBP, 2**63, MyInt(0)):
        _check_encode(node, plan, other)


def test_decimals_at_the_limits() -> None:
    node, plan = _plans(DECIMAL)
    for exponent in (0, 1, -1, 6143, 6144, 6145, -6143, -6144, -6145):
        for mantissa in (0, 1, -1, 10**19 - 1, 10**19, -(10**19) + 1, -(10**19), 2**64 - 1,
                         -(2**64)):
            got = _check_decode(node, plan, _decimal_item(exponent, mantissa))
            if got is not FALLBACK:
                assert got == decimal.Decimal(mantissa).scaleb(exponent, _cbor.EXACT)
    for value in _DECIMAL_EDGES:
        for sign in (1, -1):
            _check_value(DECIMAL, value.copy_sign(decimal.Decimal(sign)))


def test_decimals_do_not_depend_on_the_thread_s_context() -> None:
    node, plan = _plans(DECIMAL)
    items = [_decimal_item(e, m) for e in (-6144, -3, 0, 5, 6144) for m in (-(10**19) + 1, -5,
                                                                              0, 7, 10**19 - 1)]
    values_ = [decimal.Decimal(t) for t in ("1.5", "-0.001", "1E+6125", "123456789.123456789",
                                            "0E+100", "-7")]
    with decimal.localcontext() as ctx:
        ctx.prec, ctx.Emax, ctx.Emin, ctx.capitals, ctx.clamp = 3, 10, -10, 0, 1
        ctx.traps[decimal.Inexact] = ctx.traps[decimal.Rounded] = True
        for data in items:
            _check_decode(node, plan, data)
        for value in values_:
            _check_encode(node, plan, value)


def test_floats_bit_for_bit() -> None:
    node, plan = _plans(FLOAT)
    patterns = [0, 1 << 63, 0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000,
                0x7FF0000000000001, 0xFFF8DEADBEEF0001, 0x0000000000000001, 0x7FEFFFFFFFFFFFFF]
    for bits in patterns:
        data = b"\xfb" + bits.to_bytes(8, "big")
        got = _check_decode(node, plan, data)
        assert struct.pack(">d", got) == struct.pack(
            ">d", _typed.decode(node, data, DEPTH, _decimal))
        _check_encode(node, plan, got)
    for value in (0.0, -0.0, 1.5, math.nan, -math.nan, math.inf, -math.inf, 5e-324,
                  MyFloat(1.0), 1, True, decimal.Decimal(1)):
        _check_encode(node, plan, value)


def test_strings_and_bytes() -> None:
    node, plan = _plans(STRING)
    for text in ("", "a", "é€😀", "\ud800", "a\udfff", "\udbff\udc00", "x" * 23, "x" * 24,
                 "x" * 255, "x" * 256, "x" * 65536, MyStr("a"), b"a", None):
        _check_value(STRING, text)
    for raw in (b"\xff", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\x80", b"\xe0\x80\x80",
                b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"a\x00b"):
        _check_decode(node, plan, _text(raw))
    bnode, bplan = _plans(BYTES)
    for blob in (b"", b"\x00" * 24, b"\xff" * 70000, bytearray(b"a"), MyBytes(b"a"),
                 memoryview(b"a"), "a"):
        _check_encode(bnode, bplan, blob)


def test_subclasses_bools_and_tuples() -> None:
    card = Card(card_number="4111", expiry_date="10/2030", cvc="123")
    ref = struct_ref(Card)
    value: Any
    for value in (card, _subclass(Card)(card_number="1", expiry_date="2", cvc="3", tags=["a"]),
                  Card(card_number=MyStr("1"), expiry_date="2", cvc="3"),
                  Card(card_number="1", expiry_date="2", cvc="3", tags=("a", "b")),
                  Card(card_number="1", expiry_date="2", cvc="3", tags=()),
                  Card(card_number="1", expiry_date="2", cvc="3", tags=MyList()),
                  Card(card_number="1", expiry_date="2", cvc="3", tags=MyList(["x"])),
                  Card(card_number="1", expiry_date="2", cvc="3", tags=Shuffled(["x", "y"])),
                  Card(card_number="1", expiry_date="2", cvc="3", holder=MyStr("h")),
                  ("1", "2", "3", None, []), None, object()):
        _check_value(ref, value)
    ints = StructSpec("t.m", None, (FieldSpec(1, "i", INT), FieldSpec(2, "b", BOOL),
                                    FieldSpec(3, "l", list_of(INT), [])))
    params: Any
    for params in [(1, True, []), (True, True, []), (1, 1, []), (MyInt(1), False, []),
                   (Plain.ONE, True, []), (1, True, (1, 2)), (1, True, [True]), [1, True, []],
                   MyTuple((1, True, [2])), MyList([1, True, [2]]), (1, True), (1, True, [], 4),
                   (1.0, True, []), {1: 1}, "abc", None]:
        _check_value(ints, params)


def test_a_subclass_overriding_a_field_is_read_through_its_attribute() -> None:
    override = type("Override", (Card,), {"cvc": property(lambda self: "999")})
    obj: Any = object.__new__(override)
    for f in attrs.fields(Card):
        slot = Card.__dict__[f.name]
        slot.__set__(obj, "" if f.name != "tags" else [])
    node, plan = _plans(struct_ref(Card))
    data = _check_encode(node, plan, obj)
    assert data is not None and b"999" in data


class Stateful(tuple[Any, ...]):
    """Parameters whose length and items are not the tuple's own."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: Any) -> Any:
        return "swapped"


def test_parameters_of_a_tuple_subclass_with_its_own_items() -> None:
    spec = StructSpec("t.m", None, (FieldSpec(1, "a", STRING), FieldSpec(2, "b", STRING)))
    node, plan = _plans(spec)
    for value in (Stateful(("x", "y")), Stateful(("x",)), Stateful(("x", "y", "z"))):
        _check_encode(node, plan, value)


def test_a_list_longer_than_max_collection_len() -> None:
    codec = CborCodec(max_collection_len=3)
    schema = list_of(INT)
    node, plan = _plans(schema, codec)
    for count in (0, 3, 4):
        _check_encode(node, plan, list(range(count)))
        _check_encode(node, plan, tuple(range(count)))
        _check_decode(node, plan, _head(4, count) + b"\x01" * count)


def test_defaults_are_fresh_each_time() -> None:
    node, plan = _plans(SINK_PARAMS)
    data = _map([(_int(t), v) for t, v in sorted(_VALID.items())])
    first = _check_decode(node, plan, data)
    second = _ctyped.decode(plan, data, DEPTH)
    assert isinstance(first, tuple) and isinstance(second, tuple)
    for index in (7, 11, 14):  # [], [[Decimal(1)]], []
        assert first[index] == second[index] and first[index] is not second[index]
    assert first[11][0] is not second[11][0]  # a deep copy
    assert first[12] == 7 and first[13] == "dflt"


_KINDS = [BOOL, INT, FLOAT, DECIMAL, STRING, BYTES, EDGE, list_of(STRING), optional(INT)]
WIDE = make_struct([FieldSpec(3 * i + 1, f"w{i}", _KINDS[i % len(_KINDS)],
                              None if i % len(_KINDS) == 8 else MISSING) for i in range(40)],
                   "test.Wide")
HUGE_PARAMS = StructSpec("test.Svc.huge", None, tuple(
    FieldSpec(i, f"p{i}", optional(INT), None) for i in range(1, 301)))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_many_fields(data: st.DataObject) -> None:
    """More fields than the C decoder keeps on its stack (32), and a map head of 2 bytes
    (24 entries or more)."""
    schema = struct_ref(WIDE)
    node, plan = _plans(schema)
    value = data.draw(values(schema))
    _check_value(schema, value)
    encoded = _check_encode(node, plan, value)  # (None for an enum value beyond int64)
    for end in range(len(encoded or b"")):
        _check_decode(node, plan, (encoded or b"")[:end])


def test_a_map_head_of_three_bytes() -> None:
    node, plan = _plans(HUGE_PARAMS)
    for present in (0, 23, 24, 255, 256, 300):
        value = tuple(i if i < present else None for i in range(300))
        encoded = _check_encode(node, plan, value)
        assert encoded is not None
        for end in (*range(12), len(encoded) - 1, len(encoded)):
            _check_decode(node, plan, encoded[:end])


# -- classes built by calling them, and recursive schemas ----------------------------------


def _positive(_instance: Any, _attribute: Any, value: int) -> None:
    if value < 0:
        raise ValueError("negative")


@attrs.frozen(kw_only=True)
class Validated:
    n: int = attrs.field(validator=_positive)
    s: str = ""


@attrs.frozen(kw_only=True)
class PostInit:
    n: int
    s: str = ""

    def __attrs_post_init__(self) -> None:
        if self.s == "boom":
            raise RuntimeError("boom")
        if self.s == "interrupt":
            raise KeyboardInterrupt


@attrs.frozen(kw_only=True)
class Converted:
    n: int = attrs.field(converter=abs)


@attrs.define(kw_only=True)
class Mutable:  # not frozen, not slotted
    n: int
    s: str = ""


for _cls in (Validated, PostInit, Converted, Mutable):
    _fields_of = [FieldSpec(1, "n", INT)] + ([FieldSpec(2, "s", STRING, "")]
                                              if _cls is not Converted else [])
    setattr(_cls, "__rpcx_spec__", StructSpec(f"t.{_cls.__name__}", _cls,  # noqa: B010
                                              tuple(_fields_of)))


@pytest.mark.parametrize("cls", [Validated, PostInit, Converted, Mutable])
def test_structs_built_by_calling_the_class(cls: type) -> None:
    ref = struct_ref(cls)
    node, plan = _plans(ref)
    if cls is not Mutable:
        assert node.setters is None  # built by calling the class (validators, hooks...)
    for n in (1, -1, 0, 2**63, True, MyInt(2)):
        for s in ("", "boom", MyStr("x")):
            fields: dict[str, Any] = {"n": n} if cls is Converted else {"n": n, "s": s}
            try:
                value = cls(**fields)
            except Exception:
                continue
            _check_value(ref, value)
        _check_decode(node, plan, _map([(_int(1), _int(-5))]))
        _check_decode(node, plan, _map([(_int(1), _int(5)), (_int(2), _text(b"boom"))]))
    if cls is PostInit:
        data = _map([(_int(1), _int(5)), (_int(2), _text(b"interrupt"))])
        with pytest.raises(KeyboardInterrupt):
            _typed.decode(node, data, DEPTH, _decimal)
        with pytest.raises(KeyboardInterrupt):
            _ctyped.decode(plan, data, DEPTH)


def _link(depth: int) -> Any:
    value: Any = None
    for i in range(depth):
        value = Link(head=i, tail=value)
    return value


@pytest.mark.parametrize("depth", [1, 2, 10, 62, 63, 64, 65, 100, 150])
def test_a_recursive_schema(depth: int) -> None:
    node, plan = _plans(LINK_REF)
    value = _link(depth)
    data = _check_encode(node, plan, value)
    assert data is not None
    for max_depth in (0, 1, 2, depth - 1, depth, depth + 1, DEPTH, 1000):
        _check_decode(node, plan, data, max_depth)


def test_nesting_beyond_what_the_c_module_follows_gives_up_safely() -> None:
    """Far deeper than any max_depth in use: C must give up (or agree), never crash."""
    node, plan = _plans(LINK_REF)
    for depth in (150, 199, 200, 201, 1000, 20000):
        data = b"\xa2\x01\x00\x02" * depth + b"\xa1\x01\x00"
        for max_depth in (DEPTH, 10**9):
            got = _ctyped.decode(plan, data, max_depth)
            if got is not FALLBACK:  # (_typed may meet Python's recursion limit first)
                expected = _typed.decode(node, data, max_depth, _decimal)
                assert expected is FALLBACK or _same(got, expected)
        value = _link(depth)
        encoded = _ctyped.encode(plan, value)
        if encoded is not FALLBACK:
            expected = _typed.encode(node, value)
            assert expected is FALLBACK or encoded == expected
    nested = list_of(list_of(list_of(INT)))
    lnode, lplan = _plans(nested)
    for data in (b"\x81" * 100000, b"\x9f" * 10, b"\x81\x81\x9b" + b"\xff" * 8):
        _check_decode(lnode, lplan, data, 10**9)


def test_the_deepest_nesting_fits_a_small_thread_stack() -> None:
    """At the most nesting the C module follows, encode and decode fit in a 128 KiB thread
    stack (musl's default; a crash here takes the test process down)."""
    import threading

    _node, plan = _plans(LINK_REF)
    outcomes: list[tuple[int, bool, bool]] = []

    def run() -> None:
        for depth in (150, 199, 200, 1000):
            encoded = _ctyped.encode(plan, _link(depth))
            decoded = _ctyped.decode(plan, b"\xa2\x01\x00\x02" * depth + b"\xa1\x01\x00", 10**9)
            outcomes.append((depth, encoded is FALLBACK, decoded is FALLBACK))

    before = threading.stack_size(128 * 1024)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(before)
    # followed up to its limit (200 levels), given up beyond it
    assert outcomes == [(150, False, False), (199, False, True), (200, True, True),
                        (1000, True, True)]


# -- the per-schema callables (Decoder, Encoder) ------------------------------------------


def test_decoder_is_decode_or_its_slow_path() -> None:
    _, plan = _plans(SINK_REF)
    taken: list[object] = []

    def slow(data: Any) -> Any:
        taken.append(data)
        return FALLBACK

    for max_depth, max_bytes in ((DEPTH, 1 << 20), (2, 1 << 20), (DEPTH, 40)):
        decoder = _ctyped.Decoder(plan, max_depth, max_bytes, slow)
        inputs: list[Any] = [*SINK_INPUTS[::7], b"", bytearray(b"\xa0"), memoryview(b"\xa0")]
        for data in inputs:
            taken.clear()
            expected: object = FALLBACK
            if type(data) is bytes and len(data) <= max_bytes:
                expected = _ctyped.decode(plan, data, max_depth)
            got = decoder(data)
            if expected is FALLBACK:
                assert got is FALLBACK and len(taken) == 1 and taken[0] is data
            else:
                assert not taken and _same(got, expected)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), schema=c_schemas())
def test_encoder_is_encode_or_its_slow_path(data: st.DataObject, schema: TypeRef) -> None:
    _, plan = _plans(schema)
    value = data.draw(_wild(schema))
    for max_bytes in (1 << 20, 8):
        taken: list[object] = []

        def slow(value: Any) -> bytes:
            taken.append(value)  # noqa: B023 - (called before the loop moves on)
            return b"<slow>"

        expected = _ctyped.encode(plan, value)
        got = _ctyped.Encoder(plan, DEPTH, max_bytes, slow)(value)
        if isinstance(expected, bytes) and len(expected) <= max_bytes:
            assert got == expected and not taken
        else:
            assert got == b"<slow>" and len(taken) == 1 and taken[0] is value


def test_the_callables_let_a_keyboard_interrupt_through() -> None:
    node, plan = _plans(struct_ref(PostInit))
    data = _map([(_int(1), _int(5)), (_int(2), _text(b"interrupt"))])
    with pytest.raises(KeyboardInterrupt):
        _ctyped.Decoder(plan, DEPTH, 1 << 20, lambda data: FALLBACK)(data)

    class Interrupting(PostInit):
        @property
        def s(self) -> str:
            raise KeyboardInterrupt

    value = object.__new__(Interrupting)
    PostInit.__dict__["n"].__set__(value, 1)  # (s is the property's)
    with pytest.raises(KeyboardInterrupt):
        _ctyped.Encoder(plan, DEPTH, 1 << 20, lambda value: b"")(value)
    with pytest.raises(KeyboardInterrupt):
        _typed.encode(node, value)


# -- leaks ---------------------------------------------------------------------------------


def _growth(step: Callable[[], object], rounds: int = 20_000) -> int:
    """Bytes still allocated after ``rounds`` calls of ``step`` (after a warm-up)."""
    for _ in range(500):
        step()
    gc.collect()
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            step()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("case", ["round_trip", "give_up", "callables"])
def test_no_leaks(case: str) -> None:
    """20,000 rounds of a case leave no memory behind (tracemalloc sees the C module's
    PyMem allocations and every object) and no references to the shared objects."""
    node, plan = _plans(SINK_REF)
    sink = Sink(b=True, i=-7, f=2.5, d=decimal.Decimal("3.99"), s="card", y=b"xyz",
                e=Edge.MAX64, li=[1, 2], o="o", n=None, k=Inner(s="in", n=3),
                ll=[[decimal.Decimal("1.5")]], lk=[Inner(s="a")], oe=Edge.ZERO)
    odd = Sink(b=True, i=-7, f=2.5, d=decimal.Decimal("3.99"), s="card", y=b"xyz",
               e=Edge.ZERO, k=_subclass(Inner)(s="x"), lk=MyList([Inner(s=MyStr("a"))]))
    data = _typed.encode(node, sink)
    assert isinstance(data, bytes)
    params_node, params_plan = _plans(SINK_PARAMS)
    params = _typed.decode(params_node, data, DEPTH, _decimal)
    assert isinstance(params, tuple)
    cut = data[:-3]
    junk = bytes(range(256))
    tracked: list[Any] = [FALLBACK, Sink, Inner, Edge.MAX65, Edge.ZERO, plan, params_plan,
                          node.fields[11].default, node.fields[13].default, decimal.Decimal,
                          data]

    minimal = _map([(_int(t), v) for t, v in sorted(_VALID.items())])  # defaults for the rest

    def round_trip() -> None:
        assert _ctyped.encode(plan, _ctyped.decode(plan, data, DEPTH)) == data
        assert _ctyped.encode(params_plan, _ctyped.decode(params_plan, data, DEPTH)) == data
        assert _ctyped.decode(plan, minimal, DEPTH) is not FALLBACK
        assert _ctyped.decode(params_plan, minimal, DEPTH) is not FALLBACK

    decoder = _ctyped.Decoder(plan, DEPTH, 1 << 20, lambda data: FALLBACK)
    encoder = _ctyped.Encoder(plan, DEPTH, 1 << 20, lambda value: b"")

    def callables() -> None:
        assert encoder(decoder(data)) == data
        assert decoder(cut) is FALLBACK
        assert encoder(odd) == b""

    def give_up() -> None:
        assert _ctyped.decode(plan, cut, DEPTH) is FALLBACK
        assert _ctyped.encode(plan, odd) is not None
        assert _ctyped.decode(params_plan, junk, DEPTH) is FALLBACK
        assert _ctyped.encode(params_plan, params[:-1]) is FALLBACK
        _ctyped.decode(plan, data, 2)

    step = {"round_trip": round_trip, "give_up": give_up, "callables": callables}[case]
    step()
    gc.collect()
    counts = [sys.getrefcount(obj) for obj in tracked]
    growth = _growth(step)
    assert growth < 64 * 1024, f"{growth} bytes more after 20,000 rounds"
    gc.collect()
    assert [sys.getrefcount(obj) for obj in tracked] == counts


def test_prepare_does_not_leak_and_plans_are_freed() -> None:
    node = _node(SINK_REF)
    map_node = _node(struct_ref(make_struct_once()))
    assert node is not None and map_node is not None

    def prepare() -> None:
        plan = _ctyped.prepare(node, FALLBACK, decimal.Decimal)
        assert plan is not None
        assert _ctyped.prepare(map_node, FALLBACK, decimal.Decimal) is None

    prepare()
    gc.collect()
    counts = [sys.getrefcount(obj) for obj in (Sink, Inner, Edge, FALLBACK)]
    assert _growth(prepare, 2_000) < 64 * 1024
    gc.collect()
    assert [sys.getrefcount(obj) for obj in (Sink, Inner, Edge, FALLBACK)] == counts


_WITH_MAP: list[type] = []


def make_struct_once() -> type:
    if not _WITH_MAP:
        _WITH_MAP.append(make_struct([FieldSpec(1, "a", INT),
                                      FieldSpec(2, "m", map_of(INT, INT), {})]))
    return _WITH_MAP[0]



# -- review findings ----------------------------------------------------------------------


@attrs.define(slots=True, kw_only=True)
class DictStruct(dict):  # type: ignore[type-arg]
    """A struct class built on dict: object.__new__ refuses it, so no path may build it by
    writing its slots (an instance without dict's own construction crashes when used)."""

    a: int


setattr(DictStruct, "__rpcx_spec__",  # noqa: B010
        StructSpec("test.DictStruct", DictStruct, (FieldSpec(1, "a", INT),)))


def test_a_struct_on_a_built_in_base_is_built_by_its_class() -> None:
    node, plan = _plans(struct_ref(DictStruct))
    assert node.setters is None
    value = _check_decode(node, plan, b"\xa1\x01\x05", DEPTH)
    assert isinstance(value, DictStruct) and value.a == 5
    assert "x" not in value and len(value) == 0  # a working dict


def test_a_parameter_list_that_shrinks_while_it_is_encoded_gives_up() -> None:
    node, plan = _plans(PARAMS_WITH_A_LIST)
    params: list[Any] = []

    class Shrinking(list):  # type: ignore[type-arg]
        def __bool__(self) -> bool:
            params.clear()
            return False

    params[:] = [Shrinking(), 1, "x"]
    assert _ctyped.encode(plan, params) is FALLBACK
    params[:] = [Shrinking(), 1, "x"]
    assert _typed.encode(node, params) is FALLBACK


PARAMS_WITH_A_LIST = StructSpec("test.Svc.shrink", None, (
    FieldSpec(1, "items", list_of(INT), []), FieldSpec(2, "n", INT), FieldSpec(3, "s", STRING)))


def test_a_class_holding_its_own_decoder_is_collected() -> None:
    """Plans and the per-schema callables take part in garbage collection: a cycle
    through them (a class keeping its decoder) does not keep the class alive."""
    def make() -> weakref.ref[type]:
        cls = make_struct([FieldSpec(1, "a", INT)], "test.Cyclic")
        decoder = CborCodec().decoder(struct_ref(cls))
        assert decoder(b"\xa1\x01\x05").a == 5
        cls.decode = staticmethod(decoder)
        return weakref.ref(cls)

    refs = [make() for _ in range(20)]
    gc.collect()
    assert sum(ref() is not None for ref in refs) == 0


@pytest.mark.parametrize("max_depth", [-(2**63), -1, 0, 1, 2, 202, 2**62, 2**63 - 1])
def test_any_max_depth_is_taken_safely(max_depth: int) -> None:
    node, plan = _plans(LINK_REF)
    data = b"\xa2\x01\x00\x02\xa1\x01\x00"
    _check_decode(node, plan, data, max_depth)
    decoder = _ctyped.Decoder(plan, max_depth, 1 << 20, lambda d: FALLBACK)
    got = decoder(data)
    expected = _typed.decode(node, data, max_depth, _decimal)
    assert (got is FALLBACK and expected is FALLBACK) or _same(got, expected)


def test_encoding_a_non_ascii_string_keeps_no_copy_on_it() -> None:
    node, plan = _plans(struct_ref(DictFree))
    text = "é" * 1000
    before = sys.getsizeof(text)
    _check_encode(node, plan, DictFree(s=text))
    assert sys.getsizeof(text) == before  # (PyUnicode_AsUTF8AndSize would cache UTF-8)


@attrs.define(slots=True, kw_only=True)
class DictFree:
    s: str


setattr(DictFree, "__rpcx_spec__",  # noqa: B010
        StructSpec("test.DictFree", DictFree, (FieldSpec(1, "s", STRING),)))
