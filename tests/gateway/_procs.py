"""The payments example as a real server process with both faces, for the gateway tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from rpcx.testing import free_ports

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0


@attrs.frozen
class PaymentsProcess:
    native: str
    """``tcp://127.0.0.1:PORT``"""
    http: str
    """``http://127.0.0.1:PORT``"""
    log: Path


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}


@contextmanager
def payments_process(directory: Path, *extra: str) -> Iterator[PaymentsProcess]:
    """Run ``python -m examples.payments.server`` with ``--http``; kill it on the way out."""
    log = directory / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "examples.payments.server", "tcp://127.0.0.1:0",
             "--http", "tcp://127.0.0.1:0", "--quiet", *extra],
            cwd=REPO, env=env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            lines = log.read_text(errors="replace").splitlines()
            if len(lines) >= 2 and lines[1].startswith("http on "):
                assert lines[0].startswith("listening on "), lines
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield PaymentsProcess(lines[0].removeprefix("listening on ").strip(),
                              lines[1].removeprefix("http on ").strip(), log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port() -> int:
    """A port below the kernel's ephemeral range that nothing listens on."""
    return free_ports(1)[0]


def raw_http(url: str, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes to an ``http://HOST:PORT`` server; return all it sends until it closes
    (requests here say ``connection: close`` or make the server close)."""
    host, _, port = url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)
