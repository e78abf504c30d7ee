"""Branch tests for the ordering cores: FIFO, causal, total, FIFO-total and the hold-back.

Each test drives a branch that the property runs do not reach (duplicates, malformed
input from below, stale decisions, departed senders, spurious timers) and asserts what
the branch is for, so it fails if the behaviour breaks.
"""

from __future__ import annotations

import pytest

from rpcx_broadcast.core import (
    CausalBroadcast,
    Deliver,
    Down,
    FifoBroadcast,
    GossipBroadcast,
    HoldBack,
    HoldBackOverflow,
    LamportTotal,
    ProtocolViolation,
    RelayAll,
    Send,
    SequencerTotal,
    SetTimer,
    Stack,
    fifo_total_sequencer,
    lamport_fifo_total,
)
from rpcx_broadcast.core.actions import Action
from rpcx_broadcast.core.causal import CausalMsg
from rpcx_broadcast.core.fifo import FifoMsg, FifoNak
from rpcx_broadcast.core.total import LamportFlush, LamportMsg, SeqData, SeqOrder
from rpcx_broadcast.testing.properties import check
from rpcx_broadcast.testing.sim import FaultPlan, SimConfig, simulate

MEMBERS = ("a", "b", "c")


def delivers(actions: list[Action]) -> list[tuple[str, int, object]]:
    return [(a.origin, a.seq, a.payload) for a in actions if isinstance(a, Deliver)]


def downs(actions: list[Action]) -> list[object]:
    return [a.body for a in actions if isinstance(a, Down)]


# -- hold-back ---------------------------------------------------------------------------


def test_holdback_get_returns_the_held_value_or_none() -> None:
    queue: HoldBack[tuple[str, int], str] = HoldBack(cap=4)
    queue.add(("a", 1), "one")
    assert queue.get(("a", 1)) == "one"
    assert queue.get(("a", 2)) is None
    assert len(queue) == 1  # get does not remove


def test_holdback_discard_removes_frees_room_and_ignores_missing_keys() -> None:
    queue: HoldBack[int, str] = HoldBack(cap=1)
    queue.add(1, "x")
    with pytest.raises(HoldBackOverflow, match="full"):
        queue.add(2, "y")
    queue.discard(1)
    assert 1 not in queue and len(queue) == 0
    queue.discard(1)  # already gone: no KeyError
    assert queue.add(2, "y")  # the discard freed the slot
    assert queue.max_size == 1


def test_holdback_keys_are_a_snapshot_in_arrival_order() -> None:
    queue: HoldBack[int, str] = HoldBack()
    for key in (3, 1, 2):
        queue.add(key, str(key))
    keys = queue.keys()
    assert keys == [3, 1, 2]
    queue.pop(1)
    assert keys == [3, 1, 2]  # a copy, not a live view
    assert queue.keys() == [3, 2]


# -- FIFO --------------------------------------------------------------------------------


def test_fifo_nak_timer_for_a_departed_sender_sends_nothing() -> None:
    c = FifoBroadcast("c", nak_delay=0.2)
    c.on_deliver(Deliver("a", 0, FifoMsg("a", 0, b"a0")), 0.0)
    out = c.on_deliver(Deliver("a", 2, FifoMsg("a", 2, b"a2")), 0.0)  # gap at a:1
    assert SetTimer("nak:a", 0.2) in out
    c.on_deliver(Deliver("b", 1, FifoMsg("b", 1, b"b1")), 0.0)  # gap at b:0
    assert c.on_view(("b", "c"), 0.1) == []  # a left the group
    assert c.on_timer("nak:a", 0.2) == []  # a cannot answer: no NAK to it
    # a sender still in the group is asked as before
    assert c.on_timer("nak:b", 0.2) == [Send("b", FifoNak((0,))), SetTimer("nak:b", 0.4)]
    # a's message stays held back: the gap is still there, only the NAK is suppressed
    assert len(c.holdback) == 2 and c.delivered["a"] == 1


