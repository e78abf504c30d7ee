"""Failure detector and membership, pure."""

from __future__ import annotations

from rpcx_broadcast.core import DynamicMembership, HeartbeatFailureDetector, View
from rpcx_broadcast.core.actions import Action, Send
from rpcx_broadcast.core.failure_detector import Heartbeat, Restored, Suspected
from tests.broadcast.test_membership_agreement import Net as AgreementNet


def test_failure_detector_suspects_silence_and_restores() -> None:
    fd = HeartbeatFailureDetector("a", ("a", "b"), interval=0.5, timeout=1.0)
    out = fd.on_start(0.0)
    assert Send("b", Heartbeat()) in out
    fd.on_timer("heartbeat", 0.5)
    assert fd.changes() == []
    fd.on_timer("heartbeat", 1.5)
    assert fd.changes() == [Suspected("b")] and fd.suspected == {"b"}
    fd.on_receive("b", Heartbeat(), 1.6)
    assert fd.changes() == [Restored("b")] and not fd.suspected
    fd.on_timer("heartbeat", 2.7)  # timeout grew to 1.5 s after the false suspicion
    assert fd.changes() == []


class Net:
    """Delivers membership frames instantly and in order; crashed nodes drop them."""

    def __init__(self, nodes: dict[str, DynamicMembership]) -> None:
        self.nodes = nodes
        self.down: set[str] = set()

    def run(self, src: str, actions: list[Action]) -> None:
        queue = [(src, a) for a in actions]
        while queue:
            sender, action = queue.pop(0)
            if isinstance(action, Send) and action.dest not in self.down:
                node = self.nodes[action.dest]
                queue.extend((action.dest, a) for a in node.on_receive(sender, action.msg, 0))


def test_join_leave_and_crash_produce_the_same_views_everywhere() -> None:
    v0 = View(0, ("a", "b", "c"))
    nodes = {n: DynamicMembership(n, v0) for n in "abc"}
    nodes["d"] = DynamicMembership("d", None)
    net = Net(nodes)
    net.run("d", nodes["d"].request_join("b", 0))  # b forwards to coordinator a
    assert all(m.view == View(1, ("a", "b", "c", "d")) for m in nodes.values())
    net.run("c", nodes["c"].request_leave(0))
    assert nodes["a"].view == View(2, ("a", "b", "d"))
    assert nodes["d"].view == nodes["b"].view == nodes["a"].view
    net.down.add("a")
    for n in "bd":
        net.run(n, nodes[n].suspect("a", 0))
    assert nodes["b"].coordinator == "b"
    assert nodes["b"].view == nodes["d"].view == View(3, ("b", "d"))
    assert [v.id for v in nodes["d"].views()] == [1, 2, 3]


def test_minority_cannot_install_a_view() -> None:
    net = AgreementNet(("a", "b", "c"))
    net.down.add("b")
    net.act("a", net.nodes["a"].suspect("b", 0.0))
    net.settle()
    assert net.nodes["a"].view == net.nodes["c"].view == View(1, ("a", "c"))
    net.down.add("c")
    net.act("a", net.nodes["a"].suspect("c", net.now))
    net.settle(2_000, quiet=False)  # a keeps trying
    assert net.nodes["a"].view == View(1, ("a", "c"))  # {a} is not a majority of {a, c}


def test_a_detector_held_up_itself_does_not_blame_the_others() -> None:
    # its own timer fires 3 s late (a starved process): the others' silence over that
    # time is its own, so nobody is suspected; real silence afterwards still is
    fd = HeartbeatFailureDetector("a", ("a", "b"), interval=0.5, timeout=1.0)
    fd.on_start(0.0)
    fd.on_timer("heartbeat", 3.5)
    assert fd.changes() == [] and not fd.suspected
    fd.on_timer("heartbeat", 4.0)
    fd.on_timer("heartbeat", 4.5)
    assert fd.changes() == [Suspected("b")]
