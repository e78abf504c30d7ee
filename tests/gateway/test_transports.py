"""The HTTP face beyond plain TCP: HTTPS (``tls://`` with a server context) and HTTP on a
Unix socket, each called by curl in a real process; and ``Expect: 100-continue``."""

from __future__ import annotations

import json
import shutil
import ssl
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import trustme

import rpcx
from examples.payments.service import Payments
from rpcx.gateway import open_http_server
from tests.gateway._client import connected
from tests.gateway.test_http import CARD, PROCESS, SEED_ARGS, make_server

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


async def _curl(*args: str) -> tuple[int, Any]:
    """Run curl; return its HTTP status and the JSON body."""
    done = await trio.run_process(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
                                  capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    body, _, status = done.stdout.decode().rpartition("\n")
    return int(status), json.loads(body)


@needs_curl
async def test_https_with_a_server_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with open_http_server("tls://127.0.0.1:0", [Payments()],
                                transport=rpcx.TlsTransport(server_ctx)) as server:
        (url,) = server.addresses
        assert url.startswith("https://127.0.0.1:")
        status, body = await _curl("--cacert", str(ca_file), "-H",
                                   "content-type: application/json", "-d",
                                   json.dumps(SEED_ARGS), url + PROCESS)
        assert (status, body) == (200, {"success": True, "payment_id": "pay_000001"})
        # Without the CA, curl refuses the certificate: TLS is really in use.
        refused = await trio.run_process(["curl", "-sS", "-d", "{}", url + PROCESS],
                                         capture_stdout=True, capture_stderr=True,
                                         check=False)
        assert refused.returncode != 0


@needs_curl
async def test_http_on_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "http.sock"
    async with open_http_server(f"unix://{path}", [Payments()]) as server:
        assert server.addresses == [f"unix://{path}"]
        status, body = await _curl("--unix-socket", str(path), "-H",
                                   "content-type: application/json", "-d",
                                   json.dumps(SEED_ARGS), "http://localhost" + PROCESS)
    assert (status, body) == (200, {"success": True, "payment_id": "pay_000001"})


async def test_expect_100_continue_is_answered_before_the_body() -> None:
    body = json.dumps({**SEED_ARGS, "merchant": "x" * 2000}).encode()
    async with connected(make_server()) as client:
        head = client.conn.send(h11.Request(method="POST", target=PROCESS, headers=[
            ("host", "test"), ("content-type", "application/json"),
            ("content-length", str(len(body))), ("expect", "100-continue")]))
        await client.stream.send_all(head)
        with trio.fail_after(2):  # without the 100, a client waits for its own timeout
            while True:
                event = client.conn.next_event()
                if event is h11.NEED_DATA:
                    client.conn.receive_data(bytes(await client.stream.receive_some(65536)))
                    continue
                break
        assert isinstance(event, h11.InformationalResponse)
        assert event.status_code == 100
        await client.stream.send_all(client.conn.send(h11.Data(data=body))
                                     + client.conn.send(h11.EndOfMessage()))
        response = await client.read_response()
    assert response.status == 200, response
    assert response.json()["success"] is True


async def test_a_too_large_body_with_expect_gets_413_and_no_100() -> None:
    async with connected(make_server(max_body_bytes=100)) as client:
        head = client.conn.send(h11.Request(method="POST", target=PROCESS, headers=[
            ("host", "test"), ("content-type", "application/json"),
            ("content-length", "5000"), ("expect", "100-continue")]))
        await client.stream.send_all(head)
        with trio.fail_after(2):
            response = await client.read_response()
    assert response.status == 413
    assert "5000" in response.json()["message"]


@needs_curl
async def test_curl_with_expect_100_continue_does_not_wait_for_its_timeout() -> None:
    # curl sends ``Expect: 100-continue`` on its own only for large bodies (over 1 MiB in
    # curl 7.88) and uploads; here it is asked for explicitly. Unanswered, curl would
    # wait out its 30 s expect timeout before sending the body.
    args = {**SEED_ARGS, "card": CARD, "merchant": "m" * 4000}
    async with open_http_server("tcp://127.0.0.1:0", [Payments()]) as server:
        (url,) = server.addresses
        start = trio.current_time()
        status, body = await _curl("-H", "content-type: application/json",
                                   "-H", "Expect: 100-continue",
                                   "--expect100-timeout", "30", "-d", json.dumps(args),
                                   url + PROCESS)
        elapsed = trio.current_time() - start
    assert status == 200 and body["success"] is True
    assert elapsed < 20, "curl waited for a 100 Continue that never came"

