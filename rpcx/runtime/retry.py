"""Retry policy: exponential backoff with jitter, bounded by the call's deadline.

Which calls are retried is decided by the channel, not here: an ``@idempotent`` method, or
any unary call, because every non-idempotent call carries an idempotency key that the
server de-duplicates (a retried call executes at most once and gets the first execution's
result). One-way calls are never retried.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs

from rpcx.status import RETRYABLE, Status

__all__ = ["NO_RETRY", "RetryPolicy"]


def _probability(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1], got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _status_set(codes: Iterable[Status]) -> frozenset[Status]:
    return frozenset(codes)


@attrs.frozen
class RetryPolicy:
    """How a failed attempt is retried.

    Attempt ``n`` (1-based) that fails with a status in ``retryable`` is followed, after a
    backoff of ``min(max_backoff, initial_backoff * multiplier ** (n - 1))`` shortened by
    up to ``jitter`` of itself at random, by attempt ``n + 1``, up to ``max_attempts``. No
    attempt starts, and no backoff extends, past the call's deadline.

    ``attempt_timeout`` bounds one attempt (useful when replies may be lost, so an attempt
    can fail fast and be retried within the overall deadline); None means only the
    call's deadline bounds it.
    """

    max_attempts: int = attrs.field(default=4)
    initial_backoff: float = attrs.field(default=0.05, validator=_positive)
    max_backoff: float = attrs.field(default=2.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_probability)
    retryable: frozenset[Status] = attrs.field(default=RETRYABLE, converter=_status_set)
    attempt_timeout: float | None = None

    @max_attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value < 1:
            raise ValueError(f"max_attempts must be at least 1, got {value!r}")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter * rng.random())

    def with_codes(self, codes: Iterable[Status]) -> RetryPolicy:
        return attrs.evolve(self, retryable=frozenset(codes))


NO_RETRY = RetryPolicy(max_attempts=1)
"""A single attempt."""
