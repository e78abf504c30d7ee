"""Branch tests for the reliable cores, links, gossip, the stack, clocks and the detector.

Each test drives a branch that the property runs do not reach and asserts what the branch
is for (a duplicate is not delivered twice, malformed input is refused without changing
state, a reply is bounded, a timer for an unknown key does nothing, ...).
"""

from __future__ import annotations

import pytest

from rpcx_broadcast.core import (
    BestEffortBroadcast,
    CancelTimer,
    CausalBroadcast,
    Deliver,
    EagerReliableBroadcast,
    FifoBroadcast,
    GossipBroadcast,
    HeartbeatFailureDetector,
    Hub,
    ProtocolViolation,
    ReliableLinks,
    Send,
    SetTimer,
    Stack,
    Wire,
)
from rpcx_broadcast.core.actions import Action
from rpcx_broadcast.core.causal import CausalMsg
from rpcx_broadcast.core.clocks import vector_max, vector_min
from rpcx_broadcast.core.failure_detector import Heartbeat, Restored, Suspected
from rpcx_broadcast.core.gossip import GossipBatch, GossipMsg
from rpcx_broadcast.core.links import BestEffortLinks, LinkAck, LinkData
from rpcx_broadcast.core.reliable import EagerMsg

MEMBERS = ("a", "b", "c")


def delivers(actions: list[Action]) -> list[tuple[str, int, object]]:
    return [(a.origin, a.seq, a.payload) for a in actions if isinstance(a, Deliver)]


def sends(actions: list[Action]) -> list[Send]:
    return [a for a in actions if isinstance(a, Send)]


# -- actions -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: SetTimer("", 1.0),
    lambda: CancelTimer(""),
    lambda: Wire(-1, b"x"),
    lambda: Deliver("", 0, b"x"),
    lambda: Send(b"a", b"x"),  # type: ignore[arg-type]
    lambda: Deliver("a", 1.5, b"x"),  # type: ignore[arg-type]
])
def test_actions_refuse_empty_names_and_negative_or_non_int_numbers(make: object) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match="must be"):
        make()


def test_actions_accept_valid_values_and_are_values() -> None:
    assert SetTimer("k", 1.0) == SetTimer("k", 1.0)
    assert Wire(0, b"x").layer == 0 and CancelTimer("k").key == "k"
    assert Deliver("a", 0, b"x") != Deliver("a", 1, b"x")


# -- clocks ------------------------------------------------------------------------------


def test_vector_max_keeps_the_larger_entry_from_either_side() -> None:
    assert vector_max({"a": 3, "b": 1}, {"a": 1, "b": 2, "c": 0}) == {"a": 3, "b": 2}
    left = {"a": 3}
    vector_max(left, {"a": 5})
    assert left == {"a": 3}  # inputs are not mutated


def test_vector_min_is_per_key_and_missing_counts_as_zero() -> None:
    rows = [{"a": 3, "b": 2}, {"a": 1, "b": 5}, {"a": 4}]
    assert vector_min(rows, ["a", "b", "c"]) == {"a": 1, "b": 0, "c": 0}
    assert vector_min(iter(rows[:2]), ("a", "b")) == {"a": 1, "b": 2}  # any iterable, once
    assert vector_min([], ["a"]) == {"a": 0}  # no rows: nothing is known to be held


# -- failure detector --------------------------------------------------------------------


def test_detector_refuses_a_non_heartbeat_without_counting_it_as_a_sign_of_life() -> None:
    fd = HeartbeatFailureDetector("a", ("a", "b"), interval=0.5, timeout=1.0)
    fd.on_start(0.0)
    for at in (0.5, 1.0, 1.5):  # on time (a timer that fires late excuses the others)
        fd.on_timer("heartbeat", at)
    assert fd.changes() == [Suspected("b")]
    with pytest.raises(TypeError, match="failure detector got"):
        fd.on_receive("b", "not a heartbeat", 1.6)
    assert fd.suspected == {"b"} and fd.changes() == []  # still suspected
    fd.on_receive("b", Heartbeat(), 1.7)
    assert fd.suspected == set() and fd.changes() == [Restored("b")]


