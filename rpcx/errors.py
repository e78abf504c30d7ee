"""The rpcx exception tree.

::

    Exception
     +-- RpcxError                      anything rpcx raises
          +-- IdlError                  an .rpcx file is invalid (carries its diagnostics)
          +-- CodecError (ValueError)   a value could not be encoded or decoded (carries a path)
          +-- ProtocolError             the wire protocol was broken
          |    +-- LocalProtocolError   ... by this side: fix your code
          |    +-- RemoteProtocolError  ... by the peer
          +-- RpcError                  a call failed; has .code, .message, .details
               +-- DeclaredError        an IDL ``error`` raised by a handler (generated subclasses)
               +-- RemoteError          the server reported a status that is not a declared error
               +-- DeadlineExceeded     DEADLINE_EXCEEDED
               +-- Cancelled            CANCELLED
               +-- Unavailable          UNAVAILABLE

Messages are lower-case and never carry secrets; a message that may reach a peer names a
bad value in plain notation (:mod:`rpcx.text`), not with ``repr``.
"""

from __future__ import annotations

import datetime
import decimal
import enum
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rpcx.status import Status
from rpcx.text import describe, quote

if TYPE_CHECKING:
    from rpcx.compiler.diagnostics import Diagnostic

__all__ = [
    "Cancelled",
    "CodecError",
    "DeadlineExceeded",
    "DeclaredError",
    "IdlError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteError",
    "RemoteProtocolError",
    "RpcError",
    "RpcxError",
    "Unavailable",
]


class RpcxError(Exception):
    """Base of every exception rpcx raises on purpose."""


class IdlError(RpcxError):
    """One or more ``.rpcx`` files are invalid; ``diagnostics`` lists every problem."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))


class CodecError(RpcxError, ValueError):
    """A value could not be encoded or decoded.

    ``path`` is where the bad value sits (``card.expiry_date``, ``tags[2]``, ``prices["x"]``);
    empty for the top level. ``reason`` is the problem without the path.
    """

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)


class ProtocolError(RpcxError):
    """The wire protocol was broken."""


class LocalProtocolError(ProtocolError):
    """This side tried to do something the protocol does not allow (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class RpcError(RpcxError):
    """A call failed with a status ``code``, a human ``message`` and optional ``details``."""

    code: Status = Status.UNKNOWN
    outcome_unknown: bool = False
    """True when the request was sent and no answer came back (the connection was lost,
    the deadline passed while waiting): the call may or may not have taken effect. A
    retry with the same idempotency key is safe (the channel's own retries are such);
    False when the server answered, or the request never left this process (then the
    call definitely did not run)."""

    def __init__(self, code: Status, message: str = "",
                 details: Mapping[str, Any] | None = None) -> None:
        self.code = code
        self.message = message
        self.details: Mapping[str, Any] = dict(details or {})
        super().__init__(f"{code.name}: {message}" if message else code.name)


class RemoteError(RpcError):
    """The server answered with a status other than OK that is not a declared error."""


class DeadlineExceeded(RpcError):
    """The call's deadline passed before a reply arrived."""

    def __init__(self, message: str = "deadline exceeded",
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(Status.DEADLINE_EXCEEDED, message, details)


class Cancelled(RpcError):
    """The call was cancelled."""

    def __init__(self, message: str = "cancelled",
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(Status.CANCELLED, message, details)


class Unavailable(RpcError):
    """The server could not be reached or is going away."""

    def __init__(self, message: str = "unavailable",
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(Status.UNAVAILABLE, message, details)


class DeclaredError(RpcError):
    """Base of the exception classes generated for IDL ``error`` declarations.

    Generated subclasses are attrs classes whose fields are the error's fields. A handler
    raises one; the client receives the same class with the same field values. The status
    code is ``FAILED_PRECONDITION`` unless the subclass sets ``rpcx_code``.
    """

    rpcx_code: ClassVar[Status] = Status.FAILED_PRECONDITION

    def __attrs_post_init__(self) -> None:
        RpcError.__init__(self, self.rpcx_code, self._describe())

    def __str__(self) -> str:
        return self.message

    def _describe(self) -> str:
        spec = getattr(type(self), "__rpcx_spec__", None)
        name = spec.name if spec is not None else type(self).__name__
        parts = [f"{attr.name}: {_field_text(getattr(self, attr.name))}"
                 for attr in getattr(type(self), "__attrs_attrs__", ())]
        return f"{name} {{{', '.join(parts)}}}" if parts else name


def _field_text(value: object) -> str:
    """A declared error's field in its message: plain notation, never a Python repr (the
    message travels to peers in any language)."""
    if isinstance(value, str):
        return quote(value, 200)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, decimal.Decimal):
        text = str(value)
        return text if len(text) <= 40 else "a decimal"
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if value is None or isinstance(value, int | float | bytes | list | tuple | dict):
        return describe(value)
    return type(value).__name__
