"""The sans-I/O packages import no I/O, clock or randomness (ARCHITECTURE.md practice 1).

Imports are read with ``ast`` so a forbidden import anywhere in a module, even inside a
function, fails the build.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SANS_IO = ["rpcx/compiler", "rpcx/codegen", "rpcx/codec", "rpcx/protocol", "rpcx/schema.py",
           "rpcx/text.py",
           "rpcx/status.py", "rpcx/errors.py", "rpcx/stubs.py"]
FORBIDDEN = {"trio", "socket", "time", "random", "asyncio", "threading", "select", "selectors",
             "subprocess"}


def _modules() -> list[Path]:
    found: list[Path] = []
    for entry in SANS_IO:
        path = ROOT / entry
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_sans_io_module_imports_no_io(path: Path) -> None:
    bad = imported_roots(path.read_text(encoding="utf-8")) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_check_sees_imports_inside_functions() -> None:
    source = "def f():\n    import time\n    from trio import sleep\n"
    assert imported_roots(source) == {"time", "trio"}