def test_fifo_nak_timer_after_a_departure_does_not_rearm() -> None:
    c = FifoBroadcast("c", nak_delay=0.2)
    c.on_deliver(Deliver("a", 1, FifoMsg("a", 1, b"a1")), 0.0)
    c.on_view(("c",), 0.1)
    assert c.on_timer("nak:a", 0.2) == []
    # the next gap from a (if the reliable layer still hands its messages up) arms a new
    # timer, since the fired one was disarmed
    out = c.on_deliver(Deliver("a", 3, FifoMsg("a", 3, b"a3")), 0.3)
    assert SetTimer("nak:a", 0.5) in out


def test_fifo_rejects_a_retransmission_that_claims_another_origin() -> None:
    c = FifoBroadcast("c")
    with pytest.raises(ProtocolViolation):
        c.on_receive("b", FifoMsg("a", 0, b"forged"), 0.0)
    assert c.delivered == {} and len(c.holdback) == 0


# -- causal ------------------------------------------------------------------------------


def test_causal_rejects_a_non_causal_message_from_below() -> None:
    c = CausalBroadcast("c")
    with pytest.raises(ProtocolViolation, match="causal layer got"):
        c.on_deliver(Deliver("a", 0, b"raw bytes"), 0.0)
    assert c.delivered == {}


def test_causal_drops_a_duplicate_of_a_delivered_message() -> None:
    c = CausalBroadcast("c")
    m = CausalMsg("a", 0, {"a": 0}, b"m")
    assert delivers(c.on_deliver(Deliver("a", 0, m), 0.0)) == [("a", 0, b"m")]
    assert c.on_deliver(Deliver("a", 0, m), 0.1) == []
    assert c.delivered == {"a": 1} and len(c.holdback) == 0


def test_causal_drops_a_duplicate_of_a_held_back_message() -> None:
    c = CausalBroadcast("c")
    waiting = CausalMsg("b", 0, {"a": 1, "b": 0}, b"reply")  # needs a:0 first
    assert c.on_deliver(Deliver("b", 0, waiting), 0.0) == []
    assert c.on_deliver(Deliver("b", 0, waiting), 0.1) == []
    assert len(c.holdback) == 1
    got = c.on_deliver(Deliver("a", 0, CausalMsg("a", 0, {"a": 0}, b"first")), 0.2)
    assert delivers(got) == [("a", 0, b"first"), ("b", 0, b"reply")]  # reply once


@pytest.mark.parametrize("deps", [{"a": 3}, {}, {"b": 0}])
def test_causal_drops_a_message_whose_own_entry_is_not_its_seq(deps: dict[str, int]) -> None:
    """``deps[origin]`` must equal ``seq``; anything else is malformed and never held."""
    c = CausalBroadcast("c")
    assert c.on_deliver(Deliver("a", 0, CausalMsg("a", 0, deps, b"bad")), 0.0) == []
    assert len(c.holdback) == 0 and c.delivered == {}
    # the well-formed message with the same identity is still accepted afterwards
    good = CausalMsg("a", 0, {"a": 0}, b"good")
    assert delivers(c.on_deliver(Deliver("a", 0, good), 0.1)) == [("a", 0, b"good")]


def test_causal_has_no_network_messages_and_no_timers() -> None:
    c = CausalBroadcast("c")
    with pytest.raises(ProtocolViolation, match="no network messages"):
        c.on_receive("a", CausalMsg("a", 0, {"a": 0}, b"m"), 0.0)
    assert c.delivered == {} and len(c.holdback) == 0
    c.on_deliver(Deliver("b", 0, CausalMsg("b", 0, {"a": 1, "b": 0}, b"x")), 0.0)
    assert c.on_timer("anything", 1.0) == []
    assert len(c.holdback) == 1  # a timer does not release or drop held messages


# -- sequencer ---------------------------------------------------------------------------


def test_sequencer_leader_ignores_a_duplicate_of_held_data() -> None:
    leader = SequencerTotal("a", MEMBERS)
    first = leader.on_deliver(Deliver("b", 0, SeqData("b", 0, b"x")), 0.0)
    assert first == [SetTimer("order", 0.01)]
    assert leader.on_deliver(Deliver("b", 0, SeqData("b", 0, b"x")), 0.001) == []
    assert len(leader.holdback) == 1
    (order,) = leader.on_timer("order", 0.01)
    assert order == Down(SeqOrder(0, (("b", 0),)))  # ordered once, not twice


