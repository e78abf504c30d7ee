"""Lamport clocks, vectors of counts keyed by member, and a seeded PRNG.

Vectors are plain ``dict[str, int]`` (member -> count, missing means 0) so they travel
as-is in messages. The PRNG exists because cores may not import ``random``: a layer that
needs randomness (gossip peer choice) gets a seed and draws from ``SplitMix64``, so a run
is reproducible from its seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

import attrs

__all__ = ["LamportClock", "SplitMix64", "vector_leq", "vector_max", "vector_min"]

T = TypeVar("T")
_MASK = (1 << 64) - 1


def vector_leq(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """``a <= b`` component-wise (missing entries count as 0)."""
    return all(count <= b.get(key, 0) for key, count in a.items())


def vector_max(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Component-wise maximum."""
    merged = dict(a)
    for key, count in b.items():
        if count > merged.get(key, 0):
            merged[key] = count
    return merged


def vector_min(vectors: Iterable[Mapping[str, int]], keys: Iterable[str]) -> dict[str, int]:
    """Component-wise minimum over ``vectors``, for each of ``keys``."""
    rows = list(vectors)
    return {key: min((row.get(key, 0) for row in rows), default=0) for key in keys}


@attrs.define
class LamportClock:
    """A Lamport clock: ``tick()`` before sending, ``observe(t)`` on receipt."""

    time: int = 0

    def tick(self) -> int:
        self.time += 1
        return self.time

    def observe(self, other: int) -> int:
        self.time = max(self.time, other) + 1
        return self.time


@attrs.define
class SplitMix64:
    """A tiny deterministic 64-bit PRNG (SplitMix64) seeded by the caller."""

    state: int = 0

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """A number in ``range(n)`` (tiny modulo bias is fine for peer choice)."""
        return self.next() % n

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        """``k`` distinct items (all of them if fewer), chosen by partial Fisher-Yates."""
        if k < 0:
            raise ValueError(f"cannot sample {k} items")
        pool = list(items)
        k = min(k, len(pool))
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]
