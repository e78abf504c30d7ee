"""Interceptors: an ordered chain around every call, on the client and on the server.

An interceptor sees the call (method, metadata, deadline) and decides: pass it on with
``await proceed(call)`` (possibly after changing its metadata), or short-circuit by
returning a value or raising an :class:`~rpcx.errors.RpcError` without calling ``proceed``.
The first interceptor in the list is the outermost.

Shipped: :class:`TokenAuth` (client adds a bearer token; server rejects calls without a
valid one with ``UNAUTHENTICATED``) and :class:`LoggingInterceptor`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

import attrs
import trio

from rpcx.errors import RpcError
from rpcx.schema import MethodSpec
from rpcx.status import Status

__all__ = [
    "CallInfo",
    "ClientInterceptor",
    "LoggingInterceptor",
    "Proceed",
    "ServerInterceptor",
    "TokenAuth",
    "run_chain",
]


@attrs.define
class CallInfo:
    """One call as interceptors see it. ``metadata`` may be changed on the way in."""

    method: MethodSpec
    metadata: dict[str, str]
    deadline: float
    """Absolute trio time; ``inf`` for none."""
    args: tuple[Any, ...] = ()
    peer: str = ""
    """Server side: who called (the transport's description of the remote end)."""


Proceed = Callable[[CallInfo], Awaitable[Any]]


class ClientInterceptor(Protocol):
    async def intercept_client(self, call: CallInfo, proceed: Proceed) -> Any: ...


class ServerInterceptor(Protocol):
    async def intercept_server(self, call: CallInfo, proceed: Proceed) -> Any: ...


async def run_chain(links: Sequence[Callable[[CallInfo, Proceed], Awaitable[Any]]],
                    call: CallInfo, final: Proceed) -> Any:
    """Run ``call`` through ``links`` (outermost first), ending at ``final``."""
    if not links:
        return await final(call)

    async def step(index: int, current: CallInfo) -> Any:
        if index == len(links):
            return await final(current)
        return await links[index](current, lambda nxt: step(index + 1, nxt))

    return await step(0, call)


class TokenAuth:
    """Bearer-token authentication, usable on both sides.

    Client: ``TokenAuth(token="s3cret")`` adds ``authorization: Bearer s3cret``.
    Server: ``TokenAuth(accept={"s3cret"})`` (or ``verify=callable``) rejects calls whose
    token is missing or wrong with ``UNAUTHENTICATED``. Tokens are compared in constant
    time and never echoed back.
    """

    def __init__(self, *, token: str | None = None, accept: Iterable[str] = (),
                 verify: Callable[[str], bool] | None = None) -> None:
        self._token = token
        self._accept = [t.encode() for t in accept]
        self._verify = verify

    async def intercept_client(self, call: CallInfo, proceed: Proceed) -> Any:
        if self._token is not None:
            call.metadata["authorization"] = f"Bearer {self._token}"
        return await proceed(call)

    def _valid(self, token: str) -> bool:
        if self._verify is not None:
            return self._verify(token)
        given = token.encode()
        return any(hmac.compare_digest(given, t) for t in self._accept)

    async def intercept_server(self, call: CallInfo, proceed: Proceed) -> Any:
        header = call.metadata.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise RpcError(Status.UNAUTHENTICATED, "missing bearer token")
        if not self._valid(token):
            raise RpcError(Status.UNAUTHENTICATED, "invalid bearer token")
        return await proceed(call)


class LoggingInterceptor:
    """Logs each call's method, outcome and duration at INFO (failures at WARNING)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("rpcx.calls")

    async def _log(self, side: str, call: CallInfo, proceed: Proceed) -> Any:
        start = trio.current_time()
        try:
            result = await proceed(call)
        except RpcError as exc:
            self.logger.warning("%s %s -> %s (%.1f ms)", side, call.method.path,
                                exc.code.name, (trio.current_time() - start) * 1000)
            raise
        self.logger.info("%s %s -> OK (%.1f ms)", side, call.method.path,
                         (trio.current_time() - start) * 1000)
        return result

    async def intercept_client(self, call: CallInfo, proceed: Proceed) -> Any:
        return await self._log("call", call, proceed)

    async def intercept_server(self, call: CallInfo, proceed: Proceed) -> Any:
        return await self._log("serve", call, proceed)
