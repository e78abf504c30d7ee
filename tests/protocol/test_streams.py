"""The sans-I/O streaming frames (rpcx.protocol.streams): flow control as a property
over seeded schedules, and every rule a peer can break."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcx.errors import LocalProtocolError, RemoteProtocolError, RpcError
from rpcx.protocol import Connection, Role
from rpcx.protocol.events import (
    CallAborted,
    ConnectionTerminated,
    EndReceived,
    MessagesReceived,
    RequestReceived,
    ResponseReceived,
    WindowOpened,
)
from rpcx.protocol.frames import HEADER
from rpcx.protocol.streams import (
    INITIAL_WINDOW,
    encode_end,
    encode_message,
    encode_window,
)
from rpcx.status import Status


def pair() -> tuple[Connection, Connection]:
    client = Connection(Role.CLIENT, now=0, keepalive_interval=None)
    server = Connection(Role.SERVER, now=0, keepalive_interval=None)
    server.receive_data(client.data_to_send(), 0)
    client.receive_data(server.data_to_send(), 0)
    return client, server


def move(source: Connection, target: Connection) -> None:
    data = source.data_to_send()
    if data:
        target.receive_data(data, 0)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), calls=st.integers(1, 6),
       sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=8))
def test_flow_control_bounds_what_a_reader_holds_and_delivers_everything_in_order(
        seed: int, calls: int, sizes: list[int]) -> None:
    """A seeded schedule of a server writing as fast as its credit allows on several
    calls, and a client that consumes each call at its own random pace (one never does).
    The writer never sends without credit (send_message would raise), the client never
    holds more than INITIAL_WINDOW + one message unconsumed per call, and every call that
    is read gets all of its messages in order."""
    rng = random.Random(seed)
    client, server = pair()
    ids = [client.start_call("s.S/m", b"\xa0", now=0) for _ in range(calls)]
    move(client, server)
    assert [type(e) for e in server.events()] == [RequestReceived] * calls
    per_call = 200
    stalled = ids[0] if calls > 1 else None  # never read: must not stall the others
    sent: dict[int, int] = defaultdict(int)
    held: dict[int, list[bytes]] = defaultdict(list)
    got: dict[int, list[bytes]] = defaultdict(list)
    pace = {call_id: 0.2 + 0.8 * rng.random() for call_id in ids}
    biggest = max(sizes)

    def message(call_id: int, n: int) -> bytes:
        size = sizes[n % len(sizes)]
        return (call_id.to_bytes(2, "big") + n.to_bytes(4, "big")) * (size // 6 + 1)

    for _ in range(5000):
        for call_id in ids:
            while sent[call_id] < per_call and server.stream_credit(call_id) > 0:
                assert server.send_message(call_id, message(call_id, sent[call_id]))
                sent[call_id] += 1
            if sent[call_id] == per_call and server.stream_credit(call_id) >= 0:
                pass
        move(server, client)
        for event in client.events():
            assert isinstance(event, MessagesReceived)
            held[event.call_id].extend(event.payloads)
        for call_id in ids:
            assert sum(map(len, held[call_id])) <= INITIAL_WINDOW + biggest + 6
            if call_id == stalled:
                continue
            while held[call_id] and rng.random() < pace[call_id]:
                payload = held[call_id].pop(0)
                got[call_id].append(payload)
                client.consume(call_id, len(payload))
        move(client, server)
        for event in server.events():
            assert isinstance(event, WindowOpened)
        if all(len(got[c]) == per_call for c in ids if c != stalled):
            break
    for call_id in ids:
        if call_id != stalled:
            assert got[call_id] == [message(call_id, n) for n in range(per_call)]
    total = sum(len(message(stalled or 1, n)) for n in range(per_call))
    if stalled is not None and total > INITIAL_WINDOW + biggest + 6:
        assert sent[stalled] < per_call  # held at its window


def test_a_writer_without_credit_is_refused_locally() -> None:
    client, server = pair()
    call_id = client.start_call("s.S/m", b"\xa0", now=0)
    move(client, server)
    server.events()
    assert server.send_message(call_id, b"x" * INITIAL_WINDOW)
    assert server.stream_credit(call_id) == 0
    with pytest.raises(LocalProtocolError, match="credit"):
        server.send_message(call_id, b"x")
    move(server, client)
    (event,) = client.events()
    assert isinstance(event, MessagesReceived)
    assert client.consume(call_id, INITIAL_WINDOW)  # queues a WINDOW
    move(client, server)
    assert server.events() == [WindowOpened(call_id=call_id)]
    assert server.stream_credit(call_id) == INITIAL_WINDOW


def test_half_close_then_the_answer_ends_the_call() -> None:
    client, server = pair()
    call_id = client.start_call("s.S/m", b"\xa0", now=0)
    assert client.send_message(call_id, b"\x01")
    assert client.end_stream(call_id)
    assert not client.end_stream(call_id)  # once
    with pytest.raises(LocalProtocolError, match="already ended"):
        client.send_message(call_id, b"\x02")
    move(client, server)
    events = server.events()
    assert [type(e) for e in events] == [RequestReceived, MessagesReceived, EndReceived]
    assert server.send_message(call_id, b"\x03")  # the server still streams
    assert server.send_response(call_id, b"")
    move(server, client)
    assert client.events() == [MessagesReceived(call_id=call_id, payloads=[b"\x03"]),
                                ResponseReceived(call_id=call_id, payload=b"")]
    assert client.stream_credit(call_id) == 0
    assert not client.send_message(call_id, b"\x04")  # the call has ended


def test_frames_for_a_call_that_ended_are_ignored() -> None:
    client, server = pair()
    call_id = client.start_call("s.S/m", b"\xa0", now=0)
    move(client, server)
    server.events()
    client.cancel_call(call_id)
    server.send_message(call_id, b"\x01")  # crossed the CANCEL
    move(server, client)
    assert client.events() == []
    move(client, server)
    server.events()
    server.receive_data(encode_message(call_id, b"\x01") + encode_window(call_id, 9)
                        + encode_end(call_id), 0)
    assert server.events() == []


def _server_after_request() -> tuple[Connection, int]:
    client, server = pair()
    call_id = client.start_call("s.S/m", b"\xa0", now=0)
    move(client, server)
    server.events()
    return server, call_id


@pytest.mark.parametrize(("frame", "reason"), [
    (lambda c: encode_message(c, b""), "empty MESSAGE"),
    (lambda c: encode_window(c, 0), "WINDOW of 0"),
    (lambda c: HEADER.pack(3, 0x0A, 0, 0, c) + b"abc", "4 bytes"),
    (lambda c: encode_window(c, 2**31), "grants more"),
    (lambda c: encode_message(0, b"x"), "call id 0"),
    (lambda c: encode_message(c + 5, b"x"), "never started"),
    (lambda c: encode_end(c) + encode_end(c), "second END"),
    (lambda c: encode_end(c) + encode_message(c, b"x"), "after its END"),
    (lambda c: encode_message(c, b"x" * INITIAL_WINDOW) + encode_message(c, b"x"),
     "without flow-control credit"),
])
def test_a_peer_breaking_a_stream_rule_is_a_connection_error(frame: object,
                                                             reason: str) -> None:
    server, call_id = _server_after_request()
    assert callable(frame)
    with pytest.raises(RemoteProtocolError, match=reason):
        server.receive_data(frame(call_id), 0)
    events = server.events()
    assert isinstance(events[-1], ConnectionTerminated)
    assert any(isinstance(e, CallAborted) for e in events)


def test_a_server_must_not_send_end() -> None:
    client, _ = pair()
    call_id = client.start_call("s.S/m", b"\xa0", now=0)
    with pytest.raises(RemoteProtocolError, match="must not send END"):
        client.receive_data(encode_end(call_id), 0)


def test_one_way_calls_cannot_stream() -> None:
    client, server = pair()
    call_id = client.start_call("s.S/m", b"\xa0", now=0, oneway=True)
    move(client, server)
    server.events()
    with pytest.raises(LocalProtocolError, match="one-way"):
        server.send_message(call_id, b"x")
    with pytest.raises(RemoteProtocolError, match="one-way"):
        server.receive_data(encode_message(call_id, b"x"), 0)


def test_a_message_over_max_frame_size_is_refused_before_sending() -> None:
    client = Connection(Role.CLIENT, now=0, max_frame_size=1024)
    call_id = client.start_call("s.S/m", b"\xa0", now=0)
    with pytest.raises(RpcError) as raised:
        client.send_message(call_id, b"x" * 2000)
    assert raised.value.code is Status.RESOURCE_EXHAUSTED
    assert raised.value.details == {"limit": "max_frame_size"}


def test_a_stream_frame_with_a_meta_map_has_it_skipped() -> None:
    server, call_id = _server_after_request()
    server.receive_data(HEADER.pack(3, 0x08, 0, 1, call_id) + b"\xa0ab", 0)
    assert server.events() == [MessagesReceived(call_id=call_id, payloads=[b"ab"])]


def test_deadline_covers_the_stream() -> None:
    client = Connection(Role.CLIENT, now=0, keepalive_interval=None)
    server = Connection(Role.SERVER, now=0, keepalive_interval=None)
    call_id = client.start_call("s.S/m", b"\xa0", now=0, timeout=1.0)
    server.receive_data(client.data_to_send(), 0)
    server.events()
    server.send_message(call_id, b"\x01")
    server.handle_timeout(1.5)
    data = server.data_to_send()
    client.receive_data(data, 0.5)
    events = client.events()
    assert events[0] == MessagesReceived(call_id=call_id, payloads=[b"\x01"])
    assert events[1].status is Status.DEADLINE_EXCEEDED  # type: ignore[union-attr]