def test_sequencer_ignores_data_it_already_delivered() -> None:
    b = SequencerTotal("b", MEMBERS)
    b.on_deliver(Deliver("c", 0, SeqData("c", 0, b"x")), 0.0)
    got = b.on_deliver(Deliver("a", 0, SeqOrder(0, (("c", 0),))), 0.1)
    assert delivers(got) == [("c", 0, b"x")]
    assert b.on_deliver(Deliver("c", 0, SeqData("c", 0, b"x")), 0.2) == []
    assert len(b.holdback) == 0  # not held back again (it would never be ordered again)


def test_sequencer_leader_does_not_reorder_data_it_already_delivered() -> None:
    leader = SequencerTotal("a", MEMBERS)
    leader.on_deliver(Deliver("b", 0, SeqData("b", 0, b"x")), 0.0)
    (order,) = leader.on_timer("order", 0.01)
    assert isinstance(order, Down) and isinstance(order.body, SeqOrder)
    assert delivers(leader.on_deliver(Deliver("a", 0, order.body), 0.02)) == [("b", 0, b"x")]
    assert leader.on_deliver(Deliver("b", 0, SeqData("b", 0, b"x")), 0.03) == []
    assert leader.buffer_sizes() == {"holdback": 0, "orders": 0, "leader_waiting": 0}


def test_sequencer_ignores_order_entries_below_what_it_delivered() -> None:
    b = SequencerTotal("b", MEMBERS)
    b.on_deliver(Deliver("c", 0, SeqData("c", 0, b"x")), 0.0)
    order = SeqOrder(0, (("c", 0),))
    assert delivers(b.on_deliver(Deliver("a", 0, order), 0.1)) == [("c", 0, b"x")]
    # the same decision again (a duplicate from below): nothing delivered, nothing kept
    assert b.on_deliver(Deliver("a", 0, order), 0.2) == []
    assert b.buffer_sizes()["orders"] == 0
    # an overlapping order: the stale entry is skipped, the new one is used
    b.on_deliver(Deliver("c", 1, SeqData("c", 1, b"y")), 0.3)
    got = b.on_deliver(Deliver("a", 1, SeqOrder(0, (("c", 0), ("c", 1)))), 0.4)
    assert delivers(got) == [("c", 1, b"y")]
    assert b.buffer_sizes()["orders"] == 0


def test_sequencer_rejects_unknown_messages() -> None:
    b = SequencerTotal("b", MEMBERS)
    with pytest.raises(ProtocolViolation, match="sequencer got"):
        b.on_deliver(Deliver("a", 0, b"raw"), 0.0)
    with pytest.raises(ProtocolViolation, match="no network messages"):
        b.on_receive("a", SeqOrder(0, ()), 0.0)


def test_sequencer_order_timer_with_nothing_pending_does_nothing() -> None:
    follower = SequencerTotal("b", MEMBERS)
    assert follower.on_timer("order", 0.0) == []  # never armed it: nothing to order
    leader = SequencerTotal("a", MEMBERS)
    leader.on_deliver(Deliver("b", 0, SeqData("b", 0, b"x")), 0.0)
    assert len(downs(leader.on_timer("order", 0.01))) == 1
    assert leader.on_timer("order", 0.02) == []  # a late second firing sends no empty order
    # and the flush timer can be armed again afterwards
    out = leader.on_deliver(Deliver("c", 0, SeqData("c", 0, b"y")), 0.03)
    assert out == [SetTimer("order", 0.04)]
    assert downs(leader.on_timer("order", 0.04)) == [SeqOrder(1, (("c", 0),))]


# -- Lamport -----------------------------------------------------------------------------


def test_lamport_refuses_none_which_marks_heartbeats() -> None:
    a = LamportTotal("a", ("a", "b"))
    with pytest.raises(TypeError, match="heartbeats"):
        a.on_broadcast(None, 0.0)
    assert a.clock.time == 0  # no timestamp was used up
    (down,) = a.on_broadcast(b"x", 0.0)
    assert isinstance(down, Down) and down.body == LamportMsg(1, 0, b"x")


