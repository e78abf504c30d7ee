"""The OpenAPI document: valid by a real validator, and the live server exercised from it
by schemathesis (bounded: a few examples per operation)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from rpcx.gateway import openapi_document
from rpcx.reflection import with_reflection
from rpcx.runtime.dispatch import Dispatcher
from tests.gateway._procs import REPO, PaymentsProcess, env, payments_process
from tests.runtime.harness import Echo


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentsProcess]:
    with payments_process(tmp_path_factory.mktemp("openapi")) as process:
        yield process


def test_the_cli_document_is_valid_openapi_3_1() -> None:
    done = subprocess.run([sys.executable, "-m", "rpcx", "openapi", "idl/payments.rpcx",
                           "idl/echo.rpcx", "--server", "http://127.0.0.1:8080"],
                          capture_output=True, text=True, cwd=REPO, env=env(), check=True)
    document: dict[str, Any] = json.loads(done.stdout)
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) >= {"/payments.Payments/process_payment",
                                      "/echo.Echo/echo", "/echo.Echo/note"}
    card = document["components"]["schemas"]["payments.Card"]
    assert card["required"] == ["card_number", "expiry_date", "cvc"]
    assert "202" in document["paths"]["/echo.Echo/note"]["post"]["responses"]


def test_cli_and_server_documents_come_from_the_same_code() -> None:
    from examples.payments.service import Payments

    served = openapi_document(Dispatcher([Payments()]).services)
    done = subprocess.run([sys.executable, "-m", "rpcx", "openapi", "idl/payments.rpcx"],
                          capture_output=True, text=True, cwd=REPO, env=env(), check=True)
    assert json.loads(done.stdout) == served


def test_declared_errors_are_described_with_their_http_status() -> None:
    from examples.payments.service import Payments

    paths = openapi_document(Dispatcher([Payments()]).services)["paths"]
    get = paths["/payments.Payments/get_payment"]["post"]["description"]
    pay = paths["/payments.Payments/process_payment"]["post"]["description"]
    assert "Declared errors: payments.NotFound (HTTP 404, NOT_FOUND)." in get
    assert "payments.CardDeclined (HTTP 400, FAILED_PRECONDITION)" in pay


def test_every_type_kind_gives_a_valid_document() -> None:
    services = Dispatcher(with_reflection([Echo()])).services
    validate(openapi_document(services, server_url="http://localhost:1"))


def test_the_served_document_is_valid(server: PaymentsProcess) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{server.http}/openapi.json", timeout=10) as response:
        document = json.loads(response.read())
    validate(document)
    assert document["servers"] == [{"url": server.http}]


@pytest.mark.skipif(shutil.which("schemathesis") is None and not Path(
    sys.executable).with_name("schemathesis").exists(), reason="schemathesis is not installed")
def test_schemathesis_against_the_live_server(server: PaymentsProcess, tmp_path: Path) -> None:
    # positive_data_acceptance is excluded: a schema-valid request may still fail a
    # business rule (a zero amount, an unknown payment id) with a declared error, which is
    # the method's documented 400, not a schema violation.
    exe = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    done = subprocess.run(
        [exe, "run", f"{server.http}/openapi.json", "--max-examples", "10",
         "--phases", "examples,coverage,fuzzing", "--checks", "all",
         "--exclude-checks", "positive_data_acceptance", "--seed", "1", "--no-shrink",
         # watch streams until the caller stops: schemathesis reads answers to the end
         "--exclude-path", "/payments.Payments/watch",
         "--request-timeout", "5"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env(), check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_streaming_methods_are_described() -> None:
    from examples.payments.service import Payments
    from tests.streams.service import Streams

    document = openapi_document(Dispatcher([Payments(), Streams()]).services)
    validate(document)
    paths = document["paths"]
    watch = paths["/payments.Payments/watch"]["post"]
    assert watch["x-rpcx-streaming"] == "server"
    (line,) = watch["responses"]["200"]["content"].values()
    assert set(watch["responses"]["200"]["content"]) == {"application/x-ndjson"}
    assert {tuple(option["required"]) for option in line["schema"]["oneOf"]} == {
        ("message",), ("end",)}
    for name, shape in (("sum", "client"), ("double", "bidi")):
        operation = paths[f"/streamtest.Streams/{name}"]["post"]
        assert operation["x-rpcx-streaming"] == shape
        assert "200" not in operation["responses"]
        assert "not callable over HTTP" in operation["description"]
    assert "x-rpcx-streaming" not in paths["/payments.Payments/get_payment"]["post"]
