"""Per-layer unit tests: pure calls, no simulator."""

from __future__ import annotations

import pytest

from rpcx_broadcast.core import (
    BufferFull,
    CausalBroadcast,
    Deliver,
    Down,
    EagerReliableBroadcast,
    FifoBroadcast,
    GossipBroadcast,
    HoldBack,
    HoldBackOverflow,
    Hub,
    LamportTotal,
    ProtocolViolation,
    RandomPeers,
    RelayAll,
    ReliableLinks,
    Send,
    SequencerTotal,
    SetTimer,
    Stack,
    Wire,
)
from rpcx_broadcast.core.actions import Action, CancelTimer
from rpcx_broadcast.core.causal import CausalMsg
from rpcx_broadcast.core.clocks import LamportClock, SplitMix64, vector_leq, vector_max
from rpcx_broadcast.core.fifo import FifoMsg, FifoNak
from rpcx_broadcast.core.gossip import GossipBatch, GossipMsg
from rpcx_broadcast.core.links import LinkAck, LinkData, SeqTracker
from rpcx_broadcast.core.total import LamportMsg, SeqData, SeqOrder

MEMBERS = ("a", "b", "c")


def delivers(actions: list[Action]) -> list[tuple[str, int, object]]:
    return [(a.origin, a.seq, a.payload) for a in actions if isinstance(a, Deliver)]


def test_actions_validate() -> None:
    with pytest.raises(ValueError):
        Send("", b"x")
    with pytest.raises(ValueError):
        Deliver("a", -1, b"x")


def test_clocks_and_prng() -> None:
    assert vector_leq({"a": 1}, {"a": 1, "b": 2}) and not vector_leq({"a": 2}, {"a": 1})
    assert vector_max({"a": 1, "b": 3}, {"a": 2}) == {"a": 2, "b": 3}
    clock = LamportClock()
    assert clock.tick() == 1 and clock.observe(5) == 6
    assert SplitMix64(3).sample(list(range(10)), 3) == SplitMix64(3).sample(list(range(10)), 3)
    assert len(set(SplitMix64(1).sample(list(range(10)), 10))) == 10


def test_holdback_is_bounded_and_observable() -> None:
    queue: HoldBack[int, str] = HoldBack(cap=2)
    assert queue.add(1, "x") and not queue.add(1, "x")
    queue.add(2, "y")
    assert len(queue) == 2 and queue.contents() == [(1, "x"), (2, "y")]
    with pytest.raises(HoldBackOverflow):
        queue.add(3, "z")
    assert queue.pop(1) == "x" and queue.max_size == 2


def test_seq_tracker() -> None:
    t = SeqTracker()
    assert t.add(1) and t.add(0) and not t.add(1)
    assert t.next == 2 and not t.extra and 1 in t


def test_reliable_links_retransmit_until_acked_and_dedupe() -> None:
    sender, receiver = ReliableLinks(rto=1.0), ReliableLinks()
    out = sender.send("r", "hello", 0.0)
    assert out == [Send("r", LinkData(0, "hello")), SetTimer("rto:r", 1.0)]
    assert sender.on_timer("rto:r", 1.0)[0] == Send("r", LinkData(0, "hello"))
    acks, bodies = receiver.on_receive("s", LinkData(0, "hello"), 1.1)
    assert bodies == ["hello"]
    assert receiver.on_receive("s", LinkData(0, "hello"), 1.2)[1] == []  # duplicate
    sender.on_receive("r", acks[0].msg if isinstance(acks[0], Send) else None, 1.3)
    assert sender.unacked() == 0 and sender.on_timer("rto:r", 2.0) == []
    small = ReliableLinks(cap=1)
    small.send("r", 1, 0.0)
    with pytest.raises(BufferFull):
        small.send("r", 2, 0.0)
    assert small.forget("r") == [CancelTimer("rto:r")]
    assert LinkAck(0, 1) != LinkAck(0, 2)


def test_eager_delivers_self_at_once_and_relays_on_first_receipt() -> None:
    a = EagerReliableBroadcast("a", MEMBERS)
    out = a.on_broadcast(b"m", 0.0)
    assert delivers(out) == [("a", 0, b"m")]
    frames = [x for x in out if isinstance(x, Send)]
    assert {f.dest for f in frames} == {"b", "c"}
    b = EagerReliableBroadcast("b", MEMBERS)
    to_b = next(f.msg for f in frames if f.dest == "b")
    got = b.on_receive("a", to_b, 0.1)
    assert delivers(got) == [("a", 0, b"m")]
    assert any(isinstance(x, Send) and x.dest == "c" for x in got)  # relay
    assert delivers(b.on_receive("a", to_b, 0.2)) == []  # duplicate frame
    assert not EagerReliableBroadcast("a", MEMBERS, window=0).writable


