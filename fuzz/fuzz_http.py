"""Atheris target: the HTTP face's request path on arbitrary bytes.

    python fuzz/fuzz_http.py -atheris_runs=20000      # (see fuzz/README.md)

Each input is sent to a real :class:`rpcx.gateway.HttpServer` connection over an in-memory
stream (the first byte chooses how the server's reads split it: whole, byte by byte, or in
pieces of a few sizes), then a normal request is made on a new connection. The property
(``tests/gateway/_hostile.py``): every response is well-formed HTTP/1.1 with a documented
status, every error has a JSON body ``{"code", "message", "details"}`` without Python
notation, the connection never raises or logs a failure, and the server still answers
the normal request. Hypothesis twin: ``tests/gateway/test_hostile.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    import trio

    from examples.payments.service import Payments
    from rpcx.gateway import HttpServer
    from rpcx.gateway.server import build_dispatcher
    from tests.gateway._hostile import exchange, request_bytes
    from tests.runtime.harness import Echo

SERVER = HttpServer(build_dispatcher([Payments(), Echo()], [], True), max_body_bytes=4096,
                    max_pipelined_bytes=4096)
SPLITS: list[tuple[int, ...]] = [(), (1,), (7,), (3, 100, 1), (4096,)]
NORMAL = request_bytes("/echo.Echo/echo", json.dumps({"text": "still here"}).encode())


async def _one(data: bytes, sizes: tuple[int, ...]) -> None:
    await exchange(SERVER, data, sizes=sizes)
    responses = await exchange(SERVER, NORMAL)
    if [(r.status, r.json()) for r in responses] != [(200, "still here")]:
        raise AssertionError(f"the server stopped serving: {responses!r}")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    trio.run(_one, data[1:], SPLITS[data[0] % len(SPLITS)])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
