"""Per-call options and deadline propagation.

A call's deadline is absolute trio time. It comes from, in order: the ``timeout=`` passed
to the stub, else the method's ``@deadline``, else the channel's default. Inside a
handler, the deadline of the call being handled is the *ambient* deadline
(:func:`current_deadline`); any call the handler makes is bounded by it automatically, so a
chain of services never works past the moment the first caller stopped waiting.
"""

from __future__ import annotations

import contextvars
import math
import types
from collections.abc import Callable, Mapping

import trio

from rpcx.schema import MethodSpec

__all__ = ["current_deadline", "current_idempotency_key", "deadline_scope", "effective_deadline",
           "enter_call", "incoming_metadata"]

_Ambient = tuple[float, Mapping[str, str], bytes | None]
"""The RPC being handled: its deadline, its metadata, its idempotency key."""
_NO_CALL: _Ambient = (math.inf, types.MappingProxyType({}), None)
_ambient: contextvars.ContextVar[_Ambient] = contextvars.ContextVar(
    "rpcx_call", default=_NO_CALL)
"""One context variable for the three (each ``set`` copies the context's mapping)."""


def current_deadline() -> float:
    """The deadline (trio time) of the RPC being handled by this task, or ``inf``."""
    return _ambient.get()[0]


def incoming_metadata() -> Mapping[str, str]:
    """The metadata of the RPC being handled by this task (empty outside a handler)."""
    return _ambient.get()[1]


def current_idempotency_key() -> bytes | None:
    """The idempotency key of the RPC being handled by this task: the key a client sends
    with every non-idempotent call, the same on each retry (None for an ``@idempotent``
    or one-way call, and outside a handler). A handler that forwards the call elsewhere
    (a replicated service does) passes it on so the retry is recognised there too."""
    return _ambient.get()[2]


class deadline_scope:
    """Make ``deadline``, ``metadata`` and the idempotency ``key`` ambient for the code
    inside (the server uses this around each handler). A class rather than a generator:
    it is on every call's path."""

    __slots__ = ("_deadline", "_key", "_metadata", "_token")

    def __init__(self, deadline: float, metadata: Mapping[str, str],
                 key: bytes | None = None) -> None:
        self._deadline = deadline
        self._metadata = metadata
        self._key = key

    def __enter__(self) -> None:
        self._token = _ambient.set((self._deadline, self._metadata, self._key))

    def __exit__(self, *exc: object) -> None:
        _ambient.reset(self._token)


def enter_call(deadline: float, metadata: Mapping[str, str], key: bytes | None) -> None:
    """What :class:`deadline_scope` makes ambient, set for good: only for code that runs
    in a ``contextvars`` context of its own, which ends with it (a job of the server's
    reader: ``rpcx.runtime.link``), so nothing needs resetting."""
    _ambient.set((deadline, metadata, key))


def effective_deadline(method: MethodSpec, timeout: float | None,
                       default_timeout: float | None,
                       now: Callable[[], float] = trio.current_time) -> float:
    """The absolute deadline for a new call: its own timeout, capped by the ambient one.
    (``now``: the time, as ``trio.current_time`` gives it; a channel passes its
    connection's cheaper reading of the same clock, ``Link.now``.)"""
    chosen = timeout if timeout is not None else (
        method.deadline if method.deadline is not None else default_timeout)
    own = math.inf if chosen is None else now() + chosen
    return min(own, _ambient.get()[0])
