"""The hold-back queue: messages received but not yet delivered.

This is the gap between *receive* and *deliver* in the notes. Ordering layers add what
they receive, then repeatedly pop whatever their delivery condition allows. The queue is
observable (``len``, ``contents()``, ``max_size``) and bounded: exceeding ``cap`` raises
``HoldBackOverflow``, which means the configuration is inconsistent (the cap must exceed
what the flow-control windows below can put in flight), never that a peer misbehaved.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

import attrs

__all__ = ["HoldBack", "HoldBackOverflow"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class HoldBackOverflow(RuntimeError):
    """More messages are held back than the configured cap allows."""


@attrs.define(eq=False)
class HoldBack(Generic[K, V]):
    """A bounded map from message key to message, with a high-water mark."""

    cap: int = 65536
    _items: dict[K, V] = attrs.field(factory=dict, init=False)
    max_size: int = attrs.field(default=0, init=False)

    def add(self, key: K, value: V) -> bool:
        """Hold ``value`` back under ``key``; return False if the key is already held."""
        if key in self._items:
            return False
        if len(self._items) >= self.cap:
            raise HoldBackOverflow(f"hold-back queue is full ({self.cap} messages)")
        self._items[key] = value
        self.max_size = max(self.max_size, len(self._items))
        return True

    def pop(self, key: K) -> V:
        return self._items.pop(key)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def discard(self, key: K) -> None:
        self._items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[K]:
        return list(self._items)

    def contents(self) -> list[tuple[K, V]]:
        """A snapshot of what is held back, in arrival order."""
        return list(self._items.items())
