"""The checked, resolved IR that the compiler produces and code generation consumes.

Every name here is already resolved: a named type carries the qualified name of its
declaration (``payments.Card``) and the module that declares it. Nothing in the model can
be invalid; the checker guarantees that before it is built.
"""

from __future__ import annotations

import datetime
import decimal

import attrs

from rpcx.compiler.diagnostics import Span
from rpcx.schema import Kind

__all__ = [
    "Decl",
    "EnumDecl",
    "EnumMember",
    "EnumValue",
    "Field",
    "File",
    "Import",
    "Method",
    "ModelType",
    "NO_DEFAULT",
    "ServiceDecl",
    "StructDecl",
    "UnionDecl",
    "Value",
]


@attrs.frozen
class EnumValue:
    """A default that names an enum member."""

    enum: str
    """Qualified enum name."""
    member: str
    value: int


Value = (
    bool | int | float | str | bytes | decimal.Decimal | datetime.datetime | EnumValue | None
    | list["Value"] | dict["Value", "Value"]
)
"""A default value, already converted to the field's type (``None`` is ``null``)."""


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT = _NoDefault()


@attrs.frozen
class ModelType:
    kind: Kind
    item: ModelType | None = None
    key: ModelType | None = None
    ref: str | None = None
    """Qualified name of the enum, struct, error or union (ENUM/STRUCT/UNION kinds)."""
    module: str | None = None
    """Python module (``payments_rpcx``) that declares ``ref``."""
    is_error: bool = False
    """True when ``ref`` names an ``error`` declaration."""


@attrs.frozen
class Field:
    tag: int
    name: str
    type: ModelType
    default: Value | _NoDefault = NO_DEFAULT
    """The explicit default; ``NO_DEFAULT`` when none was written (an optional field then
    defaults to ``None``)."""
    doc: str = ""
    deprecated: str | None = None
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class EnumMember:
    name: str
    value: int
    doc: str = ""
    span: Span | None = attrs.field(default=None, eq=False)
    deprecated: str | None = None
    """The reason from ``@deprecated`` ("" when none was given); None when not deprecated."""


@attrs.frozen
class EnumDecl:
    name: str
    qualified: str
    members: tuple[EnumMember, ...]
    doc: str = ""
    deprecated: str | None = None
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class StructDecl:
    """A ``struct`` or (``is_error``) an ``error``."""

    name: str
    qualified: str
    fields: tuple[Field, ...]
    reserved: tuple[tuple[int, int], ...] = ()
    """Retired tags as sorted, merged, inclusive ``(low, high)`` ranges."""
    is_error: bool = False
    doc: str = ""
    deprecated: str | None = None
    span: Span | None = attrs.field(default=None, eq=False)
    status: str | None = None
    """For an error, the :class:`rpcx.Status` member name from ``@status(NAME)``; None when
    not annotated (the error then travels as ``FAILED_PRECONDITION``)."""


@attrs.frozen
class UnionDecl:
    name: str
    qualified: str
    variants: tuple[Field, ...]
    reserved: tuple[tuple[int, int], ...] = ()
    """Retired tags as sorted, merged, inclusive ``(low, high)`` ranges."""
    doc: str = ""
    deprecated: str | None = None
    span: Span | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Method:
    name: str
    params: tuple[Field, ...]
    result: ModelType | None
    throws: tuple[ModelType, ...] = ()
    oneway: bool = False
    idempotent: bool = False
    deadline: float | None = None
    """Seconds, from ``@deadline``."""
    deprecated: str | None = None
    doc: str = ""
    span: Span | None = attrs.field(default=None, eq=False)
    readonly: bool = False
    """From ``@readonly``: the method only reads (a replicated service runs it at one
    replica, not through the log). Implies ``idempotent``."""
    client_stream: Field | None = None
    """The ``stream T`` parameter (its type is ``T``), not among ``params``."""
    server_stream: bool = False
    """``-> stream T``: ``result`` is the item type ``T``."""

    @property
    def streaming(self) -> str | None:
        """None, ``"server"``, ``"client"`` or ``"bidi"``."""
        if self.client_stream is None:
            return "server" if self.server_stream else None
        return "bidi" if self.server_stream else "client"


@attrs.frozen
class ServiceDecl:
    name: str
    qualified: str
    methods: tuple[Method, ...]
    doc: str = ""
    deprecated: str | None = None
    span: Span | None = attrs.field(default=None, eq=False)


Decl = EnumDecl | StructDecl | UnionDecl | ServiceDecl


@attrs.frozen
class Import:
    path: str
    """The imported file's path as the compiler knows it (normalised, relative to cwd)."""
    package: str
    module: str
    """Python module name of the imported file (``common_rpcx``)."""


@attrs.frozen
class File:
    path: str
    """The path as given to the compiler (used in diagnostics and the generated header)."""
    package: str
    module: str
    """Python module name: the file's stem plus ``_rpcx`` (``payments.rpcx`` →
    ``payments_rpcx``)."""
    imports: tuple[Import, ...]
    decls: tuple[Decl, ...]
    """In source order."""
    source_sha256: str = ""
    """Hex digest of the source text, recorded in the generated header."""
