"""Runs of MESSAGE frames taken at once (rpcx.protocol.streams, ``_take_messages``):
whatever the reads look like, the client sees the same messages, in the same order, the
same errors after the same messages, and the same credit as if it took the frames one by
one; and the fast send path (``queue_message``) sends the same bytes as
``send_message``."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcx.errors import LocalProtocolError, RemoteProtocolError
from rpcx.protocol import Connection
from rpcx.protocol.events import (
    CallAborted,
    ConnectionTerminated,
    Event,
    MessagesReceived,
)
from rpcx.protocol.frames import HEADER
from rpcx.protocol.streams import INITIAL_WINDOW, encode_end, encode_message, encode_window
from tests.protocol.test_streams import pair
from tests.streams.service import Streams
from tests.streams.test_runtime import pair as served


def flat(events: list[Event]) -> list[object]:
    """Events with every MessagesReceived opened into one (call, payload) per message."""
    out: list[object] = []
    for event in events:
        if isinstance(event, MessagesReceived):
            assert event.payloads, "a MessagesReceived is never empty"
            out += [("message", event.call_id, p) for p in event.payloads]
        else:
            out.append(event)
    return out


def feed(conn: Connection, data: bytes, cuts: list[int]) -> tuple[list[object], str | None]:
    """``data`` in reads cut at ``cuts``: the events (flattened) and the protocol error."""
    events: list[object] = []
    start = 0
    for end in [*sorted(set(cuts)), len(data)]:
        if end <= start:
            continue
        try:
            conn.receive_data(data[start:end], 0)
        except RemoteProtocolError as exc:
            events += flat(conn.events())
            return events, str(exc)
        events += flat(conn.events())
        start = end
    return events, None


def per_call(outcome: tuple[list[object], str | None]) -> object:
    """What must not depend on the reads: each call's messages and events in order, the
    order of the events that are not messages, and the error. (Messages of different
    calls taken in one run come grouped by call: no order between calls is promised.)"""
    events, error = outcome
    calls: dict[int, list[object]] = {}
    others = []
    for event in events:
        call_id = event[1] if isinstance(event, tuple) else getattr(event, "call_id", 0)
        calls.setdefault(call_id, []).append(event)
        if not isinstance(event, tuple):
            others.append(event)
    return calls, others, error


def started(calls: int) -> tuple[Connection, Connection, list[int]]:
    client, server = pair()
    ids = [client.start_call("s.S/m", b"\xa0", now=0) for _ in range(calls)]
    server.receive_data(client.data_to_send(), 0)
    server.events()
    return client, server, ids


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), calls=st.integers(1, 5),
       bad=st.sampled_from([None, "no credit", "unknown call", "empty", "meta", "end",
                            "window", "late"]))
def test_any_cut_of_the_input_gives_the_same_events(seed: int, calls: int,
                                                    bad: str | None) -> None:
    """A server's output (MESSAGEs of several calls, a RESPONSE ending one, maybe a
    frame the client must refuse, more MESSAGEs behind it) fed to fresh clients all at
    once, one byte at a time and in random reads: the same events every time, and the
    same error after the same messages."""
    rng = random.Random(seed)
    _, server, ids = started(calls)
    wire = bytearray()
    for _ in range(rng.randint(1, 60)):
        call_id = rng.choice(ids)
        if server.stream_credit(call_id) > 0:
            server.send_message(call_id, rng.randbytes(rng.choice([1, 5, 33, 700])))
    if calls > 1 and rng.random() < 0.5:
        server.send_response(ids[-1], b"")  # a call ends in the middle of the run
    wire += server.data_to_send()
    if bad == "no credit":
        wire += encode_message(ids[0], b"x" * (INITIAL_WINDOW + 1)) + encode_message(
            ids[0], b"y")
    elif bad == "unknown call":
        wire += encode_message(ids[-1] + 7, b"x")
    elif bad == "empty":
        wire += HEADER.pack(0, 0x08, 0, 0, ids[0])
    elif bad == "meta":
        wire += HEADER.pack(3, 0x08, 0, 1, ids[0]) + b"\xa0xy"  # meta is skipped
    elif bad == "end":
        wire += encode_end(ids[0])  # a server must not send END
    elif bad == "window":
        wire += encode_window(ids[0], 100)  # credit for the client's own messages
    for _ in range(rng.randint(0, 20)):
        call_id = rng.choice(ids[:-1] or ids)
        if server.stream_credit(call_id) > 0:
            server.send_message(call_id, rng.randbytes(rng.choice([1, 33])))
    wire += server.data_to_send()
    data = bytes(wire)

    outcomes = []
    for cuts in ([], list(range(1, len(data))),
                 [rng.randrange(len(data) + 1) for _ in range(rng.randint(1, 8))]):
        client, _, _ = started(calls)
        outcomes.append(feed(client, data, cuts))
    assert per_call(outcomes[0]) == per_call(outcomes[1]) == per_call(outcomes[2])
    events, error = outcomes[0]
    if bad in ("no credit", "unknown call", "empty", "end"):
        assert error is not None
        assert isinstance(events[-1], ConnectionTerminated)
    else:
        assert error is None


def test_a_run_of_one_read_is_one_event_per_call_in_order() -> None:
    client, server, (a, b) = started(2)
    for n in range(300):
        server.send_message(a if n % 3 else b, n.to_bytes(2, "big"))
    client.receive_data(server.data_to_send(), 0)
    events = client.events()
    assert all(isinstance(e, MessagesReceived) for e in events)
    runs = [e for e in events if isinstance(e, MessagesReceived)]
    assert [e.call_id for e in runs] == [b, a]
    by_call = {e.call_id: e.payloads for e in runs}
    assert by_call[a] == [n.to_bytes(2, "big") for n in range(300) if n % 3]
    assert by_call[b] == [n.to_bytes(2, "big") for n in range(0, 300, 3)]


def test_the_run_counts_against_the_window() -> None:
    """The frames taken in a run use up the receiver's window as single frames do: a
    MESSAGE past it, even inside a run, is a protocol error after the ones before."""
    client, _, (call_id,) = started(1)
    frames = b"".join(encode_message(call_id, b"z" * 1000) for _ in range(66))
    with pytest.raises(RemoteProtocolError, match="credit"):
        client.receive_data(frames + encode_message(call_id, b"!"), 0)
    events = client.events()
    assert sum(len(e.payloads) for e in events if isinstance(e, MessagesReceived)) == 66
    assert [type(e) for e in events[-2:]] == [CallAborted, ConnectionTerminated]


def test_a_message_after_the_clients_end_is_refused_inside_a_run() -> None:
    client, server, (call_id,) = started(1)
    client.send_message(call_id, b"a")
    client.send_message(call_id, b"b")
    client.end_stream(call_id)
    data = client.data_to_send() + encode_message(call_id, b"late")
    with pytest.raises(RemoteProtocolError, match="after its END"):
        server.receive_data(data, 0)
    assert flat(server.events())[:2] == [("message", call_id, b"a"), ("message", call_id, b"b")]


def test_queue_message_sends_what_send_message_sends() -> None:
    _, fast, (call_id,) = started(1)
    _, slow, _ = started(1)
    for n in range(1, 400):
        payload = bytes([n % 256]) * (n % 50 + 1)
        assert slow.send_message(call_id, payload)
        assert fast.queue_message(call_id, payload) == fast.bytes_to_send()
    assert fast.data_to_send() == slow.data_to_send()
    assert fast.stream_credit(call_id) == slow.stream_credit(call_id)


def test_queue_message_waits_for_credit_and_drops_after_the_end() -> None:
    client, server, (call_id,) = started(1)
    assert server.queue_message(call_id, b"x" * INITIAL_WINDOW) == INITIAL_WINDOW + 12
    assert server.queue_message(call_id, b"x") == -1  # no credit: nothing queued
    before = server.bytes_to_send()
    client.receive_data(server.data_to_send(), 0)
    client.events()
    client.consume(call_id, INITIAL_WINDOW)
    server.receive_data(client.data_to_send(), 0)
    server.events()
    assert before and server.queue_message(call_id, b"y") == 13
    server.send_response(call_id, b"")
    assert server.queue_message(call_id, b"z") == 0  # the call has ended
    with pytest.raises(LocalProtocolError, match="empty"):
        _, other, (call_id,) = started(1)
        other.queue_message(call_id, b"")


def test_queue_message_keeps_the_clients_end() -> None:
    client, _, (call_id,) = started(1)
    assert client.queue_message(call_id, b"a") > 0
    client.end_stream(call_id)
    with pytest.raises(LocalProtocolError, match="already ended"):
        client.queue_message(call_id, b"b")


def test_a_finished_streaming_call_leaves_no_stream_state() -> None:
    """Both fast endings (RESPONSE received, RESPONSE sent) forget the call's flow-control
    state, so a long-lived connection does not grow with every stream it carried."""
    client, server, ids = started(20)
    for call_id in ids:
        server.send_message(call_id, b"m")
        server.send_response(call_id, b"")
    client.receive_data(server.data_to_send(), 0)
    for event in client.events():
        if isinstance(event, MessagesReceived):
            client.consume(event.call_id, 1)
    assert client._streams == {}
    assert server._streams == {}


async def test_a_reader_with_items_queued_still_sees_its_cancellation() -> None:
    """Items already received are taken without a task switch, but not without a cancel
    point: a reader cancelled with a window's worth of items queued (about 7,000) stops
    within 4 KiB of items, and the server's handler is cancelled."""
    impl = Streams()
    async with served(impl) as (client, _, _):
        taken = 0
        with trio.CancelScope() as scope:
            async with client.count(0, 100_000, text="x") as ticks:
                # the server fills the window, the client's reader queues it
                await trio.testing.wait_all_tasks_blocked()
                assert len(ticks._core._messages) > 5000  # type: ignore[attr-defined]
                async for _ in ticks:
                    taken += 1
                    if taken == 100:
                        scope.cancel()
        assert scope.cancelled_caught
        # every item is at least 5 bytes, and a cancel point comes every 4096 bytes
        assert 100 <= taken <= 100 + 4096 // 5 + 1
        with trio.fail_after(10):
            await impl.stopped.wait()
    assert impl.cancelled == ["count"]
