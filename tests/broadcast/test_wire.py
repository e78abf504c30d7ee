"""The mapping between core messages and idl/broadcast.rpcx round-trips every message
type the layers send, through the real CBOR codec."""

from __future__ import annotations

import attrs
import pytest

import rpcx
from rpcx_broadcast._generated import broadcast_rpcx as idl
from rpcx_broadcast.core import Stack, Wire
from rpcx_broadcast.core.actions import Action, Send
from rpcx_broadcast.core.causal import CausalMsg
from rpcx_broadcast.core.failure_detector import Heartbeat
from rpcx_broadcast.core.fifo import FifoMsg, FifoNak
from rpcx_broadcast.core.gossip import GossipBatch, GossipMsg
from rpcx_broadcast.core.layer import ProtocolViolation
from rpcx_broadcast.core.links import LinkAck, LinkData
from rpcx_broadcast.core.membership import (
    NO_BALLOT,
    Accept,
    Accepted,
    InstallView,
    JoinRequest,
    LeaveRequest,
    Prepare,
    Promise,
    Proposal,
    Reject,
    View,
)
from rpcx_broadcast.core.reliable import EagerMsg
from rpcx_broadcast.core.total import (
    LamportFlush,
    LamportMsg,
    SeqData,
    SeqHandover,
    SeqOrder,
)
from rpcx_broadcast.runtime.wire import (
    MembershipFrame,
    from_body,
    from_frame,
    to_body,
    to_frame,
)
from rpcx_broadcast.testing.sim import SCENARIOS, make_scenario, simulate
from tests.broadcast.test_membership_agreement import Net as AgreementNet

CODEC = rpcx.CborCodec()
PARAMS = idl._m_Broadcast_push.params


def through_the_wire(msg: object) -> object:
    data = CODEC.encode(PARAMS, ("n0", [to_frame(msg)]))
    sender, frames = CODEC.decode(PARAMS, data)
    assert sender == "n0"
    return from_frame(frames[0])


BODIES: list[object] = [
    b"", b"payload",
    EagerMsg("a", 3, b"x"),
    GossipMsg("a", 0, b"x"),
    FifoMsg("b", 7, b"y"),
    CausalMsg("c", 2, {"a": 1, "c": 2}, b"z"),
    CausalMsg("c", 0, {}, b""),
    SeqData("a", 1, b"w"),
    SeqOrder(10, (("a", 1), ("b", 0))),
    SeqHandover(42, "b"),
    LamportMsg(5, 2, b"v"),
    LamportMsg(6, 2, None),
    LamportMsg(7, 2, LamportFlush("c", 12)),
    # nesting as stacks produce it: gossip < fifo < lamport < bytes
    GossipMsg("a", 4, FifoMsg("a", 4, LamportMsg(9, 3, b"deep"))),
    EagerMsg("b", 1, SeqData("b", 1, b"s")),
]

LAYER_MSGS: list[object] = [
    *(LinkData(i, body) for i, body in enumerate(BODIES)),
    LinkAck(3, 2),
    EagerMsg("a", 0, CausalMsg("a", 0, {"a": 0}, b"c")),
    GossipBatch((), {}, False),
    GossipBatch(tuple(GossipMsg("a", i, FifoMsg("a", i, b"m")) for i in range(3)),
                {"a": {"a": 3, "b": 1}, "b": {}}, True),
    FifoMsg("a", 2, b"repaired"),
    FifoNak((1, 2, 5)),
]


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_every_body_round_trips(body: object) -> None:
    assert from_body(to_body(body)) == body
    assert through_the_wire(Wire(1, LinkData(0, body))) == Wire(1, LinkData(0, body))


@pytest.mark.parametrize("msg", LAYER_MSGS, ids=repr)
def test_every_layer_message_round_trips(msg: object) -> None:
    assert through_the_wire(Wire(2, msg)) == Wire(2, msg)


def test_heartbeat_round_trips() -> None:
    assert through_the_wire(Heartbeat()) == Heartbeat()


def test_unknown_values_are_refused_both_ways() -> None:
    with pytest.raises(TypeError, match="no wire mapping"):
        to_frame(Wire(0, object()))
    with pytest.raises(TypeError, match="no wire mapping"):
        to_frame("not a wire")
    with pytest.raises(TypeError, match="no wire mapping"):
        to_body(3.5)
    with pytest.raises(ProtocolViolation):
        from_frame(idl.Frame())
    with pytest.raises(ProtocolViolation):
        from_frame(idl.Frame(layer=-1, msg=idl.LayerMsg(link_ack=idl.LinkAck(seq=0, upto=0))))


SENT: list[object] = []


class _RecordingStack(Stack):
    """A Stack that keeps every network message it sends (in SENT)."""

    def _run(self, index: int, actions: list[Action], now: float) -> list[Action]:
        out = super()._run(index, actions, now)
        SENT.extend(a.msg for a in out if isinstance(a, Send))
        return out


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_everything_the_layers_send_in_a_simulation_round_trips(scenario: str,
                                                                 seed: int) -> None:
    config = make_scenario(scenario, seed)
    original = config.make_stack

    def make_stack(me: str, members: tuple[str, ...]) -> Stack:
        return _RecordingStack(original(me, members).layers)

    SENT.clear()
    simulate(attrs.evolve(config, make_stack=make_stack))
    assert SENT
    for msg in SENT:
        assert isinstance(msg, Wire)
        assert through_the_wire(msg) == msg


_VIEW = View(3, ("a", "b", "j"))
_PROPOSAL = Proposal((4, "a"), _VIEW, {"a": "tcp://a", "j": "tcp://j"})
MEMBERSHIP_BODIES: list[object] = [
    JoinRequest("j", "tcp://j"), LeaveRequest("b"), InstallView(_VIEW, {"a": "A"}),
    Prepare(2, (4, "a")), Promise(2, (4, "a")), Promise(2, (5, "b"), _PROPOSAL),
    Accept(2, _PROPOSAL), Accepted(2, (5, "b")), Reject(2, (4, "a"), (5, "b")),
    Reject(-1, (4, "a"), NO_BALLOT),
]


@pytest.mark.parametrize("body", MEMBERSHIP_BODIES, ids=repr)
def test_every_membership_message_round_trips(body: object) -> None:
    for msg in (LinkData(7, body), LinkAck(7, 3)):
        assert through_the_wire(MembershipFrame(msg)) == MembershipFrame(msg)


def test_what_agreeing_views_sends_round_trips() -> None:
    # every membership message of a run with suspicions, a join and a leave
    net = AgreementNet(("a", "b", "c", "d"))
    net.add("j")
    net.act("b", net.nodes["b"].suspect("a", 0.0))
    net.act("c", net.nodes["c"].suspect("a", 0.0))
    net.act("j", net.nodes["j"].request_join("c", 0.0, "tcp://j"))
    net.act("d", net.nodes["d"].request_leave(0.0))
    net.settle(5_000, quiet=False)
    kinds = {type(m.body).__name__ for m in net.sent if isinstance(m, LinkData)}
    assert {"Prepare", "Promise", "Accept", "Accepted", "InstallView"} <= kinds, kinds
    for msg in net.sent:
        assert isinstance(msg, LinkData | LinkAck)
        assert through_the_wire(MembershipFrame(msg)) == MembershipFrame(msg)
