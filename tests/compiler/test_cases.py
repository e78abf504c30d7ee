"""The case corpus: ``cases/valid/*.rpcx`` compile cleanly; each ``cases/invalid/X.rpcx``
produces exactly the rendered diagnostics in ``X.expected``.

To update the expected files after a deliberate change to messages, run with
``RPCX_UPDATE_EXPECTED=1`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rpcx.compiler import compile_source

CASES = Path(__file__).parent / "cases"
VALID = sorted((CASES / "valid").glob("*.rpcx"))
INVALID = sorted((CASES / "invalid").glob("*.rpcx"))


def render(path: Path) -> str:
    result = compile_source(path.read_text(encoding="utf-8"), path.name)
    return "".join(d.render() + "\n" for d in result.diagnostics)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_case_compiles(path: Path) -> None:
    result = compile_source(path.read_text(encoding="utf-8"), path.name)
    assert result.ok, render(path)
    assert [f.path for f in result.files] == [path.name]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_case_reports_exactly_the_expected_diagnostics(path: Path) -> None:
    expected_path = path.with_suffix(".expected")
    actual = render(path)
    assert actual, "an invalid case must produce diagnostics"
    if os.environ.get("RPCX_UPDATE_EXPECTED"):
        expected_path.write_text(actual, encoding="utf-8")
    assert actual == expected_path.read_text(encoding="utf-8")


def test_corpus_is_not_empty() -> None:
    assert len(VALID) >= 2 and len(INVALID) >= 10
