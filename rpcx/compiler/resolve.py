"""Loading files and their imports, and looking names up across packages.

Import paths are relative to the importing file's directory and normalised with
:mod:`posixpath`, so ``a/../b.rpcx`` and ``b.rpcx`` are the same file and it is compiled
once. Files come out in dependency order (every file after the files it imports). An import
that reaches a file still being loaded closes a cycle and is reported at that ``import``.

Name lookup (:class:`Scope`): a file sees its own declarations, unqualified or qualified by
its own package, and the declarations of the files it imports *directly*, always qualified
by their package (``common.Money``).
"""

from __future__ import annotations

import hashlib
import keyword
import posixpath
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import attrs

from rpcx.compiler import syntax as syn
from rpcx.compiler.diagnostics import Diagnostic, Span
from rpcx.compiler.parser import parse_with_lines

__all__ = ["DeclInfo", "Loader", "Scope", "Unit", "module_name", "normalise"]


_new = tuple.__new__
_SURROGATE = re.compile("[\ud800-\udfff]")


def normalise(path: str) -> str:
    return posixpath.normpath(path)


def module_name(path: str) -> str | None:
    """``idl/payments.rpcx`` gives ``payments_rpcx``; None when the stem is not an identifier.

    A pseudo-path in angle brackets (``<string>``, the default of ``compile_source``) uses
    the text inside the brackets as its stem.
    """
    base = posixpath.basename(path)
    if base.startswith("<") and base.endswith(">") and len(base) > 2:
        base = base[1:-1]
    stem = posixpath.splitext(base)[0]
    if not (stem.isascii() and stem.isidentifier()) or keyword.iskeyword(stem):
        return None
    return stem + "_rpcx"


class DeclInfo(NamedTuple):
    """A declaration as other code sees it before checking (a tuple: one per declaration,
    built with ``tuple.__new__``)."""

    name: str
    qualified: str
    kind: str
    """``enum``, ``struct``, ``union``, ``error`` or ``service``."""
    module: str
    node: syn.Decl
    path: str


def decl_kind(node: syn.Decl) -> str:
    if isinstance(node, syn.EnumDecl):
        return "enum"
    if isinstance(node, syn.ServiceDecl):
        return "service"
    return node.keyword


@attrs.define
class Unit:
    """One loaded file."""

    path: str
    text: str
    tree: syn.FileNode
    lines: list[str]
    module: str
    imports: list[tuple[syn.Import, Unit]] = attrs.Factory(list)
    """Directly imported files that could be loaded."""
    diagnostics: list[Diagnostic] = attrs.Factory(list)

    @property
    def package(self) -> str:
        return self.tree.package.text if self.tree.package is not None else ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()

    def diag(self, span: Span, message: str) -> None:
        lines, number = self.lines, span[1]
        line = lines[number - 1] if 0 < number <= len(lines) else ""
        self.diagnostics.append(_new(Diagnostic, (span, message, line.rstrip("\r"))))

    def decl_infos(self) -> dict[str, DeclInfo]:
        """Own declarations by name (the first one, when a name is declared twice)."""
        out: dict[str, DeclInfo] = {}
        package, module, path = self.package, self.module, self.path
        for node in self.tree.decls:
            name = node.name.text
            if name not in out:
                qualified = f"{package}.{name}" if package else name
                out[name] = _new(DeclInfo, (name, qualified, decl_kind(node), module, node,
                                            path))
        return out


class Loader:
    """Reads and parses root files and, depth first, everything they import."""

    def __init__(self, read: Callable[[str], str]) -> None:
        self.read = read
        self.units: dict[str, Unit] = {}
        self.order: list[Unit] = []
        self.failed: set[str] = set()
        self.stack: list[str] = []
        self.diagnostics: list[Diagnostic] = []
        """Diagnostics not belonging to a loaded file (a root that cannot be read)."""

    def load_roots(self, paths: Sequence[str]) -> tuple[str, ...]:
        roots = tuple(normalise(p) for p in paths)
        for path in roots:
            self.load(path, None)
        return roots

    def load(self, path: str, via: tuple[Unit, syn.Import] | None) -> Unit | None:
        if path in self.units:
            return self.units[path]
        if path in self.stack:
            assert via is not None
            cycle = [*self.stack[self.stack.index(path) :], path]
            via[0].diag(via[1].span, "import cycle: " + " -> ".join(cycle))
            return None
        if path in self.failed:
            if via is not None:
                via[0].diag(via[1].path_span, f"import not found: {via[1].path!r}")
            return None
        try:
            text = self.read(path)
        except (OSError, UnicodeError) as exc:
            self.failed.add(path)
            if via is not None:
                via[0].diag(via[1].path_span, f"import not found: {via[1].path!r}")
            else:
                reason = "not valid utf-8" if isinstance(exc, UnicodeError) else "cannot read file"
                self.diagnostics.append(Diagnostic(Span(path, 1, 1), f"{reason}: {path!r}"))
            return None
        surrogate = _SURROGATE.search(text)
        if surrogate is not None:
            # Only a caller's read() can produce this (a file read as UTF-8 cannot): the
            # text could not be written back, nor anything generated from it.
            self.failed.add(path)
            line = text.count("\n", 0, surrogate.start()) + 1
            col = surrogate.start() - (text.rfind("\n", 0, surrogate.start()) + 1) + 1
            self.diagnostics.append(Diagnostic(Span(path, line, col), "not valid unicode:"
                                               " a lone surrogate"))
            return None
        tree, diagnostics, lines = parse_with_lines(text, path)
        module = module_name(path)
        unit = Unit(path, text, tree, lines, module or "")
        unit.diagnostics.extend(diagnostics)
        if module is None:
            unit.diag(
                Span(path, 1, 1),
                f"file name {posixpath.basename(path)!r} does not give a python module name"
                " (the part before '.rpcx' must be an identifier and not a python keyword)",
            )
        self.stack.append(path)
        seen: set[str] = set()
        for imp in tree.imports:
            target = normalise(posixpath.join(posixpath.dirname(path), imp.path))
            if target in seen:
                unit.diag(imp.path_span, f"duplicate import {imp.path!r}")
                continue
            seen.add(target)
            dep = self.load(target, (unit, imp))
            if dep is not None:
                unit.imports.append((imp, dep))
        self.stack.pop()
        self.units[path] = unit
        self.order.append(unit)
        return unit


class Scope:
    """What names one file can see."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.own = unit.decl_infos()
        self.imported: list[tuple[str, dict[str, DeclInfo]]] = [
            (dep.package, dep.decl_infos()) for _, dep in unit.imports
        ]

    def lookup(self, parts: Sequence[str]) -> DeclInfo | str:
        """The declaration ``parts`` names, or an error message (``unknown type ...``)."""
        text = ".".join(parts)
        if len(parts) == 1:
            found = self.own.get(parts[0])
            if found is not None:
                return found
            hints = sorted(
                f"{pkg}.{parts[0]}" for pkg, decls in self.imported if parts[0] in decls and pkg
            )
            if hints:
                return f"unknown type {text!r} (did you mean {hints[0]!r}?)"
            return f"unknown type {text!r}"
        package, name = ".".join(parts[:-1]), parts[-1]
        visible = package == self.unit.package
        if visible and name in self.own:
            return self.own[name]
        for pkg, decls in self.imported:
            if pkg == package:
                visible = True
                if name in decls:
                    return decls[name]
        if not visible:
            return f"unknown type {text!r}: package {package!r} is not imported by this file"
        return f"unknown type {text!r}"
