"""Helpers for testing code that uses rpcx.

:class:`LocalChannel` serves service implementations in the same process: every call is
marshalled through a real codec and dispatched exactly as a server would, so a test sees
the same values, errors and validation as over a network, without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

from rpcx.codec import Codec, get_codec
from rpcx.errors import DeadlineExceeded
from rpcx.runtime.dispatch import Dispatcher, unpack_reply
from rpcx.runtime.options import effective_deadline
from rpcx.schema import MethodSpec

__all__ = ["LocalChannel"]


class LocalChannel:
    """An in-process channel: ``PaymentsClient(LocalChannel(MyPayments()))``.

    ``timeout`` (or the method's ``@deadline``) bounds each call; the handler is cancelled
    when it passes and the caller gets :class:`~rpcx.errors.DeadlineExceeded`. ``calls``
    records ``(method path, metadata)`` for each call, for assertions.
    """

    def __init__(self, *services: object, codec: Codec | None = None) -> None:
        self.codec = codec if codec is not None else get_codec("cbor")
        self.dispatcher = Dispatcher(services)
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def _roundtrip(self, method: MethodSpec, args: tuple[Any, ...],
                         timeout: float | None, metadata: Mapping[str, str] | None) -> Any:
        self.calls.append((method.path, dict(metadata or {})))
        payload = self.codec.encode(method.params, args)
        deadline = effective_deadline(method, timeout, None)
        with trio.move_on_at(deadline) as scope:
            # The handler sees the metadata and deadline, as it would behind a server.
            reply = await self.dispatcher.dispatch(method.path, payload, self.codec,
                                                   metadata=metadata, deadline=deadline)
        if scope.cancelled_caught:
            raise DeadlineExceeded(f"{method.path} passed its deadline")
        return unpack_reply(method, reply, self.codec)

    async def call(self, method: MethodSpec, args: tuple[Any, ...], *,
                   timeout: float | None = None,
                   metadata: Mapping[str, str] | None = None) -> Any:
        return await self._roundtrip(method, args, timeout, metadata)

    async def call_oneway(self, method: MethodSpec, args: tuple[Any, ...], *,
                          timeout: float | None = None,
                          metadata: Mapping[str, str] | None = None) -> None:
        """Runs the handler to completion and drops its outcome, as a server does for a
        one-way call (in process, there is no one to hand it to)."""
        self.calls.append((method.path, dict(metadata or {})))
        payload = self.codec.encode(method.params, args)  # bad arguments raise here
        deadline = effective_deadline(method, timeout, None)
        with trio.move_on_at(deadline):
            await self.dispatcher.dispatch(method.path, payload, self.codec,
                                           metadata=metadata, deadline=deadline)
