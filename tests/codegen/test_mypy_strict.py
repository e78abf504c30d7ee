"""Freshly generated modules pass ``mypy --strict`` and ``ruff check`` unchanged, and code
that uses them wrongly is rejected (so the types are real, not Any)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mypy import api as mypy_api

from tests.codegen.helpers import GOLDEN_ROOTS, ROOT, generate_all

USER_CODE = '''\
from __future__ import annotations

import decimal

from gen.payments_rpcx import Card, Currency, PaymentMethod, PaymentsClient, Result
from gen.everything_rpcx import Choice, SinkClient
from rpcx.stubs import Invoker


async def use(channel: Invoker) -> str | None:
    payments = PaymentsClient(channel)
    card = Card(card_number="4111", expiry_date="10/2030", cvc="123")
    result: Result = await payments.process_payment(
        card, decimal.Decimal("3.99"), Currency.GBP, timeout=1.5)
    method = PaymentMethod(voucher_code="SAVE10")
    if method.card is not None:
        return method.card.cvc
    choice = Choice(number=3)
    if choice.which == "number":
        pass
    await SinkClient(channel).nothing()
    return result.payment_id
'''

MISUSE = '''\
from __future__ import annotations

from gen.payments_rpcx import Card, Currency, PaymentsClient
from rpcx.stubs import Invoker


async def misuse(channel: Invoker) -> None:
    payments = PaymentsClient(channel)
    card = Card(card_number=4111, expiry_date="10/2030", cvc="123")
    await payments.process_payment(card, 3.99, Currency.GBP)
    await payments.process_payment(card, amount=None, currency=Currency.GBP, timeout="soon")
'''


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("generated")
    package = directory / "gen"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    for root in GOLDEN_ROOTS:
        for module, source in generate_all(root).items():
            (package / f"{module}.py").write_text(source, encoding="utf-8")
    (directory / "user.py").write_text(USER_CODE, encoding="utf-8")
    (directory / "misuse.py").write_text(MISUSE, encoding="utf-8")
    return directory


def _mypy(directory: Path, *targets: str) -> tuple[str, int]:
    stdout, stderr, status = mypy_api.run([
        "--strict", "--no-incremental", "--cache-dir", str(directory / ".mypy_cache"),
        "--config-file", str(ROOT / "pyproject.toml"), *(str(directory / t) for t in targets)])
    return stdout + stderr, status


def test_generated_code_and_its_users_pass_mypy_strict(generated: Path) -> None:
    output, status = _mypy(generated, "gen", "user.py")
    assert status == 0, output


def test_mypy_rejects_wrong_argument_types(generated: Path) -> None:
    output, status = _mypy(generated, "misuse.py")
    assert status == 1
    assert 'Argument "card_number" to "Card" has incompatible type "int"' in output
    assert 'incompatible type "float"; expected "Decimal"' in output
    assert 'Argument "amount" to "process_payment" of "PaymentsClient"' in output
    assert 'Argument "timeout" to "process_payment" of "PaymentsClient"' in output


def test_generated_code_passes_ruff(generated: Path) -> None:
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    done = subprocess.run([*command, "check", "--no-cache", "--config",
                           str(ROOT / "pyproject.toml"), str(generated / "gen")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
