"""Compile IDL files and generate modules, for the codegen tests."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rpcx.codegen import generate
from rpcx.compiler import compile_files

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "cases"
GOLDEN = Path(__file__).resolve().parent / "golden"

# Each golden case: the IDL file it starts from (imports are generated too).
GOLDEN_ROOTS = [CASES / "everything.rpcx", ROOT / "idl" / "payments.rpcx"]


def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def generate_all(root: Path) -> dict[str, str]:
    """Module name → source for ``root`` and every file it imports."""
    result = compile_files([str(root.relative_to(ROOT))], _read)
    assert result.ok, "\n".join(d.render() for d in result.diagnostics)
    return dict(generate(f) for f in result.files)


@contextmanager
def imported_package(modules: dict[str, str], directory: Path,
                     name: str) -> Iterator[dict[str, types.ModuleType]]:
    """Write ``modules`` into a fresh package ``name`` under ``directory`` and import them."""
    package = directory / name
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source, encoding="utf-8")
    sys.path.insert(0, str(directory))
    try:
        yield {m: importlib.import_module(f"{name}.{m}") for m in modules}
    finally:
        sys.path.remove(str(directory))
        for key in [k for k in sys.modules if k == name or k.startswith(f"{name}.")]:
            del sys.modules[key]
