"""The syntax tree the parser builds: frozen nodes, each with the span of its first token.

Nothing here is checked beyond the grammar: names are unresolved, tags may be out of range,
defaults may not fit their types. ``check.py`` does that.
"""

from __future__ import annotations

import attrs

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


@attrs.frozen
class Name:
    """An identifier as written, with where it starts."""

    text: str
    span: Span


@attrs.frozen
class Literal:
    """``42``, ``-1.5``, ``"x"``, ``true``, ``null``.

    ``kind`` is one of ``int``, ``float``, ``string``, ``bool``, ``null``. ``text`` is the
    source text including a leading ``-`` (decimal defaults are built from it exactly).
    """

    kind: str
    value: object
    text: str
    span: Span


@attrs.frozen
class DurationValue:
    """``250ms``, ``2s``, ``1m`` (only meaningful as an annotation argument)."""

    seconds: float
    text: str
    span: Span


@attrs.frozen
class NameValue:
    """A (possibly qualified) name used as a value: an enum member, ``GBP`` or ``Currency.GBP``."""

    parts: tuple[Name, ...]
    span: Span

    @property
    def text(self) -> str:
        return ".".join(p.text for p in self.parts)


@attrs.frozen
class ListValue:
    items: tuple[Value, ...]
    span: Span


@attrs.frozen
class MapValue:
    entries: tuple[tuple[Value, Value], ...]
    span: Span


Value = Literal | DurationValue | NameValue | ListValue | MapValue


@attrs.frozen
class Annotation:
    name: Name
    """Without the ``@``; the span is the ``@``."""
    args: tuple[Value, ...]
    has_parens: bool
    span: Span


@attrs.frozen
class TypeNode:
    """A type as written. ``name`` is ``list``/``map`` for containers, with ``args``."""

    name: tuple[Name, ...]
    args: tuple[TypeNode, ...]
    optional: bool
    span: Span

    @property
    def text(self) -> str:
        base = ".".join(n.text for n in self.name)
        if self.args:
            base += "<" + ", ".join(a.text for a in self.args) + ">"
        return base + ("?" if self.optional else "")


@attrs.frozen
class Field:
    """A struct/union/error field or a method parameter: ``TAG: name: type [= default];``."""

    tag: int
    tag_span: Span
    name: Name
    type: TypeNode
    default: Value | None
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


@attrs.frozen
class ReservedRange:
    """``reserved 4;`` gives (4, 4); ``reserved 10 to 20;`` gives (10, 20)."""

    low: int
    high: int
    span: Span


@attrs.frozen
class EnumMember:
    name: Name
    value: int
    value_span: Span
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


@attrs.frozen
class EnumDecl:
    name: Name
    members: tuple[EnumMember, ...]
    reserved: tuple[ReservedRange, ...]
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


@attrs.frozen
class StructDecl:
    """``struct``, ``union`` or ``error`` (``keyword``)."""

    keyword: str
    name: Name
    fields: tuple[Field, ...]
    reserved: tuple[ReservedRange, ...]
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


@attrs.frozen
class Method:
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


@attrs.frozen
class ServiceDecl:
    name: Name
    methods: tuple[Method, ...]
    annotations: tuple[Annotation, ...]
    doc: str
    span: Span


Decl = EnumDecl | StructDecl | ServiceDecl


@attrs.frozen
class Package:
    name: tuple[Name, ...]
    span: Span

    @property
    def text(self) -> str:
        return ".".join(n.text for n in self.name)


@attrs.frozen
class Import:
    path: str
    path_span: Span
    span: Span


@attrs.frozen
class FileNode:
    path: str
    package: Package | None
    imports: tuple[Import, ...]
    decls: tuple[Decl, ...]
