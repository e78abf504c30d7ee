"""What generated modules are built from.

Generated code imports only this module (plus the standard library and its sibling
generated modules), so its imports sort the same in any project. Everything here is a
stable interface for generated code; application code normally uses :mod:`rpcx` instead.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from attrs import define as define
from attrs import field as field
from attrs import frozen as frozen

from rpcx.errors import DeclaredError as DeclaredError
from rpcx.runtime.streams import BidiStream as BidiStream
from rpcx.runtime.streams import ClientStream as ClientStream
from rpcx.runtime.streams import ServerStream as ServerStream
from rpcx.schema import BOOL as BOOL
from rpcx.schema import BYTES as BYTES
from rpcx.schema import DECIMAL as DECIMAL
from rpcx.schema import FLOAT as FLOAT
from rpcx.schema import INT as INT
from rpcx.schema import STRING as STRING
from rpcx.schema import TIMESTAMP as TIMESTAMP
from rpcx.schema import EnumSpec as EnumSpec
from rpcx.schema import FieldSpec as FieldSpec
from rpcx.schema import MethodSpec as MethodSpec
from rpcx.schema import OpenEnum as OpenEnum
from rpcx.schema import ServiceSpec as ServiceSpec
from rpcx.schema import StructSpec as StructSpec
from rpcx.schema import UnionSpec as UnionSpec
from rpcx.schema import enum_ref as enum_ref
from rpcx.schema import list_of as list_of
from rpcx.schema import map_of as map_of
from rpcx.schema import optional as optional
from rpcx.schema import struct_ref as struct_ref
from rpcx.schema import union_ref as union_ref
from rpcx.status import Status as Status

__all__ = [
    "BOOL", "BYTES", "DECIMAL", "FLOAT", "INT", "STRING", "TIMESTAMP",
    "BidiStream", "ClientStream", "DeclaredError", "EnumSpec", "FieldSpec", "Invoker",
    "MethodSpec", "OpenEnum", "ServerStream", "ServiceSpec", "Status", "StructSpec",
    "UnionSpec", "attach", "check_one_variant", "define",
    "enum_ref", "field", "frozen", "list_of", "map_of", "optional", "struct_ref", "union_ref",
]


class Invoker(Protocol):
    """What a generated client stub calls: a channel (:class:`rpcx.Channel`), or any object
    with these two methods (an in-process channel for tests, a gateway, a recorder)."""

    async def call(self, method: MethodSpec, args: tuple[Any, ...], *,
                   timeout: float | None = None,
                   metadata: Mapping[str, str] | None = None) -> Any:
        """Make a unary call: send ``args`` (in parameter order), wait for the result,
        return it or raise the error the server reported."""
        ...

    async def call_oneway(self, method: MethodSpec, args: tuple[Any, ...], *,
                          timeout: float | None = None,
                          metadata: Mapping[str, str] | None = None) -> None:
        """Send a one-way call: no reply, no error from the handler, no retry."""
        ...


def attach(cls: type[Any], spec: EnumSpec | StructSpec | UnionSpec | ServiceSpec) -> None:
    """Attach a schema descriptor to a generated class (read back with ``spec_of``)."""
    type.__setattr__(cls, "__rpcx_spec__", spec)


_VARIANT_GETTERS: dict[type, tuple[tuple[str, ...], Callable[[object], tuple[Any, ...]]]] = {}


def check_one_variant(union: object) -> None:
    """Called by a generated union's ``__attrs_post_init__``: exactly one variant is set.

    Runs for every union built, decoded ones included, so the variant names and one
    C-level getter for all of them are worked out once per class."""
    cls = type(union)
    found = _VARIANT_GETTERS.get(cls)
    if found is None:
        names = tuple(a.name for a in getattr(cls, "__attrs_attrs__", ()))
        getter: Callable[[object], tuple[Any, ...]]
        if not names:
            getter = lambda obj: ()  # noqa: E731
        elif len(names) == 1:
            single = operator.attrgetter(names[0])
            getter = lambda obj: (single(obj),)  # noqa: E731
        else:
            getter = operator.attrgetter(*names)
        found = _VARIANT_GETTERS[cls] = (names, getter)
    names, getter = found
    values = getter(union)
    if len(values) - values.count(None) != 1:
        set_names = [n for n, v in zip(names, values, strict=True) if v is not None]
        got = ", ".join(set_names) if set_names else "none"
        raise ValueError(
            f"{cls.__name__}: exactly one of {', '.join(names)} must be set, got {got}")