def test_lamport_rejects_unknown_messages() -> None:
    a = LamportTotal("a", ("a", "b"))
    with pytest.raises(ProtocolViolation, match="lamport layer got"):
        a.on_deliver(Deliver("b", 0, FifoMsg("b", 0, b"x")), 0.0)
    assert a.latest == {} and a.clock.time == 0
    with pytest.raises(ProtocolViolation, match="no network messages"):
        a.on_receive("b", LamportMsg(1, 0, b"x"), 0.0)


def test_lamport_reports_its_hold_back_size() -> None:
    a = LamportTotal("a", ("a", "b"))
    assert a.buffer_sizes() == {"holdback": 0, "flushing": 0}
    a.on_deliver(Deliver("b", 0, LamportMsg(2, 0, b"x")), 0.0)
    a.on_deliver(Deliver("b", 1, LamportMsg(3, 1, b"y")), 0.0)
    assert a.buffer_sizes() == {"holdback": 2, "flushing": 0}  # a has not spoken: both wait
    (beat,) = a.on_timer("heartbeat", 0.01)
    assert isinstance(beat, Down) and isinstance(beat.body, LamportMsg)
    a.on_deliver(Deliver("a", 0, beat.body), 0.01)
    assert a.buffer_sizes() == {"holdback": 0, "flushing": 0}


def test_lamport_holds_a_duplicate_once_and_delivers_it_once() -> None:
    a = LamportTotal("a", ("a", "b", "c"))
    msg = LamportMsg(5, 0, b"x")
    first = a.on_deliver(Deliver("b", 0, msg), 0.0)
    assert first == [SetTimer("heartbeat", 0.01)]
    assert a.on_deliver(Deliver("b", 0, msg), 0.001) == []  # already held, timer armed
    assert len(a.holdback) == 1
    (beat,) = a.on_timer("heartbeat", 0.01)
    assert isinstance(beat, Down) and isinstance(beat.body, LamportMsg)
    a.on_deliver(Deliver("a", 0, beat.body), 0.01)
    got = a.on_deliver(Deliver("c", 0, LamportMsg(9, 0, None)), 0.02)
    assert delivers(got) == [("b", 0, b"x")]  # once, although it arrived twice
    assert len(a.holdback) == 0


def test_lamport_heartbeat_timer_sends_nothing_once_a_broadcast_paid_the_debt() -> None:
    a = LamportTotal("a", ("a", "b"))
    assert a.on_deliver(Deliver("b", 0, LamportMsg(3, 0, b"x")), 0.0) == [
        SetTimer("heartbeat", 0.01)]
    (down,) = a.on_broadcast(b"mine", 0.005)  # timestamped after b's: no heartbeat owed
    assert isinstance(down, Down) and down.body == LamportMsg(5, 0, b"mine")
    assert a.on_timer("heartbeat", 0.01) == []
    assert a.clock.time == 5  # no timestamp spent on a heartbeat
    # the timer is disarmed: a later message arms it again
    assert a.on_deliver(Deliver("b", 1, LamportMsg(8, 1, b"y")), 0.02) == [
        SetTimer("heartbeat", 0.03)]


def test_lamport_view_without_a_silent_member_releases_what_it_blocked() -> None:
    a = LamportTotal("a", ("a", "b", "c"))
    a.on_deliver(Deliver("b", 0, LamportMsg(1, 0, b"x")), 0.0)
    (beat,) = a.on_timer("heartbeat", 0.01)
    assert isinstance(beat, Down) and isinstance(beat.body, LamportMsg)
    assert a.on_deliver(Deliver("a", 0, beat.body), 0.01) == []  # c has said nothing
    # the view drops c: a reports what it has of c (nothing) and waits for b's report
    (report,) = a.on_view(("a", "b"), 0.5)
    assert isinstance(report, Down) and isinstance(report.body, LamportMsg)
    assert report.body.body == LamportFlush("c", 0)
    assert a.buffer_sizes()["flushing"] == 1
    assert a.on_deliver(Deliver("a", 1, report.body), 0.5) == []
    got = a.on_deliver(Deliver("b", 1, LamportMsg(3, 1, LamportFlush("c", 0))), 0.6)
    assert delivers(got) == [("b", 0, b"x")]
    assert a.members == ("a", "b") and len(a.holdback) == 0
    assert a.buffer_sizes()["flushing"] == 0
    assert a.on_view(("b", "a"), 0.6) == []  # nothing left to release


