"""A client Connection and a server Connection driven against each other, no I/O.

``Pair`` moves ``data_to_send()`` from one side to the other (whole, or one byte at a
time) and collects each side's events; time is whatever the test says it is.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from rpcx.errors import LocalProtocolError, RemoteProtocolError, RpcError
from rpcx.protocol import (
    PREFACE,
    CallAborted,
    CancelReceived,
    Connection,
    ConnectionState,
    ConnectionTerminated,
    DeadlineExpired,
    ErrorReceived,
    Event,
    GoAwayReceived,
    PingAcked,
    RequestReceived,
    ResponseReceived,
    Role,
    TerminationReason,
)
from rpcx.protocol.frames import (
    HEADER,
    CancelFrame,
    Frame,
    GoAwayFrame,
    PingFrame,
    PongFrame,
    RequestFrame,
    ResponseFrame,
    UnknownFrame,
    encode_frame,
    parse_frame,
    parse_header,
)
from rpcx.status import Status


class Pair:
    def __init__(self, *, byte_by_byte: bool = False, client: dict[str, Any] | None = None,
                 server: dict[str, Any] | None = None) -> None:
        self.client = Connection(Role.CLIENT, now=0.0, **(client or {}))
        self.server = Connection(Role.SERVER, now=0.0, **(server or {}))
        self.byte_by_byte = byte_by_byte

    def _move(self, src: Connection, dst: Connection, now: float) -> bool:
        data = src.data_to_send()
        chunks = [data[i:i + 1] for i in range(len(data))] if self.byte_by_byte else [data]
        for chunk in chunks:
            if chunk:
                dst.receive_data(chunk, now)
        return bool(data)

    def flush(self, now: float = 0.0) -> tuple[list[Event], list[Event]]:
        """Deliver bytes both ways until quiet; return (client events, server events)."""
        while self._move(self.client, self.server, now) | self._move(self.server,
                                                                     self.client, now):
            pass
        return self.client.events(), self.server.events()

    def to_server(self, now: float = 0.0) -> list[Event]:
        self._move(self.client, self.server, now)
        return self.server.events()

    def to_client(self, now: float = 0.0) -> list[Event]:
        self._move(self.server, self.client, now)
        return self.client.events()


def frames_in(data: bytes) -> list[Frame]:
    if data.startswith(PREFACE):
        data = data[len(PREFACE):]
    out = []
    while data:
        header = parse_header(data)
        end = HEADER.size + header.body_length
        out.append(parse_frame(header, data[HEADER.size:end]))
        data = data[end:]
    return out


def started() -> Pair:
    pair = Pair()
    assert pair.flush() == ([], [])
    return pair


# ------------------------------------------------------------------ calls


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_unary_call_round_trip(byte_by_byte: bool) -> None:
    pair = Pair(byte_by_byte=byte_by_byte)
    args = cbor2.dumps({1: "hello"})
    call_id = pair.client.start_call("echo.Echo/say", args, now=10.0, timeout=2.5,
                                     metadata={"trace-id": "t1"}, idempotency_key=b"key1")
    assert call_id == 1
    _, server_events = pair.flush(now=100.0)  # the server's clock differs; only ms travel
    assert server_events == [RequestReceived(
        call_id=1, method="echo.Echo/say", payload=args, metadata={"trace-id": "t1"},
        deadline=102.5, idempotency_key=b"key1", oneway=False,
    )]
    assert pair.server.send_response(1, b"\x65hello")
    client_events, _ = pair.flush()
    assert client_events == [ResponseReceived(call_id=1, payload=b"\x65hello")]
    assert pair.client.open_calls == pair.server.open_calls == 0


def test_without_timeout_there_is_no_deadline_on_either_side() -> None:
    pair = Pair(client={"keepalive_interval": None}, server={"keepalive_interval": None})
    pair.client.start_call("m", b"", now=0, timeout=float("inf"))
    _, (req,) = pair.flush()
    assert isinstance(req, RequestReceived) and req.deadline is None
    assert pair.client.next_deadline() is None and pair.server.next_deadline() is None


def test_many_calls_are_multiplexed_on_one_connection() -> None:
    pair = started()
    ids = [pair.client.start_call("m", bytes([i]), now=0) for i in range(50)]
    assert ids == list(range(1, 51))
    _, requests = pair.flush()
    assert [e.payload for e in requests if isinstance(e, RequestReceived)] == [
        bytes([i]) for i in range(50)]
    assert pair.server.open_calls == 50


def test_interleaved_replies_arrive_for_the_right_calls() -> None:
    pair = started()
    ids = [pair.client.start_call("m", b"", now=0) for _ in range(20)]
    pair.flush()
    results: dict[int, object] = {}
    for call_id in reversed(ids):
        if call_id % 3:
            pair.server.send_response(call_id, b"r%d" % call_id)
        else:
            pair.server.send_error(call_id, Status.NOT_FOUND, f"nothing {call_id}")
        for event in pair.flush()[0]:
            if isinstance(event, ResponseReceived):
                results[event.call_id] = event.payload
            elif isinstance(event, ErrorReceived):
                results[event.call_id] = (event.status, event.message)
    assert results == {
        i: (b"r%d" % i if i % 3 else (Status.NOT_FOUND, f"nothing {i}")) for i in ids}


def test_oneway_call_gets_no_reply_and_frees_its_slot_when_finished() -> None:
    pair = started()
    call_id = pair.client.start_call("log.Log/write", b"x", now=0, oneway=True)
    assert pair.client.open_calls == 0
    assert pair.client.cancel_call(call_id) is False  # nothing left to cancel
    _, (req,) = pair.flush()
    assert isinstance(req, RequestReceived) and req.oneway
    assert pair.server.open_calls == 1
    with pytest.raises(LocalProtocolError,
                       match="input SEND_RESPONSE is not allowed in state RUNNING_ONEWAY"):
        pair.server.send_response(call_id, b"")
    assert pair.server.finish_oneway(call_id)
    assert pair.server.open_calls == 0
    assert pair.server.finish_oneway(call_id) is False
    assert pair.server.data_to_send() == b""  # never anything on the wire for it


def test_oneway_call_is_not_cancellable_by_the_peer() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0, oneway=True)
    pair.flush()
    with pytest.raises(RemoteProtocolError, match="RECV_CANCEL is not allowed in state "
                                                  "RUNNING_ONEWAY"):
        pair.server.receive_data(encode_frame(CancelFrame(call_id=1)), 0)


def test_error_with_details() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    details = {"field": "amount", "limits": [1, 100], "raw": b"\x00"}
    assert pair.server.send_error(1, Status.INVALID_ARGUMENT, "amount out of range", details)
    (event,), _ = pair.flush()
    assert event == ErrorReceived(call_id=1, status=Status.INVALID_ARGUMENT,
                                  message="amount out of range", details=details,
                                  error_name=None, error_payload=None)


def test_declared_error_carries_its_name_and_encoded_fields() -> None:
    pair = started()
    pair.client.start_call("pay.Payments/charge", b"", now=0)
    pair.flush()
    fields = cbor2.dumps({1: 250, 2: "EUR"})
    pair.server.send_error(1, Status.FAILED_PRECONDITION, "insufficient funds",
                           error_name="payments.InsufficientFunds", error_payload=fields)
    (event,), _ = pair.flush()
    assert isinstance(event, ErrorReceived)
    assert (event.status, event.error_name, event.error_payload) == (
        Status.FAILED_PRECONDITION, "payments.InsufficientFunds", fields)


def test_invalid_error_arguments_are_refused_and_the_call_stays_open() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    with pytest.raises(LocalProtocolError, match="cannot carry status OK"):
        pair.server.send_error(1, Status.OK, "fine?")
    with pytest.raises(LocalProtocolError, match="cannot send error for call 1"):
        pair.server.send_error(1, Status.INTERNAL, details={"x": object()})
    assert pair.server.send_response(1, b"ok")


# ------------------------------------------------------------------ cancellation


def test_cancel_reaches_the_server_and_late_answers_are_dropped() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    assert pair.client.cancel_call(1) is True
    assert pair.client.cancel_call(1) is False
    _, server_events = pair.flush()
    assert server_events == [CancelReceived(call_id=1)]
    assert pair.server.send_response(1, b"too late") is False
    assert pair.server.send_error(1, Status.INTERNAL) is False
    assert pair.server.data_to_send() == b""


def test_reply_crossing_a_cancel_is_ignored_by_the_client() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    pair.client.cancel_call(1)
    pair.server.send_response(1, b"crossed")  # sent before the CANCEL arrived
    client_events, server_events = pair.flush()
    assert client_events == [] and server_events == []


def test_ids_that_never_existed_are_bugs() -> None:
    pair = started()
    with pytest.raises(LocalProtocolError, match="no call with id 5 was ever started"):
        pair.client.cancel_call(5)
    with pytest.raises(LocalProtocolError, match="no call with id 1 was ever started"):
        pair.server.send_response(1, b"")
    with pytest.raises(LocalProtocolError, match="no call with id 1 was ever started"):
        pair.server.finish_oneway(1)


# ------------------------------------------------------------------ deadlines


def test_client_deadline_fires_even_if_the_server_never_answers() -> None:
    pair = Pair(client={"keepalive_interval": None})
    pair.client.start_call("m", b"", now=5.0, timeout=1.0)
    assert pair.client.next_deadline() == 6.0
    pair.client.handle_timeout(5.999)
    assert pair.client.events() == []
    pair.client.handle_timeout(6.0)
    assert pair.client.events() == [DeadlineExpired(call_id=1)]
    assert pair.client.next_deadline() is None
    # the server, reached late, hears the REQUEST and then a CANCEL for it
    assert [type(f) for f in frames_in(pair.client.data_to_send())] == [RequestFrame,
                                                                         CancelFrame]


def test_server_deadline_cancels_the_handler_and_reports_deadline_exceeded() -> None:
    pair = Pair(server={"keepalive_interval": None}, client={"keepalive_interval": None})
    pair.client.start_call("m", b"", now=0.0, timeout=0.25)
    pair.client.start_call("n", b"", now=0.0, timeout=0.25, oneway=True)
    pair.flush(now=50.0)
    assert pair.server.next_deadline() == 50.25
    pair.server.handle_timeout(50.25)
    assert pair.server.events() == [DeadlineExpired(call_id=1), DeadlineExpired(call_id=2)]
    assert pair.server.send_response(1, b"late") is False
    client_events = pair.to_client()
    assert client_events == [ErrorReceived(
        call_id=1, status=Status.DEADLINE_EXCEEDED, message="deadline exceeded on the server",
        details={}, error_name=None, error_payload=None)]


def test_zero_and_negative_timeouts_expire_at_the_next_timeout_check() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=3.0, timeout=-1)
    assert pair.client.next_deadline() == 2.0
    _, (req,) = pair.flush(now=3.0)
    assert isinstance(req, RequestReceived) and req.deadline == 3.0
    pair.client.handle_timeout(3.0)
    assert pair.client.events() == [DeadlineExpired(call_id=1)]


def test_deadline_of_a_finished_call_does_not_fire() -> None:
    pair = Pair(client={"keepalive_interval": None})
    for _ in range(100):  # many finished calls with deadlines: the heap is compacted
        call_id = pair.client.start_call("m", b"", now=0, timeout=10)
        pair.flush()
        pair.server.send_response(call_id, b"")
        pair.flush()
    assert pair.client.next_deadline() is None
    pair.client.handle_timeout(11)
    assert pair.client.events() == []


def test_nan_timeout_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="NaN"):
        started().client.start_call("m", b"", now=0, timeout=float("nan"))


# ------------------------------------------------------------------ keepalive


def test_keepalive_detects_a_dead_peer_and_fails_every_call_unavailable() -> None:
    pair = Pair(client={"keepalive_interval": 10.0, "keepalive_timeout": 2.0})
    pair.flush(now=0.0)
    pair.client.start_call("a", b"", now=1.0)
    pair.client.start_call("b", b"", now=1.0)
    pair.to_server(1.0)  # from now on the server says nothing
    assert pair.client.next_deadline() == 10.0
    pair.client.handle_timeout(10.0)
    assert [type(f) for f in frames_in(pair.client.data_to_send())] == [PingFrame]
    assert pair.client.next_deadline() == 12.0
    pair.client.handle_timeout(11.9)
    assert pair.client.events() == []
    pair.client.handle_timeout(12.0)
    events = pair.client.events()
    message = "keepalive timeout: peer sent nothing for 2.0s after a keepalive ping"
    assert events == [
        CallAborted(call_id=1, status=Status.UNAVAILABLE, message=message,
                    outcome_unknown=True),
        CallAborted(call_id=2, status=Status.UNAVAILABLE, message=message,
                    outcome_unknown=True),
        ConnectionTerminated(reason=TerminationReason.KEEPALIVE_TIMEOUT,
                             status=Status.UNAVAILABLE, message=message[19:]),
    ]
    assert pair.client.state is ConnectionState.CLOSED
    assert pair.client.next_deadline() is None
    pair.client.handle_timeout(100)  # nothing more happens once closed
    pair.client.receive_data(b"anything", 100)
    assert pair.client.events() == []


def test_keepalive_with_a_live_peer_keeps_the_connection() -> None:
    pair = Pair(client={"keepalive_interval": 10.0, "keepalive_timeout": 2.0})
    pair.flush(now=0.0)
    pair.client.handle_timeout(10.0)
    client_events, _ = pair.flush(now=10.5)  # the server answers the PING
    assert client_events == [PingAcked(ping_id=1, rtt=0.5)]
    assert pair.client.next_deadline() == 20.5  # silence is counted from the PONG
    pair.client.handle_timeout(12.0)
    assert pair.client.state is ConnectionState.OPEN


def test_any_received_data_counts_as_liveness() -> None:
    pair = Pair(client={"keepalive_interval": 10.0, "keepalive_timeout": 2.0})
    pair.flush(now=0.0)
    pair.client.start_call("m", b"", now=0)
    pair.to_server()
    pair.client.handle_timeout(10.0)
    pair.client.data_to_send()  # the PING is lost
    pair.server.send_response(1, b"")
    pair.to_client(now=11.0)  # but a response arrives in time
    pair.client.handle_timeout(12.0)
    assert pair.client.state is ConnectionState.OPEN


def test_explicit_ping_and_unknown_pong() -> None:
    pair = started()
    assert pair.server.ping(now=1.0) == 1
    _, server_events = pair.flush(now=1.25)
    assert server_events == [PingAcked(ping_id=1, rtt=0.25)]
    pair.client.receive_data(encode_frame(PongFrame(ping_id=999)), 2.0)  # ignored
    assert pair.client.events() == []


def test_unanswered_pings_are_bounded() -> None:
    pair = started()
    for i in range(70):
        pair.client.ping(now=i)
    pair.client.data_to_send()
    pair.client.receive_data(encode_frame(PongFrame(ping_id=1)), 100)
    assert pair.client.events() == []  # the oldest was forgotten
    pair.client.receive_data(encode_frame(PongFrame(ping_id=70)), 100)
    assert pair.client.events() == [PingAcked(ping_id=70, rtt=31)]


# ------------------------------------------------------------------ go-away


def test_server_goaway_drains_in_flight_calls_and_aborts_unprocessed_ones() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    pair.client.start_call("m", b"", now=0)  # in flight while the server shuts down
    pair.server.close(now=0)
    assert pair.server.state.name == "CLOSING"  # (.name: mypy would narrow the property)
    client_events = pair.to_client()
    assert client_events == [
        GoAwayReceived(last_call_id=1, status=Status.OK, message=""),
        CallAborted(call_id=2, status=Status.UNAVAILABLE,
                    message="the server went away before processing the call; "
                            "safe to retry on a new connection"),
    ]
    with pytest.raises(LocalProtocolError, match="state CLOSING; open a new connection"):
        pair.client.start_call("m", b"", now=0)
    # call 2's REQUEST reaches the server after its GOAWAY: refused, not run
    assert pair.to_server() == []
    assert pair.server.open_calls == 1
    pair.server.send_response(1, b"done")
    client_events, server_events = pair.flush()
    drained = ConnectionTerminated(reason=TerminationReason.DRAINED, status=Status.OK,
                                   message="")
    assert server_events == [drained]
    assert client_events == [ResponseReceived(call_id=1, payload=b"done"), drained]
    assert pair.client.state is pair.server.state is ConnectionState.CLOSED


def test_goaway_with_nothing_in_flight_closes_at_once_and_close_is_idempotent() -> None:
    pair = started()
    pair.server.close(now=0, message="maintenance")
    pair.server.close(now=0)
    assert pair.server.events() == [ConnectionTerminated(
        reason=TerminationReason.DRAINED, status=Status.OK, message="")]
    assert frames_in(pair.server.data_to_send()) == [GoAwayFrame(last_call_id=0,
                                                                 message="maintenance")]


def test_client_close_lets_its_calls_finish() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0)
    pair.client.close(now=0)
    pair.client.close(now=0)  # a second close sends no second GOAWAY
    _, server_events = pair.flush()
    assert [type(e) for e in server_events] == [RequestReceived, GoAwayReceived]
    pair.server.send_response(1, b"")
    client_events, server_events = pair.flush()
    assert [type(e) for e in client_events] == [ResponseReceived, ConnectionTerminated]
    assert [type(e) for e in server_events] == [ConnectionTerminated]


def test_client_requests_after_its_own_goaway_are_refused() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0)
    pair.client.close(now=0)
    pair.to_server()
    late = RequestFrame(call_id=2, method="m")  # a misbehaving client
    pair.server.receive_data(encode_frame(late) + encode_frame(
        RequestFrame(call_id=3, method="m", oneway=True)), 0)
    (error,) = frames_in(pair.server.data_to_send())
    assert error.call_id == 2 and error.status is Status.UNAVAILABLE  # type: ignore[union-attr]


def test_close_with_an_error_status_aborts_everything() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    pair.server.close(now=0, status=Status.UNAVAILABLE, message="overloaded")
    assert pair.server.events() == [
        CallAborted(call_id=1, status=Status.CANCELLED, message="local error: overloaded"),
        ConnectionTerminated(reason=TerminationReason.LOCAL_ERROR, status=Status.UNAVAILABLE,
                             message="overloaded"),
    ]
    client_events = pair.to_client()
    assert client_events == [
        GoAwayReceived(last_call_id=1, status=Status.UNAVAILABLE, message="overloaded"),
        CallAborted(call_id=1, status=Status.UNAVAILABLE, message="peer error: overloaded",
                    outcome_unknown=True),
        ConnectionTerminated(reason=TerminationReason.PEER_ERROR, status=Status.UNAVAILABLE,
                             message="overloaded"),
    ]
    with pytest.raises(LocalProtocolError, match="cannot ping a CLOSED connection"):
        pair.client.ping(now=0)


def test_eof_fails_open_calls() -> None:
    pair = started()
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    pair.server.receive_data(b"", 0)
    pair.client.receive_data(b"", 0)
    aborted = "peer closed: connection closed by peer"
    assert pair.client.events() == [
        CallAborted(call_id=1, status=Status.UNAVAILABLE, message=aborted,
                    outcome_unknown=True),
        ConnectionTerminated(reason=TerminationReason.PEER_CLOSED,
                             status=Status.UNAVAILABLE, message="connection closed by peer"),
    ]
    assert pair.server.events()[0] == CallAborted(call_id=1, status=Status.CANCELLED,
                                                  message=aborted)
    assert pair.server.send_response(1, b"") is False


# ------------------------------------------------------------------ limits


def test_server_concurrency_limit_answers_resource_exhausted_and_recovers() -> None:
    pair = Pair(server={"max_concurrent_calls": 2})
    for _ in range(3):
        pair.client.start_call("m", b"", now=0)
    pair.client.start_call("m", b"", now=0, oneway=True)  # dropped silently
    client_events, server_events = pair.flush()
    assert [e.call_id for e in server_events if isinstance(e, RequestReceived)] == [1, 2]
    assert client_events == [ErrorReceived(
        call_id=3, status=Status.RESOURCE_EXHAUSTED,
        message="too many concurrent calls (max_concurrent_calls=2)", details={},
        error_name=None, error_payload=None)]
    pair.server.send_response(1, b"")
    pair.flush()
    pair.client.start_call("m", b"", now=0)
    _, server_events = pair.flush()
    assert [type(e) for e in server_events] == [RequestReceived]


def test_client_concurrency_limit_is_backpressure_for_the_runtime() -> None:
    pair = Pair(client={"max_concurrent_calls": 1})
    pair.client.start_call("m", b"", now=0)
    with pytest.raises(LocalProtocolError, match=r"1 calls already open "
                                                 r"\(max_concurrent_calls=1\)"):
        pair.client.start_call("m", b"", now=0)
    pair.client.start_call("m", b"", now=0, oneway=True)  # one-way calls hold no slot
    assert pair.client.open_calls == 1


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_oversized_request_fails_only_that_call(byte_by_byte: bool) -> None:
    pair = Pair(byte_by_byte=byte_by_byte, server={"max_frame_size": 100})
    pair.client.start_call("m", bytes(500), now=0)
    pair.client.start_call("m", bytes(500), now=0, oneway=True)
    pair.client.start_call("m", b"small", now=0)
    client_events, server_events = pair.flush()
    assert [(e.call_id, e.payload) for e in server_events
            if isinstance(e, RequestReceived)] == [(3, b"small")]
    assert client_events == [ErrorReceived(
        call_id=1, status=Status.RESOURCE_EXHAUSTED,
        message="request of 504 bytes exceeds max_frame_size 100",
        details={"limit": "max_frame_size"}, error_name=None, error_payload=None)]


def test_oversized_reply_fails_only_that_call_on_the_client() -> None:
    pair = Pair(client={"max_frame_size": 100})
    pair.client.start_call("m", b"", now=0)
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    pair.server.send_response(1, bytes(1000))
    pair.server.send_response(2, b"fits")
    client_events, _ = pair.flush()
    assert client_events == [
        CallAborted(call_id=1, status=Status.RESOURCE_EXHAUSTED,
                    message="reply of 1000 bytes exceeds max_frame_size 100",
                    details={"limit": "max_frame_size"}),
        ResponseReceived(call_id=2, payload=b"fits"),
    ]


def test_oversized_late_reply_is_skipped_quietly() -> None:
    pair = Pair(client={"max_frame_size": 100})
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    pair.client.cancel_call(1)
    pair.server.send_response(1, bytes(1000))
    assert pair.to_client() == []


def test_senders_enforce_their_own_limit() -> None:
    pair = Pair(client={"max_frame_size": 100}, server={"max_frame_size": 100})
    with pytest.raises(RpcError, match=r"RESOURCE_EXHAUSTED: request of 20\d bytes exceeds") as e:
        pair.client.start_call("m", bytes(200), now=0)
    assert e.value.details == {"limit": "max_frame_size"}
    assert pair.client.open_calls == 0
    pair.client.start_call("m", b"", now=0)
    assert pair.client.open_calls == 1
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    assert pair.server.send_response(1, bytes(200))  # replaced by an error
    assert pair.server.send_error(2, Status.ABORTED, "x" * 200)
    client_events, _ = pair.flush()
    too_large = {"limit": "max_frame_size"}
    assert [(e.call_id, e.status, e.message, e.details) for e in client_events
            if isinstance(e, ErrorReceived)] == [
        (1, Status.RESOURCE_EXHAUSTED, "response of 200 bytes exceeds max_frame_size 100",
         too_large),
        (2, Status.RESOURCE_EXHAUSTED, "error of 206 bytes exceeds max_frame_size 100",
         too_large),
    ]


def test_oversized_connection_frame_is_fatal() -> None:
    pair = Pair(client={"max_frame_size": 100})
    pair.flush()
    frame = encode_frame(UnknownFrame(frame_type=0x40, flags=0, call_id=0, body=bytes(200)))
    with pytest.raises(RemoteProtocolError, match="frame of type 64 of 200 bytes exceeds"):
        pair.client.receive_data(frame, 0)


def test_constructor_limits_are_validated() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_frame_size": 10}, "max_frame_size must be at least 64"),
        ({"max_concurrent_calls": 0}, "max_concurrent_calls must be"),
        ({"keepalive_interval": 0}, "keepalive_interval must be"),
        ({"keepalive_timeout": -1}, "keepalive_timeout must be")]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            Connection(Role.CLIENT, now=0, **kwargs)


def test_call_ids_are_exhausted_at_2_to_the_32() -> None:
    pair = started()
    pair.client._highest_call_id = 2**32 - 2  # white-box: skip four billion calls
    assert pair.client.start_call("m", b"", now=0) == 2**32 - 1
    with pytest.raises(LocalProtocolError, match="call ids exhausted"):
        pair.client.start_call("m", b"", now=0)


# ------------------------------------------------------------------ misuse and garbage


def test_roles_are_enforced() -> None:
    pair = started()
    with pytest.raises(LocalProtocolError, match="start_call is for the client, this is "
                                                 "the server"):
        pair.server.start_call("m", b"", now=0)
    with pytest.raises(LocalProtocolError, match="send_response is for the server"):
        pair.client.send_response(1, b"")
    with pytest.raises(LocalProtocolError, match="invalid call to '': method must be"):
        pair.client.start_call("", b"", now=0)


def test_unknown_frame_types_are_skipped() -> None:
    pair = started()
    pair.client.receive_data(encode_frame(UnknownFrame(frame_type=0x80, flags=3, call_id=9,
                                                       body=b"future")), 0)
    assert pair.client.events() == [] and pair.client.state is ConnectionState.OPEN


@pytest.mark.parametrize(("side", "frame", "match"), [
    ("client", RequestFrame(call_id=1, method="m"), "a server must not send RequestFrame"),
    ("client", ResponseFrame(call_id=7), "RESPONSE for call 7, which was never started"),
    ("server", ResponseFrame(call_id=1), "a client must not send ResponseFrame"),
    ("server", CancelFrame(call_id=3), "CANCEL for call 3, which was never started"),
])
def test_frames_the_role_cannot_receive_are_protocol_errors(side: str, frame: Frame,
                                                            match: str) -> None:
    pair = started()
    conn = pair.client if side == "client" else pair.server
    with pytest.raises(RemoteProtocolError, match=match):
        conn.receive_data(encode_frame(frame), 0)


def test_call_ids_must_increase() -> None:
    pair = started()
    pair.server.receive_data(encode_frame(RequestFrame(call_id=5, method="m")), 0)
    with pytest.raises(RemoteProtocolError, match="call id 5 is not greater than the "
                                                  "previous 5"):
        pair.server.receive_data(encode_frame(RequestFrame(call_id=5, method="m")), 0)


def test_oversized_request_with_a_stale_call_id_is_a_protocol_error() -> None:
    pair = Pair(server={"max_frame_size": 64})
    pair.flush()
    pair.server.receive_data(encode_frame(RequestFrame(call_id=5, method="m")), 0)
    big = encode_frame(RequestFrame(call_id=4, method="m", payload=bytes(100)))
    with pytest.raises(RemoteProtocolError, match="call id 4 is not greater"):
        pair.server.receive_data(big, 0)


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_garbage_kills_the_connection_with_a_goaway(byte_by_byte: bool) -> None:
    pair = Pair(byte_by_byte=byte_by_byte)
    pair.client.start_call("m", b"", now=0)
    pair.flush()
    pair.server.data_to_send()
    garbage = b"\x00\x00\x00\x01\x02\x00\x00\x05\x00\x00\x00\x01x"  # meta_length > length
    with pytest.raises(RemoteProtocolError, match="meta_length 5 exceeds body_length 1"):
        for i in range(len(garbage)) if byte_by_byte else [0]:
            chunk = garbage[i:i + 1] if byte_by_byte else garbage
            pair.client.receive_data(chunk, 0)
    events = pair.client.events()
    message = "protocol error: meta_length 5 exceeds body_length 1"
    assert events == [
        CallAborted(call_id=1, status=Status.UNAVAILABLE, message="protocol error: " + message,
                    outcome_unknown=True),
        ConnectionTerminated(reason=TerminationReason.PROTOCOL_ERROR, status=Status.INTERNAL,
                             message=message),
    ]
    assert frames_in(pair.client.data_to_send()) == [GoAwayFrame(
        last_call_id=0, status=Status.INTERNAL, message=message)]
    # the server learns why the client hung up
    pair.server.receive_data(encode_frame(GoAwayFrame(last_call_id=0, status=Status.INTERNAL,
                                                      message=message)), 0)
    assert pair.server.events()[0] == GoAwayReceived(last_call_id=0, status=Status.INTERNAL,
                                                     message=message)


def test_a_wrong_peer_is_reported_at_once() -> None:
    server = Connection(Role.SERVER, now=0)
    with pytest.raises(RemoteProtocolError, match="peer is not speaking rpcx"):
        server.receive_data(b"GET / HTTP/1.1\r\n", 0)
    assert server.state is ConnectionState.CLOSED
    client = Connection(Role.CLIENT, now=0)
    with pytest.raises(RemoteProtocolError, match="peer speaks rpcx protocol version 9"):
        client.receive_data(b"RPCX\r\n\x00\x09", 0)


def test_a_cancelled_calls_deadline_is_skipped_by_handle_timeout() -> None:
    pair = Pair(client={"keepalive_interval": None})
    pair.client.start_call("m", b"", now=0, timeout=1)
    pair.client.start_call("m", b"", now=0, timeout=2)
    pair.client.cancel_call(1)
    pair.client.handle_timeout(5)  # without next_deadline() having pruned call 1 first
    assert pair.client.events() == [DeadlineExpired(call_id=2)]


def test_events_refuse_call_id_zero() -> None:
    with pytest.raises(ValueError, match="call_id must be positive, got 0"):
        DeadlineExpired(call_id=0)
