"""Group membership: static (a fixed list) and dynamic (join, leave, views with ids).

A ``View`` is ``(id, members)``; ids grow by one per change. Members are listed oldest
first, and the oldest live member is the *coordinator*.

How views are agreed (``DynamicMembership``, in the style of JGroups GMS):

1. A joiner sends ``JoinRequest`` to any member, a leaver sends ``LeaveRequest``, and the
   failure detector's suspicions are fed in with ``suspect(member)``. Requests reach the
   coordinator (non-coordinators forward them).
2. Only the coordinator creates views. It installs ``View(id + 1, members')`` locally and
   sends ``InstallView`` to every member of the old and new views over reliable links
   (retransmitted until acked). Members install a view only if its id is higher than
   their current one, so all members pass through the same sequence of views.
3. If the coordinator is suspected, the next oldest unsuspected member takes over and
   installs a view without it.
4. Primary partition: a view is only installed if it keeps a majority of the previous
   view's members that did not ask to leave. Under a partition only the majority side
   makes progress, so two disjoint views with the same id cannot both be installed by
   different sides. (A graceful leave is voluntary, so the leaver does not count: two
   members can shrink to one by a leave, never by a suspicion.)
5. Joiners are appended (members stay oldest first). ``InstallView`` carries every
   member's address (the address book the coordinator learned from ``JoinRequest``), so
   the others can reach a new member.

State transfer: a joiner needs a *starting point* (which messages count as delivered
before it joined). The layers produce it (``StartPoint``, ``Joinable`` in ``layer``); the
runtime takes it at the coordinator in the same step that installs the joiner's view
and hands it to the joiner with the view.

Assumptions: partial synchrony for liveness (the failure detector), fair-loss links,
crash-stop members. What is *not* guaranteed: view synchrony (that survivors delivered the
same messages in the old view); the broadcast layers use views only to stop waiting for
departed members. A coordinator that crashes while sending a view can leave members one
view apart until its successor installs the next view (which supersedes it).
"""

from __future__ import annotations

import attrs

from .actions import Action, StartPoint
from .links import ReliableLinks

__all__ = ["DynamicMembership", "InstallView", "JoinRequest", "LeaveRequest",
           "StartPoint", "StaticMembership", "View"]


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
    view: View
    addresses: dict[str, str] = attrs.field(factory=dict)
    """Every member's address, as far as the coordinator knows it."""


@attrs.define(eq=False)
class StaticMembership:
    """A fixed member list: view 0 forever."""

    members: tuple[str, ...]

    @property
    def view(self) -> View:
        return View(0, self.members)


@attrs.define(eq=False)
class DynamicMembership:
    """Coordinator-sequenced views; see the module docstring for the agreement rules."""

    me: str
    view: View | None
    rto: float = 0.2
    addresses: dict[str, str] = attrs.field(factory=dict)
    """Member name -> address, learned from joins and installed views."""
    _links: ReliableLinks = attrs.field(init=False)
    _suspected: set[str] = attrs.field(factory=set, init=False)
    _leaving: set[str] = attrs.field(factory=set, init=False)
    _installed: list[View] = attrs.field(factory=list, init=False)

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
        return self._handle(LeaveRequest(self.me), now)

    def handle_join(self, member: str, address: str, now: float) -> list[Action]:
        """A join request arrived here by other means (the runtime's ``join`` call): at
        the coordinator this installs the view admitting ``member``; elsewhere it is
        forwarded to the coordinator."""
        return self._handle(JoinRequest(member, address), now)

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

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        out, bodies = self._links.on_receive(src, msg, now)
        for body in bodies:
            out.extend(self._handle(body, now))
        return out

    def on_timer(self, key: str, now: float) -> list[Action]:
        return self._links.on_timer(key, now)

    def _handle(self, body: object, now: float) -> list[Action]:
        if isinstance(body, InstallView):
            if self.view is None or body.view.id > self.view.id:
                self.addresses.update(body.addresses)
                self._install(body.view)
            return []
        if not isinstance(body, JoinRequest | LeaveRequest):
            raise TypeError(f"membership got {body!r}")
        coordinator = self.coordinator
        if coordinator is None:
            return []
        if coordinator != self.me:
            return self._links.send(coordinator, body, now)
        assert self.view is not None
        # Suspected members are left out, as in ``_propose``: a member is only coordinator
        # here because the older ones are suspected, and a view that kept them would
        # dodge the majority rule (a member that cannot remove a suspected coordinator
        # would install views of its own) and would not be sent to them.
        members = [m for m in self.view.members if m not in self._suspected]
        if isinstance(body, JoinRequest) and body.member not in members:
            members.append(body.member)
            if body.address:
                self.addresses[body.member] = body.address
        elif isinstance(body, LeaveRequest) and body.member in self.view.members:
            if body.member in members:
                members.remove(body.member)
            self._leaving.add(body.member)
        return self._new_view(tuple(members), now)

    def _propose(self, now: float) -> list[Action]:
        if self.view is None or self.coordinator != self.me:
            return []
        members = tuple(m for m in self.view.members if m not in self._suspected)
        return self._new_view(members, now)

    def _new_view(self, members: tuple[str, ...], now: float) -> list[Action]:
        assert self.view is not None
        old = self.view
        if members == old.members:
            return []
        staying = [m for m in old.members if m not in self._leaving]
        kept = sum(1 for m in staying if m in members)
        if not members or 2 * kept <= len(staying):
            return []  # not a majority of the old view: refuse (primary partition)
        view = View(old.id + 1, members)
        self._install(view)
        addresses = {m: self.addresses[m] for m in members if m in self.addresses}
        out: list[Action] = []
        for member in sorted(set(old.members) | set(members)):
            if member != self.me and member not in self._suspected:
                out.extend(self._links.send(member, InstallView(view, addresses), now))
        return out

    def _install(self, view: View) -> None:
        self.view = view
        self._suspected &= set(view.members)
        self._leaving &= set(view.members)
        self._installed.append(view)
