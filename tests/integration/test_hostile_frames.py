"""The attack of issue 9 replayed against real servers: one bad frame ends at most its own
connection, and pinned memory has a bound.

Each REQUEST below made the payments server *process* exit with status 1 before the fix
(``ValueError: meta map is 120067 bytes, limit 65535`` while building the GOAWAY that
quoted the bad value), dropping every other client. Now each gets an error GOAWAY in plain
words that fits its frame, and a client connected all along keeps calling.
"""

from __future__ import annotations

import functools

import cbor2
import pytest
import trio

import rpcx
from examples.payments.payments_rpcx import PaymentsClient
from examples.payments.service import Payments
from rpcx.protocol.budget import BUDGET_EXHAUSTED
from rpcx.protocol.frames import (
    HEADER,
    PREFACE,
    ErrorFrame,
    FrameType,
    GoAwayFrame,
    RequestFrame,
    encode_frame,
)
from rpcx.testing.fuzzing import python_notation
from rpcx.text import MAX_MESSAGE_BYTES
from tests.integration._procs import RawPeer, poll_until, seed_call
from tests.integration.conftest import Target
from tests.integration.test_bad_input import raw, still_serving
from tests.runtime.harness import Echo

PROCESS_PAYMENT = "payments.Payments/process_payment"


def raw_request(meta: dict[int, object], call_id: int = 1) -> bytes:
    meta_bytes = cbor2.dumps(meta)
    return HEADER.pack(len(meta_bytes), FrameType.REQUEST, 0, len(meta_bytes),
                       call_id) + meta_bytes


FINDINGS = {
    "method-of-30000-nul-bytes": raw_request({1: b"\x00" * 30_000}),
    "timeout-ms-of-20000-nul-chars": raw_request({1: PROCESS_PAYMENT, 2: "\x00" * 20_000}),
    "metadata-value-of-20000-bytes": raw_request({1: PROCESS_PAYMENT, 3: {"k": b"v" * 20_000}}),
    "timeout-ms-a-5000-digit-bignum": raw_request({1: PROCESS_PAYMENT, 2: 10**5000}),
    "method-of-60000-chars": raw_request({1: "m" * 60_000}),
}


@pytest.mark.parametrize("frame", FINDINGS.values(), ids=FINDINGS.keys())
async def test_a_finding_ends_only_its_own_connection(tcp_server: Target, frame: bytes) -> None:
    with trio.fail_after(20):
        async with tcp_server.channel() as bystander:
            payments = PaymentsClient(bystander)
            await seed_call(payments)  # connected before the attack
            async with raw(tcp_server) as peer:
                await peer.send(PREFACE + frame)
                assert await peer.read_preface() == PREFACE
                answer = await peer.read_frame()
                if isinstance(answer, GoAwayFrame):
                    assert answer.status is rpcx.Status.INTERNAL
                    assert answer.message.startswith("protocol error: ")
                    assert await peer.read_frame() is None  # then the server closes
                else:  # a long method name is just an unknown method
                    assert isinstance(answer, ErrorFrame), answer
                    assert answer.status is rpcx.Status.UNIMPLEMENTED
                assert len(answer.message.encode()) <= MAX_MESSAGE_BYTES
                assert python_notation(answer.message) is None, answer.message
            await seed_call(payments)  # the same connection still works
        await still_serving(tcp_server)  # and new ones are accepted
    assert tcp_server.server.logs.count("Traceback") == 0