def test_detector_heartbeat_from_an_unsuspected_member_only_refreshes_it() -> None:
    fd = HeartbeatFailureDetector("a", ("a", "b"), interval=0.5, timeout=1.0)
    fd.on_start(0.0)
    assert fd.on_receive("b", Heartbeat(), 0.9) == []
    assert fd.changes() == []  # no Restored for a member that was never suspected
    fd.on_timer("heartbeat", 0.5)  # (on time: a late timer excuses the others)
    fd.on_timer("heartbeat", 1.0)
    fd.on_timer("heartbeat", 1.5)
    assert fd.suspected == set()  # heard from at 0.9: not silent for 1.0 yet
    fd.on_timer("heartbeat", 2.0)
    assert fd.changes() == [Suspected("b")]  # timeout not raised: no false suspicion before


def test_detector_set_members_watches_newcomers_from_now_and_drops_leavers() -> None:
    fd = HeartbeatFailureDetector("a", ("a", "b", "c"), interval=0.5, timeout=1.0)
    fd.on_start(0.0)
    fd.on_receive("c", Heartbeat(), 0.5)
    fd.on_timer("heartbeat", 0.5)  # (on time: a late timer excuses the others)
    fd.on_timer("heartbeat", 1.0)
    fd.on_timer("heartbeat", 1.2)
    assert fd.suspected == {"b"}
    fd.changes()
    fd.set_members(("a", "c", "d"), 1.3)
    assert fd.members == ("a", "c", "d")
    assert fd.suspected == set()  # b left the view: no longer reported as suspected
    out = fd.on_timer("heartbeat", 2.0)
    assert {s.dest for s in sends(out)} == {"c", "d"}  # heartbeats follow the new view
    assert fd.changes() == [Suspected("c")]  # c keeps its old deadline (last heard 0.5)
    fd.on_timer("heartbeat", 2.2)
    assert fd.changes() == []  # d counts as heard from at 1.3
    fd.on_timer("heartbeat", 2.4)
    assert fd.changes() == [Suspected("d")]


# -- links -------------------------------------------------------------------------------


def test_best_effort_links_send_once_with_no_timer() -> None:
    assert BestEffortLinks().send("b", b"body") == [Send("b", b"body")]


def test_reliable_links_refuse_a_foreign_frame_without_acking() -> None:
    links = ReliableLinks()
    with pytest.raises(TypeError, match="not a link frame"):
        links.on_receive("b", EagerMsg("b", 0, b"x"), 0.0)
    # nothing was recorded as received from b: its real frame 0 is still fresh
    acks, bodies = links.on_receive("b", LinkData(0, b"x"), 0.1)
    assert bodies == [b"x"] and acks == [Send("b", LinkAck(0, 1))]


def test_reliable_links_count_unacked_per_destination() -> None:
    links = ReliableLinks(rto=1.0)
    links.send("b", 1, 0.0)
    links.send("b", 2, 0.0)
    links.send("c", 3, 0.0)
    assert (links.unacked("b"), links.unacked("c"), links.unacked("z")) == (2, 1, 0)
    assert links.unacked() == 3
    links.on_receive("b", LinkAck(1, 0), 0.1)  # selective ack of frame 1 only
    assert links.unacked("b") == 1 and links.unacked() == 2
    assert links.on_timer("rto:b", 1.0) == [Send("b", LinkData(0, 1)), SetTimer("rto:b", 2.0)]


def test_reliable_links_timer_after_forget_does_nothing() -> None:
    links = ReliableLinks(rto=1.0)
    links.send("b", 1, 0.0)
    assert links.forget("b") == [CancelTimer("rto:b")]
    assert links.on_timer("rto:b", 1.0) == []  # a timer that fires late: no retransmission
    assert links.forget("b") == []  # nothing armed any more
    # the numbering goes on: a peer that comes back and still remembers frame 0 takes the
    # new frame for new (a removed member admitted again, then told of its view)
    assert links.send("b", 2, 1.5) == [Send("b", LinkData(1, 2)), SetTimer("rto:b", 2.5)]
    other = ReliableLinks(rto=1.0)
    other.on_receive("a", LinkData(0, 1), 0.0)
    _, bodies = other.on_receive("a", LinkData(1, 2), 1.6)
    assert bodies == [2]


