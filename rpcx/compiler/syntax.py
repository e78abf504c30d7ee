"""The syntax tree the parser builds: immutable nodes, each with the span of its first token.

Every node is a :class:`~typing.NamedTuple`: a big input makes millions of them, and
``tuple.__new__(Node, (...))`` builds one several times faster than a frozen attrs class.
Compare nodes by their fields, not with ``==`` across node types (tuples compare equal to
any tuple with the same items).

Nothing here is checked beyond the grammar: names are unresolved, tags may be out of range,
defaults may not fit their types. ``check.py`` does that.
"""

from __future__ import annotations

from typing import NamedTuple

from rpcx.compiler.diagnostics import Span

__all__ = [
    "Annotation",
    "Decl",
    "DurationValue",
    "EnumDecl",
    "EnumMember",
    "Field",
    "FileNode",
    "Import",
    "ListValue",
    "Literal",
    "MapValue",
    "Method",
    "Name",
    "NameValue",
    "Package",
    "ReservedRange",
    "ServiceDecl",
    "StructDecl",
    "TypeNode",
    "Value",
]


class Name(NamedTuple):
    """An identifier as written, with where it starts."""

    text: str
    span: Span


class Literal(NamedTuple):
    """``42``, ``-1.5``, ``"x"``, ``true``, ``null``.

    ``kind`` is one of ``int``, ``float``, ``string``, ``bool``, ``null``. ``text`` is the
    source text including a leading ``-`` (decimal defaults are built from it exactly).
    """

    kind: str
    value: object
    text: str
    span: Span


class DurationValue(NamedTuple):
    """``250ms``, ``2s``, ``1m`` (only meaningful as an annotation argument)."""

    seconds: float
    text: str
    span: Span


class NameValue(NamedTuple):
    """A (possibly qualified) name used as a value: an enum member, ``GBP`` or ``Currency.GBP``."""

    parts: tuple[Name, ...]
    span: Span

    @property
    def text(self) -> str:
        return ".".join(p.text for p in self.parts)


class ListValue(NamedTuple):
    items: tuple[Value, ...]
    span: Span


class MapValue(NamedTuple):
    entries: tuple[tuple[Value, Value], ...]
    span: Span


Value = Literal | DurationValue | NameValue | ListValue | MapValue


class Annotation(NamedTuple):
    name: Name
    """Without the ``@``; the span is the ``@``."""
    args: tuple[Value, ...]
    has_parens: bool
    span: Span


class TypeNode(NamedTuple):
    """A type as written. ``name`` is ``list``/``map`` for containers, with ``args``."""

    name: tuple[Name, ...]
    args: tuple[TypeNode, ...]
    optional: bool
    span: Span

    @property
    def text(self) -> str:
        base = ".".join(n.text for n in self.name)
        if base == "stream" and len(self.args) == 1:
            return f"stream {self.args[0].text}"
        if self.args:
            base += "<" + ", ".join(a.text for a in self.args) + ">"
        return base + ("?" if self.optional else "")


class Field(NamedTuple):
    """A struct/union/error field or a method parameter: ``TAG: name: type [= default];``."""

    tag: int
    tag_span: Span
    name: Name
    type: TypeNode
    default: Value | None
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


class ReservedRange(NamedTuple):
    """``reserved 4;`` gives (4, 4); ``reserved 10 to 20;`` gives (10, 20)."""

    low: int
    high: int
    span: Span


class EnumMember(NamedTuple):
    name: Name
    value: int
    value_span: Span
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


class EnumDecl(NamedTuple):
    name: Name
    members: tuple[EnumMember, ...]
    reserved: tuple[ReservedRange, ...]
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


class StructDecl(NamedTuple):
    """``struct``, ``union`` or ``error`` (``keyword``)."""

    keyword: str
    name: Name
    fields: tuple[Field, ...]
    reserved: tuple[ReservedRange, ...]
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


class Method(NamedTuple):
    name: Name
    params: tuple[Field, ...]
    result: TypeNode | None
    throws: tuple[TypeNode, ...]
    oneway: bool
    oneway_span: Span | None
    throws_span: Span | None
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


class ServiceDecl(NamedTuple):
    name: Name
    methods: tuple[Method, ...]
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


Decl = EnumDecl | StructDecl | ServiceDecl


class Package(NamedTuple):
    name: tuple[Name, ...]
    span: Span

    @property
    def text(self) -> str:
        return ".".join(n.text for n in self.name)


class Import(NamedTuple):
    path: str
    path_span: Span
    span: Span


class FileNode(NamedTuple):
    path: str
    package: Package | None
    imports: tuple[Import, ...]
    decls: tuple[Decl, ...]
