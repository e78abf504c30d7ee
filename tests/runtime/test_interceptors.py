"""Interceptors on both sides: order, what they see, short-circuits, token auth, logging,
and metrics collection (the pattern an application would use for its own metrics)."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import Any

import pytest
import trio
import trio.testing

import rpcx
from rpcx.runtime.interceptors import CallInfo, Proceed
from tests.runtime.harness import echo_pair


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.seen: list[CallInfo] = []

    async def intercept_client(self, call: CallInfo, proceed: Proceed) -> Any:
        self.seen.append(call)
        self.log.append(f"{self.name} in")
        call.metadata[f"via-{self.name}"] = "yes"
        result = await proceed(call)
        self.log.append(f"{self.name} out")
        return result

    async def intercept_server(self, call: CallInfo, proceed: Proceed) -> Any:
        return await self.intercept_client(call, proceed)


async def test_interceptors_run_in_order_and_see_method_metadata_and_deadline(
        autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    outer, inner = Recorder("c1", log), Recorder("c2", log)
    server_side = Recorder("s1", log)
    async with echo_pair(interceptors=[outer, inner],
                         server_options={"interceptors": [server_side]}) as (client, _, _, _):
        seen = await client.context(timeout=5.0, metadata={"user": "ann"})
    assert log == ["c1 in", "c2 in", "s1 in", "s1 out", "c2 out", "c1 out"]
    call = outer.seen[0]
    assert call.method.path == "echo.Echo/context"
    assert call.deadline == pytest.approx(trio.current_time() + 5.0, abs=0.1)
    assert server_side.seen[0].metadata["user"] == "ann"
    assert server_side.seen[0].deadline == pytest.approx(call.deadline, abs=1e-6)
    assert seen["via-c1"] == seen["via-c2"] == seen["via-s1"] == "yes", \
        "metadata added by interceptors reaches the handler"


class Refuse:
    async def intercept_server(self, call: CallInfo, proceed: Proceed) -> Any:
        if call.method.name == "increment":
            raise rpcx.RpcError(rpcx.Status.PERMISSION_DENIED, "read-only replica")
        return await proceed(call)


class Cache:
    async def intercept_client(self, call: CallInfo, proceed: Proceed) -> Any:
        if call.method.name == "echo" and call.args == ("cached",):
            return "from the cache"
        return await proceed(call)


async def test_interceptors_can_short_circuit() -> None:
    async with echo_pair(interceptors=[Cache()],
                         server_options={"interceptors": [Refuse()]}) as (client, impl, server, _):
        with pytest.raises(rpcx.RemoteError) as caught:
            await client.increment(1)
        assert caught.value.code is rpcx.Status.PERMISSION_DENIED
        assert impl.increments == 0, "the handler never ran"
        assert await client.echo("cached") == "from the cache"
        assert server.statistics().calls == 1, "the cached call never left the client"


async def test_token_auth_rejects_missing_and_wrong_tokens() -> None:
    server_options = {"interceptors": [rpcx.TokenAuth(accept={"s3cret"})]}
    async with echo_pair(server_options=server_options) as (client, _, _, _):
        with pytest.raises(rpcx.RpcError) as missing:
            await client.echo("hi")
        assert missing.value.code is rpcx.Status.UNAUTHENTICATED
        assert missing.value.message == "missing bearer token"
        with pytest.raises(rpcx.RpcError) as wrong:
            await client.echo("hi", metadata={"authorization": "Bearer guess"})
        assert wrong.value.code is rpcx.Status.UNAUTHENTICATED
        assert "guess" not in wrong.value.message
    async with echo_pair(server_options=server_options,
                         interceptors=[rpcx.TokenAuth(token="s3cret")]) as (client, _, _, _):
        assert await client.echo("hi") == "hi"


async def test_logging_interceptor_logs_outcomes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rpcx.calls")
    async with echo_pair(interceptors=[rpcx.LoggingInterceptor()], retry=rpcx.NO_RETRY,
                         server_options={"interceptors": [rpcx.LoggingInterceptor()]}
                         ) as (client, _, _, _):
        await client.echo("hi")
        with pytest.raises(rpcx.RemoteError):
            await client.fail(int(rpcx.Status.NOT_FOUND))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("call echo.Echo/echo -> OK") for m in messages)
    assert any(m.startswith("serve echo.Echo/echo -> OK") for m in messages)
    assert any(m.startswith("serve echo.Echo/fail -> NOT_FOUND") for m in messages)
    assert any(m.startswith("call echo.Echo/fail -> NOT_FOUND") for m in messages)


class Metrics:
    """What an application writes to export per-method counts and latency."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[str, list[float]] = defaultdict(list)

    async def intercept_server(self, call: CallInfo, proceed: Proceed) -> Any:
        start = trio.current_time()
        outcome = "OK"
        try:
            return await proceed(call)
        except rpcx.RpcError as error:
            outcome = error.code.name
            raise
        finally:
            self.calls[call.method.path, outcome] += 1
            self.latency[call.method.path].append(trio.current_time() - start)


async def test_metrics_can_be_collected_with_an_interceptor(
        autojump_clock: trio.testing.MockClock) -> None:
    metrics = Metrics()
    async with echo_pair(server_options={"interceptors": [metrics]},
                         retry=rpcx.NO_RETRY) as (client, _, _, _):
        for _ in range(3):
            await client.echo("x")
        await client.slow(0.25)
        with pytest.raises(rpcx.RemoteError):
            await client.fail(int(rpcx.Status.ABORTED))
    assert metrics.calls == {("echo.Echo/echo", "OK"): 3, ("echo.Echo/slow", "OK"): 1,
                             ("echo.Echo/fail", "ABORTED"): 1}
    assert metrics.latency["echo.Echo/slow"] == [pytest.approx(0.25, abs=1e-6)]
    assert all(not math.isnan(t) for t in metrics.latency["echo.Echo/echo"])
