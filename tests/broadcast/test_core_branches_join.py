"""Branch tests for starting a joiner's layers (``start_point`` / ``start_from``).

A running member exports a ``StartPoint`` per layer; a fresh layer started from it counts
what the point says as delivered, adopts the held-back messages, and then delivers
exactly the messages past the point. These tests check each layer's version of that,
and the refusals (a layer that is not fresh, a foreign held message, a leader joiner).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rpcx_broadcast.core import (
    BestEffortBroadcast,
    CausalBroadcast,
    Deliver,
    Down,
    FifoBroadcast,
    GossipBroadcast,
    LamportTotal,
    ProtocolViolation,
    RelayAll,
    Send,
    SequencerTotal,
    SetTimer,
    Stack,
    StartPoint,
)
from rpcx_broadcast.core.actions import Action
from rpcx_broadcast.core.causal import CausalMsg
from rpcx_broadcast.core.fifo import FifoMsg
from rpcx_broadcast.core.gossip import GossipBatch, GossipMsg
from rpcx_broadcast.core.layer import Joinable
from rpcx_broadcast.core.total import SeqData, SeqOrder

MEMBERS = ("a", "b", "c")


def delivers(actions: list[Action]) -> list[tuple[str, int, object]]:
    return [(a.origin, a.seq, a.payload) for a in actions if isinstance(a, Deliver)]


# -- causal ------------------------------------------------------------------------------


def test_causal_start_point_is_delivered_counts_plus_held_messages() -> None:
    coord = CausalBroadcast("a")
    coord.on_deliver(Deliver("b", 0, CausalMsg("b", 0, {"b": 0}, b"b0")), 0.0)
    waiting = CausalMsg("c", 0, {"b": 2, "c": 0}, b"c0")  # needs b:1
    coord.on_deliver(Deliver("c", 0, waiting), 0.0)
    point = coord.start_point()
    assert point == StartPoint({"b": 1}, held=(waiting,))
    joiner = CausalBroadcast("d")
    assert joiner.start_from(point, 1.0) == []
    assert len(joiner.holdback) == 1
    got = joiner.on_deliver(Deliver("b", 1, CausalMsg("b", 1, {"b": 1}, b"b1")), 1.1)
    assert delivers(got) == [("b", 1, b"b1"), ("c", 0, b"c0")]
    # what the point counts as delivered is not delivered again
    assert joiner.on_deliver(Deliver("b", 0, CausalMsg("b", 0, {"b": 0}, b"b0")), 1.2) == []


def test_causal_start_from_delivers_held_messages_the_counts_already_satisfy() -> None:
    ready = CausalMsg("c", 0, {"b": 1, "c": 0}, b"c0")
    joiner = CausalBroadcast("d")
    assert delivers(joiner.start_from(StartPoint({"b": 1}, held=(ready,)), 0.0)) == [
        ("c", 0, b"c0")]
    assert joiner.delivered == {"b": 1, "c": 1}


def test_causal_start_from_skips_held_messages_below_the_counts() -> None:
    old = CausalMsg("b", 1, {"b": 1}, b"already counted")
    joiner = CausalBroadcast("d")
    assert joiner.start_from(StartPoint({"b": 2}, held=(old,)), 0.0) == []
    assert len(joiner.holdback) == 0 and joiner.delivered == {"b": 2}


def test_causal_joiner_broadcasts_depend_on_its_starting_point() -> None:
    joiner = CausalBroadcast("d")
    joiner.start_from(StartPoint({"b": 2}), 0.0)
    (down,) = joiner.on_broadcast(b"hi", 0.1)
    assert isinstance(down, Down) and isinstance(down.body, CausalMsg)
    assert down.body.deps == {"b": 2, "d": 0}


def _used_causal(how: str) -> CausalBroadcast:
    layer = CausalBroadcast("d")
    if how == "broadcast":
        layer.on_broadcast(b"x", 0.0)
    elif how == "delivered":
        layer.on_deliver(Deliver("b", 0, CausalMsg("b", 0, {"b": 0}, b"b0")), 0.0)
    else:
        layer.on_deliver(Deliver("c", 0, CausalMsg("c", 0, {"b": 1, "c": 0}, b"c0")), 0.0)
    return layer


@pytest.mark.parametrize("how", ["broadcast", "delivered", "held"])
def test_causal_start_from_needs_a_fresh_layer(how: str) -> None:
    layer = _used_causal(how)
    before = (dict(layer.delivered), len(layer.holdback))
    with pytest.raises(ValueError, match="fresh layer"):
        layer.start_from(StartPoint({"b": 5}), 1.0)
    assert (dict(layer.delivered), len(layer.holdback)) == before


def test_causal_start_from_refuses_a_foreign_held_message() -> None:
    with pytest.raises(ProtocolViolation, match="cannot start from"):
        CausalBroadcast("d").start_from(StartPoint({}, held=(FifoMsg("b", 0, b"x"),)), 0.0)


# -- FIFO --------------------------------------------------------------------------------


def test_fifo_start_point_and_a_joiner_continues_each_origin_in_order() -> None:
    coord = FifoBroadcast("a")
    coord.on_deliver(Deliver("b", 0, FifoMsg("b", 0, b"b0")), 0.0)
    coord.on_deliver(Deliver("b", 2, FifoMsg("b", 2, b"b2")), 0.0)  # held behind b:1
    point = coord.start_point()
    assert point == StartPoint({"b": 1}, held=(FifoMsg("b", 2, b"b2"),))
    joiner = FifoBroadcast("d", nak_delay=0.2)
    out = joiner.start_from(point, 1.0)
    assert out == [SetTimer("nak:b", 1.2)]  # the gap is repaired as usual
    got = joiner.on_deliver(Deliver("b", 1, FifoMsg("b", 1, b"b1")), 1.1)
    assert delivers(got) == [("b", 1, b"b1"), ("b", 2, b"b2")]
    assert joiner.on_deliver(Deliver("b", 0, FifoMsg("b", 0, b"b0")), 1.2) == []


def test_fifo_start_from_delivers_the_next_held_message_and_drops_old_ones() -> None:
    held = (FifoMsg("b", 0, b"old"), FifoMsg("b", 1, b"next"))
    joiner = FifoBroadcast("d")
    assert delivers(joiner.start_from(StartPoint({"b": 1}, held=held), 0.0)) == [
        ("b", 1, b"next")]
    assert joiner.delivered == {"b": 2} and len(joiner.holdback) == 0


@pytest.mark.parametrize("how", ["broadcast", "delivered", "held"])
def test_fifo_start_from_needs_a_fresh_layer(how: str) -> None:
    layer = FifoBroadcast("d")
    if how == "broadcast":
        layer.on_broadcast(b"x", 0.0)
    elif how == "delivered":
        layer.on_deliver(Deliver("b", 0, FifoMsg("b", 0, b"b0")), 0.0)
    else:
        layer.on_deliver(Deliver("b", 3, FifoMsg("b", 3, b"b3")), 0.0)
    with pytest.raises(ValueError, match="fresh layer"):
        layer.start_from(StartPoint({"b": 7}), 1.0)
    assert layer.delivered.get("b", 0) != 7


def test_fifo_start_from_refuses_a_foreign_held_message() -> None:
    bad = StartPoint({}, held=(CausalMsg("b", 0, {"b": 0}, b"x"),))
    with pytest.raises(ProtocolViolation, match="cannot start from"):
        FifoBroadcast("d").start_from(bad, 0.0)


# -- gossip ------------------------------------------------------------------------------


def test_gossip_joiner_counts_the_point_as_delivered_and_stable() -> None:
    coord = GossipBroadcast("a", ("a", "b"), topology=RelayAll())
    coord.on_receive("b", GossipBatch(tuple(GossipMsg("b", s, b"") for s in range(3)), {}),
                     0.0)
    coord.on_broadcast(b"a0", 0.0)
    point = coord.start_point()
    assert point == StartPoint({"b": 3, "a": 1})
    joiner = GossipBroadcast("d", ("a", "b", "d"), topology=RelayAll())
    assert joiner.start_from(point, 1.0) == []
    assert joiner.stable() == {"b": 3, "a": 1}
    assert joiner.buffer_sizes()["store"] == 0  # it never stores what it starts past
    old = GossipBatch((GossipMsg("b", 2, b"old"),), {})
    assert delivers(joiner.on_receive("b", old, 1.1)) == []  # counted as delivered
    new = GossipBatch((GossipMsg("b", 3, b"new"),), {})
    assert delivers(joiner.on_receive("b", new, 1.2)) == [("b", 3, b"new")]
    # a repair request from a member that lacks everything gets only what is stored,
    # and only once it has been held here for a sync interval (before, the push that
    # brought it is still on its way to the others)
    ask = GossipBatch((), {"a": {}}, want_reply=True, repair=("a", "b"))
    reply = [x for x in joiner.on_receive("a", ask, 1.3) if isinstance(x, Send)]
    assert reply and isinstance(reply[-1].msg, GossipBatch)
    assert reply[-1].msg.msgs == ()
    joiner.on_timer("sync", 1.7)
    joiner.on_timer("sync", 2.2)
    reply = [x for x in joiner.on_receive("a", ask, 2.3) if isinstance(x, Send)]
    assert reply and isinstance(reply[-1].msg, GossipBatch)
    assert [(m.origin, m.seq) for m in reply[-1].msg.msgs] == [("b", 3)]


@pytest.mark.parametrize("how", ["broadcast", "received"])
def test_gossip_start_from_needs_a_fresh_layer(how: str) -> None:
    layer = GossipBroadcast("d", ("b", "d"))
    if how == "broadcast":
        layer.on_broadcast(b"x", 0.0)
    else:
        layer.on_receive("b", GossipBatch((GossipMsg("b", 0, b"b0"),), {}), 0.0)
    with pytest.raises(ValueError, match="fresh layer"):
        layer.start_from(StartPoint({"b": 9}), 1.0)
    assert layer.stable().get("b", 0) != 9


# -- sequencer ---------------------------------------------------------------------------


def _follower_with_state() -> SequencerTotal:
    b = SequencerTotal("b", MEMBERS)
    b.on_deliver(Deliver("c", 0, SeqData("c", 0, b"c0")), 0.0)
    b.on_deliver(Deliver("a", 0, SeqOrder(0, (("c", 0),))), 0.0)  # c:0 delivered, index 1
    b.on_deliver(Deliver("c", 1, SeqData("c", 1, b"c1")), 0.0)  # payload, no order yet
    b.on_deliver(Deliver("a", 1, SeqOrder(2, (("c", 3),))), 0.0)  # order, no payload yet
    return b


def test_sequencer_start_point_is_next_index_counts_and_held_payloads_and_orders() -> None:
    point = _follower_with_state().start_point()
    assert point == StartPoint({"c": 1}, next=1,
                               held=(SeqData("c", 1, b"c1"), SeqOrder(2, (("c", 3),))))


def test_sequencer_joiner_delivers_the_global_order_from_the_point_on() -> None:
    joiner = SequencerTotal("d", (*MEMBERS, "d"))
    assert joiner.start_from(_follower_with_state().start_point(), 1.0) == []
    assert joiner.buffer_sizes() == {"holdback": 1, "orders": 1, "leader_waiting": 0}
    assert delivers(joiner.on_deliver(Deliver("a", 2, SeqOrder(1, (("c", 1),))), 1.1)) == [
        ("c", 1, b"c1")]
    assert delivers(joiner.on_deliver(Deliver("c", 3, SeqData("c", 3, b"c3")), 1.2)) == [
        ("c", 3, b"c3")]
    # c:0 counts as delivered: a late copy is ignored, not held forever
    assert joiner.on_deliver(Deliver("c", 0, SeqData("c", 0, b"c0")), 1.3) == []
    assert len(joiner.holdback) == 0


def test_sequencer_start_from_drops_order_entries_below_the_next_index() -> None:
    point = StartPoint({"c": 2}, next=2, held=(SeqOrder(0, (("c", 0), ("c", 1), ("c", 2))),
                                                SeqData("c", 2, b"c2")))
    joiner = SequencerTotal("d", (*MEMBERS, "d"))
    assert delivers(joiner.start_from(point, 0.0)) == [("c", 2, b"c2")]  # ready at once
    assert joiner.buffer_sizes()["orders"] == 0


def test_sequencer_joiner_cannot_be_the_leader() -> None:
    with pytest.raises(ValueError, match="sequencer"):
        SequencerTotal("a", MEMBERS).start_from(StartPoint(), 0.0)


@pytest.mark.parametrize("how", ["broadcast", "delivered", "held", "ordered"])
def test_sequencer_start_from_needs_a_fresh_layer(how: str) -> None:
    layer = SequencerTotal("d", (*MEMBERS, "d"))
    if how == "broadcast":
        layer.on_broadcast(b"x", 0.0)
    elif how == "delivered":
        layer.on_deliver(Deliver("c", 0, SeqData("c", 0, b"c0")), 0.0)
        layer.on_deliver(Deliver("a", 0, SeqOrder(0, (("c", 0),))), 0.0)
    elif how == "held":
        layer.on_deliver(Deliver("c", 0, SeqData("c", 0, b"c0")), 0.0)
    else:
        layer.on_deliver(Deliver("a", 0, SeqOrder(0, (("c", 0),))), 0.0)
    with pytest.raises(ValueError, match="fresh layer"):
        layer.start_from(StartPoint({"c": 5}, next=5), 1.0)


def test_sequencer_start_from_refuses_a_foreign_held_message() -> None:
    with pytest.raises(ProtocolViolation, match="cannot start from"):
        SequencerTotal("d", MEMBERS).start_from(StartPoint(held=(b"x",)), 0.0)


# -- stack -------------------------------------------------------------------------------


def test_stack_is_joinable_only_if_every_layer_is() -> None:
    assert Stack([GossipBroadcast("a", MEMBERS), CausalBroadcast("a")]).joinable
    assert not Stack([BestEffortBroadcast("a", MEMBERS), CausalBroadcast("a")]).joinable
    lamport = Stack([GossipBroadcast("a", MEMBERS), FifoBroadcast("a"),
                     LamportTotal("a", MEMBERS)])
    assert not lamport.joinable


def test_stack_start_points_refuse_a_layer_that_cannot_start_a_joiner() -> None:
    stack = Stack([GossipBroadcast("a", MEMBERS), FifoBroadcast("a"),
                   LamportTotal("a", MEMBERS)])
    with pytest.raises(TypeError, match="LamportTotal cannot start a joiner"):
        stack.start_points()


def test_stack_start_from_needs_one_point_per_layer() -> None:
    fifo = FifoBroadcast("d")
    stack = Stack([GossipBroadcast("d", (*MEMBERS, "d")), fifo])
    with pytest.raises(ProtocolViolation, match="1 starting points for 2 layers"):
        stack.start_from([StartPoint()], 0.0)
    with pytest.raises(ProtocolViolation, match="3 starting points for 2 layers"):
        stack.start_from([StartPoint({"b": 1})] * 3, 0.0)
    assert fifo.delivered == {}  # nothing was started


def test_stack_start_from_refuses_a_layer_that_cannot_start_a_joiner() -> None:
    stack = Stack([BestEffortBroadcast("d", MEMBERS), CausalBroadcast("d")])
    with pytest.raises(TypeError, match="BestEffortBroadcast cannot start a joiner"):
        stack.start_from([StartPoint(), StartPoint()], 0.0)


def test_stack_start_from_routes_each_layers_actions_with_its_index() -> None:
    coord = Stack([GossipBroadcast("a", ("a", "b"), topology=RelayAll()), FifoBroadcast("a")])
    sender = Stack([GossipBroadcast("b", ("a", "b"), topology=RelayAll()), FifoBroadcast("b")])
    pushes: list[Send] = []
    for i in range(3):
        pushes += [x for x in sender.on_broadcast(f"b{i}".encode(), 0.0)
                   if isinstance(x, Send)]
    pushes += [x for x in sender.on_timer("0/flush", 0.1) if isinstance(x, Send)]
    (batch,) = pushes
    coord.on_receive("b", batch.msg, 0.2)
    points = coord.start_points()
    assert points[0].counts == {"b": 3} and points[1].counts == {"b": 3}
    joiner = Stack([GossipBroadcast("d", ("a", "b", "d"), topology=RelayAll()),
                    FifoBroadcast("d")])
    gap = StartPoint({"b": 1}, held=(FifoMsg("b", 2, b"b2"),))  # FIFO behind its gossip
    out = joiner.start_from([points[0], gap], 1.0)
    assert out == [SetTimer("1/nak:b", 1.2)]  # the FIFO layer's timer, prefixed "1/"
    (mine,) = delivers(joiner.on_broadcast(b"d0", 1.5))
    assert mine == ("d", 0, b"d0")


# -- a joiner reusing a departed member's name --------------------------------------------


def test_a_rejoining_member_must_take_a_new_name() -> None:
    def stack(me: str) -> Stack:
        return Stack([GossipBroadcast(me, ("a", "b"), topology=RelayAll()), FifoBroadcast(me)])

    a, b = stack("a"), stack("b")
    sends = [x for x in b.on_broadcast(b"old0", 0.0) if isinstance(x, Send)]
    sends += [x for x in b.on_broadcast(b"old1", 0.0) if isinstance(x, Send)]
    sends += [x for x in b.on_timer("0/flush", 0.1) if isinstance(x, Send)]
    for frame in sends:
        a.on_receive("b", frame.msg, 0.2)
    a.on_view(("a",), 1.0)  # b leaves
    a.on_view(("a", "b"), 2.0)  # and joins again, as a fresh process
    again = stack("b")
    # Its numbering would restart at 0 under its old messages, counted as delivered: the
    # new process must take a new name, and starting it under the old one is refused.
    with pytest.raises(ValueError, match="'b' broadcast 2 messages in an earlier"):
        again.start_from(a.start_points(), 2.0)
    fresh = Stack([GossipBroadcast("b2", ("a", "b2"), topology=RelayAll()),
                   FifoBroadcast("b2")])
    fresh.start_from(a.start_points(), 2.0)
    out = fresh.on_broadcast(b"new", 2.1)
    assert [p for _, _, p in delivers(out)] == [b"new"]



@pytest.mark.parametrize("make", [
    lambda: GossipBroadcast("d", (*MEMBERS, "d"), topology=RelayAll()),
    lambda: FifoBroadcast("d"),
    lambda: CausalBroadcast("d"),
    lambda: SequencerTotal("d", (*MEMBERS, "d")),
], ids=["gossip", "fifo", "causal", "sequencer"])
def test_every_layer_refuses_to_start_a_used_name(make: Callable[[], Joinable]) -> None:
    with pytest.raises(ValueError, match="'d' broadcast 3 messages in an earlier"):
        make().start_from(StartPoint(counts={"a": 5, "d": 3}), 0.0)
    make().start_from(StartPoint(counts={"a": 5, "d": 0}), 0.0)  # never broadcast: fine
