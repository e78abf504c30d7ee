"""Enums → OpenEnum subclasses; structs, unions and errors → attrs classes; plus the
schema descriptors (specs) the codecs and runtime read."""

from __future__ import annotations

from rpcx.codegen import names
from rpcx.codegen.exprs import Call, Expr, Lit, Tuple, format_expr
from rpcx.codegen.literals import pystr
from rpcx.codegen.writer import Writer
from rpcx.compiler import model
from rpcx.schema import Kind

__all__ = ["render_enum", "render_record", "spec_of_type", "type_spec_lines"]

_PRIMITIVE_SPECS = {
    Kind.BOOL: "_rt.BOOL",
    Kind.INT: "_rt.INT",
    Kind.FLOAT: "_rt.FLOAT",
    Kind.DECIMAL: "_rt.DECIMAL",
    Kind.STRING: "_rt.STRING",
    Kind.BYTES: "_rt.BYTES",
    Kind.TIMESTAMP: "_rt.TIMESTAMP",
}

_SPECS_BY_VALUE = {kind._value_: text for kind, text in _PRIMITIVE_SPECS.items()}
"""As names._PRIMITIVE_NAMES: looked up by ``kind._value_`` (no Python-level hash)."""


def _doc(w: Writer, doc: str, deprecated: str | None = None) -> None:
    text = doc
    if deprecated is not None:
        text = f"{text}\n\nDeprecated: {deprecated}" if text else f"Deprecated: {deprecated}"
    if text:
        w.lines(names.docstring(text, w.width))


def render_enum(w: Writer, decl: model.EnumDecl) -> None:
    w.line(f"class {decl.name}(_rt.OpenEnum):")
    with w.indented():
        _doc(w, decl.doc, decl.deprecated)
        if decl.doc or decl.deprecated:
            w.blank()
        for member in decl.members:
            w.line(f"{member.name} = {member.value}")
            if member.doc:
                w.lines(names.docstring(member.doc, w.width))
    w.blank(2)


def _attribute(f: model.Field, here: str, *, force_none: bool = False) -> str:
    annotation = names.py_type(f.type, here)
    if force_none:
        return f"{f.name}: {annotation} | None = None"
    default = f.default
    if isinstance(default, model._NoDefault):
        if f.type.kind is Kind.OPTIONAL:
            return f"{f.name}: {annotation} = None"
        return f"{f.name}: {annotation}"
    if f.type.kind in (Kind.LIST, Kind.MAP) and default is not None:
        value = names.literal(default, f.type, here)
        if value in ("[]", "{}"):
            factory = "list" if value == "[]" else "dict"
        else:
            factory = f"lambda: {value}"
        return f"{f.name}: {annotation} = _rt.field(factory={factory})"
    return f"{f.name}: {annotation} = {names.literal(default, f.type, here)}"


def render_record(w: Writer, decl: model.StructDecl | model.UnionDecl, here: str) -> None:
    """A struct, error or union class (its spec is attached later by ``spec_lines``)."""
    if isinstance(decl, model.UnionDecl):
        fields, union = decl.variants, True
        w.line("@_rt.frozen(kw_only=True)")
        w.line(f"class {decl.name}:")
    elif decl.is_error:
        fields, union = decl.fields, False
        w.line("@_rt.define(kw_only=True, auto_exc=True, eq=False)")
        w.line(f"class {decl.name}(_rt.DeclaredError):")
    else:
        fields, union = decl.fields, False
        w.lines(["@_rt.frozen(kw_only=True)", f"class {decl.name}:"])
    status = decl.status if isinstance(decl, model.StructDecl) else None
    with w.indented():
        if decl.doc or decl.deprecated is not None:
            _doc(w, decl.doc, decl.deprecated)
        if (decl.doc or decl.deprecated) and (fields or status):
            w.blank()
        if status is not None:
            w.line(f"rpcx_code = _rt.Status.{status}")
            if fields:
                w.blank()
        for f in fields:
            w.line(_attribute(f, here, force_none=union))
            if f.doc or f.deprecated:
                _doc(w, f.doc, f.deprecated)
        if union:
            _union_helpers(w, decl, here)
        elif not fields and not (decl.doc or decl.deprecated or status):
            w.line("pass")
    w.blank(2)


def _union_helpers(w: Writer, decl: model.StructDecl | model.UnionDecl, here: str) -> None:
    variants = decl.variants if isinstance(decl, model.UnionDecl) else ()
    w.blank()
    w.line("def __attrs_post_init__(self) -> None:")
    with w.indented():
        w.line("_rt.check_one_variant(self)")
    w.blank()
    literal = ", ".join(names.pystr(v.name) for v in variants)
    w.line("@property")
    w.lines(format_expr(
        Call("def which", ("self",)), w.width,
        suffix=f" -> _typing.Literal[{literal}]:"))
    with w.indented():
        w.line('"""The name of the variant that is set."""')
        for v in variants[:-1]:
            w.line(f"if self.{v.name} is not None:")
            with w.indented():
                w.line(f"return {names.pystr(v.name)}")
        w.line(f"return {names.pystr(variants[-1].name)}")
    w.blank()
    types = " | ".join(dict.fromkeys(names.py_type(v.type, here) for v in variants))
    w.line("@property")
    w.lines(format_expr(Call("def value", ("self",)), w.width, suffix=f" -> {types}:"))
    with w.indented():
        w.line('"""The value of the variant that is set."""')
        for v in variants[:-1]:
            w.line(f"if self.{v.name} is not None:")
            with w.indented():
                w.line(f"return self.{v.name}")
        last = variants[-1].name
        w.line(f"assert self.{last} is not None")
        w.line(f"return self.{last}")