# -- best-effort broadcast ---------------------------------------------------------------


def test_best_effort_sends_once_to_each_peer_and_delivers_itself() -> None:
    a = BestEffortBroadcast("a", ("c", "a", "b", "a"))
    out = a.on_broadcast(b"m", 0.0)
    assert out == [Send("b", EagerMsg("a", 0, b"m")), Send("c", EagerMsg("a", 0, b"m")),
                   Deliver("a", 0, b"m")]
    assert not any(isinstance(x, SetTimer) for x in out)  # no retransmission
    assert a.on_timer("anything", 5.0) == []
    second = a.on_broadcast(b"n", 0.1)
    assert Deliver("a", 1, b"n") in second


def test_best_effort_delivers_on_receipt_and_drops_duplicates() -> None:
    b = BestEffortBroadcast("b", MEMBERS)
    assert b.on_receive("a", EagerMsg("a", 1, b"y"), 0.0) == [Deliver("a", 1, b"y")]
    assert b.on_receive("a", EagerMsg("a", 0, b"x"), 0.1) == [Deliver("a", 0, b"x")]
    assert b.on_receive("a", EagerMsg("a", 1, b"y"), 0.2) == []
    assert b.on_receive("c", EagerMsg("a", 0, b"x"), 0.3) == []  # same message, other path


def test_best_effort_refuses_foreign_messages_and_is_a_bottom_layer() -> None:
    b = BestEffortBroadcast("b", MEMBERS)
    with pytest.raises(ProtocolViolation, match="best-effort broadcast got"):
        b.on_receive("a", LinkData(0, b"x"), 0.0)
    with pytest.raises(ProtocolViolation, match="bottom layer"):
        b.on_deliver(Deliver("a", 0, b"x"), 0.0)


def test_best_effort_view_change_changes_the_recipients() -> None:
    a = BestEffortBroadcast("a", MEMBERS)
    assert a.on_view(("d", "a", "b"), 1.0) == []
    assert a.members == ("a", "b", "d")
    assert {s.dest for s in sends(a.on_broadcast(b"m", 1.1))} == {"b", "d"}


# -- eager reliable broadcast ------------------------------------------------------------


def test_eager_reports_unacked_frames_and_out_of_order_seen_entries() -> None:
    a = EagerReliableBroadcast("a", MEMBERS)
    assert a.buffer_sizes() == {"retransmit": 0, "seen_extra": 0}
    a.on_broadcast(b"m", 0.0)
    assert a.buffer_sizes() == {"retransmit": 2, "seen_extra": 0}  # one frame to b and c
    a.on_receive("b", LinkData(0, EagerMsg("b", 1, b"later")), 0.1)  # b:0 not seen yet
    assert a.buffer_sizes()["seen_extra"] == 1
    a.on_receive("b", LinkData(1, EagerMsg("b", 0, b"first")), 0.2)
    assert a.buffer_sizes()["seen_extra"] == 0


def test_eager_refuses_a_link_body_that_is_not_a_broadcast() -> None:
    b = EagerReliableBroadcast("b", MEMBERS)
    with pytest.raises(ProtocolViolation, match="eager broadcast got"):
        b.on_receive("a", LinkData(0, b"raw"), 0.0)
    with pytest.raises(ProtocolViolation, match="bottom layer"):
        b.on_deliver(Deliver("a", 0, b"x"), 0.0)


# -- gossip ------------------------------------------------------------------------------


def test_gossip_refuses_a_member_list_without_itself() -> None:
    with pytest.raises(ValueError, match="not in members"):
        GossipBroadcast("z", MEMBERS)


