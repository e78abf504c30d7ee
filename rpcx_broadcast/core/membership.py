"""Group membership: static (a fixed list) and dynamic (join, leave, views with ids).

A ``View`` is ``(id, members)``; ids grow by one per change. Members are listed oldest
first, and the oldest member not suspected is the *coordinator*.

How views are agreed (``DynamicMembership``):

1. A joiner sends ``JoinRequest`` to any member, a leaver sends ``LeaveRequest``, and the
   failure detector's suspicions are fed in with ``suspect(member)``. Requests reach the
   coordinator (non-coordinators forward them), which wants the next view: the members
   not suspected and not leaving, then the joiners.
2. **The successor of view k is decided by consensus among the members of view k**: one
   instance of single-decree Paxos per view. The coordinator picks a ballot ``(round,
   name)`` above every round it has seen and sends ``Prepare(k, ballot)`` to the members
   of view k (a suspected one only while nothing else sent to it awaits an ack); a
   member at view k promises the highest ballot it has seen (``Promise``, with the
   proposal it accepted, if any) and refuses lower ones (``Reject``). With promises from
   a majority of view k, the coordinator proposes the accepted proposal of the highest
   ballot among them, or else its own next view (``Accept``); a member accepts unless it
   promised a higher ballot (``Accepted``). Once a majority of view k accepted, the view
   is decided: the coordinator installs it and sends ``InstallView`` to every member of
   both views (a member removed while alive learns of it so). A member behind (asked
   about an older view) sends the current view back; one ahead of it (asked about a
   view it has not reached) says where it stands, and is sent the current view.
3. Safety does not depend on timing or on who believes it coordinates: two majorities
   of view k share a member, which accepts at most one ballot's proposal after promising
   it, so two different views with one id can never both be installed, whatever the
   suspicions and the message order (the schedule of issue 10, item 3 is a test). Under
   a partition only a side holding a majority of the current view changes it; a
   minority's coordinator keeps trying and installs nothing.
4. Liveness: a round that is refused, or not decided within ``retry`` seconds (later for
   younger members, so competing coordinators do not duel for ever), starts again with a
   higher ballot. A decided view that lacks a wanted change (a rival's proposal won) is
   followed by a round for the next view.
5. Joiners are appended (members stay oldest first). ``InstallView`` carries every
   member's address (the address book the coordinator learned from ``JoinRequest``), so
   the others can reach a new member.

State transfer: a joiner needs a *starting point* (which messages count as delivered
before it joined). The layers produce it (``StartPoint``, ``Joinable`` in ``layer``); the
runtime takes it at the coordinator in the same step that installs the joiner's view
and hands it to the joiner with the view.

Assumptions: partial synchrony for liveness (the failure detector), fair-loss links
(messages travel over ``ReliableLinks``), crash-stop members. What is *not* guaranteed:
view synchrony (that survivors delivered the same messages in the old view); the
broadcast layers use views only to stop waiting for departed members. The ``raft`` order
gives view synchrony: its views are committed log entries.
"""

from __future__ import annotations

import attrs

from .actions import Action, CancelTimer, SetTimer, StartPoint
from .links import ReliableLinks

__all__ = ["NO_BALLOT", "Accept", "Accepted", "AgreementMsg", "Ballot", "DynamicMembership",
           "InstallView", "JoinRequest", "LeaveRequest", "Prepare", "Promise", "Proposal",
           "Reject", "StartPoint", "StaticMembership", "View"]


@attrs.frozen
class View:
    """Membership view number ``id``: ``members``, oldest first."""

    id: int
    members: tuple[str, ...]


@attrs.frozen
class JoinRequest:
    member: str
    address: str = ""
    """Where the joiner can be reached (opaque to the core; the runtime's rpcx address)."""


@attrs.frozen
class LeaveRequest:
    member: str


@attrs.frozen
class InstallView:
    """A decided view, with every member's address."""

    view: View
    addresses: dict[str, str] = attrs.field(factory=dict)
    """Every member's address, as far as the coordinator knows it."""


