"""Joining, sans-I/O: membership (leave, addresses), layers started from a running
member's starting point (StartPoint) in a small deterministic network, and the checkers'
starting points (History.prior)."""

from __future__ import annotations

from collections import deque

import pytest

from rpcx_broadcast import Event, History, check, check_agreement, check_fifo
from rpcx_broadcast.core import DynamicMembership, Stack, StartPoint, View
from rpcx_broadcast.core.actions import Action, CancelTimer, Deliver, Send, SetTimer
from rpcx_broadcast.core.causal import CausalBroadcast, CausalMsg
from rpcx_broadcast.core.fifo import FifoBroadcast, FifoMsg
from rpcx_broadcast.core.links import LinkData
from rpcx_broadcast.core.membership import InstallView
from rpcx_broadcast.core.total import SeqData, SequencerTotal
from rpcx_broadcast.runtime import JOINABLE_ORDERS, ORDERS, make_stack
from rpcx_broadcast.testing.properties import (
    check_causal,
    check_no_duplication,
    check_prefix_consistency,
    prior_from_counts,
)
from tests.broadcast.test_membership_agreement import Net as AgreementNet

# -- membership ----------------------------------------------------------------------------


def _exchange(nodes: dict[str, DynamicMembership], src: str, actions: list[Action]) -> None:
    queue = deque((src, a) for a in actions)
    while queue:
        sender, action = queue.popleft()
        if isinstance(action, Send) and action.dest in nodes:
            node = nodes[action.dest]
            queue.extend((action.dest, a) for a in node.on_receive(sender, action.msg, 0))


def test_a_graceful_leave_needs_no_majority_but_a_suspicion_does() -> None:
    nodes = {n: DynamicMembership(n, View(0, ("a", "b"))) for n in "ab"}
    _exchange(nodes, "b", nodes["b"].request_leave(0))
    assert nodes["a"].view == nodes["b"].view == View(1, ("a",))
    m = DynamicMembership("a", View(0, ("a", "b")))
    m.suspect("b", 0)
    assert m.view == View(0, ("a", "b")), "one of two is no majority"


def test_install_view_carries_the_joiners_address() -> None:
    net = AgreementNet(("a", "b"))
    net.add("c")
    net.act("a", net.nodes["a"].handle_join("c", "C", 0))
    net.settle()
    assert net.nodes["a"].view == View(1, ("a", "b", "c"))
    installs = [m.body for m in net.sent if isinstance(m, LinkData)
                and isinstance(m.body, InstallView)]
    assert installs and {i.addresses["c"] for i in installs} == {"C"}
    assert net.nodes["b"].view == View(1, ("a", "b", "c")) and net.nodes["b"].addresses["c"] == "C"
    # a non-coordinator forwards a join to the coordinator
    net.add("d")
    net.act("b", net.nodes["b"].handle_join("d", "D", net.now))
    net.settle()
    assert net.nodes["a"].view == net.nodes["b"].view == View(2, ("a", "b", "c", "d"))


# -- layers: a joiner started from the coordinator's StartPoint -----------------------------