def test_gossip_refuses_foreign_messages_and_is_a_bottom_layer() -> None:
    a = GossipBroadcast("a", MEMBERS)
    with pytest.raises(ProtocolViolation, match="gossip got"):
        a.on_receive("b", GossipMsg("b", 0, b"x"), 0.0)
    assert a.buffer_sizes() == {"store": 0, "ahead": 0, "outbox": 0}
    with pytest.raises(ProtocolViolation, match="bottom layer"):
        a.on_deliver(Deliver("b", 0, b"x"), 0.0)


def test_gossip_timer_with_an_unknown_key_does_nothing() -> None:
    a = GossipBroadcast("a", MEMBERS, topology=Hub())
    a.on_broadcast(b"m", 0.0)
    before = a.buffer_sizes()
    assert a.on_timer("nonsense", 0.1) == []
    assert a.buffer_sizes() == before  # the outbox was not flushed
    assert len(sends(a.on_timer("flush", 0.1))) == 2  # a is the hub: one batch per peer


def test_gossip_drops_a_message_too_far_ahead_and_accepts_it_when_brought_again() -> None:
    b = GossipBroadcast("b", MEMBERS, topology=Hub(), window=1)  # holds up to 4 ahead
    far = GossipBatch((GossipMsg("c", 4, b"c4"),), {})
    assert b.on_receive("c", far, 0.0) == []  # not delivered, not queued, nothing to sync
    assert b.buffer_sizes() == {"store": 0, "ahead": 0, "outbox": 0}  # not held, not pushed
    near = GossipBatch((GossipMsg("c", 3, b"c3"),), {})
    b.on_receive("c", near, 0.1)
    assert b.buffer_sizes()["ahead"] == 1  # within 4 * window: held back
    earlier = tuple(GossipMsg("c", s, f"c{s}".encode()) for s in range(3))
    got = b.on_receive("c", GossipBatch(earlier, {}), 0.2)
    assert [seq for _, seq, _ in delivers(got)] == [0, 1, 2, 3]
    got = b.on_receive("c", far, 0.3)  # now c:4 is next: accepted
    assert delivers(got) == [("c", 4, b"c4")]


def _held_a_sync_interval(layer: GossipBroadcast) -> None:
    """Two sync ticks: what the layer holds now is old enough to be repaired."""
    layer.on_timer("sync", 0.01)
    layer.on_timer("sync", 0.02)


def test_gossip_does_not_repair_what_it_just_received() -> None:
    # a message held for less than a sync interval is still travelling by push: a repair
    # of it too is a copy the peer does not need (the flood that kept a slow member slow)
    a = GossipBroadcast("a", ("a", "b"))
    a.on_broadcast(b"m0", 0.0)
    ask = GossipBatch((), {"b": {}}, want_reply=True, repair=("a",))
    (reply,) = sends(a.on_receive("b", ask, 0.01))
    assert isinstance(reply.msg, GossipBatch) and reply.msg.msgs == ()
    a.on_timer("sync", 0.05)
    (reply,) = sends(a.on_receive("b", ask, 0.06))
    assert isinstance(reply.msg, GossipBatch) and reply.msg.msgs == ()  # one tick: no
    a.on_timer("sync", 0.10)
    (reply,) = sends(a.on_receive("b", ask, 0.11))
    assert isinstance(reply.msg, GossipBatch) and [m.seq for m in reply.msg.msgs] == [0]
    assert a.stats["repaired"] == 1  # (its own sync ticks sent b digests, no messages)


def test_gossip_repair_reply_is_bounded_by_max_reply() -> None:
    a = GossipBroadcast("a", ("a", "b"), max_reply=2)
    for i in range(3):
        a.on_broadcast(f"m{i}".encode(), 0.0)
    _held_a_sync_interval(a)
    ask = GossipBatch((), {"b": {}}, want_reply=True, repair=("a",))
    (reply,) = sends(a.on_receive("b", ask, 0.1))
    assert isinstance(reply.msg, GossipBatch)
    assert [m.seq for m in reply.msg.msgs] == [0, 1]  # truncated at max_reply, in order
    b = GossipBroadcast("b", ("a", "b"))
    assert [s for _, s, _ in delivers(b.on_receive("a", reply.msg, 0.2))] == [0, 1]
    ask_again = GossipBatch((), {"b": {"a": 2}}, want_reply=True, repair=("a",))
    (rest,) = sends(a.on_receive("b", ask_again, 0.3))
    assert isinstance(rest.msg, GossipBatch)
    assert [m.seq for m in rest.msg.msgs] == [2]  # the rest, without resending 0 and 1


