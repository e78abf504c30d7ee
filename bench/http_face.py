"""Requests/s of the HTTP face (JSON over HTTP/1.1), measured with ``wrk``.

Run from the repository root: ``python bench/http_face.py [--seconds S]`` (needs ``wrk``:
``apt-get install wrk``).

The payments example's server runs in its own process exactly as its docs show
(``python -m examples.payments.server tcp://127.0.0.1:P --http tcp://127.0.0.1:Q``), and
``wrk`` POSTs ``process_payment`` with the request of docs/http.md (card, "3.99", "GBP",
merchant "Acme Ltd") over keep-alive connections: 1 connection (sequential) and 64
connections, one wrk thread. Every answer must be 200; the script fails otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rpcx.testing import free_ports

ROOT = Path(__file__).resolve().parent.parent
BODY = {"card": {"card_number": "4111 1111 1111 1111", "expiry_date": "10/2030",
                 "cvc": "123"}, "amount": "3.99", "currency": "GBP", "merchant": "Acme Ltd"}
PATH = "/payments.Payments/process_payment"


def free_port() -> int:
    return free_ports(1)[0]


def wait_for(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def run_wrk(url: str, connections: int, seconds: float, script: Path) -> dict[str, float]:
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
                           "--latency", "-s", str(script), url],
                          capture_output=True, text=True, check=True)
    out = done.stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failures:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def latency(q: str) -> str:
        found = re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)
        return found.group(1) if found else "-"
    return {"rate": rate, "p50": latency("50"), "p99": latency("99")}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    native, http = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-m", "examples.payments.server",
                               f"tcp://127.0.0.1:{native}", "--http", f"tcp://127.0.0.1:{http}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(http)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(BODY))}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
        url = f"http://127.0.0.1:{http}{PATH}"
        run_wrk(url, 1, 1.0, Path(lua.name))  # warm-up
        print("| connections | requests/s | p50 | p99 |\n| ---: | ---: | ---: | ---: |")
        for connections in (1, 64):
            got = run_wrk(url, connections, args.seconds, Path(lua.name))
            print(f"| {connections} | {got['rate']:,.0f} | {got['p50']} | {got['p99']} |",
                  flush=True)
        os.unlink(lua.name)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
