"""Server-side idempotency-key cache: a retried call executes at most once.

A client that may retry a non-idempotent call sends an idempotency key with it (see
``docs/protocol.md``). The server asks :meth:`DedupCache.begin` before running the
handler and gets one of three answers:

- :class:`Execute`: first time this key is seen; run the handler, then call
  :meth:`~DedupCache.complete` with the reply (or :meth:`~DedupCache.abandon` if the
  handler never finished, so a retry may run it).
- :class:`Wait`: the first execution is still RUNNING; wait until it completes, then ask
  again (the runtime keeps one wake-up event per key).
- :class:`Replay`: the first execution is DONE; send its stored reply again.
- :class:`Overloaded`: the cache is full of RUNNING entries; answer RESOURCE_EXHAUSTED.

Entries are keyed by ``(method, key)``, live ``window`` seconds after completion, and
there are at most ``max_entries``; when full, the oldest DONE entry is evicted first.
The cache is shared by all connections of a server, because a retry usually arrives on
a new connection. Time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from typing import Final, Generic, TypeVar

import attrs

__all__ = [
    "DEFAULT_DEDUP_WINDOW",
    "DEFAULT_MAX_IDEMPOTENCY_CACHE",
    "DedupCache",
    "EntryState",
    "Execute",
    "Overloaded",
    "Replay",
    "Wait",
]

T = TypeVar("T")

DEFAULT_MAX_IDEMPOTENCY_CACHE: Final = 10_000
"""Entries kept; bounds memory whatever keys clients choose."""
DEFAULT_DEDUP_WINDOW: Final = 300.0
"""Seconds a completed reply is kept; longer than any sane retry policy's total backoff."""


class EntryState(enum.Enum):
    RUNNING = "running"
    """The first execution has not completed."""
    DONE = "done"
    """The first execution completed; its reply is stored."""


@attrs.frozen
class Execute:
    """Run the handler; this request is the first with its key."""


@attrs.frozen
class Wait:
    """A request with this key is running; wait for it, then call ``begin`` again."""


@attrs.frozen
class Replay(Generic[T]):
    """The key's first execution finished with ``reply``; send it again."""

    reply: T


@attrs.frozen
class Overloaded:
    """No room for another running key; answer RESOURCE_EXHAUSTED."""


@attrs.define(eq=False)
class DedupCache(Generic[T]):
    """Bounded map of ``(method, key)`` → RUNNING or DONE(reply), with expiry.

    RUNNING keys and DONE keys are held apart; DONE keys are in completion order, which
    is also expiry order because the window is fixed, so expiring and evicting cost
    O(1) per entry removed.
    """

    max_entries: int = DEFAULT_MAX_IDEMPOTENCY_CACHE
    window: float = DEFAULT_DEDUP_WINDOW
    _running: set[tuple[str, bytes]] = attrs.field(factory=set, init=False)
    _done: OrderedDict[tuple[str, bytes], tuple[float, T]] = attrs.field(
        factory=OrderedDict, init=False
    )

    def __attrs_post_init__(self) -> None:
        if self.max_entries < 1:
            raise ValueError(f"max_entries must be positive, got {self.max_entries!r}")
        if not self.window > 0:
            raise ValueError(f"window must be positive, got {self.window!r}")

    def __len__(self) -> int:
        return len(self._running) + len(self._done)

    def state(self, method: str, key: bytes, now: float) -> EntryState | None:
        """The entry's state at ``now``; None if there is none (never seen, expired,
        evicted or abandoned)."""
        self.expire(now)
        if (method, key) in self._running:
            return EntryState.RUNNING
        return EntryState.DONE if (method, key) in self._done else None

    def begin(self, method: str, key: bytes,
              now: float) -> Execute | Wait | Replay[T] | Overloaded:
        """Look ``key`` up for a request arriving at ``now``; see the module docstring."""
        self.expire(now)
        entry = (method, key)
        if entry in self._running:
            return Wait()
        if entry in self._done:
            return Replay(self._done[entry][1])
        if len(self) >= self.max_entries:
            if not self._done:
                return Overloaded()
            self._done.popitem(last=False)  # the oldest completed entry
        self._running.add(entry)
        return Execute()

    def complete(self, method: str, key: bytes, reply: T, now: float) -> None:
        """Store the first execution's ``reply``; duplicates now get :class:`Replay`."""
        self._take_running(method, key)
        self._done[method, key] = (now + self.window, reply)

    def abandon(self, method: str, key: bytes) -> None:
        """Forget a RUNNING key whose handler produced no reply (cancelled, connection
        lost), so that a retry executes it."""
        self._take_running(method, key)

    def expire(self, now: float) -> None:
        """Drop DONE entries whose window has passed."""
        while self._done:
            entry, (expires, _) = next(iter(self._done.items()))
            if expires > now:
                return
            del self._done[entry]

    def _take_running(self, method: str, key: bytes) -> None:
        try:
            self._running.remove((method, key))
        except KeyError:
            raise KeyError(f"idempotency key {key!r} of {method!r} is not running") from None
