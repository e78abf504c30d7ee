"""Schema → plan (a tree of ``rpcx.codec._typed.Node``), for the typed CBOR path.

A plan says, node by node, what the generated converters of ``rpcx.codec._compile`` do
for a CBOR codec: the checks, which fields are left out when empty or None, the defaults
of absent fields, how a struct is built. ``rpcx.codec._typed`` follows it to go from typed
values to bytes and back in one step. What the plan does not describe itself (maps,
unions, timestamps) it hands to the ordinary converters (``K_CONVERT``).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from rpcx.codec import _typed
from rpcx.codec._compile import _slot_setters
from rpcx.codec._typed import Field, Node
from rpcx.schema import EnumSpec, FieldSpec, Kind, StructSpec, TypeRef, spec_of

if TYPE_CHECKING:
    from rpcx.codec._limits import ConverterCache

__all__ = ["plan"]

_SCALARS = {
    Kind.BOOL: _typed.K_BOOL,
    Kind.INT: _typed.K_INT,
    Kind.FLOAT: _typed.K_FLOAT,
    Kind.DECIMAL: _typed.K_DECIMAL,
    Kind.STRING: _typed.K_STRING,
    Kind.BYTES: _typed.K_BYTES,
}


class _Planner:
    def __init__(self, encoders: ConverterCache, decoders: ConverterCache,
                 max_len: int) -> None:
        self.encoders = encoders
        self.decoders = decoders
        self.max_len = max_len
        self.structs: dict[int, tuple[StructSpec, Node]] = {}

    def node(self, t: TypeRef) -> Node:
        kind = t.kind
        scalar = _SCALARS.get(kind)
        if scalar is not None:
            return Node(scalar)
        if kind is Kind.OPTIONAL:
            assert t.item is not None
            node = Node(_typed.K_OPTIONAL)
            node.item = self.node(t.item)
            return node
        if kind is Kind.LIST:
            assert t.item is not None
            node = Node(_typed.K_LIST)
            node.item = self.node(t.item)
            node.max_len = self.max_len
            return node
        spec = spec_of(t.cls) if kind in (Kind.ENUM, Kind.STRUCT) and t.cls is not None \
            else None
        if kind is Kind.ENUM and isinstance(spec, EnumSpec):
            node = Node(_typed.K_ENUM)
            node.cls = spec.cls
            node.by_value = {member.value: member for member in spec.cls}
            return node
        if kind is Kind.STRUCT and isinstance(spec, StructSpec):
            return self.struct(spec)
        # maps, unions, timestamps (and a reference whose class is not what its kind
        # says, which the ordinary converters handle as they always have): the ordinary
        # converters, around plain CBOR
        node = Node(_typed.K_CONVERT)
        node.enc = self.encoders.get(t)
        node.dec = self.decoders.get(t)
        return node

    def struct(self, spec: StructSpec) -> Node:
        known = self.structs.get(id(spec))
        if known is not None:
            return known[1]
        node = Node(_typed.K_STRUCT)
        self.structs[id(spec)] = (spec, node)  # before the fields: recursive schemas
        node.cls = spec.cls
        node.fields = [self.field(i, f) for i, f in enumerate(spec.fields)]
        node.by_tag = {f.tag: i for i, f in enumerate(spec.fields)}
        if spec.cls is not None:
            setters = _slot_setters(spec.cls, [f.py_name for f in spec.fields])
            if setters is not None:
                node.setters = list(setters)
                node.new = object.__new__
        return node

    def field(self, index: int, f: FieldSpec) -> Field:
        default: Any = f.default
        optional = f.type.kind is Kind.OPTIONAL
        omit = 0
        if not optional and isinstance(default, list | dict) and not default:
            omit = 1 if isinstance(default, list) else 2
        if default is None or type(default) in (bool, int, str, bytes):
            default_kind = _typed.DEFAULT_CONST
        elif isinstance(default, list | dict):
            if default:
                default_kind = _typed.DEFAULT_COPY
            else:
                default_kind = _typed.DEFAULT_LIST if isinstance(default, list) \
                    else _typed.DEFAULT_DICT
        else:
            default_kind = _typed.DEFAULT_CONST
        return Field(f.py_name, index, f.tag, self.node(f.type), optional=optional,
                     null_if_none=optional and default is not None, omit_empty=omit,
                     required=f.required, default=None if f.required else default,
                     default_kind=default_kind, copy=copy.deepcopy)


def plan(schema: TypeRef | StructSpec, encoders: ConverterCache, decoders: ConverterCache,
         max_len: int) -> Node | None:
    """The plan of ``schema`` for a CBOR codec with these converters and
    ``max_collection_len``; None where the typed path would gain nothing (the top level
    is itself converted by the ordinary converters)."""
    planner = _Planner(encoders, decoders, max_len)
    node = planner.struct(schema) if isinstance(schema, StructSpec) else planner.node(schema)
    return None if node.kind == _typed.K_CONVERT else node
