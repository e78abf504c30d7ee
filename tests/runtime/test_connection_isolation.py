"""A bug on one connection ends that connection, never the server or the channel that owns
it (issue 9, must-hold 1: "whatever goes wrong in one connection ends at most that
connection"). The bug is injected into the sans-I/O core, where a malformed frame used to
raise ValueError out of ``receive_data``."""

from __future__ import annotations

import pytest
import trio

import rpcx
import rpcx.runtime.channel
import rpcx.runtime.server
from rpcx.protocol import Connection
from tests.runtime.echo_rpcx import EchoClient
from tests.runtime.harness import Echo, mem_address


class _BuggyConnection(Connection):
    """The core with a bug: ``receive_data`` raises for a poisoned payload."""

    raised = 0
    """Bugs raised so far (by every instance): the tests check the bug really fired."""

    def receive_data(self, data: bytes, now: float) -> None:
        if b"poison" in data:
            _BuggyConnection.raised += 1
            raise ValueError("a bug in the core")
        super().receive_data(data, now)


@pytest.fixture
def buggy_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers and channels made from here on use the buggy core. (A subclass, not a
    patched method: a compiled Link calls ``Connection.receive_data`` natively, which
    a patched class attribute would not reach, but it does reach a subclass's override;
    see ``rpcx._mypyc``.)"""
    monkeypatch.setattr(rpcx.runtime.server, "Connection", _BuggyConnection)
    monkeypatch.setattr(rpcx.runtime.channel, "Connection", _BuggyConnection)
    monkeypatch.setattr(_BuggyConnection, "raised", 0)


@pytest.mark.usefixtures("buggy_core")
async def test_a_bug_on_one_server_connection_spares_the_others() -> None:
    address = mem_address()
    with trio.fail_after(10):
        async with rpcx.open_server(address, [Echo()]) as server, \
                rpcx.open_channel(address) as bystander, \
                rpcx.open_channel(address, retry=rpcx.NO_RETRY) as victim:
            assert await EchoClient(bystander).echo("before") == "before"
            with pytest.raises(rpcx.RpcError) as info:
                await EchoClient(victim).echo("poison")
            assert info.value.code is rpcx.Status.UNAVAILABLE
            assert _BuggyConnection.raised == 1  # in the server's core
            assert await EchoClient(bystander).echo("after") == "after"  # same connection
            assert await EchoClient(victim).echo("again") == "again"  # reconnects
            assert server.statistics().connections == 2


@pytest.mark.usefixtures("buggy_core")
async def test_a_bug_on_a_client_connection_fails_its_calls_not_the_channel() -> None:
    address = mem_address()

    class Poisonous(Echo):
        async def echo(self, text: str) -> str:
            return "poison" if text == "trigger" else text

    with trio.fail_after(10):
        async with rpcx.open_server(address, [Poisonous()]), \
                rpcx.open_channel(address, retry=rpcx.NO_RETRY) as channel:
            with pytest.raises(rpcx.RpcError) as info:
                await EchoClient(channel).echo("trigger")  # the reply poisons the client
            assert info.value.code is rpcx.Status.UNAVAILABLE
            assert _BuggyConnection.raised == 1  # in the client's core
            assert await EchoClient(channel).echo("fine") == "fine"  # a new connection
