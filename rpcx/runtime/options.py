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
from collections.abc import Mapping

import trio

from rpcx.schema import MethodSpec

__all__ = ["current_deadline", "deadline_scope", "effective_deadline", "incoming_metadata"]

_ambient_deadline: contextvars.ContextVar[float] = contextvars.ContextVar(
    "rpcx_deadline", default=math.inf)
_incoming_metadata: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "rpcx_metadata", default=types.MappingProxyType({}))


def current_deadline() -> float:
    """The deadline (trio time) of the RPC being handled by this task, or ``inf``."""
    return _ambient_deadline.get()


def incoming_metadata() -> Mapping[str, str]:
    """The metadata of the RPC being handled by this task (empty outside a handler)."""
    return _incoming_metadata.get()


class deadline_scope:
    """Make ``deadline`` and ``metadata`` ambient for the code inside (the server uses this
    around each handler). A class rather than a generator: it is on every call's path."""

    __slots__ = ("_deadline", "_metadata", "_tokens")

    def __init__(self, deadline: float, metadata: Mapping[str, str]) -> None:
        self._deadline = deadline
        self._metadata = metadata

    def __enter__(self) -> None:
        self._tokens = (_ambient_deadline.set(self._deadline),
                        _incoming_metadata.set(self._metadata))

    def __exit__(self, *exc: object) -> None:
        deadline_token, metadata_token = self._tokens
        _incoming_metadata.reset(metadata_token)
        _ambient_deadline.reset(deadline_token)


def effective_deadline(method: MethodSpec, timeout: float | None,
                       default_timeout: float | None) -> float:
    """The absolute deadline for a new call: its own timeout, capped by the ambient one."""
    chosen = timeout if timeout is not None else (
        method.deadline if method.deadline is not None else default_timeout)
    own = math.inf if chosen is None else trio.current_time() + chosen
    return min(own, _ambient_deadline.get())
