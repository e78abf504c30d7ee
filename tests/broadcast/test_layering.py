"""The cores import no I/O, clock, randomness or concurrency, and the public API is tidy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rpcx_broadcast
import rpcx_broadcast.core
import rpcx_broadcast.testing

CORE = Path(rpcx_broadcast.core.__file__).parent
FORBIDDEN = {"trio", "socket", "time", "random", "asyncio", "threading", "select",
             "selectors", "subprocess", "os", "rpcx"}
ALLOWED_THIRD_PARTY = {"attrs"}


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_only_stdlib_attrs_and_siblings(path: Path) -> None:
    roots = imported_roots(path.read_text(encoding="utf-8"))
    bad = roots & FORBIDDEN
    assert not bad, f"{path.name} imports {sorted(bad)}"
    import sys
    third_party = {r for r in roots if r not in sys.stdlib_module_names
                   and r != "__future__"} - ALLOWED_THIRD_PARTY
    assert not third_party, f"{path.name} imports {sorted(third_party)}"


def test_the_check_sees_nested_imports() -> None:
    assert imported_roots("def f():\n    import random\n    from time import monotonic\n") \
        == {"random", "time"}


@pytest.mark.parametrize("module", [rpcx_broadcast, rpcx_broadcast.core,
                                    rpcx_broadcast.testing])
def test_all_is_sorted_unique_and_complete(module: object) -> None:
    names: list[str] = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(module, name), name


def test_checkers_are_public() -> None:
    for name in ("check", "check_fifo", "check_causal", "check_total",
                 "check_prefix_consistency", "check_fifo_total", "count_duplicates"):
        assert name in rpcx_broadcast.__all__
