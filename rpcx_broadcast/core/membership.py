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
   view's members. Under a partition only the majority side makes progress, so two
   disjoint views with the same id cannot both be installed by different sides.

Assumptions: partial synchrony for liveness (the failure detector), fair-loss links,
crash-stop members. What is *not* guaranteed: view synchrony (that survivors delivered the
same messages in the old view); the broadcast layers use views only to stop waiting for
departed members. A coordinator that crashes while sending a view can leave members one
view apart until its successor installs the next view (which supersedes it).
"""

from __future__ import annotations

import attrs

from .actions import Action
from .links import ReliableLinks

__all__ = ["DynamicMembership", "InstallView", "JoinRequest", "LeaveRequest",
           "StaticMembership", "View"]


@attrs.frozen
class View:
    """Membership view number ``id``: ``members``, oldest first."""

    id: int
    members: tuple[str, ...]


@attrs.frozen
class JoinRequest:
    member: str


@attrs.frozen
class LeaveRequest:
    member: str


@attrs.frozen
class InstallView:
    view: View


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
    _links: ReliableLinks = attrs.field(init=False)
    _suspected: set[str] = attrs.field(factory=set, init=False)
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

    def request_join(self, contact: str, now: float) -> list[Action]:
        """Ask member ``contact`` to let us in."""
        return self._links.send(contact, JoinRequest(self.me), now)

    def request_leave(self, now: float) -> list[Action]:
        return self._handle(LeaveRequest(self.me), now)

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
        members = list(self.view.members)
        if isinstance(body, JoinRequest) and body.member not in members:
            members.append(body.member)
        elif isinstance(body, LeaveRequest) and body.member in members:
            members.remove(body.member)
            self._suspected.add(body.member)
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
        kept = sum(1 for m in old.members if m in members)
        if 2 * kept <= len(old.members):
            return []  # not a majority of the old view: refuse (primary partition)
        view = View(old.id + 1, members)
        self._install(view)
        out: list[Action] = []
        for member in sorted(set(old.members) | set(members)):
            if member != self.me and member not in self._suspected:
                out.extend(self._links.send(member, InstallView(view), now))
        return out

    def _install(self, view: View) -> None:
        self.view = view
        self._suspected &= set(view.members)
        self._installed.append(view)
