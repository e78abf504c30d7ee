"""Generated code is byte-for-byte what the golden files say, and deterministic.

To accept an intended change of the generator: ``RPCX_UPDATE_GOLDEN=1 pytest tests/codegen``
and review the diff of ``tests/codegen/golden/``.
"""

from __future__ import annotations

import difflib
import os

import pytest

from tests.codegen.helpers import GOLDEN, GOLDEN_ROOTS, generate_all

CASES = [(root, module, source) for root in GOLDEN_ROOTS
         for module, source in sorted(generate_all(root).items())]


@pytest.mark.parametrize(("module", "source"), [(m, s) for _, m, s in CASES],
                         ids=[m for _, m, _ in CASES])
def test_generated_module_matches_golden_file(module: str, source: str) -> None:
    golden = GOLDEN / f"{module}.py.golden"
    if os.environ.get("RPCX_UPDATE_GOLDEN"):
        golden.write_text(source, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8")
    if source != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), source.splitlines(True),
                                            str(golden), "generated"))
        pytest.fail(f"generated {module} differs from its golden file:\n{diff}")


def test_generation_is_deterministic() -> None:
    for root in GOLDEN_ROOTS:
        assert generate_all(root) == generate_all(root)
