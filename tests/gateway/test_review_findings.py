"""HTTP gateway bugs found in review: each test failed before its fix."""

from __future__ import annotations

from typing import Any

import trio

from rpcx.gateway import HttpServer, open_http_server
from tests.gateway._client import HttpClient
from tests.runtime.harness import Echo

ECHO = "/echo.Echo/echo"


async def test_a_bug_while_answering_is_a_500_and_the_server_keeps_serving(
        monkeypatch: Any) -> None:
    def broken(self: HttpServer) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr(HttpServer, "_openapi", broken)
    async with open_http_server("tcp://127.0.0.1:0", [Echo()]) as server:
        port = int(server.addresses[0].rpartition(":")[2])
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                response = await HttpClient(stream).request("GET", "/openapi.json")
            assert response.status == 500
            assert response.json()["code"] == "INTERNAL"
            assert response.headers["connection"] == "close"
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                response = await HttpClient(stream).call(ECHO, {"text": "still here"})
            assert response.json() == "still here"
