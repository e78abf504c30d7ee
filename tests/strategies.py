"""Hypothesis strategies for random rpcx schemas and values of them.

``schemas()`` draws a random type: primitives, enums, structs (with optional and defaulted
fields), unions, lists, maps and optionals, nested. Each enum, struct and union is a fresh
class built with :func:`attrs.make_class` (frozen, slotted, keyword-only, like generated
code) with ``__rpcx_spec__`` attached. ``values(t)`` draws a valid Python value of a type.

Exclusions, and why:

- NaN floats are left out of ``values`` (NaN != NaN would fail ``==`` round trips); the
  tests check NaN and the infinities separately.
- Recursive schemas are not generated (a struct would need its class before its spec);
  ``tests/codec/test_roundtrip.py`` has a hand-written recursive one.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from typing import Any

import attrs
from hypothesis import strategies as st

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
    UnionSpec,
    enum_ref,
    list_of,
    map_of,
    optional,
    spec_of,
    struct_ref,
    union_ref,
)

__all__ = ["attach_enum", "decimals", "enums", "make_enum", "make_struct", "make_union", "schemas",
           "struct_schemas", "timestamps", "values"]

_ids = itertools.count()
_EXACT = decimal.Context(prec=60, Emax=100_000, Emin=-100_000, traps=[decimal.Inexact])


def make_enum(members: dict[str, int], name: str | None = None) -> type[OpenEnum]:
    """A fresh OpenEnum subclass with ``__rpcx_spec__``."""
    qual = name or f"test.E{next(_ids)}"
    functional: Any = OpenEnum  # the functional Enum API, which mypy does not model
    cls: type[OpenEnum] = functional(qual.rsplit(".", 1)[-1], members)
    return attach_enum(cls, qual)


def attach_enum(cls: type[OpenEnum], name: str) -> type[OpenEnum]:
    """Attach an EnumSpec to a hand-written OpenEnum subclass."""
    setattr(cls, "__rpcx_spec__", EnumSpec(name, cls))  # noqa: B010 - not a declared attribute
    return cls


def _attr(field: FieldSpec) -> Any:
    if field.default is MISSING:
        return attrs.field()
    if isinstance(field.default, list | dict):
        return attrs.field(factory=type(field.default))
    return attrs.field(default=field.default)


def make_struct(fields: list[FieldSpec], name: str | None = None,
                is_error: bool = False) -> type[Any]:
    """A fresh frozen attrs class for the fields, with its StructSpec attached."""
    qual = name or f"test.S{next(_ids)}"
    # attrs wants fields without defaults first unless kw_only; kw_only is what codegen uses.
    cls = attrs.make_class(qual.rsplit(".", 1)[-1], {f.py_name: _attr(f) for f in fields},
                           frozen=True, slots=True, kw_only=True)
    setattr(cls, "__rpcx_spec__", StructSpec(qual, cls, tuple(fields), is_error=is_error))  # noqa: B010
    return cls


def make_union(variants: list[FieldSpec], name: str | None = None) -> type[Any]:
    qual = name or f"test.U{next(_ids)}"
    cls = attrs.make_class(qual.rsplit(".", 1)[-1],
                           {f.py_name: attrs.field(default=None) for f in variants},
                           frozen=True, slots=True, kw_only=True)
    setattr(cls, "__rpcx_spec__", UnionSpec(qual, cls, tuple(variants)))  # noqa: B010
    return cls


_PRIMITIVES = [BOOL, INT, FLOAT, DECIMAL, STRING, BYTES, TIMESTAMP]
_SIMPLE_DEFAULTS: dict[Kind, object] = {Kind.BOOL: False, Kind.INT: 0, Kind.STRING: "",
                                        Kind.FLOAT: 0.5}


def enums() -> st.SearchStrategy[TypeRef]:
    values = st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=4, unique=True)
    return values.map(lambda vs: enum_ref(make_enum({f"M{v & 0xFFFFFFFF}": v for v in vs})))


def _fields(children: st.SearchStrategy[TypeRef], *, union: bool
            ) -> st.SearchStrategy[list[FieldSpec]]:
    @st.composite
    def build(draw: st.DrawFn) -> list[FieldSpec]:
        count = draw(st.integers(1 if union else 0, 5))
        tags = draw(st.lists(st.integers(1, 536870911), min_size=count, max_size=count,
                             unique=True))
        fields = []
        for i, tag in enumerate(tags):
            t = draw(children)
            if union:
                if t.kind is Kind.OPTIONAL:
                    assert t.item is not None
                    t = t.item
                fields.append(FieldSpec(tag, f"v{i}", t))
                continue
            default: object = MISSING
            if t.kind is Kind.OPTIONAL:
                default = None
            elif t.kind in (Kind.LIST, Kind.MAP) and draw(st.booleans()):
                default = [] if t.kind is Kind.LIST else {}
            elif t.kind in _SIMPLE_DEFAULTS and draw(st.booleans()):
                default = _SIMPLE_DEFAULTS[t.kind]
            fields.append(FieldSpec(tag, f"f{i}", t, default))
        return fields

    return build()


def _extend(children: st.SearchStrategy[TypeRef]) -> st.SearchStrategy[TypeRef]:
    keys = st.one_of(st.just(STRING), st.just(INT), enums())
    non_optional = children.filter(lambda t: t.kind is not Kind.OPTIONAL)
    return st.one_of(
        children.map(list_of),
        st.builds(map_of, keys, children),
        non_optional.map(optional),
        _fields(children, union=False).map(lambda fs: struct_ref(make_struct(fs))),
        _fields(children, union=True).map(lambda fs: union_ref(make_union(fs))),
    )


def schemas(max_leaves: int = 8) -> st.SearchStrategy[TypeRef]:
    """Random types, nested up to a few levels."""
    base = st.one_of(st.sampled_from(_PRIMITIVES), enums())
    return st.recursive(base, _extend, max_leaves=max_leaves)


def struct_schemas() -> st.SearchStrategy[StructSpec]:
    """Random parameter lists (``cls`` is None: values are tuples)."""
    return _fields(schemas(6), union=False).map(
        lambda fs: StructSpec(f"test.Svc.m{next(_ids)}", None, tuple(fs)))


def decimals() -> st.SearchStrategy[decimal.Decimal]:
    """Finite decimals within the codec limits (19 digits, exponent ±6144)."""
    return st.builds(lambda m, e: decimal.Decimal(m).scaleb(e, _EXACT),
                     st.integers(-(10**19) + 1, 10**19 - 1),
                     st.one_of(st.integers(-12, 12), st.integers(-6144, 6144)))


def timestamps() -> st.SearchStrategy[dt.datetime]:
    offsets = st.integers(-23 * 60, 23 * 60).map(
        lambda m: dt.timezone(dt.timedelta(minutes=m)))
    return st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1),
                        timezones=st.one_of(st.just(dt.UTC), offsets))


def _enum_values(cls: type[OpenEnum]) -> st.SearchStrategy[OpenEnum]:
    unknown = st.integers(-(2**63), 2**63 - 1).map(cls)
    return st.one_of(st.sampled_from(list(cls)), unknown)


def values(t: TypeRef) -> st.SearchStrategy[Any]:
    """Valid values of a type (no NaN)."""
    k = t.kind
    if k is Kind.BOOL:
        return st.booleans()
    if k is Kind.INT:
        return st.integers(-(2**63), 2**63 - 1)
    if k is Kind.FLOAT:
        return st.floats(allow_nan=False)
    if k is Kind.DECIMAL:
        return decimals()
    if k is Kind.STRING:
        return st.text(max_size=20)
    if k is Kind.BYTES:
        return st.binary(max_size=20)
    if k is Kind.TIMESTAMP:
        return timestamps()
    if k is Kind.LIST:
        assert t.item is not None
        return st.lists(values(t.item), max_size=4)
    if k is Kind.MAP:
        assert t.item is not None and t.key is not None
        return st.dictionaries(values(t.key), values(t.item), max_size=4)
    if k is Kind.OPTIONAL:
        assert t.item is not None
        return st.one_of(st.none(), values(t.item))
    assert t.cls is not None
    spec = spec_of(t.cls)
    if isinstance(spec, EnumSpec):
        return _enum_values(spec.cls)
    if isinstance(spec, StructSpec):
        return struct_values(spec)
    assert isinstance(spec, UnionSpec)
    return st.one_of([_variant_values(spec.cls, v) for v in spec.variants])


def _variant_values(cls: type[Any], variant: FieldSpec) -> st.SearchStrategy[Any]:
    return values(variant.type).map(lambda x: cls(**{variant.py_name: x}))


def struct_values(spec: StructSpec) -> st.SearchStrategy[Any]:
    """Values of a struct (an instance) or of a parameter list (a tuple)."""
    parts = st.tuples(*(values(f.type) for f in spec.fields))
    if spec.cls is None:
        return parts
    cls = spec.cls
    names = [f.py_name for f in spec.fields]
    return parts.map(lambda vs: cls(**dict(zip(names, vs, strict=True))))
