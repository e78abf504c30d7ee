"""Runtime schema descriptors.

Generated modules build these from the IDL; codecs, the runtime, reflection and tools read
them. They describe the wire shape of every type: which tag each field has, its type, its
default. They hold no behaviour beyond small lookups.

Python representation of each kind:

========== =====================================================
kind       Python value
========== =====================================================
BOOL       ``bool``
INT        ``int`` in the signed 64-bit range
FLOAT      ``float``
DECIMAL    ``decimal.Decimal`` (finite)
STRING     ``str``
BYTES      ``bytes``
TIMESTAMP  timezone-aware ``datetime.datetime``
LIST       ``list``
MAP        ``dict`` with ``str``, ``int`` or enum keys
OPTIONAL   the inner value or ``None``
ENUM       the generated :class:`OpenEnum` subclass
STRUCT     the generated attrs class (``cls``), or a ``tuple`` of field values in
           declaration order when ``cls`` is None (method parameters)
UNION      the generated attrs class, exactly one variant attribute not None
========== =====================================================
"""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs

__all__ = [
    "BOOL",
    "BYTES",
    "DECIMAL",
    "FLOAT",
    "INT",
    "MISSING",
    "STRING",
    "TIMESTAMP",
    "EnumSpec",
    "FieldSpec",
    "Kind",
    "MethodSpec",
    "OpenEnum",
    "ServiceSpec",
    "StructSpec",
    "TypeRef",
    "UnionSpec",
    "enum_ref",
    "list_of",
    "map_of",
    "optional",
    "spec_of",
    "struct_ref",
    "union_ref",
]


class Kind(enum.Enum):
    """The kinds of IDL type."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    DECIMAL = "decimal"
    STRING = "string"
    BYTES = "bytes"
    TIMESTAMP = "timestamp"
    LIST = "list"
    MAP = "map"
    OPTIONAL = "optional"
    ENUM = "enum"
    STRUCT = "struct"
    UNION = "union"


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""Marks a field with no default: absent on the wire is an error."""


class OpenEnum(enum.IntEnum):
    """Base of generated enums.

    A value the reader does not know (a newer writer added it) does not fail: it becomes a
    pseudo-member named ``UNKNOWN_<value>`` that compares equal to the number and encodes
    back to the same number, so a message passes through an old reader unchanged. Such a
    pseudo-member is not listed by iteration.
    """

    @classmethod
    def _missing_(cls, value: object) -> OpenEnum | None:
        if type(value) is not int:
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        """False for a pseudo-member made from a value this schema does not declare."""
        return self._name_ in type(self).__members__


@attrs.frozen
class TypeRef:
    """A reference to a type: a primitive kind, a container, or a named type (``cls``)."""

    kind: Kind
    item: TypeRef | None = None
    """Element of a LIST, value of a MAP, inner type of an OPTIONAL."""
    key: TypeRef | None = None
    """Key of a MAP."""
    cls: type[Any] | None = attrs.field(default=None, eq=False)
    """The generated class of an ENUM, STRUCT or UNION; its ``__rpcx_spec__`` is the spec."""

    def describe(self) -> str:
        """The type as written in IDL: ``list<string>``, ``payments.Card?``."""
        if self.kind is Kind.LIST:
            assert self.item is not None
            return f"list<{self.item.describe()}>"
        if self.kind is Kind.MAP:
            assert self.item is not None and self.key is not None
            return f"map<{self.key.describe()}, {self.item.describe()}>"
        if self.kind is Kind.OPTIONAL:
            assert self.item is not None
            return f"{self.item.describe()}?"
        if self.cls is not None:
            return str(spec_of(self.cls).name)
        return str(self.kind.value)


@attrs.frozen
class FieldSpec:
    """A field of a struct, union or error, or a method parameter."""

    tag: int
    name: str
    """The IDL name: the JSON key and what error paths show."""
    type: TypeRef
    default: Any = MISSING
    """The default when absent on the wire; ``MISSING`` for a required field. Optional
    fields without an explicit default have ``None``. List and map defaults are copied."""
    py_name: str = attrs.field()
    """The Python attribute or parameter name (the IDL name, escaped if needed)."""
    doc: str = ""

    @py_name.default
    def _py_name_default(self) -> str:
        return self.name

    @property
    def required(self) -> bool:
        return self.default is MISSING