async def test_a_client_given_a_hostile_error_frame_gets_an_rpc_error() -> None:
    """The client side of finding 1: an ERROR whose status is 20,000 bytes made
    ``open_channel`` raise ``ExceptionGroup[ValueError]`` instead of an RpcError."""
    async def evil_server(stream: trio.SocketStream) -> None:
        peer = RawPeer(stream)
        await peer.send(PREFACE)
        await peer.read_preface()
        request = await peer.read_frame()
        assert isinstance(request, RequestFrame)
        meta = cbor2.dumps({1: b"\x00" * 20_000})
        await peer.send(HEADER.pack(len(meta), FrameType.ERROR, 0, len(meta),
                                    request.call_id) + meta)
        await peer.read_until_eof()

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            functools.partial(trio.serve_tcp, evil_server, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        with trio.fail_after(10):
            async with rpcx.open_channel(f"tcp://127.0.0.1:{port}",
                                         retry=rpcx.RetryPolicy(max_attempts=1)) as channel:
                with pytest.raises(rpcx.RpcError) as info:
                    await seed_call(PaymentsClient(channel))
        assert info.value.code is rpcx.Status.UNAVAILABLE
        assert "status (meta key 1) must be an integer" in info.value.message
        assert python_notation(info.value.message) is None
        nursery.cancel_scope.cancel()


async def test_pinned_memory_is_bounded_and_others_are_served() -> None:
    """Finding 2: 64 clients each holding all but the last byte of a large frame. With a
    budget of 8 MiB the server holds at most 8 MiB; the frames that find no room are
    refused with a retryable RESOURCE_EXHAUSTED, and a normal client is served."""
    budget = 8 * 1024 * 1024
    frame = encode_frame(RequestFrame(call_id=1, method=PROCESS_PAYMENT,
                                      payload=b"\xa0" + b"\x00" * (1024 * 1024)))
    async with rpcx.open_server("tcp://127.0.0.1:0", [Payments()], max_buffered_bytes=budget,
                                frame_timeout=None) as server:
        host, port = rpcx.transport.parse_address(server.addresses[0]).host_port()
        with trio.fail_after(30):
            streams = [await trio.open_tcp_stream(host, port) for _ in range(64)]
            peers = [RawPeer(stream) for stream in streams]
            for peer in peers:
                await peer.send(PREFACE + frame[:-1])
                assert await peer.read_preface() == PREFACE
            # Each connection ends up holding its frame or refused; wait until all are
            # accounted for (the server reads at its own pace).
            each = len(frame) - 1
            refused: set[int] = set()
            while server.receive_budget.held // each + len(refused) < 64:
                assert server.receive_budget.held <= budget
                for number, peer in enumerate(peers):
                    if number in refused:
                        continue
                    with trio.move_on_after(0.01):
                        answer = await peer.read_frame()
                        assert isinstance(answer, ErrorFrame), answer
                        assert answer.status is rpcx.Status.RESOURCE_EXHAUSTED
                        assert dict(answer.details) == BUDGET_EXHAUSTED
                        refused.add(number)
            assert server.receive_budget.held <= budget
            assert len(refused) == 64 - budget // each
            async with rpcx.open_channel(server.addresses[0]) as channel:
                await seed_call(PaymentsClient(channel))
            for stream in streams:
                await trio.aclose_forcefully(stream)
            assert await poll_until(lambda: server.receive_budget.held == 0, 10)


async def test_a_frame_held_past_frame_timeout_gets_a_goaway() -> None:
    async with rpcx.open_server("tcp://127.0.0.1:0", [Payments()], frame_timeout=0.5) as server:
        host, port = rpcx.transport.parse_address(server.addresses[0]).host_port()
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream(host, port)
            peer = RawPeer(stream)
            await peer.send(PREFACE + raw_request({1: PROCESS_PAYMENT})[:-1])
            assert await peer.read_preface() == PREFACE
            goaway = await peer.read_frame()
            assert isinstance(goaway, GoAwayFrame)
            assert goaway.status is rpcx.Status.RESOURCE_EXHAUSTED
            assert "not completed within 0.5 s" in goaway.message
            assert await peer.read_frame() is None
            await trio.aclose_forcefully(stream)
            assert server.receive_budget.held == 0


async def test_one_client_flooding_keyed_calls_cannot_evict_anothers_key() -> None:
    """Finding 4: one client sending more keyed calls than the cache holds evicted another
    client's completed key, and that client's retry charged again. The cache is now charged
    per connection: the flooder only drops its own oldest keys."""
    impl = Echo()
    async with rpcx.open_server("tcp://127.0.0.1:0", [impl],
                                max_idempotency_cache=100) as server:
        host, port = rpcx.transport.parse_address(server.addresses[0]).host_port()

        async def keyed_calls(keys: list[bytes]) -> list[object]:
            stream = await trio.open_tcp_stream(host, port)
            peer = RawPeer(stream)
            await peer.send(PREFACE)
            assert await peer.read_preface() == PREFACE
            answers: list[object] = []
            for start in range(0, len(keys), 50):  # within max_concurrent_calls
                await peer.send(b"".join(
                    encode_frame(RequestFrame(call_id=n, method="echo.Echo/increment",
                                              payload=cbor2.dumps({1: 1}),
                                              idempotency_key=key))
                    for n, key in enumerate(keys[start:start + 50], start=start + 1)))
                answers += [await peer.read_frame() for _ in keys[start:start + 50]]
            await trio.aclose_forcefully(stream)
            return answers

        with trio.fail_after(30):
            (paid,) = await keyed_calls([b"alice-payment-1"])
            assert impl.increments == 1
            flood = await keyed_calls([b"mallory-%d" % i for i in range(300)])
            assert all(not isinstance(answer, ErrorFrame) for answer in flood)
            assert impl.increments == 301
            (retry,) = await keyed_calls([b"alice-payment-1"])  # a new connection
            assert retry == paid
            assert impl.increments == 301, "the retry ran the call again"
            assert server.statistics().replayed == 1