def test_lamport_flush_waits_for_the_relayed_messages_up_to_the_cut() -> None:
    # b reports 2 of c's messages, a had only 1: a waits for c's second (relayed), then
    # delivers c's and b's in timestamp order; c's third, past the cut, is dropped
    a = LamportTotal("a", ("a", "b", "c"))
    a.on_deliver(Deliver("c", 0, LamportMsg(1, 0, b"c0")), 0.0)
    (report,) = [x for x in a.on_view(("a", "b"), 0.1) if isinstance(x, Down)]
    assert isinstance(report.body, LamportMsg)
    assert report.body.body == LamportFlush("c", 1)
    a.on_deliver(Deliver("a", 0, report.body), 0.1)
    a.on_deliver(Deliver("b", 0, LamportMsg(3, 0, LamportFlush("c", 2))), 0.2)
    assert a.buffer_sizes()["flushing"] == 1  # the cut is 2, a has 1
    assert delivers(a.on_deliver(Deliver("b", 1, LamportMsg(6, 0, b"b0")), 0.3)) == []
    got = a.on_deliver(Deliver("c", 1, LamportMsg(4, 1, b"c1")), 0.4)
    assert delivers(got) == [("c", 0, b"c0")]  # c1 (ts 4) waits for a's clock to pass it
    assert a.buffer_sizes()["flushing"] == 0
    assert a.on_deliver(Deliver("c", 2, LamportMsg(5, 2, b"c2")), 0.5) == []  # past the cut
    (beat,) = [x for x in a.on_timer("heartbeat", 0.6) if isinstance(x, Down)]
    assert isinstance(beat.body, LamportMsg)
    got = a.on_deliver(Deliver("a", 1, beat.body), 0.6)
    assert delivers(got) == [("c", 1, b"c1"), ("b", 0, b"b0")]
    assert len(a.holdback) == 0  # c2 was never held


# -- FIFO-total constructors -------------------------------------------------------------


def test_fifo_total_sequencer_is_a_fifo_sequencer_led_by_the_first_member() -> None:
    (layer,) = fifo_total_sequencer("c", ("c", "b", "a"))
    assert isinstance(layer, SequencerTotal)
    assert layer.fifo and layer.leader == "a" and layer.me == "c"
    (named,) = fifo_total_sequencer("c", MEMBERS, leader="b")
    assert isinstance(named, SequencerTotal) and named.leader == "b"


def test_lamport_fifo_total_is_fifo_under_lamport() -> None:
    fifo, lamport = lamport_fifo_total("b", MEMBERS)
    assert isinstance(fifo, FifoBroadcast) and fifo.me == "b"
    assert isinstance(lamport, LamportTotal) and lamport.members == MEMBERS


def _run(make_upper: str, seed: int) -> None:
    def make_stack(me: str, members: tuple[str, ...]) -> Stack:
        upper = (fifo_total_sequencer(me, members) if make_upper == "sequencer"
                 else lamport_fifo_total(me, members))
        reliable = GossipBroadcast(me, members, topology=RelayAll(), batch_delay=0.02,
                                   sync_interval=0.1)
        return Stack([reliable, *upper])

    nodes = ("n0", "n1", "n2")
    broadcasts = tuple((0.01 * i, nodes[i % 3]) for i in range(12))
    result = simulate(SimConfig(nodes, make_stack, broadcasts,
                                FaultPlan(loss=0.1, delay=(0.001, 0.05), detect_after=None),
                                seed=seed, max_time=30.0))
    assert check(result.history, "fifo_total") is None
    for node in nodes:
        assert len(result.history.deliveries(node)) == 12


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kind", ["sequencer", "lamport"])
def test_the_fifo_total_stacks_deliver_everything_in_one_fifo_order(kind: str,
                                                                     seed: int) -> None:
    _run(kind, seed)