def test_gossip_repair_to_a_joiner_skips_messages_already_collected() -> None:
    """A joiner's repair only gets what is still stored: stable messages were dropped.

    (No state transfer to joiners yet, see docs/broadcast.md.)
    """
    a = GossipBroadcast("a", ("a", "b"))
    for i in range(3):
        a.on_broadcast(f"m{i}".encode(), 0.0)
    a.on_receive("b", GossipBatch((), {"b": {"a": 2}}), 0.1)  # b has a:0 and a:1
    a.on_timer("sync", 0.5)
    assert a.stable() == {"a": 2} and a.buffer_sizes()["store"] == 1
    a.on_view(("a", "b", "c"), 0.6)
    assert a.stable() == {"a": 2}  # stability does not go back for the joiner
    _held_a_sync_interval(a)
    ask = GossipBatch((), {"c": {}}, want_reply=True, repair=("a",))
    (reply,) = sends(a.on_receive("c", ask, 0.7))
    assert isinstance(reply.msg, GossipBatch)
    assert [(m.origin, m.seq) for m in reply.msg.msgs] == [("a", 2)]


# -- stack -------------------------------------------------------------------------------


def test_stack_needs_a_layer() -> None:
    with pytest.raises(ValueError, match="at least one layer"):
        Stack([])


def test_stack_buffer_sizes_skip_layers_that_report_none() -> None:
    stack = Stack([BestEffortBroadcast("a", MEMBERS), CausalBroadcast("a")])
    assert stack.buffer_sizes() == {"1.holdback": 0}
    waiting = CausalMsg("b", 0, {"a": 1, "b": 0}, b"waits for a:0")
    assert stack.on_receive("b", Wire(0, EagerMsg("b", 0, waiting)), 0.0) == []
    assert stack.buffer_sizes() == {"1.holdback": 1}


def test_stack_refuses_down_from_the_bottom_layer() -> None:
    stack = Stack([CausalBroadcast("a")])  # an ordering layer with nothing below it
    with pytest.raises(ProtocolViolation, match="bottom layer cannot broadcast Down"):
        stack.on_broadcast(b"m", 0.0)
    fifo_alone = Stack([FifoBroadcast("a")])
    with pytest.raises(ProtocolViolation):
        fifo_alone.on_broadcast(b"m", 0.0)


def test_negative_sample_sizes_and_fanouts_are_refused() -> None:
    from rpcx_broadcast.core.clocks import SplitMix64
    from rpcx_broadcast.core.gossip import RandomPeers

    with pytest.raises(ValueError, match="cannot sample -1 items"):
        SplitMix64(1).sample([1, 2, 3], -1)
    assert SplitMix64(1).sample([1, 2, 3], 0) == []
    with pytest.raises(ValueError, match="fanout must be at least 1, got 0"):
        RandomPeers(fanout=0)


def test_gossip_sync_tick_sends_a_behind_peer_a_digest_not_copies() -> None:
    # b is known to have none of a's messages: a tells b what it has, and sends nothing
    # else. b may hold them all in its queues still (a slow member's row lags by what it
    # has not taken yet); copies pushed on top of that kept a slow member slow.
    a = GossipBroadcast("a", ("a", "b"))
    for i in range(3):
        a.on_broadcast(f"m{i}".encode(), 0.0)
    for t in (0.05, 0.10, 0.15):
        (digest,) = sends(a.on_timer("sync", t))
        assert digest.dest == "b" and isinstance(digest.msg, GossipBatch)
        assert digest.msg.msgs == () and digest.msg.repair == ()
        assert digest.msg.known["a"] == {"a": 3}
    assert a.stats.get("repaired", 0) == 0
    # b answers a digest with its matrix only, since b asked for no repair
    (answer,) = sends(a.on_receive("b", GossipBatch((), {"b": {}}, want_reply=True), 0.2))
    assert isinstance(answer.msg, GossipBatch) and answer.msg.msgs == ()


