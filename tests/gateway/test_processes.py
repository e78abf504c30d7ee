"""The payments example as a real server process over TCP, called with curl, Node's fetch
(the notes' browser snippet), raw malformed requests, and the rpcx command line."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway._procs import REPO, PaymentsProcess, env, free_port, payments_process, raw_http

PROCESS = "/payments.Payments/process_payment"
CARD = {"card_number": "4111 1111 1111 1111", "expiry_date": "10/2030", "cvc": "123"}
SEED_ARGS: dict[str, Any] = {"card": CARD, "amount": "3.99", "currency": "GBP"}
DECLINED_ARGS: dict[str, Any] = {**SEED_ARGS, "card": {**CARD,
                                                       "card_number": "4000 0000 0000 0002"}}
SEED_JS = Path(__file__).with_name("seed_fetch.js")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentsProcess]:
    with payments_process(tmp_path_factory.mktemp("payments")) as process:
        yield process


def run(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=env(), check=False)


def rpcx_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "rpcx", *args)


# -- curl ----------------------------------------------------------------------------------

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@needs_curl
def test_curl_the_seed_call(server: PaymentsProcess) -> None:
    done = run("curl", "-sS", "-X", "POST", f"{server.http}{PROCESS}",
               "-H", "Content-Type: application/json", "-d", json.dumps(SEED_ARGS),
               "-w", "\n%{http_code}")
    body, _, status = done.stdout.rpartition("\n")
    assert status == "200", done
    result = json.loads(body)
    assert result["success"] is True and result["payment_id"].startswith("pay_")


@needs_curl
def test_curl_a_declared_error(server: PaymentsProcess) -> None:
    done = run("curl", "-sS", f"{server.http}{PROCESS}", "-H",
               "Content-Type: application/json", "-d", json.dumps(DECLINED_ARGS),
               "-w", "\n%{http_code}")
    body, _, status = done.stdout.rpartition("\n")
    assert status == "400"
    assert json.loads(body) == {
        "code": "FAILED_PRECONDITION",
        "message": 'payments.CardDeclined {reason: "insufficient funds"}', "details": {},
        "error": "payments.CardDeclined", "fields": {"reason": "insufficient funds"}}


@needs_curl
def test_curl_keeps_the_connection_alive_across_requests(server: PaymentsProcess) -> None:
    url = f"{server.http}/payments.Payments/get_payment"
    done = run("curl", "-sS", "-v", "-H", "Content-Type: application/json",
               "-d", '{"payment_id": "x"}', url, "--next",
               "-H", "Content-Type: application/json", "-d", '{"payment_id": "y"}', url)
    assert "Re-using existing connection" in done.stderr or \
        "existing connection" in done.stderr, done.stderr
    assert done.stdout.count('"payments.NotFound"') == 2


# -- Node fetch: the notes' snippet --------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node (Node.js 18+) is not installed: the fetch snippet cannot run")
    return path


def fetch(node: str, url: str, args: dict[str, Any]) -> dict[str, Any]:
    done = run(node, str(SEED_JS), url, json.dumps(args))
    assert done.returncode == 0, done
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_fetch_success(node: str, server: PaymentsProcess) -> None:
    # The notes' own arguments: amount 3.99 as a JavaScript number, currency 'GBP'.
    out = fetch(node, f"{server.http}{PROCESS}", {"card": CARD, "amount": 3.99,
                                                  "currency": "GBP"})
    assert out["success"]["success"] is True


def test_fetch_declared_error(node: str, server: PaymentsProcess) -> None:
    assert fetch(node, f"{server.http}{PROCESS}", DECLINED_ARGS) == {"failure": 400}


def test_fetch_network_failure(node: str) -> None:
    out = fetch(node, f"http://127.0.0.1:{free_port()}{PROCESS}", SEED_ARGS)
    assert "fetch failed" in out["failure"]


# -- malformed requests over TCP -----------------------------------------------------------


def request(server: PaymentsProcess, head: str, body: bytes = b"") -> tuple[int, bytes]:
    data = head.replace("\n", "\r\n").encode() + b"\r\n" + body
    reply = raw_http(server.http, data)
    status = int(reply.split(b" ", 2)[1])
    return status, reply.partition(b"\r\n\r\n")[2]


def post(path: str, body: bytes, content_type: str = "application/json") -> tuple[str, bytes]:
    return (f"POST {path} HTTP/1.1\nhost: t\nconnection: close\ncontent-type: {content_type}"
            f"\ncontent-length: {len(body)}\n", body)


@pytest.mark.parametrize(("head", "body", "status", "needle"), [
    (*post(PROCESS, b'{"card": {'), 400, b"malformed JSON at 1:11"),
    (*post(PROCESS, json.dumps({**SEED_ARGS, "amount": [1]}).encode()), 400, b"amount"),
    (*post(PROCESS, json.dumps({"amount": "1", "currency": "GBP"}).encode()), 400,
     b"missing required field 'card'"),
    (*post("/payments.Payments/refund", b"{}"), 404, b"unknown method"),
    ("GET /payments.Payments/get_payment HTTP/1.1\nhost: t\nconnection: close\n", b"", 405,
     b"POST"),
    (*post(PROCESS, json.dumps(SEED_ARGS).encode(), "text/plain"), 415, b"application/json"),
    (f"POST {PROCESS} HTTP/1.1\nhost: t\ncontent-type: application/json\n"
     "content-length: 99999999\n", b"", 413, b"larger than the limit"),
    ("NOT HTTP AT ALL\n", b"", 400, b"malformed HTTP request"),
])
def test_malformed_requests(server: PaymentsProcess, head: str, body: bytes, status: int,
                            needle: bytes) -> None:
    got, reply = request(server, head, body)
    assert got == status, reply
    assert needle in reply
    assert set(json.loads(reply)) >= {"code", "message", "details"}


def test_keep_alive_several_requests_on_one_connection(server: PaymentsProcess) -> None:
    host, _, port = server.http.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Content-Type": "application/json"}
    ids = []
    for _ in range(3):
        conn.request("POST", PROCESS, json.dumps(SEED_ARGS), headers)
        response = conn.getresponse()
        assert response.status == 200
        ids.append(json.loads(response.read())["payment_id"])
        sock = conn.sock
    conn.request("GET", PROCESS)
    bad = conn.getresponse()
    assert bad.status == 405
    bad.read()
    conn.request("POST", "/payments.Payments/get_payment", json.dumps({"payment_id": ids[0]}),
                 headers)
    assert json.loads(conn.getresponse().read()) == {"success": True, "payment_id": ids[0]}
    assert conn.sock is sock  # one connection throughout
    conn.close()
    assert len(set(ids)) == 3


def test_cors_preflight(tmp_path: Path) -> None:
    with payments_process(tmp_path, "--cors", "https://shop.example") as server:
        head = (f"OPTIONS {PROCESS} HTTP/1.1\nhost: t\nconnection: close\n"
                "origin: https://shop.example\naccess-control-request-method: POST\n"
                "access-control-request-headers: content-type\n")
        reply = raw_http(server.http, head.replace("\n", "\r\n").encode() + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 204 ")
    assert b"access-control-allow-origin: https://shop.example" in reply
    assert b"access-control-allow-headers: content-type" in reply


# -- the command line ----------------------------------------------------------------------


def test_cli_describe(server: PaymentsProcess) -> None:
    done = rpcx_cli("describe", server.native)
    assert done.returncode == 0, done.stderr
    assert ("process_payment(card: payments.Card, amount: decimal, currency: "
            'payments.Currency, merchant: string = "") -> payments.Result throws '
            "payments.CardDeclined") in done.stdout
    assert "@idempotent @deadline(2s) get_payment(payment_id: string)" in done.stdout
    assert "enum payments.Currency { GBP = 1; EUR = 2; USD = 3; }" in done.stdout


def test_cli_call_success_and_declared_error(server: PaymentsProcess) -> None:
    done = rpcx_cli("call", server.native, "payments.Payments/process_payment",
                    json.dumps(SEED_ARGS))
    assert done.returncode == 0, done.stderr
    payment_id = json.loads(done.stdout)["payment_id"]
    done = rpcx_cli("call", server.native, "payments.Payments/get_payment",
                    json.dumps({"payment_id": payment_id}), "--timeout", "5")
    assert json.loads(done.stdout) == {"success": True, "payment_id": payment_id}
    done = rpcx_cli("call", server.native, "payments.Payments/process_payment",
                    json.dumps(DECLINED_ARGS))
    assert done.returncode == 1
    assert done.stderr.startswith(
        'FAILED_PRECONDITION: payments.CardDeclined {reason: "insufficient funds"}\n')
    assert '"fields": {"reason": "insufficient funds"}' in done.stderr


def test_cli_call_timeout_and_metadata(tmp_path: Path) -> None:
    with payments_process(tmp_path, "--token", "s3cret") as server:
        done = rpcx_cli("call", server.native, "payments.Payments/get_payment", "{}")
        assert done.returncode == 1 and done.stderr.startswith("UNAUTHENTICATED:")
        slow = json.dumps({**SEED_ARGS, "merchant": "slow bank"})
        done = rpcx_cli("call", server.native, "payments.Payments/process_payment", slow,
                        "--timeout", "0.5", "-m", "authorization=Bearer s3cret")
        assert done.returncode == 1
        assert done.stderr.startswith("DEADLINE_EXCEEDED:")


@pytest.mark.parametrize(("args", "needle"), [
    (["payments.Payments/process_payment", '{"amount": 1}'], "missing required field 'card'"),
    (["payments.Payments/process_payment", "{not json"], "malformed JSON at 1:2"),
    (["payments.Payments/refund", "{}"], "has no method 'refund'"),
    (["nope.Nope/x", "{}"], "does not serve 'nope.Nope'"),
    (["no-slash", "{}"], "PACKAGE.SERVICE/METHOD"),
])
def test_cli_usage_errors_exit_2(server: PaymentsProcess, args: list[str],
                                 needle: str) -> None:
    done = rpcx_cli("call", server.native, *args)
    assert done.returncode == 2, done
    assert needle in done.stderr


def test_cli_unreachable_server_exits_1() -> None:
    done = rpcx_cli("call", f"tcp://127.0.0.1:{free_port()}",
                    "payments.Payments/get_payment", "{}", "--timeout", "2")
    assert done.returncode == 1
    assert done.stderr.startswith(("UNAVAILABLE:", "DEADLINE_EXCEEDED:"))
