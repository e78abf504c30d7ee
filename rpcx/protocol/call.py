"""The per-call lifecycle: one explicit ``(role, state, input) → state`` table.

All call-level transition logic lives in :data:`TRANSITIONS`; the connection only feeds
inputs in. A pair missing from the table raises
:class:`~rpcx.errors.LocalProtocolError` (if this side's own action was not allowed) or
:class:`~rpcx.errors.RemoteProtocolError` (if the peer's frame was not allowed), naming
the role, the state and the input. ``docs/protocol.md`` shows :func:`render_table`'s
output; a test keeps the two identical.
"""

from __future__ import annotations

import enum
from typing import Final

from rpcx.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "TRANSITIONS",
    "Call",
    "CallInput",
    "CallState",
    "Role",
    "render_mermaid",
    "render_table",
]


class Role(enum.Enum):
    """Which end of the connection this is; only clients start calls."""

    # Members are singletons compared by identity, so the identity hash is consistent
    # with ==, and dict lookups (the transition table, per call) skip Enum's Python-level
    # __hash__.
    __hash__ = object.__hash__

    CLIENT = "client"
    SERVER = "server"


class CallState(enum.Enum):
    """Where one call is in its life."""

    __hash__ = object.__hash__  # see Role

    IDLE = "idle"
    """Created, nothing sent or received yet."""
    AWAITING_REPLY = "awaiting_reply"
    """Client: REQUEST sent, waiting for RESPONSE or ERROR."""
    RUNNING = "running"
    """Server: REQUEST received, the handler runs; exactly one answer is owed."""
    RUNNING_ONEWAY = "running_oneway"
    """Server: a one-way REQUEST's handler runs; no answer may be sent."""
    DONE = "done"
    """Terminal; the connection forgets the call."""


class CallInput(enum.Enum):
    """What can happen to a call. ``SEND_*`` are this side's acts, ``RECV_*`` the peer's."""

    __hash__ = object.__hash__  # see Role

    SEND_REQUEST = "send_request"
    SEND_ONEWAY = "send_oneway"
    RECV_REQUEST = "recv_request"
    RECV_ONEWAY = "recv_oneway"
    REJECT = "reject"
    """Server: refused before running (limit reached, shutting down, frame too large)."""
    SEND_RESPONSE = "send_response"
    SEND_ERROR = "send_error"
    RECV_RESPONSE = "recv_response"
    RECV_ERROR = "recv_error"
    REPLY_TOO_LARGE = "reply_too_large"
    """Client: the reply frame exceeded ``max_frame_size`` and was skipped."""
    SEND_CANCEL = "send_cancel"
    RECV_CANCEL = "recv_cancel"
    HANDLER_DONE = "handler_done"
    """Server: a one-way handler finished (:meth:`Connection.finish_oneway`)."""
    DEADLINE = "deadline"
    """``handle_timeout`` found the call's deadline passed."""
    CONNECTION_LOST = "connection_lost"
    """EOF, keepalive timeout, a protocol error or an unprocessed call after GOAWAY."""


_C, _S = Role.CLIENT, Role.SERVER
_St, _In = CallState, CallInput

TRANSITIONS: Final[dict[tuple[Role, CallState, CallInput], CallState]] = {
    # client
    (_C, _St.IDLE, _In.SEND_REQUEST): _St.AWAITING_REPLY,
    (_C, _St.IDLE, _In.SEND_ONEWAY): _St.DONE,
    (_C, _St.AWAITING_REPLY, _In.RECV_RESPONSE): _St.DONE,
    (_C, _St.AWAITING_REPLY, _In.RECV_ERROR): _St.DONE,
    (_C, _St.AWAITING_REPLY, _In.REPLY_TOO_LARGE): _St.DONE,
    (_C, _St.AWAITING_REPLY, _In.SEND_CANCEL): _St.DONE,
    (_C, _St.AWAITING_REPLY, _In.DEADLINE): _St.DONE,
    (_C, _St.AWAITING_REPLY, _In.CONNECTION_LOST): _St.DONE,
    # server
    (_S, _St.IDLE, _In.RECV_REQUEST): _St.RUNNING,
    (_S, _St.IDLE, _In.RECV_ONEWAY): _St.RUNNING_ONEWAY,
    (_S, _St.IDLE, _In.REJECT): _St.DONE,
    (_S, _St.RUNNING, _In.SEND_RESPONSE): _St.DONE,
    (_S, _St.RUNNING, _In.SEND_ERROR): _St.DONE,
    (_S, _St.RUNNING, _In.RECV_CANCEL): _St.DONE,
    (_S, _St.RUNNING, _In.DEADLINE): _St.DONE,
    (_S, _St.RUNNING, _In.CONNECTION_LOST): _St.DONE,
    (_S, _St.RUNNING_ONEWAY, _In.HANDLER_DONE): _St.DONE,
    (_S, _St.RUNNING_ONEWAY, _In.DEADLINE): _St.DONE,
    (_S, _St.RUNNING_ONEWAY, _In.CONNECTION_LOST): _St.DONE,
}
"""Every allowed ``(role, state, input)`` and the state it leads to."""

_REMOTE_INPUTS: Final = frozenset({
    _In.RECV_REQUEST, _In.RECV_ONEWAY, _In.RECV_RESPONSE, _In.RECV_ERROR, _In.RECV_CANCEL,
    _In.REPLY_TOO_LARGE,
})
"""Inputs caused by the peer's frames; a bad one is the peer's fault."""


class Call:
    """One call's state plus the bookkeeping the connection needs for it.

    A plain class (it was an attrs class): one is made per call on each side, and
    compiled builds make it a native class."""

    __slots__ = ("call_id", "deadline", "method", "role", "state")

    def __init__(self, role: Role, call_id: int, method: str = "",
                 deadline: float | None = None, state: CallState = CallState.IDLE) -> None:
        self.role = role
        self.call_id = call_id
        self.method = method
        self.deadline = deadline
        """Absolute, on this side's clock."""
        self.state = state

    def __repr__(self) -> str:
        return (f"Call(role={self.role!r}, call_id={self.call_id!r}, method={self.method!r}, "
                f"deadline={self.deadline!r}, state={self.state!r})")

    def apply(self, event: CallInput) -> CallState:
        """Move along the table; raise a ProtocolError naming role, state and input."""
        state = TRANSITIONS.get((self.role, self.state, event))
        if state is None:
            error: type[ProtocolError] = (
                RemoteProtocolError if event in _REMOTE_INPUTS else LocalProtocolError
            )
            raise error(
                f"call {self.call_id}: input {event.name} is not allowed in state "
                f"{self.state.name} for the {self.role.value}"
            )
        self.state = state
        return state


def render_table() -> str:
    """The transition table as Markdown, one row per allowed transition."""
    lines = ["| role | state | input | next state |", "|---|---|---|---|"]
    for (role, state, event), target in TRANSITIONS.items():
        lines.append(f"| {role.value} | {state.name} | {event.name} | {target.name} |")
    return "\n".join(lines) + "\n"


def render_mermaid(role: Role) -> str:
    """A Mermaid state diagram of ``role``'s transitions."""
    lines = ["stateDiagram-v2", f"    [*] --> {CallState.IDLE.name}"]
    for (r, state, event), target in TRANSITIONS.items():
        if r is role:
            lines.append(f"    {state.name} --> {target.name}: {event.name}")
    lines.append(f"    {CallState.DONE.name} --> [*]")
    return "\n".join(lines) + "\n"
