"""The explicit mapping between core message values and the IDL types of
``idl/broadcast.rpcx`` (generated into ``rpcx_broadcast._generated.broadcast_rpcx``).

The cores exchange frozen attrs values (``Wire(layer, msg)`` around ``LinkData``,
``GossipBatch``, ``FifoMsg`` ...). On the way out :func:`to_frame` turns one into an IDL
``Frame``; on the way in :func:`from_frame` turns a ``Frame`` back into exactly the value
that was sent. Bodies nest (a ``GossipMsg`` carries a ``FifoMsg`` that carries a
``LamportMsg`` that carries the application's bytes), so :func:`to_body` and
:func:`from_body` recurse through the ``Body`` union. Anything the mapping does not know
raises ``TypeError`` (sending) or ``ProtocolViolation`` (receiving), never a guess.

``None`` is only legal as the body of a ``LamportMsg`` (a heartbeat); it travels as an
absent optional field.

Membership messages (``DynamicMembership``'s reliable-link frames around ``JoinRequest``,
``LeaveRequest`` and ``InstallView``) travel in ``Frame.membership``; the node wraps them
in :class:`MembershipFrame` so they are told apart from a stack's ``Wire``. A joiner's
starting point (``StartPoint`` per layer) travels in the ``join`` reply as ``LayerStart``.
"""

from __future__ import annotations

import attrs