def test_gossip_asks_for_repair_only_for_origins_it_is_stuck_on() -> None:
    b = GossipBroadcast("b", ("a", "b", "c"))
    # a and c are known to have 4 messages of a and 4 of c; b has a:0 and c:0..1
    b.on_receive("a", GossipBatch((GossipMsg("a", 0, b"a0"),),
                                  {"a": {"a": 4, "c": 4}}), 0.0)
    b.on_receive("c", GossipBatch((GossipMsg("c", 0, b"c0"),),
                                  {"c": {"a": 4, "c": 4}}), 0.0)
    (first,) = sends(b.on_timer("sync", 0.05))  # first tick: both advanced since start
    assert isinstance(first.msg, GossipBatch) and first.msg.repair == ()
    # c's messages keep coming (b is behind on c, not missing any); a's do not
    b.on_receive("c", GossipBatch((GossipMsg("c", 1, b"c1"),), {}), 0.07)
    (ask,) = sends(b.on_timer("sync", 0.10))
    assert isinstance(ask.msg, GossipBatch)
    assert ask.msg.want_reply and ask.msg.repair == ("a",) and ask.msg.msgs == ()
    assert ask.dest in ("a", "c")
    # the answer carries a's messages that b lacks, and none of c's
    a = GossipBroadcast("a", ("a", "b", "c"))
    for i in range(4):
        a.on_broadcast(f"a{i}".encode(), 0.0)
    a.on_receive("c", GossipBatch(tuple(GossipMsg("c", s, b"c") for s in range(4)), {}),
                 0.0)
    a.on_timer("sync", 0.05)
    a.on_timer("sync", 0.10)
    (reply,) = sends(a.on_receive("b", ask.msg, 0.11))
    assert isinstance(reply.msg, GossipBatch)
    assert [(m.origin, m.seq) for m in reply.msg.msgs] == [("a", 1), ("a", 2), ("a", 3)]
    got = b.on_receive("a", reply.msg, 0.12)
    assert [(o, s) for o, s, _ in delivers(got)] == [("a", 1), ("a", 2), ("a", 3)]
    b.on_receive("c", GossipBatch((GossipMsg("c", 2, b"c2"),), {}), 0.13)
    (after,) = sends(b.on_timer("sync", 0.15))
    assert isinstance(after.msg, GossipBatch) and after.msg.repair == ()  # both advanced
    (later,) = sends(b.on_timer("sync", 0.20))  # c:3 has not come for a whole interval
    assert isinstance(later.msg, GossipBatch) and later.msg.repair == ("c",)


def test_default_window_keeps_the_worst_backlog_of_a_larger_group_as_with_three() -> None:
    # a member that falls behind queues up to (n - 1) windows, each message n - 1 times
    # under relay to all: the default window shrinks with (n - 1)², so the work a slow
    # member has queued (and the latency at saturation) does not grow with the group
    from rpcx_broadcast.runtime.group import default_window, make_stack

    assert default_window(3) == 128  # what the 3-member figures were measured with
    assert default_window(5) == 32
    assert [default_window(n) for n in (2, 9, 25)] == [512, 16, 16]
    for n in (3, 4, 5, 6):  # (from 7 members on, the floor of 16 applies)
        assert (n - 1) ** 2 * default_window(n) <= 512
    members = tuple(f"m{i}" for i in range(5))
    bottom = make_stack("causal", "m0", members).layers[0]
    assert isinstance(bottom, GossipBroadcast) and bottom.window == 32
    stack = make_stack("causal", "m0", members)
    for i in range(32):
        stack.on_broadcast(f"{i}".encode(), 0.0)
    assert not stack.writable  # the 33rd broadcast waits for stability
    explicit = make_stack("causal", "m0", members, window=7).layers[0]
    assert isinstance(explicit, GossipBroadcast) and explicit.window == 7
