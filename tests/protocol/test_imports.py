"""rpcx.protocol is sans-I/O: it imports no I/O, clock, randomness or concurrency module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rpcx.protocol

FORBIDDEN = {"trio", "socket", "time", "random", "asyncio", "threading", "select",
             "selectors", "datetime", "os", "secrets", "anyio", "ssl"}
PACKAGE = Path(rpcx.protocol.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__"):
            roots.add("__import__")
    return roots


def test_the_package_has_the_expected_modules() -> None:
    names = {p.stem for p in MODULES}
    assert {"frames", "buffer", "events", "call", "connection", "dedup"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_io_clock_or_randomness(path: Path) -> None:
    bad = imported_roots(path.read_text()) & (FORBIDDEN | {"__import__"})
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_checker_sees_every_import_form() -> None:
    source = "import time\nfrom trio import sleep\nimport os.path as p\n__import__('x')\n"
    assert imported_roots(source) == {"time", "trio", "os", "__import__"}
