"""A heartbeat failure detector (eventually perfect, given partial synchrony).

Every ``interval`` seconds each member sends ``Heartbeat`` to the others. A member not
heard from for ``timeout`` seconds is *suspected*; hearing from it again restores it
and raises its timeout by ``interval``, so after the (unknown) global stabilisation time
false suspicions stop. Suspicion is only a hint: layers must stay safe when it is wrong
(the membership service turns suspicions into agreed views).

Changes are reported as ``Suspected`` / ``Restored`` values drained with ``changes()``.
"""

from __future__ import annotations

import attrs

from .actions import Action, Send, SetTimer

__all__ = ["Heartbeat", "HeartbeatFailureDetector", "Restored", "Suspected"]


@attrs.frozen
class Heartbeat:
    """I am alive."""


@attrs.frozen
class Suspected:
    """``member`` has been silent longer than its timeout."""

    member: str


@attrs.frozen
class Restored:
    """``member``, suspected before, was heard from again."""

    member: str


@attrs.define(eq=False)
class HeartbeatFailureDetector:
    """Heartbeats out, suspicions in; time is passed in."""

    me: str
    members: tuple[str, ...]
    interval: float = 0.5
    timeout: float = 2.0
    suspected: set[str] = attrs.field(factory=set, init=False)
    _last: dict[str, float] = attrs.field(factory=dict, init=False)
    _timeouts: dict[str, float] = attrs.field(factory=dict, init=False)
    _changes: list[Suspected | Restored] = attrs.field(factory=list, init=False)
    _due: float | None = attrs.field(default=None, init=False)

    def on_start(self, now: float) -> list[Action]:
        """Start heartbeating; every member counts as heard from at ``now``."""
        for member in self.members:
            self._last.setdefault(member, now)
        return self._beat(now)

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        if not isinstance(msg, Heartbeat):
            raise TypeError(f"failure detector got {msg!r} from {src!r}")
        self._last[src] = now
        if src in self.suspected:
            self.suspected.discard(src)
            self._timeouts[src] = self._timeouts.get(src, self.timeout) + self.interval
            self._changes.append(Restored(src))
        return []

    def on_timer(self, key: str, now: float) -> list[Action]:
        late = now - self._due if self._due is not None else 0.0
        if late > self.interval:
            # this member was held up itself (its timer fired late: a starved process or
            # a loop far behind): it cannot tell the others' silence from its own, so
            # the time it lost does not count against them
            for member in self._last:
                self._last[member] = min(now, self._last[member] + late)
        for member in self.members:
            if member == self.me or member in self.suspected:
                continue
            limit = self._timeouts.get(member, self.timeout)
            if now - self._last.get(member, now) > limit:
                self.suspected.add(member)
                self._changes.append(Suspected(member))
        return self._beat(now)

    def set_members(self, members: tuple[str, ...], now: float) -> None:
        """Watch ``members`` from now on (after a view change)."""
        self.members = members
        for member in members:
            self._last.setdefault(member, now)
        self.suspected &= set(members)

    def changes(self) -> list[Suspected | Restored]:
        """Suspicion changes since the last call."""
        out, self._changes = self._changes, []
        return out

    def _beat(self, now: float) -> list[Action]:
        out: list[Action] = [Send(m, Heartbeat()) for m in self.members if m != self.me]
        self._due = now + self.interval
        out.append(SetTimer("heartbeat", self._due))
        return out
