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

Entries are keyed by ``(method, key)`` and live ``window`` seconds after completion. The
cache is shared by all connections of a server, because a retry usually arrives on a new
connection; each entry is charged to its *owner* (the connection that first sent the key),
and that is what makes the guarantee exact:

- A DONE entry is kept for its whole window, unless its own owner has since begun more
  than ``quota`` other keyed calls: an owner at its quota makes room by dropping its own
  oldest DONE entry. Nothing another owner does can drop it.
- When the whole cache is full (``max_entries`` entries or ``max_bytes`` bytes of stored
  replies) a new key again drops its owner's own oldest DONE entry if it has one; if not,
  it gets :class:`Overloaded`, so the call is refused without running (retryable).

Time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

import attrs

__all__ = [
    "DEFAULT_DEDUP_WINDOW",
    "DEFAULT_IDEMPOTENCY_QUOTA",
    "DEFAULT_MAX_IDEMPOTENCY_BYTES",
    "DEFAULT_MAX_IDEMPOTENCY_CACHE",
    "DedupCache",
    "EntryState",
    "Execute",
    "Overloaded",
    "Replay",
    "Wait",
]

T = TypeVar("T")

DEFAULT_MAX_IDEMPOTENCY_CACHE: Final = 100_000
"""Entries kept in all; bounds memory whatever keys clients choose."""
DEFAULT_MAX_IDEMPOTENCY_BYTES: Final = 64 * 1024 * 1024
"""Bytes of stored replies (plus a fixed charge per entry) kept in all."""
DEFAULT_IDEMPOTENCY_QUOTA: Final = 10_000
"""Entries one owner (a connection) may hold; past it, its own oldest make room."""
ENTRY_OVERHEAD: Final = 256
"""Bytes charged per entry besides its reply (key, method, bookkeeping)."""
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
    """No room for another key; answer RESOURCE_EXHAUSTED (the call did not run)."""

    reason: str = "too many calls in progress"


@attrs.frozen
class _Done(Generic[T]):
    expires: float
    reply: T
    owner: Hashable
    cost: int


@attrs.define(eq=False)
class DedupCache(Generic[T]):
    """Bounded map of ``(method, key)`` → RUNNING or DONE(reply), with expiry and owners.

    DONE keys are in completion order, which is also expiry order because the window is
    fixed; each owner's DONE keys are also in an order of their own, so expiring and
    making room cost O(1) per entry removed. ``size(reply)`` gives the bytes a reply is
    charged (default 0: only the fixed per-entry charge counts).
    """

    max_entries: int = DEFAULT_MAX_IDEMPOTENCY_CACHE
    window: float = DEFAULT_DEDUP_WINDOW
    max_bytes: int = DEFAULT_MAX_IDEMPOTENCY_BYTES
    quota: int = DEFAULT_IDEMPOTENCY_QUOTA
    size: Callable[[T], int] = attrs.field(default=lambda _reply: 0)
    _running: dict[tuple[str, bytes], Hashable] = attrs.field(factory=dict, init=False)
    _done: OrderedDict[tuple[str, bytes], _Done[T]] = attrs.field(factory=OrderedDict,
                                                                  init=False)
    _owned: dict[Hashable, OrderedDict[tuple[str, bytes], None]] = attrs.field(
        factory=dict, init=False)
    """Each owner's DONE keys, oldest first."""
    _owned_running: dict[Hashable, int] = attrs.field(factory=dict, init=False)
    _bytes: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        for name in ("max_entries", "max_bytes", "quota"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.window > 0:
            raise ValueError(f"window must be positive, got {self.window!r}")

    def __len__(self) -> int:
        return len(self._running) + len(self._done)

    @property
    def bytes_held(self) -> int:
        """Bytes charged now (stored replies plus the per-entry charge)."""
        return self._bytes

    def owned(self, owner: Hashable) -> int:
        """Entries (RUNNING and DONE) charged to ``owner``."""
        return self._owned_running.get(owner, 0) + len(self._owned.get(owner, ()))

    def state(self, method: str, key: bytes, now: float) -> EntryState | None:
        """The entry's state at ``now``; None if there is none (never seen, expired,
        dropped or abandoned)."""
        self.expire(now)
        if (method, key) in self._running:
            return EntryState.RUNNING
        return EntryState.DONE if (method, key) in self._done else None

    def begin(self, method: str, key: bytes, now: float, owner: Hashable = None
              ) -> Execute | Wait | Replay[T] | Overloaded:
        """Look ``key`` up for a request from ``owner`` arriving at ``now``; see the
        module docstring."""
        self.expire(now)
        entry = (method, key)
        if entry in self._running:
            return Wait()
        done = self._done.get(entry)
        if done is not None:
            return Replay(done.reply)
        if self.owned(owner) >= self.quota and not self._drop_oldest_of(owner):
            return Overloaded(f"this connection has {self.quota} keyed calls in progress")
        while len(self) >= self.max_entries or self._bytes + ENTRY_OVERHEAD > self.max_bytes:
            if not self._drop_oldest_of(owner):
                return Overloaded("the server's idempotency cache is full; retry later")
        self._running[entry] = owner
        self._owned_running[owner] = self._owned_running.get(owner, 0) + 1
        self._bytes += ENTRY_OVERHEAD
        return Execute()

    def complete(self, method: str, key: bytes, reply: T, now: float) -> None:
        """Store the first execution's ``reply``; duplicates now get :class:`Replay`."""
        owner = self._take_running(method, key)
        cost = ENTRY_OVERHEAD + max(0, self.size(reply))
        self._bytes += cost - ENTRY_OVERHEAD
        self._done[method, key] = _Done(now + self.window, reply, owner, cost)
        self._owned.setdefault(owner, OrderedDict())[method, key] = None

    def abandon(self, method: str, key: bytes) -> None:
        """Forget a RUNNING key whose handler produced no reply (cancelled, connection
        lost), so that a retry executes it."""
        self._take_running(method, key)
        self._bytes -= ENTRY_OVERHEAD

    def expire(self, now: float) -> None:
        """Drop DONE entries whose window has passed."""
        done = self._done
        while done:
            entry, record = next(iter(done.items()))
            if record.expires > now:
                return
            self._drop(entry)

    def _drop_oldest_of(self, owner: Hashable) -> bool:
        owned = self._owned.get(owner)
        if not owned:
            return False
        self._drop(next(iter(owned)))
        return True

    def _drop(self, entry: tuple[str, bytes]) -> None:
        record = self._done.pop(entry)
        self._bytes -= record.cost
        owned = self._owned[record.owner]
        del owned[entry]
        if not owned:
            del self._owned[record.owner]

    def _take_running(self, method: str, key: bytes) -> Hashable:
        try:
            owner = self._running.pop((method, key))
        except KeyError:
            raise KeyError(f"idempotency key {key.hex()} of {method} is not running") from None
        left = self._owned_running[owner] - 1
        if left:
            self._owned_running[owner] = left
        else:
            del self._owned_running[owner]
        return owner
