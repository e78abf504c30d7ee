"""Model → Python source, byte-for-byte deterministic.

``generate(file)`` returns the module name and the text of one generated module. Layout of
a module: banner, docstring, imports, ``__all__``, enums, then structs/unions/errors in
source order, client stubs and server base classes, then the schema specs attached to the
classes (``rpcx.spec_of(Card)`` reads them back).
"""

from __future__ import annotations

from rpcx.codegen import names
from rpcx.codegen.header import banner
from rpcx.codegen.render_services import render_client, render_server_base, service_spec_lines
from rpcx.codegen.render_types import render_enum, render_record, type_spec_lines
from rpcx.codegen.writer import Writer
from rpcx.compiler import model

__all__ = ["generate"]


def _imports(file: model.File) -> tuple[set[str], list[str]]:
    """Standard-library modules the module needs beyond what every module imports, and the
    sibling generated modules it refers to (only those actually used), in one pass over
    the distinct type objects (the checker shares one object between the fields of a type)."""
    found: set[str] = set()
    types: dict[int, model.ModelType] = {}
    """By ``id``: the file holds every one of them, so no ``id`` is reused meanwhile."""
    for decl in file.decls:
        if isinstance(decl, model.StructDecl):
            for f in decl.fields:
                types[id(f.type)] = f.type
        elif isinstance(decl, model.UnionDecl):
            found.add("typing")
            for f in decl.variants:
                types[id(f.type)] = f.type
        elif isinstance(decl, model.ServiceDecl):
            found.update(("abc", "collections.abc"))
            for m in decl.methods:
                for f in m.params:
                    types[id(f.type)] = f.type
                if m.client_stream is not None:
                    types[id(m.client_stream.type)] = m.client_stream.type
                if m.result is not None:
                    found.add("typing")
                    types[id(m.result)] = m.result
                for t in m.throws:  # (named types: no standard-library module)
                    types[id(t)] = t
    used: set[str] = set()
    for t in types.values():
        found.update(names.uses(t))
        _modules_of(t, used)
    used.discard(file.module)
    return found, sorted(used)


def _modules_of(t: model.ModelType | None, used: set[str]) -> None:
    """Add to ``used`` the modules declaring the types ``t`` names."""
    # A module-level function, not a recursive closure: a closure that calls itself is a
    # reference cycle, which would keep the whole model alive until the cycle collector ran.
    while t is not None:
        if t.module is not None:
            used.add(t.module)
        if t.key is not None:
            _modules_of(t.key, used)
        t = t.item


_ALIASES = {
    "abc": "_abc",
    "collections.abc": "_cabc",
    "datetime": "_datetime",
    "decimal": "_decimal",
    "typing": "_typing",
}


def _public_names(file: model.File) -> list[str]:
    out: list[str] = []
    for decl in file.decls:
        if isinstance(decl, model.ServiceDecl):
            out += [names.client_name(decl.name), names.service_name(decl.name)]
        else:
            out.append(decl.name)
    return sorted(out)


def generate(file: model.File) -> tuple[str, str]:
    """Return ``(module_name, source)`` for one checked file."""
    here = file.module
    w = Writer()
    w.lines(banner(file))
    w.lines(names.docstring(f"Types and stubs for package {file.package}.", w.width))
    w.blank()
    w.line("from __future__ import annotations")
    w.blank()
    stdlib, siblings = _imports(file)
    for module in sorted(stdlib):
        w.line(f"import {module} as {_ALIASES[module]}")
    if stdlib:
        w.blank()
    w.line("import rpcx.stubs as _rt")
    if siblings:
        w.blank()
        for module in siblings:
            w.line(f"from . import {module} as {names.import_alias(module)}")
    w.blank()
    public = _public_names(file)
    if public:
        w.line("__all__ = [")
        with w.indented():
            for name in public:
                w.line(f'"{name}",')
        w.line("]")
    else:
        w.line("__all__: list[str] = []")
    w.blank(2)

    for decl in file.decls:
        if isinstance(decl, model.EnumDecl):
            render_enum(w, decl)
    for decl in file.decls:
        if isinstance(decl, model.StructDecl | model.UnionDecl):
            render_record(w, decl, here)
    for decl in file.decls:
        if isinstance(decl, model.ServiceDecl):
            render_client(w, decl, here)
            render_server_base(w, decl, here)

    w.line("# Schema descriptors, read by codecs, the runtime and tools (rpcx.spec_of).")
    for decl in file.decls:
        if isinstance(decl, model.ServiceDecl):
            w.lines(service_spec_lines(decl, here, w.width))
        else:
            w.lines(type_spec_lines(decl, here, w.width))
    return here, w.text()