def test_lamport_flush_drops_held_messages_past_the_cut() -> None:
    # a and b each had one of c's messages when the view dropped c (cut 1); c's second
    # reaches a late, before the flush ends: it is held, then dropped, as b never has it
    a = LamportTotal("a", ("a", "b", "c"))
    a.on_deliver(Deliver("c", 0, LamportMsg(1, 0, b"c0")), 0.0)
    (report,) = [x for x in a.on_view(("a", "b"), 0.1) if isinstance(x, Down)]
    assert isinstance(report.body, LamportMsg)
    assert report.body.body == LamportFlush("c", 1)
    a.on_deliver(Deliver("a", 0, report.body), 0.1)
    a.on_deliver(Deliver("c", 1, LamportMsg(2, 1, b"c1")), 0.15)
    assert len(a.holdback) == 2
    got = a.on_deliver(Deliver("b", 0, LamportMsg(9, 0, LamportFlush("c", 1))), 0.2)
    assert delivers(got) == [("c", 0, b"c0")]
    assert len(a.holdback) == 0 and a.buffer_sizes()["flushing"] == 0


def test_lamport_a_reporter_that_departs_counts_only_within_its_own_cut() -> None:
    # view (a, b, c, d) drops d; a and c report 0 of d's messages, b reports 1 and then
    # departs too. d's cut waits for b's flush: b's report counts only if b's cut covers
    # it (then a waits for d's message, relayed); otherwise the cut is 0.
    for b_cut in (1, 0):
        a = LamportTotal("a", ("a", "b", "c", "d"))
        (report,) = [x for x in a.on_view(("a", "b", "c"), 0.1) if isinstance(x, Down)]
        assert isinstance(report.body, LamportMsg)
        a.on_deliver(Deliver("a", 0, report.body), 0.1)
        a.on_deliver(Deliver("c", 0, LamportMsg(2, 0, LamportFlush("d", 0))), 0.1)
        if b_cut:
            a.on_deliver(Deliver("b", 0, LamportMsg(3, 0, LamportFlush("d", 1))), 0.1)
        (b_report,) = [x for x in a.on_view(("a", "c"), 0.2) if isinstance(x, Down)]
        assert isinstance(b_report.body, LamportMsg)
        assert a.buffer_sizes()["flushing"] == 2  # d waits for b's flush
        a.on_deliver(Deliver("a", 1, b_report.body), 0.2)
        a.on_deliver(Deliver("c", 1, LamportMsg(4, 1, LamportFlush("b", b_cut))), 0.3)
        assert a._cut["b"] == b_cut
        if b_cut:
            assert "d" not in a._cut and a.buffer_sizes()["flushing"] == 1
            a.on_deliver(Deliver("d", 0, LamportMsg(1, 0, b"d0")), 0.4)  # relayed
        assert a._cut["d"] == b_cut and a.buffer_sizes()["flushing"] == 0


def test_lamport_a_member_dropped_itself_sends_no_flush_reports() -> None:
    a = LamportTotal("a", ("a", "b", "c"))
    assert a.on_view(("b", "c"), 0.1) == []  # removed (alive): no longer a member
    assert a.buffer_sizes()["flushing"] == 0


def test_a_sequencer_member_stops_taking_broadcasts_when_nothing_is_ordered() -> None:
    # the sequencer a crashed: b's broadcasts are never ordered. Before, they piled up
    # (32,768 each) until HoldBackOverflow ended the group; now broadcast() waits
    b = SequencerTotal("b", ("a", "b", "c"), leader="a", window=8)
    for k in range(8):
        assert b.writable
        (down,) = b.on_broadcast(b"m%d" % k, 0.0)
        assert isinstance(down, Down)
        b.on_deliver(Deliver("b", k, down.body), 0.0)  # its own data, held back
    assert not b.writable
    # the order arrives (a sequencer that was only slow): room again
    b.on_deliver(Deliver("a", 0, SeqOrder(0, (("b", 0),))), 0.1)
    assert b.writable


def test_a_lamport_member_stops_taking_broadcasts_while_delivery_is_blocked() -> None:
    a = LamportTotal("a", ("a", "b"), window=4)
    for k in range(4):
        assert a.writable
        (down,) = a.on_broadcast(b"m%d" % k, 0.0)
        assert isinstance(down, Down) and isinstance(down.body, LamportMsg)
        a.on_deliver(Deliver("a", k, down.body), 0.0)  # b is silent: nothing delivered
    assert not a.writable
    got = a.on_deliver(Deliver("b", 0, LamportMsg(100, 0, None)), 0.1)  # b's clock
    assert len(delivers(got)) == 4 and a.writable
