"""The IDL front end: text in, a checked model or diagnostics out. It does no file I/O:
the caller passes a ``read`` function.

Pipeline: :mod:`~rpcx.compiler.lexer` → :mod:`~rpcx.compiler.parser` (a
:mod:`~rpcx.compiler.syntax` tree) → :mod:`~rpcx.compiler.resolve` (imports, name lookup)
→ :mod:`~rpcx.compiler.check` (semantic rules) → :mod:`~rpcx.compiler.model`.
"""

from __future__ import annotations

import contextlib
import gc
import operator
from collections.abc import Callable, Iterator, Sequence

import attrs

from rpcx.compiler import model
from rpcx.compiler.check import check_unit
from rpcx.compiler.diagnostics import Diagnostic, Span
from rpcx.compiler.resolve import Loader, Unit, normalise

__all__ = ["CompileResult", "compile_files", "compile_source", "paused_gc"]

_span_of = operator.itemgetter(0)


@attrs.frozen
class CompileResult:
    files: tuple[model.File, ...]
    """Every file compiled, imported ones included, dependencies before dependents; empty
    when there is any diagnostic."""
    roots: tuple[str, ...]
    """Normalised paths of the files asked for, in the order asked."""
    diagnostics: tuple[Diagnostic, ...]
    """Every problem found, sorted by (file, line, col)."""

    @property
    def ok(self) -> bool:
        return not self.diagnostics


def compile_files(paths: Sequence[str], read: Callable[[str], str]) -> CompileResult:
    """Compile ``paths`` and everything they import.

    ``read(path)`` returns a file's text or raises :class:`OSError`; it is the only way the
    compiler reaches files. Never raises on bad input: problems come back as diagnostics.
    """
    with paused_gc():
        loader = Loader(read)
        roots = loader.load_roots(paths)
        files = [check_unit(unit) for unit in loader.order]
        _cross_file_rules(loader.order)
        diagnostics = list(loader.diagnostics)
        for unit in loader.order:
            diagnostics.extend(unit.diagnostics)
        diagnostics.sort(key=_span_of)  # spans are (file, line, col) tuples
        return CompileResult(() if diagnostics else tuple(files), roots, tuple(diagnostics))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cycle collector: compiling allocates millions of small objects that
    contain no cycles, and the collector would otherwise rescan them over and over
    (a third of the run time on big inputs)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_source(text: str, path: str = "<string>") -> CompileResult:
    """Compile one file held in memory; any import is reported as not found."""

    def read(wanted: str) -> str:
        if wanted == normalised:
            return text
        raise FileNotFoundError(wanted)

    normalised = normalise(path)
    return compile_files([path], read)


def _cross_file_rules(units: Sequence[Unit]) -> None:
    """Rules that span files: one declaration per name in a package; one file per module."""
    declared: dict[tuple[str, str], str] = {}
    modules: dict[str, str] = {}
    for unit in units:
        if unit.module:
            first = modules.setdefault(unit.module, unit.path)
            if first != unit.path:
                unit.diag(Span(unit.path, 1, 1), f"module name {unit.module!r} of"
                          f" {unit.path!r} clashes with {first!r} (rename one of the files)")
        package, path = unit.package, unit.path  # (package is a property: once per file)
        if not package:
            continue
        names = set()
        for node in unit.tree.decls:
            name = node.name.text
            if name in names:
                continue  # a duplicate within the file is reported by the checker
            names.add(name)
            first = declared.setdefault((package, name), path)
            if first != path:
                unit.diag(node.name.span, f"{name!r} is already declared in package"
                          f" {package!r} by {first!r}")
