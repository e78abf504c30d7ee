"""Bad input never crashes the server: raw bytes over TCP to a payments server process,
frames built with the reference encoder (``rpcx/protocol/frames.py``, docs/protocol.md).

After each case the same server process is still running and a normal rpcx client can
still make calls to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import cbor2
import pytest
import trio

import rpcx
from examples.payments.payments_rpcx import PaymentsClient
from rpcx.protocol.frames import (
    HEADER,
    PREFACE,
    ErrorFrame,
    FrameType,
    GoAwayFrame,
    PingFrame,
    PongFrame,
    RequestFrame,
    encode_frame,
    parse_frame,
    parse_header,
)
from tests.integration._procs import CARD, RawPeer, seed_call
from tests.integration.conftest import Target

PROCESS_PAYMENT = "payments.Payments/process_payment"
GOOD_CARD = {1: CARD.card_number, 2: CARD.expiry_date, 3: CARD.cvc}


@asynccontextmanager
async def raw(target: Target) -> AsyncIterator[RawPeer]:
    host, port = rpcx.transport.parse_address(target.server.url).host_port()
    stream = await trio.open_tcp_stream(host, port)
    try:
        yield RawPeer(stream)
    finally:
        await trio.aclose_forcefully(stream)


async def still_serving(target: Target) -> None:
    assert target.server.process.poll() is None, target.server.logs.describe()
    async with target.channel() as channel:
        await seed_call(PaymentsClient(channel))


def request(call_id: int, method: str, payload: bytes) -> bytes:
    return encode_frame(RequestFrame(call_id=call_id, method=method, payload=payload))


def assert_refused(received: bytes) -> str | None:
    """What a non-rpcx peer may get before the server closes: nothing, or the server's
    preface (both sides send it without waiting), optionally followed by an error GOAWAY
    (docs/protocol.md § 2 says only "close the connection at once")."""
    if not received:
        return None
    assert received.startswith(PREFACE), received
    rest = received[len(PREFACE):]
    if rest:
        header = parse_header(rest[:HEADER.size])
        assert len(rest) == HEADER.size + header.body_length, received
        goaway = parse_frame(header, rest[HEADER.size:])
        assert isinstance(goaway, GoAwayFrame), goaway
        assert goaway.status is not rpcx.Status.OK
        return goaway.message
    return None


async def call_error(peer: RawPeer, call_id: int) -> ErrorFrame:
    frame = await peer.read_frame()
    assert isinstance(frame, ErrorFrame), frame
    assert frame.call_id == call_id
    return frame


async def test_garbage_bytes_are_refused(tcp_server: Target) -> None:
    with trio.fail_after(10):
        async with raw(tcp_server) as peer:
            await peer.send(b"GET / HTTP/1.1\r\nHost: payments\r\n\r\n")
            assert_refused(await peer.read_until_eof())
        await still_serving(tcp_server)


async def test_wrong_protocol_version_is_refused(tcp_server: Target) -> None:
    with trio.fail_after(10):
        async with raw(tcp_server) as peer:
            await peer.send(b"RPCX\r\n\x00\x02" + request(1, PROCESS_PAYMENT, b"\xa0"))
            message = assert_refused(await peer.read_until_eof())
            if message is not None:
                assert "version 2" in message and "speaks 1" in message, message
        await still_serving(tcp_server)


BAD_META = b"\xff\xff\xff"  # CBOR "break" where the meta map must start
BAD_META_FRAME = HEADER.pack(len(BAD_META), FrameType.REQUEST, 0, len(BAD_META), 1) + BAD_META


async def test_bad_cbor_meta_is_a_connection_error(tcp_server: Target) -> None:
    with trio.fail_after(10):
        async with raw(tcp_server) as peer:
            await peer.send(PREFACE + BAD_META_FRAME)
            assert await peer.read_preface() == PREFACE
            goaway = await peer.read_frame()
            assert isinstance(goaway, GoAwayFrame), goaway
            assert goaway.status is rpcx.Status.INTERNAL
            assert "malformed meta map" in goaway.message
            assert await peer.read_frame() is None  # then the server closes
        await still_serving(tcp_server)


async def test_connection_error_always_sends_an_error_goaway(tcp_server: Target) -> None:
    """docs/protocol.md: a connection error sends GOAWAY with a non-OK status (best
    effort: the peer may be gone), then closes. Here the peer is alive and reading, so
    every one of 20 connections must get it. Regression test: Link._timer_loop used to
    close the stream before the queued GOAWAY was written, losing it about half the
    time; 20 lucky connections in a row would happen about once in 200000 runs."""
    statuses = []
    with trio.fail_after(20):
        for _ in range(20):
            async with raw(tcp_server) as peer:
                await peer.send(PREFACE + BAD_META_FRAME)
                assert await peer.read_preface() == PREFACE
                frame = await peer.read_frame()
                statuses.append(frame.status if isinstance(frame, GoAwayFrame) else None)
    assert statuses == [rpcx.Status.INTERNAL] * 20


async def test_unknown_method_is_unimplemented_and_the_connection_survives(
        tcp_server: Target) -> None:
    with trio.fail_after(10):
        async with raw(tcp_server) as peer:
            await peer.send(PREFACE + request(1, "payments.Payments/refund", b"\xa0"))
            assert await peer.read_preface() == PREFACE
            error = await call_error(peer, 1)
            assert error.status is rpcx.Status.UNIMPLEMENTED
            assert int(error.status) == 12
            assert "payments.Payments/refund" in error.message
            # Same connection, next call id: a declared error comes back, fields and all.
            await peer.send(request(2, "payments.Payments/get_payment",
                                    cbor2.dumps({1: "pay_nope"})))
            error = await call_error(peer, 2)
            assert error.error_name == "payments.NotFound"
            assert error.error_payload is not None
            assert cbor2.loads(error.error_payload) == {1: "pay_nope"}
        await still_serving(tcp_server)


@pytest.mark.parametrize(("payload", "problem"), [
    pytest.param(cbor2.dumps({1: 42}), "card: expected payments.Card, got int", id="card"),
    pytest.param(cbor2.dumps({1: GOOD_CARD, 2: "3.99", 3: 1}),
                 "amount: expected decimal, got string", id="amount"),
    pytest.param(b"\xff\x00", "invalid CBOR", id="not-cbor"),
])
async def test_undecodable_arguments_are_invalid_argument(tcp_server: Target, payload: bytes,
                                                          problem: str) -> None:
    with trio.fail_after(10):
        async with raw(tcp_server) as peer:
            await peer.send(PREFACE + request(1, PROCESS_PAYMENT, payload))
            assert await peer.read_preface() == PREFACE
            error = await call_error(peer, 1)
            assert error.status is rpcx.Status.INVALID_ARGUMENT
            assert int(error.status) == 3
            assert problem in error.message
            assert error.error_name is None
            # The connection is still open and answers a PING.
            await peer.send(encode_frame(PingFrame(ping_id=7)))
            assert await peer.read_frame() == PongFrame(ping_id=7)
        await still_serving(tcp_server)


async def test_unknown_frame_type_is_skipped(tcp_server: Target) -> None:
    unknown = HEADER.pack(5, 0x42, 0, 0, 9) + b"hello"
    with trio.fail_after(10):
        async with raw(tcp_server) as peer:
            await peer.send(PREFACE + unknown + request(1, "payments.Payments/nope", b"\xa0"))
            assert await peer.read_preface() == PREFACE
            assert (await call_error(peer, 1)).status is rpcx.Status.UNIMPLEMENTED
        await still_serving(tcp_server)


async def test_truncated_frame_then_disconnect(tcp_server: Target) -> None:
    whole = request(1, PROCESS_PAYMENT, cbor2.dumps({1: GOOD_CARD}))
    with trio.fail_after(10):
        async with raw(tcp_server) as peer:
            await peer.send(PREFACE + whole[: len(whole) // 2])
        await still_serving(tcp_server)
    assert tcp_server.server.logs.count("Traceback") == 0
    assert tcp_server.server.logs.stderr.read_text() == ""
