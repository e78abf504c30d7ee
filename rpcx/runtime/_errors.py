"""The one mapping from transport and status failures to :mod:`rpcx.errors`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import trio

from rpcx.errors import Cancelled, DeadlineExceeded, RemoteError, RpcError, Unavailable
from rpcx.status import Status

__all__ = ["error_for", "map_stream_errors"]


def error_for(status: Status, message: str, details: Mapping[str, Any] | None = None,
              ) -> RpcError:
    """The exception a caller sees for a failed call with ``status``."""
    if status is Status.DEADLINE_EXCEEDED:
        return DeadlineExceeded(message or "deadline exceeded", details)
    if status is Status.UNAVAILABLE:
        return Unavailable(message or "unavailable", details)
    if status is Status.CANCELLED:
        return Cancelled(message or "cancelled", details)
    return RemoteError(status, message, details)


@contextmanager
def map_stream_errors(what: str) -> Iterator[None]:
    """Turn a broken or unreachable stream into :class:`Unavailable` naming ``what``."""
    try:
        yield
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        # trio's errors often carry no message; the real cause (say, a certificate the
        # client does not trust) is then their __cause__.
        reason = str(exc) or str(exc.__cause__ or "") or type(exc).__name__
        raise Unavailable(f"{what}: connection lost ({reason})") from exc
    except OSError as exc:
        raise Unavailable(f"{what}: {exc.strerror or exc}") from exc
