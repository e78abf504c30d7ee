"""A byte budget shared by a server's connections for the frames they are still receiving.

Each connection holds, between two reads, at most one incomplete frame. Without a bound
across connections, N clients that each send all but the last byte of a large frame pin
N times ``max_frame_size`` of memory for as long as they like. A :class:`ReceiveBudget`
caps the sum: a connection asks it for room whenever its incomplete frame grows, and a
frame that cannot get room is refused (its bytes are dropped as they arrive, like an
oversized frame's, and its call fails with RESOURCE_EXHAUSTED) instead of being held.
Together with a connection's ``frame_timeout`` (a frame must be complete within that many
seconds of its first byte) this bounds both how much and how long. Pure bookkeeping: no
I/O, no clock.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["BUDGET_EXHAUSTED", "DEFAULT_MAX_BUFFERED_BYTES", "ReceiveBudget"]

DEFAULT_MAX_BUFFERED_BYTES: Final = 64 * 1024 * 1024
"""Bytes of incomplete frames a server holds across all its connections (64 MiB)."""

BUDGET_EXHAUSTED: Final[dict[str, Any]] = {"limit": "max_buffered_bytes"}
"""The ``details`` of a call refused because the budget was used up. Unlike a frame over
``max_frame_size`` this is transient, so clients retry it."""


class ReceiveBudget:
    """``limit`` bytes, shared; :meth:`resize` moves one holder's share."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int = DEFAULT_MAX_BUFFERED_BYTES) -> None:
        if limit < 0:
            raise ValueError(f"limit must be at least 0, got {limit}")
        self.limit: Final = limit
        self.held = 0
        """Bytes held by all holders together."""

    def resize(self, old: int, new: int, *, force: bool = False) -> bool:
        """Change a holder's share from ``old`` to ``new`` bytes. Shrinking always works;
        growing works while the total stays within ``limit`` (or with ``force``, for the
        few bytes of a frame header that cannot be refused). False: nothing changed."""
        if new > old and not force and self.held - old + new > self.limit:
            return False
        self.held += new - old
        return True