Ballot = tuple[int, str]
"""``(round, proposer)``: ballots are ordered by round, then by the proposer's name."""

NO_BALLOT: Ballot = (-1, "")


@attrs.frozen
class Proposal:
    """A candidate successor view, under a ballot."""

    ballot: Ballot
    view: View
    addresses: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Prepare:
    """Phase 1a: the coordinator asks the members of view ``base`` to promise ``ballot``."""

    base: int
    ballot: Ballot


@attrs.frozen
class Promise:
    """Phase 1b: no smaller ballot will be accepted for the successor of view ``base``;
    ``accepted`` is the proposal this member accepted for it, if any."""

    base: int
    ballot: Ballot
    accepted: Proposal | None = None


@attrs.frozen
class Accept:
    """Phase 2a: accept ``proposal`` as the successor of view ``base``."""

    base: int
    proposal: Proposal


@attrs.frozen
class Accepted:
    """Phase 2b: this member accepted the proposal of ``ballot``."""

    base: int
    ballot: Ballot


@attrs.frozen
class Reject:
    """This member promised ``promised``, higher than ``ballot``: that round cannot win."""

    base: int
    ballot: Ballot
    promised: Ballot


AgreementMsg = Prepare | Promise | Accept | Accepted | Reject


@attrs.define(eq=False)
class StaticMembership:
    """A fixed member list: view 0 forever."""

    members: tuple[str, ...]

    @property
    def view(self) -> View:
        return View(0, self.members)