from rpcx_broadcast._generated import broadcast_rpcx as idl
from rpcx_broadcast.core.actions import StartPoint, Wire
from rpcx_broadcast.core.causal import CausalMsg
from rpcx_broadcast.core.failure_detector import Heartbeat
from rpcx_broadcast.core.fifo import FifoMsg, FifoNak
from rpcx_broadcast.core.gossip import GossipBatch, GossipMsg
from rpcx_broadcast.core.layer import ProtocolViolation
from rpcx_broadcast.core.links import LinkAck, LinkData
from rpcx_broadcast.core.membership import (
    Accept,
    Accepted,
    Ballot,
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
from rpcx_broadcast.core.total import LamportFlush, LamportMsg, SeqData, SeqHandover, SeqOrder

__all__ = ["MembershipFrame", "from_body", "from_frame", "from_start", "from_view",
           "to_body", "to_frame", "to_start", "to_view"]


@attrs.frozen
class MembershipFrame:
    """A membership service message (``LinkData`` or ``LinkAck``) between two members."""

    msg: LinkData | LinkAck


# -- bodies: what one layer hands to the layer below -------------------------------------


def to_body(value: object) -> idl.Body:
    """A core body value (bytes or a layer's message) as the IDL ``Body`` union."""
    if isinstance(value, bytes):
        return idl.Body(payload=value)
    if isinstance(value, EagerMsg):
        return idl.Body(eager=_eager(value))
    if isinstance(value, GossipMsg):
        return idl.Body(gossip=_gossip(value))
    if isinstance(value, FifoMsg):
        return idl.Body(fifo=_fifo(value))
    if isinstance(value, CausalMsg):
        return idl.Body(causal=idl.CausalMsg(origin=value.origin, seq=value.seq,
                                              deps=dict(value.deps), body=to_body(value.body)))
    if isinstance(value, SeqData):
        return idl.Body(seq_data=idl.SeqData(origin=value.origin, seq=value.seq,
                                              body=to_body(value.body)))
    if isinstance(value, SeqOrder):
        return idl.Body(seq_order=idl.SeqOrder(
            start=value.start, ids=[idl.MsgRef(origin=o, seq=s) for o, s in value.ids]))
    if isinstance(value, SeqHandover):
        return idl.Body(seq_handover=idl.SeqHandover(next=value.next, leader=value.leader))
    if isinstance(value, LamportMsg):
        body = None if value.body is None else to_body(value.body)
        return idl.Body(lamport=idl.LamportMsg(ts=value.ts, seq=value.seq, body=body))
    if isinstance(value, LamportFlush):
        return idl.Body(lamport_flush=idl.LamportFlush(member=value.member, count=value.count))
    raise TypeError(f"no wire mapping for body {value!r}")


def from_body(body: idl.Body) -> object:
    """The core value an IDL ``Body`` stands for (inverse of :func:`to_body`)."""
    which = body.which
    if which == "payload":
        assert body.payload is not None
        return body.payload
    if which == "eager":
        assert body.eager is not None
        return EagerMsg(body.eager.origin, body.eager.seq, from_body(body.eager.body))
    if which == "gossip":
        assert body.gossip is not None
        return _from_gossip(body.gossip)
    if which == "fifo":
        assert body.fifo is not None
        return FifoMsg(body.fifo.origin, body.fifo.seq, from_body(body.fifo.body))
    if which == "causal":
        c = body.causal
        assert c is not None
        return CausalMsg(c.origin, c.seq, dict(c.deps), from_body(c.body))
    if which == "seq_data":
        d = body.seq_data
        assert d is not None
        return SeqData(d.origin, d.seq, from_body(d.body))
    if which == "seq_order":
        o = body.seq_order
        assert o is not None
        return SeqOrder(o.start, tuple((r.origin, r.seq) for r in o.ids))
    if which == "seq_handover":
        h = body.seq_handover
        assert h is not None
        return SeqHandover(h.next, h.leader)
    if which == "lamport_flush":
        f = body.lamport_flush
        assert f is not None
        if f.count < 0:
            raise ProtocolViolation(f"bad flush count {f.count}")
        return LamportFlush(f.member, f.count)
    lam = body.lamport
    assert lam is not None
    return LamportMsg(lam.ts, lam.seq, None if lam.body is None else from_body(lam.body))


def _eager(value: EagerMsg) -> idl.EagerMsg:
    return idl.EagerMsg(origin=value.origin, seq=value.seq, body=to_body(value.body))


def _gossip(value: GossipMsg) -> idl.GossipMsg:
    return idl.GossipMsg(origin=value.origin, seq=value.seq, body=to_body(value.body))


def _from_gossip(value: idl.GossipMsg) -> GossipMsg:
    return GossipMsg(value.origin, value.seq, from_body(value.body))


def _fifo(value: FifoMsg) -> idl.FifoMsg:
    return idl.FifoMsg(origin=value.origin, seq=value.seq, body=to_body(value.body))


# -- frames: what one member sends another ----------------------------------------------


def to_frame(msg: object) -> idl.Frame:
    """A message a stack (``Wire``), the membership service (``MembershipFrame``) or the
    failure detector (``Heartbeat``) sends."""
    if isinstance(msg, Heartbeat):
        return idl.Frame(heartbeat=True)
    if isinstance(msg, MembershipFrame):
        return idl.Frame(membership=_membership(msg.msg))
    if not isinstance(msg, Wire):
        raise TypeError(f"no wire mapping for {msg!r}: expected Wire or Heartbeat")
    return idl.Frame(layer=msg.layer, msg=_layer_msg(msg.msg))


def from_frame(frame: idl.Frame) -> Wire | Heartbeat | MembershipFrame:
    """The ``Wire`` (``Heartbeat``, ``MembershipFrame``) a ``Frame`` stands for. Raises
    ``ProtocolViolation`` for a frame that is none of them."""
    if frame.membership is not None:
        if frame.msg is not None:
            raise ProtocolViolation("frame carries both a layer and a membership message")
        return MembershipFrame(_from_membership(frame.membership))
    if frame.msg is None:
        if frame.heartbeat:
            return Heartbeat()
        raise ProtocolViolation("frame carries neither a layer message nor a heartbeat")
    if frame.layer < 0:
        raise ProtocolViolation(f"frame names layer {frame.layer}, which is negative")
    return Wire(frame.layer, _from_layer_msg(frame.msg))


def _layer_msg(value: object) -> idl.LayerMsg:
    if isinstance(value, LinkData):
        return idl.LayerMsg(link_data=idl.LinkData(seq=value.seq, body=to_body(value.body)))
    if isinstance(value, LinkAck):
        return idl.LayerMsg(link_ack=idl.LinkAck(seq=value.seq, upto=value.upto))
    if isinstance(value, EagerMsg):
        return idl.LayerMsg(eager=_eager(value))
    if isinstance(value, GossipBatch):
        return idl.LayerMsg(gossip_batch=idl.GossipBatch(
            msgs=[_gossip(m) for m in value.msgs],
            known=[idl.KnownRow(member=member, counts=dict(row))
                   for member, row in value.known.items()],
            want_reply=value.want_reply, repair=list(value.repair)))
    if isinstance(value, FifoMsg):
        return idl.LayerMsg(fifo=_fifo(value))
    if isinstance(value, FifoNak):
        return idl.LayerMsg(fifo_nak=idl.FifoNak(seqs=list(value.seqs)))
    raise TypeError(f"no wire mapping for layer message {value!r}")


def _from_layer_msg(msg: idl.LayerMsg) -> object:
    which = msg.which
    if which == "link_data":
        assert msg.link_data is not None
        return LinkData(msg.link_data.seq, from_body(msg.link_data.body))
    if which == "link_ack":
        assert msg.link_ack is not None
        return LinkAck(msg.link_ack.seq, msg.link_ack.upto)
    if which == "eager":
        assert msg.eager is not None
        return EagerMsg(msg.eager.origin, msg.eager.seq, from_body(msg.eager.body))
    if which == "gossip_batch":
        batch = msg.gossip_batch
        assert batch is not None
        return GossipBatch(tuple(_from_gossip(m) for m in batch.msgs),
                           {row.member: dict(row.counts) for row in batch.known},
                           batch.want_reply, tuple(batch.repair))
    if which == "fifo":
        assert msg.fifo is not None
        return FifoMsg(msg.fifo.origin, msg.fifo.seq, from_body(msg.fifo.body))
    assert msg.fifo_nak is not None
    return FifoNak(tuple(msg.fifo_nak.seqs))


# -- membership ---------------------------------------------------------------------------


def to_view(view: View) -> idl.ViewMsg:
    return idl.ViewMsg(id=view.id, members=list(view.members))


def from_view(view: idl.ViewMsg) -> View:
    if view.id < 0 or len(set(view.members)) != len(view.members):
        raise ProtocolViolation(f"bad view {view!r}")
    return View(view.id, tuple(view.members))


def _membership(msg: LinkData | LinkAck) -> idl.MembershipMsg:
    if isinstance(msg, LinkAck):
        return idl.MembershipMsg(ack=idl.LinkAck(seq=msg.seq, upto=msg.upto))
    body = msg.body
    if isinstance(body, JoinRequest):
        wire = idl.MembershipBody(join=idl.JoinRequestMsg(member=body.member,
                                                          address=body.address))
    elif isinstance(body, LeaveRequest):
        wire = idl.MembershipBody(leave=body.member)
    elif isinstance(body, InstallView):
        wire = idl.MembershipBody(install=idl.InstallViewMsg(view=to_view(body.view),
                                                             addresses=dict(body.addresses)))
    elif isinstance(body, Prepare):
        wire = idl.MembershipBody(prepare=idl.PrepareMsg(base=body.base,
                                                         ballot=_ballot(body.ballot)))
    elif isinstance(body, Promise):
        accepted = _proposal(body.accepted) if body.accepted is not None else None
        wire = idl.MembershipBody(promise=idl.PromiseMsg(
            base=body.base, ballot=_ballot(body.ballot), accepted=accepted))
    elif isinstance(body, Accept):
        wire = idl.MembershipBody(accept=idl.AcceptMsg(base=body.base,
                                                       proposal=_proposal(body.proposal)))
    elif isinstance(body, Accepted):
        wire = idl.MembershipBody(accepted=idl.VoteMsg(base=body.base,
                                                       ballot=_ballot(body.ballot)))
    elif isinstance(body, Reject):
        wire = idl.MembershipBody(reject=idl.VoteMsg(base=body.base,
                                                     ballot=_ballot(body.ballot),
                                                     promised=_ballot(body.promised)))
    else:
        raise TypeError(f"no wire mapping for membership message {body!r}")
    return idl.MembershipMsg(data=idl.MembershipData(seq=msg.seq, body=wire))


def _ballot(ballot: Ballot) -> idl.BallotMsg:
    return idl.BallotMsg(round=ballot[0], proposer=ballot[1])


def _from_ballot(ballot: idl.BallotMsg) -> Ballot:
    if ballot.round < -1:
        raise ProtocolViolation(f"bad ballot round {ballot.round}")
    return (ballot.round, ballot.proposer)


def _proposal(proposal: Proposal) -> idl.ProposalMsg:
    return idl.ProposalMsg(ballot=_ballot(proposal.ballot), view=to_view(proposal.view),
                           addresses=dict(proposal.addresses))


def _from_proposal(proposal: idl.ProposalMsg) -> Proposal:
    return Proposal(_from_ballot(proposal.ballot), from_view(proposal.view),
                    dict(proposal.addresses))


def _from_membership(msg: idl.MembershipMsg) -> LinkData | LinkAck:
    if msg.ack is not None:
        return LinkAck(msg.ack.seq, msg.ack.upto)
    data = msg.data
    assert data is not None
    body = data.body
    value: object
    if body.join is not None:
        value = JoinRequest(body.join.member, body.join.address)
    elif body.leave is not None:
        value = LeaveRequest(body.leave)
    elif body.install is not None:
        value = InstallView(from_view(body.install.view), dict(body.install.addresses))
    elif body.prepare is not None:
        value = Prepare(body.prepare.base, _from_ballot(body.prepare.ballot))
    elif body.promise is not None:
        accepted = body.promise.accepted
        value = Promise(body.promise.base, _from_ballot(body.promise.ballot),
                        _from_proposal(accepted) if accepted is not None else None)
    elif body.accept is not None:
        value = Accept(body.accept.base, _from_proposal(body.accept.proposal))
    elif body.accepted is not None:
        value = Accepted(body.accepted.base, _from_ballot(body.accepted.ballot))
    else:
        vote = body.reject
        assert vote is not None
        if vote.promised is None:
            raise ProtocolViolation("a membership refusal without the promised ballot")
        value = Reject(vote.base, _from_ballot(vote.ballot), _from_ballot(vote.promised))
    return LinkData(data.seq, value)


# -- a joiner's starting point -----------------------------------------------------------


def to_start(point: StartPoint) -> idl.LayerStart:
    return idl.LayerStart(counts=dict(point.counts), next=point.next,
                          held=[to_body(msg) for msg in point.held])


def from_start(start: idl.LayerStart) -> StartPoint:
    if start.next < 0 or any(count < 0 for count in start.counts.values()):
        raise ProtocolViolation(f"bad starting point {start!r}")
    return StartPoint(dict(start.counts), start.next,
                      tuple(from_body(body) for body in start.held))
