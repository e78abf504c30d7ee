"""The README's Quick start demo and CLI check, run the way a reader would run them
(item 12 of the runtime issue)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import trio

from tests.integration._procs import REPO, child_env, python


async def run(*args: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(timeout):
        return await trio.run_process(python(*args), cwd=REPO, env=child_env(),
                                      capture_stdout=True, capture_stderr=True, check=False)


async def test_readme_quick_start_demo() -> None:
    """``python -m examples.payments``: the five steps, in plain words, exit 0."""
    done = await run("-m", "examples.payments", timeout=60)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    # 1. the notes' call succeeds with a payment id
    assert re.search(r"-> success=True, payment id pay_\d{6}\b", out), out
    # 2. a declined card arrives as CardDeclined with its reason
    assert "-> CardDeclined raised here, as declared in the IDL: 'insufficient funds'" in out
    # 3. the deadline expires after about the 0.5 s the client waits, and the server stops
    waited = re.search(r"-> DeadlineExceeded after (\d+\.\d+) s", out)
    assert waited is not None, out
    assert float(waited.group(1)) >= 0.45  # (late on a loaded machine: no upper bound)
    assert "payment for 'slow bank' cancelled before charging" in out
    assert "12.00 EUR" not in out
    # 4. the lost reply is retried and the card is charged once
    retried = re.search(r"-> the channel retried (\d+) time\(s\) .* payment id (pay_\d{6})", out)
    assert retried is not None, out
    assert int(retried.group(1)) >= 1
    assert "the card was charged exactly once" in out
    # the server log, relayed: one charge
    assert out.count("charged card ending 1111: 7.50 USD") == 1, out
    assert "retry charged twice" not in out
    # 5. the watch streams the history in order (the lost reply's payment once), then the
    # payment made while it is open, then is cancelled
    watched = re.findall(r"\[watch\] #(\d+) (\w+) ([\d.]+) (\w+)", out)
    assert [(int(n), kind, amount, currency) for n, kind, amount, currency in watched] == [
        (1, "charged", "3.99", "GBP"), (2, "declined", "3.99", "GBP"),
        (3, "charged", "7.50", "USD"), (4, "charged", "1.25", "GBP")], out
    assert "-> 4 events streamed, the last one live; the stream was cancelled" in out
    assert "Traceback" not in out + done.stderr.decode()


async def test_rpcx_check_accepts_the_payments_idl() -> None:
    done = await run("-m", "rpcx", "check", "idl/payments.rpcx", timeout=30)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert done.stdout.decode().strip() == "ok: 1 file checked"


async def test_rpcx_check_reports_a_mistake_where_it_is(tmp_path: Path) -> None:
    """The README's example diagnostic: FILE:LINE:COL, the message and a caret."""
    shop = tmp_path / "shop.rpcx"
    shop.write_text("package shop;\nstruct Item {\n  1: name: strng;\n}\n")
    done = await run("-m", "rpcx", "check", str(shop), timeout=30)
    report = done.stdout.decode() + done.stderr.decode()
    assert done.returncode != 0, report
    assert f"{shop}:3:12: error: unknown type 'strng'" in report
    assert "  1: name: strng;" in report
    assert re.search(r"^\s+\^", report, re.MULTILINE), report