@attrs.define(eq=False)
class DynamicMembership:
    """Views agreed by consensus among the current view's members; see the module
    docstring for the rules."""

    me: str
    view: View | None
    rto: float = 0.2
    addresses: dict[str, str] = attrs.field(factory=dict)
    """Member name -> address, learned from joins and installed views."""
    retry: float = 1.0
    """Seconds before an undecided round starts again (times the member's rank + 1)."""
    _links: ReliableLinks = attrs.field(init=False)
    _suspected: set[str] = attrs.field(factory=set, init=False)
    _leaving: set[str] = attrs.field(factory=set, init=False)
    _joining: dict[str, str] = attrs.field(factory=dict, init=False)
    _installed: list[View] = attrs.field(factory=list, init=False)
    # acceptor, for the successor of the current view
    _promised: Ballot = attrs.field(default=NO_BALLOT, init=False)
    _accepted: Proposal | None = attrs.field(default=None, init=False)
    # proposer: the round this member runs (if any) and what it has gathered
    _round: int = attrs.field(default=0, init=False)
    _ballot: Ballot | None = attrs.field(default=None, init=False)
    _value: Proposal | None = attrs.field(default=None, init=False)
    _promises: dict[str, Proposal | None] = attrs.field(factory=dict, init=False)
    _votes: set[str] = attrs.field(factory=set, init=False)
    _armed: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self._links = ReliableLinks(rto=self.rto, cap=1 << 30)

    @property
    def coordinator(self) -> str | None:
        if self.view is None:
            return None
        for member in self.view.members:
            if member not in self._suspected:
                return member
        return None

    def views(self) -> list[View]:
        """Views installed since the last call, in order."""
        out, self._installed = self._installed, []
        return out

    def request_join(self, contact: str, now: float, address: str = "") -> list[Action]:
        """Ask member ``contact`` to let us in."""
        return self._links.send(contact, JoinRequest(self.me, address), now)

    def request_leave(self, now: float) -> list[Action]:
        return self._handle(self.me, LeaveRequest(self.me), now)

    def handle_join(self, member: str, address: str, now: float) -> list[Action]:
        """A join request arrived here by other means (the runtime's ``join`` call): at
        the coordinator this starts agreeing on a view admitting ``member``; elsewhere it
        is forwarded to the coordinator."""
        return self._handle(self.me, JoinRequest(member, address), now)

    def unacked(self) -> int:
        """Membership messages sent and not yet acknowledged."""
        return self._links.unacked()

    def forget(self, member: str) -> list[Action]:
        """Stop retransmitting to ``member`` (it left and will not answer)."""
        return self._links.forget(member)

    def suspect(self, member: str, now: float) -> list[Action]:
        """The failure detector suspects ``member``."""
        self._suspected.add(member)
        return self._propose(now)

    def tell_removed(self, member: str, now: float) -> list[Action]:
        """``member`` is not in the current view but still talks to this one (it missed
        its removal): send it the current view, once at a time (nothing if a message to
        it is still unacknowledged)."""
        if (self.view is None or member == self.me or member in self.view.members
                or self._links.unacked(member)):
            return []
        return self._links.send(member, self._install_msg(self.view), now)

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        out, bodies = self._links.on_receive(src, msg, now)
        for body in bodies:
            out.extend(self._handle(src, body, now))
        return out

    def on_timer(self, key: str, now: float) -> list[Action]:
        if key == "round":
            self._armed = False
            self._ballot = None  # not decided in time: the next round goes higher
            return self._propose(now)
        return self._links.on_timer(key, now)

    # -- requests ---------------------------------------------------------------------------

    def _handle(self, src: str, body: object, now: float) -> list[Action]:
        if isinstance(body, InstallView):
            if self.view is None or body.view.id > self.view.id:
                self.addresses.update(body.addresses)
                return self._install(body.view) + self._propose(now)
            return []
        if isinstance(body, AgreementMsg):
            return self._agree(src, body, now)
        if not isinstance(body, JoinRequest | LeaveRequest):
            raise TypeError(f"membership got {body!r}")
        coordinator = self.coordinator
        if coordinator is None or self.view is None or self.me not in self.view.members:
            return []  # (not a member any more: the requester will find the coordinator)
        if coordinator == src != self.me:
            # the sender forwarded it here, so it is behind: send it the current view
            # instead of bouncing the request back and forth
            return self._links.send(src, self._install_msg(self.view), now)
        if coordinator != self.me:
            return self._links.send(coordinator, body, now)
        if isinstance(body, JoinRequest):
            if body.member not in self.view.members:
                self._joining.setdefault(body.member, body.address)
                if body.address:
                    self.addresses[body.member] = body.address
        elif body.member in self.view.members:
            self._leaving.add(body.member)
        return self._propose(now)

    def _wanted(self) -> tuple[str, ...]:
        """The view this member, as coordinator, would install next."""
        assert self.view is not None
        members = [m for m in self.view.members
                   if m not in self._suspected and m not in self._leaving]
        members += [j for j in self._joining if j not in members]
        # everyone leaving: the coordinator stays (a view is never empty), so the others
        # and the suspected still go
        return tuple(members) or (self.me,)

    # -- agreement --------------------------------------------------------------------------

    def _quorum(self) -> int:
        assert self.view is not None
        return len(self.view.members) // 2 + 1

    def _targets(self) -> list[str]:
        """Every member of the view; a suspected one only while nothing sent to it waits
        for an ack (it may be alive and behind: it answers, or learns the current view;
        if it is dead, at most one round's messages are resent to it)."""
        assert self.view is not None
        return [m for m in self.view.members
                if m not in self._suspected or not self._links.unacked(m)]

    def _to(self, dest: str, body: object, now: float) -> list[Action]:
        if dest == self.me:
            return self._handle(self.me, body, now)
        return self._links.send(dest, body, now)

    def _propose(self, now: float) -> list[Action]:
        """As coordinator, with no round running: start one if the view should change."""
        if self.view is None or self.coordinator != self.me or self._ballot is not None:
            return []
        wanted = self._wanted()
        if not wanted or wanted == self.view.members:
            return []
        self._round += 1
        self._ballot = (self._round, self.me)
        self._value = None
        self._promises, self._votes = {}, set()
        rank = self.view.members.index(self.me)
        out: list[Action] = [SetTimer("round", now + self.retry * (rank + 1))]
        self._armed = True
        prepare = Prepare(self.view.id, self._ballot)
        for member in self._targets():
            out.extend(self._to(member, prepare, now))
        return out

    def _agree(self, src: str, msg: AgreementMsg, now: float) -> list[Action]:
        view = self.view
        if view is None:  # admitted, but its first view has not arrived yet
            if isinstance(msg, Prepare | Accept):
                ballot = msg.ballot if isinstance(msg, Prepare) else msg.proposal.ballot
                return self._to(src, Reject(-1, ballot, NO_BALLOT), now)
            return []
        if msg.base > view.id:
            # a view this member has not reached (its InstallView is still on the way, or
            # its sender crashed): it cannot take part; say where it stands, and the
            # proposer sends it the current view
            if isinstance(msg, Prepare | Accept):
                ballot = msg.ballot if isinstance(msg, Prepare) else msg.proposal.ballot
                return self._to(src, Reject(view.id, ballot, NO_BALLOT), now)
            return []
        if msg.base < view.id:
            return self._to(src, self._install_msg(view), now)  # catch the sender up
        if isinstance(msg, Prepare | Accept):
            ballot = msg.ballot if isinstance(msg, Prepare) else msg.proposal.ballot
            self._round = max(self._round, ballot[0])
            if ballot < self._promised:
                return self._to(src, Reject(msg.base, ballot, self._promised), now)
            self._promised = ballot
            if isinstance(msg, Prepare):
                return self._to(src, Promise(msg.base, ballot, self._accepted), now)
            self._accepted = msg.proposal
            return self._to(src, Accepted(msg.base, ballot), now)
        if msg.ballot != self._ballot:
            return []  # about a round this member no longer runs
        if isinstance(msg, Reject):
            self._round = max(self._round, msg.promised[0])
            self._ballot = None  # lost: the timer starts a higher round
            return []
        if isinstance(msg, Promise):
            if self._value is not None:
                return []
            self._promises[src] = msg.accepted
            if len(self._promises) < self._quorum():
                return []
            return self._phase_two(now)
        if self._value is None:
            return []
        self._votes.add(src)
        if len(self._votes) < self._quorum():
            return []
        return self._decide(now)

    def _phase_two(self, now: float) -> list[Action]:
        assert self.view is not None and self._ballot is not None
        prior = max((p for p in self._promises.values() if p is not None),
                    key=lambda p: p.ballot, default=None)
        if prior is not None:
            value = Proposal(self._ballot, prior.view, prior.addresses)
        else:
            wanted = self._wanted()
            if not wanted or wanted == self.view.members:
                self._ballot = None
                return []
            view = View(self.view.id + 1, wanted)
            value = Proposal(self._ballot, view, self._book(view))
        self._value = value
        out: list[Action] = []
        accept = Accept(self.view.id, value)
        for member in self._targets():
            out.extend(self._to(member, accept, now))
        return out

    def _decide(self, now: float) -> list[Action]:
        assert self.view is not None and self._value is not None
        old, value = self.view, self._value
        self.addresses.update(value.addresses)
        out = self._install(value.view)
        install = self._install_msg(value.view)
        for member in sorted(set(old.members) | set(value.view.members)):
            if member != self.me:
                out.extend(self._links.send(member, install, now))
        return out + self._propose(now)

    def _book(self, view: View) -> dict[str, str]:
        return {m: self.addresses[m] for m in view.members if m in self.addresses}

    def _install_msg(self, view: View) -> InstallView:
        return InstallView(view, self._book(view))

    def _install(self, view: View) -> list[Action]:
        self.view = view
        self._suspected &= set(view.members)
        self._leaving &= set(view.members)
        for member in [j for j in self._joining if j in view.members]:
            del self._joining[member]
        self._installed.append(view)
        self._promised, self._accepted = NO_BALLOT, None
        self._ballot, self._value = None, None
        self._promises, self._votes = {}, set()
        if self._armed:
            self._armed = False
            return [CancelTimer("round")]
        return []
