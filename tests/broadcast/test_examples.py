"""The broadcast examples run from one command and say what they show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(("module", "expected"), [
    ("examples.kvstore", "Replicas converged"),
    ("examples.chat", "Causal checker on the three logs: passed"),
])
def test_example_runs_and_reports_success(module: str, expected: str) -> None:
    done = subprocess.run([sys.executable, "-m", module], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert expected in done.stdout
