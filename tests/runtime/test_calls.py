"""Unary calls, errors and status codes through a real server and channel (in memory)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import rpcx
from rpcx.schema import INT, STRING, FieldSpec, MethodSpec, StructSpec
from tests.runtime.echo_rpcx import Refused
from tests.runtime.harness import Echo, echo_pair


async def test_a_call_reads_like_a_local_call() -> None:
    async with echo_pair() as (client, _, _, _):
        assert await client.echo("hello") == "hello"
        assert (await client.blob(3)).data == b"\0\0\0"


async def test_a_slow_handler_does_not_block_other_calls(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair() as (client, impl, _, channel):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.slow, 60.0, "slow")
            await impl.started.wait()
            start = trio.current_time()
            results = []

            async def one(i: int) -> None:
                results.append(await client.echo(str(i)))

            async with trio.open_nursery() as calls:
                for i in range(100):
                    calls.start_soon(one, i)
            assert trio.current_time() - start < 1.0, "echo calls waited for the slow one"
            assert sorted(results, key=int) == [str(i) for i in range(100)]
            assert channel.statistics().connects == 1, "all calls shared one connection"
            nursery.cancel_scope.cancel()


async def test_declared_errors_arrive_as_their_class() -> None:
    async with echo_pair() as (client, _, _, _):
        with pytest.raises(Refused) as caught:
            await client.fail(0, "not today")
        assert caught.value.why == "not today"
        assert caught.value.code is rpcx.Status.FAILED_PRECONDITION


@pytest.mark.parametrize("status", [rpcx.Status.NOT_FOUND, rpcx.Status.PERMISSION_DENIED,
                                    rpcx.Status.ALREADY_EXISTS])
async def test_status_errors_carry_code_message_and_details(status: rpcx.Status) -> None:
    async with echo_pair(retry=rpcx.NO_RETRY) as (client, _, _, _):
        with pytest.raises(rpcx.RemoteError) as caught:
            await client.fail(int(status), "no such thing")
        assert caught.value.code is status
        assert caught.value.message == "no such thing"
        assert caught.value.details == {"hint": "from the handler"}


async def test_an_unexpected_exception_becomes_internal_without_leaking(
        caplog: pytest.LogCaptureFixture) -> None:
    async with echo_pair() as (client, _, _, _):
        with pytest.raises(rpcx.RemoteError) as caught:
            await client.crash()
        assert caught.value.code is rpcx.Status.INTERNAL
        assert "hunter2" not in str(caught.value)
        assert "hunter2" in caplog.text, "the server logs what really happened"
        assert await client.echo("still serving") == "still serving"


def _method(name: str, *fields: FieldSpec) -> MethodSpec:
    return MethodSpec(name, "echo.Echo", StructSpec(f"echo.Echo.{name}", None, fields), STRING)


async def test_unknown_methods_are_unimplemented() -> None:
    async with echo_pair() as (_, _, _, channel):
        with pytest.raises(rpcx.RemoteError) as caught:
            await channel.call(_method("nope"), ())
        assert caught.value.code is rpcx.Status.UNIMPLEMENTED
        assert "echo.Echo/nope" in caught.value.message


async def test_undecodable_arguments_are_invalid_argument_naming_the_field() -> None:
    async with echo_pair() as (_, _, _, channel):
        wrong = _method("echo", FieldSpec(1, "text", INT))  # the server expects a string
        with pytest.raises(rpcx.RemoteError) as caught:
            await channel.call(wrong, (42,))
        assert caught.value.code is rpcx.Status.INVALID_ARGUMENT
        assert "text: expected string, got int" in caught.value.message


async def test_bad_arguments_are_refused_before_sending() -> None:
    async with echo_pair() as (client, _, server, _):
        with pytest.raises(rpcx.CodecError, match="text: expected string, got int"):
            await client.echo(42)  # type: ignore[arg-type]
        assert server.statistics().calls == 0


async def test_one_way_calls_run_without_a_reply() -> None:
    impl = Echo()
    async with echo_pair(impl) as (client, _, _, _):
        for i in range(5):
            await client.note(f"note {i}")
        assert await client.echo("sync") == "sync"  # after the notes on the same connection
        await trio.testing.wait_all_tasks_blocked()
        # Each call runs in its own task, so one-way calls have no order among themselves.
        assert sorted(impl.notes) == [f"note {i}" for i in range(5)]


async def test_a_message_over_the_size_limit_fails_that_call_only() -> None:
    async with echo_pair(server_options={"max_frame_size": 64 * 1024}) as (client, _, server,
                                                                           channel):
        with pytest.raises(rpcx.RemoteError) as caught:
            await client.blob(100 * 1024)
        assert caught.value.code is rpcx.Status.RESOURCE_EXHAUSTED
        assert caught.value.details == {"limit": "max_frame_size"}
        assert channel.statistics().retries == 0, "the same reply would be too large again"
        assert server.statistics().calls == 1
        assert (await client.blob(1024)).data == bytes(1024), "the connection survives"


async def test_too_large_arguments_fail_on_the_client(
        ) -> None:
    async with echo_pair(max_frame_size=64 * 1024) as (client, _, server, _):
        with pytest.raises(rpcx.RpcError) as caught:
            await client.echo("x" * (100 * 1024))
        assert caught.value.code is rpcx.Status.RESOURCE_EXHAUSTED
        assert caught.value.details == {"limit": "max_frame_size"}
        assert await client.echo("small") == "small"
        assert server.statistics().calls == 1