def spec_of_type(t: model.ModelType, here: str) -> Expr:
    primitive = _SPECS_BY_VALUE.get(t.kind._value_)
    if primitive is not None:
        return primitive
    if t.kind is Kind.LIST:
        assert t.item is not None
        return Call("_rt.list_of", (spec_of_type(t.item, here),))
    if t.kind is Kind.MAP:
        assert t.item is not None and t.key is not None
        return Call("_rt.map_of", (spec_of_type(t.key, here), spec_of_type(t.item, here)))
    if t.kind is Kind.OPTIONAL:
        assert t.item is not None
        return Call("_rt.optional", (spec_of_type(t.item, here),))
    ref = {Kind.ENUM: "_rt.enum_ref", Kind.STRUCT: "_rt.struct_ref", Kind.UNION: "_rt.union_ref"}
    return Call(ref[t.kind], (names.type_name(t, here),))


_REFS = {Kind.ENUM: "_rt.enum_ref", Kind.STRUCT: "_rt.struct_ref", Kind.UNION: "_rt.union_ref"}
_REFS_BY_VALUE = {kind._value_: text for kind, text in _REFS.items()}
"""As :data:`_SPECS_BY_VALUE`."""


def spec_flat(t: model.ModelType, here: str) -> str:
    """The one-line text of ``spec_of_type(t, here)``, without building the expression."""
    primitive = _SPECS_BY_VALUE.get(t.kind._value_)
    if primitive is not None:
        return primitive
    kind = t.kind
    if kind is Kind.LIST:
        assert t.item is not None
        return f"_rt.list_of({spec_flat(t.item, here)})"
    if kind is Kind.MAP:
        assert t.item is not None and t.key is not None
        return f"_rt.map_of({spec_flat(t.key, here)}, {spec_flat(t.item, here)})"
    if kind is Kind.OPTIONAL:
        assert t.item is not None
        return f"_rt.optional({spec_flat(t.item, here)})"
    return f"{_REFS_BY_VALUE[kind._value_]}({names.type_name(t, here)})"


def field_flat(f: model.Field, here: str) -> str:
    """The one-line text of ``field_spec(f, here)``, without building the expression."""
    if not isinstance(f.default, model._NoDefault):
        tail = f", default={names.literal(f.default, f.type, here)}"
    elif f.type.kind is Kind.OPTIONAL:
        tail = ", default=None"
    else:
        tail = ""
    if f.doc:
        tail = f"{tail}, doc={pystr(f.doc)}"
    return f"_rt.FieldSpec({f.tag}, {pystr(f.name)}, {spec_flat(f.type, here)}{tail})"


def fields_flat(fields: tuple[model.Field, ...], here: str, width: int) -> str | None:
    """``tuple_flat`` of the fields' ``field_flat`` texts; None as soon as it is known to
    be longer than ``width`` (a struct with many fields is formatted from its tree, and
    this must not cost a flat text per field first)."""
    items: list[str] = []
    total = 0  # the tuple's flat length so far: each item and ", " (or parentheses)
    for f in fields:
        text = field_flat(f, here)
        total += len(text) + 2
        if total > width:
            return None
        items.append(text)
    return tuple_flat(items)


def tuple_flat(items: list[str]) -> str:
    """The one-line text of ``Tuple(items)``."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def field_spec(f: model.Field, here: str) -> Expr:
    args: list[Expr] = [str(f.tag), names.pystr(f.name), spec_of_type(f.type, here)]
    if not isinstance(f.default, model._NoDefault):
        args.append(f"default={names.literal(f.default, f.type, here)}")
    elif f.type.kind is Kind.OPTIONAL:
        args.append("default=None")
    if f.doc:
        args.append(Lit(f.doc, "doc="))
    return Call("_rt.FieldSpec", tuple(args))


def type_spec_lines(decl: model.Decl, here: str, width: int) -> list[str]:
    """``_rt.attach(Cls, Spec(...))`` for an enum, struct, error or union."""
    if type(decl) is model.StructDecl:
        # From strings when the spec fits on its line (or on the one after
        # "_rt.attach("): the lines format_expr would give for the tree below.
        error_arg = ", is_error=True" if decl.is_error else ""
        doc_arg = f", doc={pystr(decl.doc)}" if decl.doc else ""
        fields_text = fields_flat(decl.fields, here, width)
        if fields_text is not None:
            flat = (f"_rt.StructSpec({pystr(decl.qualified)}, {decl.name}, {fields_text}"
                    f"{error_arg}{doc_arg})")
            one = f"_rt.attach({decl.name}, {flat})"
            if len(one) <= width:
                return [one]
            if len(flat) < width - 4:
                return ["_rt.attach(", f"    {decl.name},", f"    {flat},", ")"]
    doc: list[Expr] = [Lit(decl.doc, "doc=")] if decl.doc else []
    spec: Expr
    if isinstance(decl, model.EnumDecl):
        spec = Call("_rt.EnumSpec", (names.pystr(decl.qualified), decl.name, *doc))
    elif isinstance(decl, model.UnionDecl):
        variants = Tuple(tuple(field_spec(v, here) for v in decl.variants))
        spec = Call("_rt.UnionSpec", (names.pystr(decl.qualified), decl.name, variants, *doc))
    elif isinstance(decl, model.StructDecl):
        fields = Tuple(tuple(field_spec(f, here) for f in decl.fields))
        error = ["is_error=True"] if decl.is_error else []
        spec = Call("_rt.StructSpec",
                    (names.pystr(decl.qualified), decl.name, fields, *error, *doc))
    else:
        raise AssertionError(f"not a type: {decl!r}")
    return format_expr(Call("_rt.attach", (decl.name, spec)), width)
