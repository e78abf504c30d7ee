"""The broadcast examples run from one command and say what they show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(("module", "expected"), [
    ("examples.chat", "Causal checker on the three logs: passed"),
])
def test_example_runs_and_reports_success(module: str, expected: str) -> None:
    done = subprocess.run([sys.executable, "-m", module], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert expected in done.stdout


@pytest.mark.slow
def test_the_kvstore_demo_kills_the_leader_and_every_check_holds() -> None:
    done = subprocess.run([sys.executable, "-m", "examples.kvstore"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "SIGKILL to the leader" in out
    assert "): yes" in out and "Reads never went back in time: yes" in out
    assert ": linearizable (" in out and "caught up" in out and "All held." in out