def test_gossip_batches_per_peer_and_delivers_in_origin_order() -> None:
    a = GossipBroadcast("a", MEMBERS, topology=RelayAll(), batch_delay=0.05)
    first = a.on_broadcast(b"1", 0.0)
    assert delivers(first) == [("a", 0, b"1")]
    assert SetTimer("flush", 0.05) in first
    a.on_broadcast(b"2", 0.01)
    flushed = [x for x in a.on_timer("flush", 0.05) if isinstance(x, Send)]
    assert {x.dest for x in flushed} == {"b", "c"}
    batch = flushed[0].msg
    assert isinstance(batch, GossipBatch) and len(batch.msgs) == 2  # one message, two items
    b = GossipBroadcast("b", MEMBERS, topology=Hub())
    reordered = GossipBatch(tuple(reversed(batch.msgs)), batch.known)
    assert delivers(b.on_receive("a", reordered, 0.1)) == [("a", 0, b"1"), ("a", 1, b"2")]
    assert b.buffer_sizes()["ahead"] == 0


def _writable(layer: GossipBroadcast) -> bool:
    return layer.writable


def test_gossip_repairs_on_request_and_collects_stable_messages() -> None:
    a = GossipBroadcast("a", ("a", "b"), window=2)
    a.on_broadcast(b"1", 0.0)
    a.on_broadcast(b"2", 0.0)
    assert not _writable(a)  # two unstable own broadcasts: window full
    b = GossipBroadcast("b", ("a", "b"))
    a.on_timer("sync", 0.05)  # repairs send what was held here for a sync interval
    a.on_timer("sync", 0.09)
    ask = GossipBatch((), {"b": {}}, want_reply=True, repair=("a",))
    reply = [x for x in a.on_receive("b", ask, 0.1) if isinstance(x, Send)]
    assert reply[-1].dest == "b"
    answer = reply[-1].msg
    assert isinstance(answer, GossipBatch) and len(answer.msgs) == 2
    b.on_receive("a", answer, 0.2)
    ack = GossipBatch((), {"b": {"a": 2}})
    a.on_receive("b", ack, 0.3)
    a.on_timer("sync", 0.5)
    assert a.stable() == {"a": 2} and a.buffer_sizes()["store"] == 0 and _writable(a)
    assert GossipMsg("a", 0, b"1") == answer.msgs[0]


def test_topologies() -> None:
    members = ("a", "b", "c", "d")
    hub = Hub()
    assert list(hub.targets("b", "b", "b", members)) == ["a"]
    assert sorted(hub.targets("a", "b", "b", members)) == ["c", "d"]
    assert list(hub.targets("c", "b", "a", members)) == []
    assert sorted(hub.targets("a", "a", "a", members)) == ["b", "c", "d"]
    peers = RandomPeers(fanout=2, seed=9).targets("a", "b", "b", members)
    assert len(peers) == 2 and set(peers) <= {"c", "d"}


def test_fifo_holds_back_gaps_and_naks_the_sender() -> None:
    c = FifoBroadcast("c", nak_delay=0.2)
    assert delivers(c.on_deliver(Deliver("a", 0, FifoMsg("a", 0, b"0")), 0.0)) == [
        ("a", 0, b"0")]
    out = c.on_deliver(Deliver("a", 2, FifoMsg("a", 2, b"2")), 0.0)
    assert delivers(out) == [] and SetTimer("nak:a", 0.2) in out
    assert c.holdback.contents() == [(("a", 2), FifoMsg("a", 2, b"2"))]
    nak = c.on_timer("nak:a", 0.2)
    assert Send("a", FifoNak((1,))) in nak
    a = FifoBroadcast("a")
    for i in range(3):
        a.on_broadcast(str(i).encode(), 0.0)
    resent = a.on_receive("c", FifoNak((1,)), 0.3)
    assert resent == [Send("c", FifoMsg("a", 1, b"1"))]
    assert delivers(c.on_receive("a", FifoMsg("a", 1, b"1"), 0.4)) == [
        ("a", 1, b"1"), ("a", 2, b"2")]
    assert delivers(c.on_receive("a", FifoMsg("a", 1, b"1"), 0.5)) == []  # duplicate
    assert c.on_timer("nak:a", 0.6) == []
    with pytest.raises(ProtocolViolation):
        c.on_deliver(Deliver("a", 0, b"raw"), 0.0)


