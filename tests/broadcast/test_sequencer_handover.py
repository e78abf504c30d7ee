"""The sequencer hands over when it leaves (``SequencerTotal.on_leave``): its pending
orders go out first, then ``SeqHandover(next, successor)``; the successor continues the
numbering and orders what is still unordered, in total and FIFO-total mode."""

from __future__ import annotations

import pytest

from rpcx_broadcast.core import Deliver, Down, ProtocolViolation, SequencerTotal, SetTimer
from rpcx_broadcast.core.actions import Action
from rpcx_broadcast.core.total import SeqData, SeqHandover, SeqOrder

MEMBERS = ("a", "b", "c")


def downs(actions: list[Action]) -> list[object]:
    return [a.body for a in actions if isinstance(a, Down)]


def delivered(actions: list[Action]) -> list[tuple[str, int]]:
    return [(a.origin, a.seq) for a in actions if isinstance(a, Deliver)]


def feed(layer: SequencerTotal, origin: str, msg: object, now: float = 0.0) -> list[Action]:
    return layer.on_deliver(Deliver(origin, 0, msg), now)


@pytest.mark.parametrize("fifo", [False, True])
def test_the_leader_sends_its_pending_orders_then_hands_over(fifo: bool) -> None:
    a = SequencerTotal("a", MEMBERS, fifo=fifo)
    out = feed(a, "b", SeqData("b", 0, b"x"))
    assert any(isinstance(x, SetTimer) for x in out)  # an order is pending
    out = a.on_leave("b", 0.001)
    assert downs(out) == [SeqOrder(0, (("b", 0),)), SeqHandover(1, "b")]
    assert a.leader == "b"
    assert feed(a, "a", SeqHandover(1, "b")) == []  # its own hand-over, delivered back
    # data arriving after the hand-over is no longer ordered here
    assert downs(feed(a, "c", SeqData("c", 0, b"y"))) == []


def test_only_the_leader_hands_over() -> None:
    b = SequencerTotal("b", MEMBERS)
    assert b.on_leave("c", 0.0) == []
    a = SequencerTotal("a", MEMBERS)
    assert a.on_leave("a", 0.0) == []  # nobody to hand over to
    assert a.leader == "a"


def test_a_hand_over_from_a_member_that_is_not_the_leader_is_refused() -> None:
    c = SequencerTotal("c", MEMBERS)
    with pytest.raises(ProtocolViolation, match="'b' handed over the sequencer, but the "
                                                "leader is 'a'"):
        feed(c, "b", SeqHandover(0, "b"))


@pytest.mark.parametrize("fifo", [False, True])
def test_the_successor_continues_the_numbering_and_orders_what_is_unordered(
        fifo: bool) -> None:
    b = SequencerTotal("b", MEMBERS, fifo=fifo)
    c = SequencerTotal("c", MEMBERS, fifo=fifo)
    data = [SeqData("c", 0, b"c0"), SeqData("c", 1, b"c1"), SeqData("a", 0, b"a0")]
    for layer in (b, c):
        for msg in data:
            feed(layer, msg.origin, msg)
    # the old leader ordered c:0 only, then handed over at index 1
    for layer in (b, c):
        assert delivered(feed(layer, "a", SeqOrder(0, (("c", 0),)))) == [("c", 0)]
    out = feed(b, "a", SeqHandover(1, "b"))
    assert delivered(feed(c, "a", SeqHandover(1, "b"))) == []
    assert b.leader == c.leader == "b"
    out += b.on_timer("order", 0.1)
    (order,) = [x for x in downs(out) if isinstance(x, SeqOrder)]
    assert order == SeqOrder(1, (("a", 0), ("c", 1)))  # from 1 on, nothing twice
    for layer in (b, c):  # the order comes back through the layer below, to everyone
        assert delivered(feed(layer, "b", order)) == [("a", 0), ("c", 1)]
    # and goes on ordering new data
    out = feed(b, "c", SeqData("c", 2, b"c2")) + b.on_timer("order", 0.2)
    assert [x for x in downs(out) if isinstance(x, SeqOrder)] == [SeqOrder(3, (("c", 2),))]


def test_in_fifo_mode_the_successor_waits_for_gaps_it_has_not_seen_ordered() -> None:
    b = SequencerTotal("b", MEMBERS, fifo=True)
    feed(b, "c", SeqData("c", 2, b"c2"))  # c:1 has not arrived; c:0 was ordered
    feed(b, "c", SeqData("c", 0, b"c0"))
    feed(b, "a", SeqOrder(0, (("c", 0),)))
    out = feed(b, "a", SeqHandover(1, "b")) + b.on_timer("order", 0.1)
    assert [x for x in downs(out) if isinstance(x, SeqOrder)] == []  # c:2 waits for c:1
    out = feed(b, "c", SeqData("c", 1, b"c1")) + b.on_timer("order", 0.2)
    assert [x for x in downs(out) if isinstance(x, SeqOrder)] == [
        SeqOrder(1, (("c", 1), ("c", 2)))]


def test_the_successor_does_not_reorder_what_was_ordered_but_not_delivered() -> None:
    # b has the old leader's order for c:0 and c:1, and c:1's payload, but not c:0's yet
    b = SequencerTotal("b", MEMBERS, fifo=True)
    feed(b, "c", SeqData("c", 1, b"c1"))
    assert delivered(feed(b, "a", SeqOrder(0, (("c", 0), ("c", 1))))) == []
    out = feed(b, "a", SeqHandover(2, "b")) + b.on_timer("order", 0.1)
    assert [x for x in downs(out) if isinstance(x, SeqOrder)] == []  # nothing twice
    out = feed(b, "c", SeqData("c", 2, b"c2")) + b.on_timer("order", 0.2)
    assert [x for x in downs(out) if isinstance(x, SeqOrder)] == [SeqOrder(2, (("c", 2),))]
    assert delivered(feed(b, "c", SeqData("c", 0, b"c0"))) == [("c", 0), ("c", 1)]
