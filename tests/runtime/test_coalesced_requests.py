"""Callers woken by one read leave their next requests queued for the last of them to
write (``rpcx.runtime.link.Link.woken``): many calls in flight on one connection
cost a few writes per read, not one per call, and no request is ever left unwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import rpcx
from rpcx.transport import SocketStream
from tests.runtime.echo_rpcx import EchoClient
from tests.runtime.harness import Echo, mem_address

CALLERS = 64
CALLS_EACH = 20


async def _many_callers(address: str) -> tuple[list[str], rpcx.Channel]:
    replies: list[str] = []
    async with rpcx.open_server(address, [Echo()]), rpcx.open_channel(address) as channel:
        client = EchoClient(channel)

        async def caller(n: int) -> None:
            for i in range(CALLS_EACH):
                replies.append(await client.echo(f"{n}.{i}"))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for n in range(CALLERS):
                    nursery.start_soon(caller, n)
        link = channel._link
        assert link is not None and link.link.woken == 0 and not link.link.conn.has_data_to_send()
    return replies, channel


async def test_requests_of_callers_woken_together_share_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = [0]
    send_nowait = SocketStream.send_nowait

    def counting(self: SocketStream, data: bytes | bytearray | memoryview) -> int:
        writes[0] += 1
        return send_nowait(self, data)

    monkeypatch.setattr(SocketStream, "send_nowait", counting)
    replies, _ = await _many_callers(f"unix://{tmp_path / 'many.sock'}")
    assert sorted(replies) == sorted(f"{n}.{i}" for n in range(CALLERS)
                                     for i in range(CALLS_EACH))
    # client and server together: far fewer writes than calls (one each before)
    assert writes[0] < CALLERS * CALLS_EACH / 2


async def test_every_request_is_written_on_a_stream_that_is_not_a_socket() -> None:
    replies, channel = await _many_callers(mem_address())
    assert len(replies) == CALLERS * CALLS_EACH
    assert channel.statistics().failures == 0