class Net:
    """Stacks on instant links; messages to ``held`` destinations from ``held_from``
    wait until released (to leave messages held back at the coordinator)."""

    def __init__(self, stacks: dict[str, Stack]) -> None:
        self.stacks = stacks
        self.now = 0.0
        self.timers: dict[tuple[str, str], float] = {}
        self.queue: deque[tuple[str, str, object]] = deque()
        self.parked: list[tuple[str, str, object]] = []
        self.blocked: set[tuple[str, str]] = set()
        self.logs: dict[str, list[Event]] = {n: [] for n in stacks}
        self.payloads: dict[tuple[str, int], bytes] = {}

    def perform(self, me: str, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.queue.append((me, action.dest, action.msg))
            elif isinstance(action, Deliver):
                assert isinstance(action.payload, bytes)
                self.logs[me].append(Event("deliver", action.origin, action.seq,
                                           action.payload))
            elif isinstance(action, SetTimer):
                self.timers[(me, action.key)] = action.at
            elif isinstance(action, CancelTimer):
                self.timers.pop((me, action.key), None)

    def broadcast(self, me: str, k: int) -> None:
        seq = sum(1 for e in self.logs[me] if e.kind == "broadcast")
        payload = f"{me}/{k}".encode()
        self.logs[me].append(Event("broadcast", me, seq, payload))
        self.perform(me, self.stacks[me].on_broadcast(payload, self.now))

    def step(self, until: float) -> None:
        """Deliver queued messages, firing timers in time order, until ``until``."""
        while True:
            while self.queue:
                src, dest, msg = self.queue.popleft()
                if dest not in self.stacks:
                    continue
                if (src, dest) in self.blocked:
                    self.parked.append((src, dest, msg))
                    continue
                self.perform(dest, self.stacks[dest].on_receive(src, msg, self.now))
            due = [(at, key) for key, at in self.timers.items() if at <= until]
            if not due:
                self.now = until
                return
            at, (me, key) = min(due)
            del self.timers[(me, key)]
            self.now = max(self.now, at)
            self.perform(me, self.stacks[me].on_timer(key, self.now))

    def release(self) -> None:
        self.blocked.clear()
        self.queue.extend(self.parked)
        self.parked.clear()


@pytest.mark.parametrize("order", JOINABLE_ORDERS)
def test_a_joiner_started_from_the_coordinators_point_delivers_the_rest(order: str) -> None:
    old = ("a", "b", "c")
    net = Net({n: make_stack(order, n, old, leader="a") for n in old})
    for k in range(5):
        for n in old:
            net.broadcast(n, k)
        net.step(net.now + 0.001)
    # c's next messages reach a (coordinator, leader) late: a holds back what depends on
    # them, or has them ordered but undelivered, at the moment it admits d
    net.blocked = {("c", "a"), ("b", "a")}
    for k in range(5, 8):
        net.broadcast("c", k)
        net.step(net.now + 0.001)
        net.broadcast("b", k)
        net.step(net.now + 0.001)
    net.step(net.now + 0.003)  # b's and c's batches are parked
    net.release()
    net.step(net.now)  # a receives them now; its timers (a sequencer's order) wait
    new = (*old, "d")
    for n in old:  # the agreed view, installed by all in the same step here
        net.perform(n, net.stacks[n].on_view(new, net.now))
    points = net.stacks["a"].start_points()
    joiner = make_stack(order, "d", new, leader="a")
    net.stacks["d"] = joiner
    net.logs["d"] = []
    net.perform("d", joiner.start_from(points, net.now))
    for k in range(8, 14):
        for n in new:
            net.broadcast(n, k)
        net.step(net.now + 0.001)
    net.step(net.now + 5.0)
    top = points[-1]
    a_delivered = [e.id for e in net.logs["a"] if e.kind == "deliver"]
    if order in ("total", "fifo_total"):
        prior = frozenset(a_delivered[: top.next])
        # a had ordered (or had yet to order) payloads it had not delivered: they travel
        # with the starting point, since d never receives them from gossip
        assert top.next > 0 and any(isinstance(m, SeqData) for m in top.held)
    else:
        prior = prior_from_counts(top.counts)
    history = History.build(net.logs, prior={"d": prior})
    assert check(history, ORDERS[order]) is None, check(history, ORDERS[order])
    everything = 5 * 3 + 3 * 2 + 6 * 4  # rounds 0-4, b and c alone in 5-7, then with d
    assert all(len([e for e in net.logs[n] if e.kind == "deliver"]) == everything for n in old)
    assert len([e for e in net.logs["d"] if e.kind == "deliver"]) == everything - len(prior)
    assert 0 < len(prior) <= 5 * 3 + 3 * 2


def test_causal_and_fifo_points_carry_held_back_messages() -> None:
    coordinator = CausalBroadcast("a")
    waiting = CausalMsg("c", 0, {"b": 1, "c": 0}, b"reply")  # after b:0, which a lacks
    assert coordinator.on_deliver(Deliver("c", 0, waiting), 0.0) == []
    point = coordinator.start_point()
    assert point.held == (waiting,)
    joiner = CausalBroadcast("d")
    assert joiner.start_from(point, 0.0) == []
    delivered = joiner.on_deliver(Deliver("b", 0, CausalMsg("b", 0, {"b": 0}, b"q")), 0.0)
    assert [(a.origin, a.seq) for a in delivered if isinstance(a, Deliver)] == [
        ("b", 0), ("c", 0)]

    fifo = FifoBroadcast("a")
    fifo.on_receive("b", FifoMsg("b", 1, b"second"), 0.0)  # a resend ahead of b:0
    point = fifo.start_point()
    assert point.counts == {"b": 0} and point.held == (FifoMsg("b", 1, b"second"),)
    later = FifoBroadcast("d")
    later.start_from(point, 0.0)
    out = later.on_deliver(Deliver("b", 0, FifoMsg("b", 0, b"first")), 0.0)
    assert [a.payload for a in out if isinstance(a, Deliver)] == [b"first", b"second"]


def test_the_sequencers_point_holds_undelivered_payloads_and_orders() -> None:
    leader = SequencerTotal("a", ("a", "b"))
    leader.on_deliver(Deliver("b", 0, SeqData("b", 0, b"x")), 0.0)  # assigned, not flushed
    point = leader.start_point()
    assert point.next == 0 and point.held == (SeqData("b", 0, b"x"),)
    joiner = SequencerTotal("c", ("a", "b", "c"), leader="a")
    assert joiner.start_from(point, 0.0) == []
    assert len(joiner.holdback) == 1
    with pytest.raises(ValueError, match="cannot be the sequencer"):
        SequencerTotal("a", ("a", "c")).start_from(StartPoint(), 0.0)


def test_a_layer_that_already_ran_cannot_start_from_a_point() -> None:
    stack = make_stack("fifo", "a", ("a", "b"))
    stack.on_broadcast(b"x", 0.0)
    with pytest.raises(ValueError, match="fresh layer"):
        stack.start_from([StartPoint(), StartPoint()], 0.0)


def test_lamport_total_order_is_not_joinable() -> None:
    assert not make_stack("lamport_fifo_total", "a", ("a", "b")).joinable
    assert make_stack("causal", "a", ("a", "b")).joinable


# -- checkers: starting points ---------------------------------------------------------------


def _b(origin: str, seq: int) -> Event:
    return Event("broadcast", origin, seq, f"{origin}{seq}".encode())


def _d(origin: str, seq: int) -> Event:
    return Event("deliver", origin, seq, f"{origin}{seq}".encode())


FULL = [_b("a", 0), _d("a", 0), _b("a", 1), _d("a", 1), _b("a", 2), _d("a", 2)]


def test_a_joiner_that_delivers_everything_after_its_start_passes() -> None:
    history = History.build({"a": FULL, "j": [_d("a", 1), _d("a", 2)]},
                            prior={"j": prior_from_counts({"a": 1})})
    assert check(history, "fifo_total") is None
    assert check(History.build({"a": FULL, "j": [_d("a", 1), _d("a", 2)]}),
                 "fifo") is not None, "without the starting point j breaks FIFO"


def test_a_joiner_missing_a_message_after_its_start_breaks_agreement() -> None:
    history = History.build({"a": FULL, "j": [_d("a", 2)]},
                            prior={"j": prior_from_counts({"a": 1})})
    found = check_agreement(history)
    assert found is not None and "a:1" in str(found) and "j" in str(found)
    assert check_fifo(history) is not None


def test_delivering_a_message_before_the_start_is_a_duplicate() -> None:
    history = History.build({"a": FULL, "j": [_d("a", 0), _d("a", 1), _d("a", 2)]},
                            prior={"j": prior_from_counts({"a": 1})})
    found = check_no_duplication(history)
    assert found is not None and "before its starting point" in str(found)


def test_prefix_consistency_and_causality_skip_the_prior_messages() -> None:
    b = [_b("b", 0), _d("b", 0), _d("a", 0), _d("a", 1), _d("a", 2)]
    joiner = [_d("a", 2)]
    prior = {"j": frozenset({("b", 0), ("a", 0), ("a", 1)})}
    history = History.build({"a": [*FULL, _d("b", 0)], "b": b, "j": joiner}, prior=prior)
    assert check_prefix_consistency(History.build({"b": b, "j": joiner}, prior=prior)) is None
    assert check_prefix_consistency(History.build({"b": b, "j": joiner})) is not None
    assert check_causal(history) is None
    wrong = History.build({"a": FULL, "b": b, "j": [_d("a", 2)]},
                          prior={"j": frozenset({("b", 0), ("a", 0)})})
    assert check_causal(wrong) is not None, "a:1 precedes a:2 and j never had it"
