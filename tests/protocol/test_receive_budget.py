"""Incomplete frames are bounded in bytes across connections and in time per frame
(issue 9, finding 2: 64 clients each holding a frame just under max_frame_size pinned
264 MiB for as long as they liked)."""

from __future__ import annotations

import pytest

from rpcx.protocol import (
    PREFACE,
    CallAborted,
    Connection,
    ConnectionState,
    ConnectionTerminated,
    RequestReceived,
    Role,
    TerminationReason,
)
from rpcx.protocol.budget import BUDGET_EXHAUSTED, ReceiveBudget
from rpcx.protocol.frames import (
    HEADER,
    ErrorFrame,
    GoAwayFrame,
    RequestFrame,
    ResponseFrame,
    encode_frame,
)
from rpcx.status import Status
from tests.protocol.test_hostile_input import sent_frames

METHOD = "echo.Echo/echo"


def request(call_id: int, size: int, *, oneway: bool = False) -> bytes:
    return encode_frame(RequestFrame(call_id=call_id, method=METHOD, payload=b"p" * size,
                                     oneway=oneway))


def server(budget: ReceiveBudget | None = None, **options: object) -> Connection:
    conn = Connection(Role.SERVER, now=0.0, budget=budget, **options)  # type: ignore[arg-type]
    conn.data_to_send()
    conn.receive_data(PREFACE, 0.0)
    return conn


def state(conn: Connection) -> ConnectionState:
    return conn.state  # a call, so that mypy does not narrow the state across calls


def test_held_bytes_never_exceed_the_budget_across_64_connections() -> None:
    budget = ReceiveBudget(1_000_000)
    conns = [server(budget) for _ in range(64)]
    frame = request(1, 100_000)
    refused = 0
    for conn in conns:
        conn.receive_data(frame[:-1], 1.0)  # all but the last byte
        assert budget.held <= budget.limit
        sent = sent_frames(conn.data_to_send())
        if sent:
            (error,) = sent
            assert isinstance(error, ErrorFrame) and error.call_id == 1
            assert error.status is Status.RESOURCE_EXHAUSTED
            assert dict(error.details) == BUDGET_EXHAUSTED
            refused += 1
    assert budget.held == 9 * (len(frame) - 1)  # nine fit in 1,000,000 bytes
    assert refused == 64 - 9
    # The refused connections go on: their dropped frame's last byte is skipped, and the
    # next request is served normally.
    for conn in conns:
        conn.receive_data(frame[-1:], 2.0)
        conn.receive_data(request(2, 10), 2.0)
        calls = [e.call_id for e in conn.events() if isinstance(e, RequestReceived)]
        assert calls in ([1, 2], [2])
        assert conn.state is ConnectionState.OPEN
    assert budget.held == 0


def test_a_closed_connection_gives_its_share_back() -> None:
    budget = ReceiveBudget(10_000)
    conn = server(budget)
    conn.receive_data(request(1, 5_000)[:3_000], 1.0)
    assert budget.held == 3_000
    conn.receive_data(b"", 2.0)  # peer closed mid-frame
    assert conn.state is ConnectionState.CLOSED
    assert budget.held == 0


def test_a_refused_oneway_request_is_dropped_silently() -> None:
    budget = ReceiveBudget(100)
    conn = server(budget)
    conn.receive_data(request(1, 1_000, oneway=True)[:500], 1.0)
    assert budget.held == 0
    assert conn.data_to_send() == b""
    assert conn.state is ConnectionState.OPEN


def test_a_client_with_a_budget_fails_the_call_whose_reply_found_no_room() -> None:
    budget = ReceiveBudget(100)
    client = Connection(Role.CLIENT, now=0.0, budget=budget)
    call_id = client.start_call(METHOD, b"", now=0.0)
    client.data_to_send()
    client.receive_data(PREFACE + encode_frame(ResponseFrame(call_id=call_id,
                                                             payload=b"r" * 1_000))[:600], 1.0)
    (aborted,) = client.events()
    assert isinstance(aborted, CallAborted)
    assert aborted.status is Status.RESOURCE_EXHAUSTED and dict(aborted.details) == BUDGET_EXHAUSTED
    assert budget.held == 0


def test_a_few_header_bytes_are_always_taken() -> None:
    budget = ReceiveBudget(0)
    conn = server(budget)
    conn.receive_data(request(1, 10)[: HEADER.size - 1], 1.0)
    assert budget.held == HEADER.size - 1
    conn.receive_data(request(1, 10)[HEADER.size - 1:], 1.0)
    assert [type(e) for e in conn.events()] == [RequestReceived]
    assert budget.held == 0


def test_budget_rejects_a_negative_limit() -> None:
    with pytest.raises(ValueError, match="limit must be at least 0"):
        ReceiveBudget(-1)


# ---------------------------------------------------------------- frame_timeout


def test_a_frame_not_completed_in_time_closes_the_connection_with_a_goaway() -> None:
    conn = server(frame_timeout=30.0, keepalive_interval=None)
    assert conn.next_deadline() is None
    frame = request(1, 1_000)
    conn.receive_data(frame[:100], 10.0)
    assert conn.next_deadline() == 40.0
    conn.receive_data(frame[100:200], 35.0)  # more bytes do not extend the frame's time
    assert conn.next_deadline() == 40.0
    conn.handle_timeout(39.9)
    assert state(conn) is ConnectionState.OPEN
    conn.handle_timeout(40.0)
    assert state(conn) is ConnectionState.CLOSED
    (terminated,) = conn.events()
    assert isinstance(terminated, ConnectionTerminated)
    assert terminated.reason is TerminationReason.FRAME_TIMEOUT
    (goaway,) = sent_frames(conn.data_to_send())
    assert isinstance(goaway, GoAwayFrame) and goaway.status is Status.RESOURCE_EXHAUSTED
    assert "not completed within 30 s" in goaway.message


def test_each_frame_gets_its_own_time() -> None:
    conn = server(frame_timeout=30.0, keepalive_interval=None)
    first, second = request(1, 1_000), request(2, 1_000)
    conn.receive_data(first[:500], 10.0)
    conn.receive_data(first[500:] + second[:10], 30.0)  # first done; second begins at 30
    assert conn.next_deadline() == 60.0
    conn.receive_data(second[10:], 59.0)
    assert conn.next_deadline() is None
    assert [e.call_id for e in conn.events() if isinstance(e, RequestReceived)] == [1, 2]


def test_a_server_without_a_frame_timeout_waits_for_keepalive_only() -> None:
    conn = server(keepalive_interval=60.0)
    conn.receive_data(request(1, 1_000)[:10], 5.0)
    assert conn.next_deadline() == 65.0


def test_frame_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="frame_timeout must be positive"):
        Connection(Role.SERVER, now=0.0, frame_timeout=0.0)


def test_new_deadline_reports_each_added_deadline_once() -> None:
    """What Link.rearm relies on: a deadline added (a call's, a frame's) is reported by
    new_deadline() until read; next_deadline() clears it too."""
    conn = server(frame_timeout=30.0, keepalive_interval=None)
    assert conn.new_deadline() == float("inf")
    frame = encode_frame(RequestFrame(call_id=1, method=METHOD, timeout_ms=5_000))
    conn.receive_data(frame, 10.0)
    assert conn.new_deadline() == 15.0
    assert conn.new_deadline() == float("inf")
    conn.receive_data(request(2, 100)[:50], 11.0)  # a frame begins: its frame_timeout
    assert conn.new_deadline() == 41.0
    conn.receive_data(request(2, 100)[50:], 12.0)
    conn.next_deadline()
    assert conn.new_deadline() == float("inf")