def test_causal_waits_for_what_the_sender_had_delivered() -> None:
    b = CausalBroadcast("b")
    b.on_deliver(Deliver("a", 0, CausalMsg("a", 0, {"a": 0}, b"m1")), 0.0)
    (down,) = b.on_broadcast(b"m2", 0.1)
    assert isinstance(down, Down) and isinstance(down.body, CausalMsg)
    assert down.body.deps == {"a": 1, "b": 0}
    c = CausalBroadcast("c")
    assert delivers(c.on_deliver(Deliver("b", 0, down.body), 0.2)) == []
    assert len(c.holdback) == 1
    got = c.on_deliver(Deliver("a", 0, CausalMsg("a", 0, {"a": 0}, b"m1")), 0.3)
    assert delivers(got) == [("a", 0, b"m1"), ("b", 0, b"m2")]
    # own message: immediately deliverable when it comes back from below
    assert delivers(b.on_deliver(Deliver("b", 0, down.body), 0.1)) == [("b", 0, b"m2")]


def test_sequencer_self_delivery_waits_for_the_order() -> None:
    b = SequencerTotal("b", MEMBERS)
    assert delivers(b.on_deliver(Deliver("b", 0, SeqData("b", 0, b"x")), 0.0)) == []
    assert len(b.holdback) == 1
    got = b.on_deliver(Deliver("a", 0, SeqOrder(0, (("b", 0),))), 0.1)
    assert delivers(got) == [("b", 0, b"x")]
    leader = SequencerTotal("a", MEMBERS, fifo=True)
    leader.on_deliver(Deliver("b", 1, SeqData("b", 1, b"y")), 0.0)  # waits for b:0
    out = leader.on_deliver(Deliver("b", 0, SeqData("b", 0, b"x")), 0.0)
    assert SetTimer("order", 0.01) in out
    (order,) = leader.on_timer("order", 0.01)
    assert order == Down(SeqOrder(0, (("b", 0), ("b", 1))))


def test_lamport_waits_for_everyone_and_heartbeats() -> None:
    a = LamportTotal("a", ("a", "b"))
    (down,) = a.on_broadcast(b"x", 0.0)
    assert isinstance(down, Down)
    assert delivers(a.on_deliver(Deliver("a", 0, down.body), 0.0)) == []  # b is silent
    b = LamportTotal("b", ("a", "b"), heartbeat_delay=0.01)
    out = b.on_deliver(Deliver("a", 0, down.body), 0.1)
    assert SetTimer("heartbeat", 0.11) in out
    (beat,) = b.on_timer("heartbeat", 0.11)
    assert isinstance(beat, Down) and isinstance(beat.body, LamportMsg)
    assert beat.body.body is None
    assert delivers(b.on_deliver(Deliver("b", 0, beat.body), 0.11)) == [("a", 0, b"x")]
    assert delivers(a.on_deliver(Deliver("b", 0, beat.body), 0.2)) == [("a", 0, b"x")]


def test_stack_routes_down_up_wire_and_timers() -> None:
    stack = Stack([GossipBroadcast("a", MEMBERS, topology=RelayAll()), FifoBroadcast("a")])
    out = stack.on_broadcast(b"p", 0.0)
    assert delivers(out) == [("a", 0, b"p")]
    timer = next(x for x in out if isinstance(x, SetTimer))
    assert timer.key.startswith("0/")
    sends = [x for x in stack.on_timer(timer.key, timer.at) if isinstance(x, Send)]
    assert sends and all(isinstance(x.msg, Wire) and x.msg.layer == 0 for x in sends)
    other = Stack([GossipBroadcast("b", MEMBERS, topology=RelayAll()), FifoBroadcast("b")])
    assert delivers(other.on_receive("a", sends[0].msg, 0.2)) == [("a", 0, b"p")]
    assert set(stack.buffer_sizes()) >= {"0.store", "1.holdback"}
    with pytest.raises(ProtocolViolation):
        stack.on_receive("b", "garbage", 0.0)
    with pytest.raises(TypeError):
        stack.on_broadcast("text", 0.0)  # type: ignore[arg-type]
    full = Stack([GossipBroadcast("a", MEMBERS, window=0)])
    with pytest.raises(BufferFull):
        full.on_broadcast(b"p", 0.0)