@attrs.frozen
class EnumSpec:
    name: str
    """Qualified name, ``payments.Currency``."""
    cls: type[OpenEnum] = attrs.field(eq=False)
    doc: str = ""


@attrs.frozen
class StructSpec:
    """A struct, an error (``is_error``), or a method's parameter list (``cls`` is None)."""

    name: str
    cls: type[Any] | None = attrs.field(eq=False)
    fields: tuple[FieldSpec, ...]
    is_error: bool = False
    doc: str = ""


@attrs.frozen
class UnionSpec:
    name: str
    cls: type[Any] = attrs.field(eq=False)
    variants: tuple[FieldSpec, ...]
    doc: str = ""


@attrs.frozen
class MethodSpec:
    name: str
    """The method name as in IDL, ``process_payment``."""
    service: str
    """Qualified service name, ``payments.Payments``."""
    params: StructSpec
    result: TypeRef | None
    """None for a method that returns nothing (and for oneway methods)."""
    throws: tuple[type[Any], ...] = attrs.field(default=(), eq=False)
    """Generated exception classes (each with ``__rpcx_spec__``) the method may raise."""
    oneway: bool = False
    idempotent: bool = False
    deadline: float | None = None
    """Default deadline in seconds from ``@deadline``."""
    deprecated: str | None = None
    doc: str = ""
    readonly: bool = False
    """From ``@readonly``: changes nothing (a replicated service serves it without the
    log; see docs/replication.md). A readonly method is also idempotent."""
    client_stream: FieldSpec | None = None
    """The ``stream T`` parameter of a client-streaming or bidirectional method (its type
    is the item type ``T``); not in ``params``, whose values go in the REQUEST."""
    server_stream: bool = False
    """``-> stream T``: the method answers with a stream of ``result`` items."""
    py_name: str = attrs.field()

    @py_name.default
    def _py_name_default(self) -> str:
        return self.name

    @property
    def path(self) -> str:
        """The wire name, ``payments.Payments/process_payment``."""
        return f"{self.service}/{self.name}"

    @property
    def streaming(self) -> str | None:
        """None for a unary or one-way method, else ``"server"``, ``"client"`` or
        ``"bidi"``."""
        if self.client_stream is None:
            return "server" if self.server_stream else None
        return "bidi" if self.server_stream else "client"


@attrs.frozen
class ServiceSpec:
    name: str
    """Qualified name, ``payments.Payments``."""
    methods: tuple[MethodSpec, ...]
    doc: str = ""

    def method(self, name: str) -> MethodSpec | None:
        for m in self.methods:
            if m.name == name:
                return m
        return None


def spec_of(cls: type[Any]) -> EnumSpec | StructSpec | UnionSpec | ServiceSpec:
    """The schema descriptor of a generated class (a service's client or base class gives
    the ServiceSpec)."""
    spec = getattr(cls, "__rpcx_spec__", None)
    if not isinstance(spec, EnumSpec | StructSpec | UnionSpec | ServiceSpec):
        raise TypeError(f"{cls!r} is not an rpcx generated type")
    return spec


BOOL: Final = TypeRef(Kind.BOOL)
INT: Final = TypeRef(Kind.INT)
FLOAT: Final = TypeRef(Kind.FLOAT)
DECIMAL: Final = TypeRef(Kind.DECIMAL)
STRING: Final = TypeRef(Kind.STRING)
BYTES: Final = TypeRef(Kind.BYTES)
TIMESTAMP: Final = TypeRef(Kind.TIMESTAMP)


def list_of(item: TypeRef) -> TypeRef:
    return TypeRef(Kind.LIST, item=item)


def map_of(key: TypeRef, value: TypeRef) -> TypeRef:
    return TypeRef(Kind.MAP, item=value, key=key)


def optional(item: TypeRef) -> TypeRef:
    return TypeRef(Kind.OPTIONAL, item=item)


def enum_ref(cls: type[OpenEnum]) -> TypeRef:
    return TypeRef(Kind.ENUM, cls=cls)


def struct_ref(cls: type[Any]) -> TypeRef:
    """A reference to a generated struct or error class."""
    return TypeRef(Kind.STRUCT, cls=cls)


def union_ref(cls: type[Any]) -> TypeRef:
    return TypeRef(Kind.UNION, cls=cls)
