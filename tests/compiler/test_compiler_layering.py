"""rpcx.compiler is sans-I/O: no trio, sockets, clocks, randomness or file access."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rpcx" / "compiler"
FORBIDDEN_MODULES = {"trio", "socket", "time", "random", "os", "io", "pathlib", "shutil",
                     "tempfile", "asyncio", "subprocess", "glob"}
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "__import__"}


def problems(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [f"import {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_CALLS):
            found.append(f"call {node.func.id}()")
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_compiler_module_does_no_io(path: Path) -> None:
    assert problems(path.read_text(encoding="utf-8")) == []


def test_the_check_can_fail() -> None:
    source = "import os.path\nfrom trio import sleep\ndef f():\n    open('x')\n"
    assert problems(source) == ["import os.path", "import trio", "call open()"]
