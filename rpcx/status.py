"""Status codes: gRPC's set, with the same numbers, so tools and people who know gRPC
read rpcx errors without a table.

Each member's docstring says when rpcx uses it. :data:`RETRYABLE` lists the codes a
retry policy may retry by default.
"""

from __future__ import annotations

import enum

__all__ = ["RETRYABLE", "Status"]


class Status(enum.IntEnum):
    """The outcome of a call, carried on the wire as an unsigned integer."""

    OK = 0
    """The call succeeded."""
    CANCELLED = 1
    """The caller cancelled the call."""
    UNKNOWN = 2
    """An error the server could not classify (for example, from another framework)."""
    INVALID_ARGUMENT = 3
    """The arguments could not be decoded or failed validation; the message names the field."""
    DEADLINE_EXCEEDED = 4
    """The deadline passed before the call completed."""
    NOT_FOUND = 5
    """A requested entity was not found."""
    ALREADY_EXISTS = 6
    """An entity the call tried to create already exists."""
    PERMISSION_DENIED = 7
    """The caller is known but may not do this."""
    RESOURCE_EXHAUSTED = 8
    """A limit was hit: message size, concurrent calls, a quota."""
    FAILED_PRECONDITION = 9
    """The system is not in a state where the call can run."""
    ABORTED = 10
    """The call was aborted, typically by a concurrency conflict."""
    OUT_OF_RANGE = 11
    """A value was past the valid range."""
    UNIMPLEMENTED = 12
    """The server does not know the service or method."""
    INTERNAL = 13
    """The handler raised an exception that is not part of the method's contract."""
    UNAVAILABLE = 14
    """The server could not be reached, or is shutting down; safe to retry."""
    DATA_LOSS = 15
    """Unrecoverable data loss or corruption."""
    UNAUTHENTICATED = 16
    """The call carried no valid credentials."""


RETRYABLE: frozenset[Status] = frozenset({Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED,
                                          Status.RESOURCE_EXHAUSTED, Status.ABORTED})
"""Codes that a retry policy retries by default (only for calls that are safe to retry)."""
