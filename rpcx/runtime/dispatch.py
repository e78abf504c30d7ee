"""Method path → handler, and the one mapping between handler outcomes and replies.

Server side, :meth:`Dispatcher.dispatch` decodes the arguments, runs the handler and turns
whatever happened into a :data:`Reply`:

- a return value → :class:`Success` with the encoded result;
- an IDL error the method ``throws`` → :class:`Failure` with the error's qualified name
  and its encoded fields, so the client can raise the same generated class;
- an :class:`~rpcx.errors.RpcError` → its code, message and details;
- undecodable arguments → ``INVALID_ARGUMENT`` naming the field, in the message and in
  the details (``field``, ``expected``, ``reason``: :mod:`rpcx.runtime.arguments`);
- anything else → ``INTERNAL`` with a safe message; the traceback is logged, never sent.

Client side, :func:`unpack_reply` turns a reply back into a value or an exception.
Transports and framing are elsewhere: this module sees only bytes and codecs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from rpcx._mypyc import mypyc_attr
from rpcx.codec.base import Codec
from rpcx.errors import CodecError, DeclaredError, RemoteError, RpcError
from rpcx.runtime.arguments import invalid_arguments
from rpcx.runtime.interceptors import CallInfo, ServerInterceptor, run_chain
from rpcx.runtime.options import deadline_scope
from rpcx.schema import MethodSpec, ServiceSpec, StructSpec, spec_of, struct_ref
from rpcx.status import Status
from rpcx.text import lower_start, quote

__all__ = ["Dispatcher", "Failure", "Reply", "Success", "service_spec", "unpack_reply"]

logger = logging.getLogger("rpcx.server")


@mypyc_attr(native_class=False)
@attrs.frozen
class Success:
    payload: bytes
    """The encoded result (empty for a method that returns nothing)."""


@mypyc_attr(native_class=False)
@attrs.frozen
class Failure:
    status: Status
    message: str
    details: Mapping[str, Any] = attrs.field(factory=dict)
    error_name: str | None = None
    """Qualified name of a declared IDL error (``payments.CardDeclined``)."""
    error_payload: bytes | None = None
    """The declared error's fields, encoded like a struct."""
    local: bool = False
    """Made by the client, not sent by the server: the connection ended or the deadline
    passed after the request was sent (the outcome is unknown)."""


Reply = Success | Failure

Handler = Callable[..., Awaitable[Any]]


@mypyc_attr(native_class=False)
@attrs.frozen
class Route:
    method: MethodSpec
    handler: Handler


def service_spec(impl: object) -> ServiceSpec:
    """The spec of the generated service class ``impl`` implements."""
    for klass in type(impl).__mro__:
        spec = klass.__dict__.get("__rpcx_spec__")
        if isinstance(spec, ServiceSpec):
            return spec
    raise TypeError(f"{impl!r} does not implement a generated rpcx service base class")


class Dispatcher:
    """Routes ``package.Service/method`` to the implementations it was given."""

    def __init__(self, services: Iterable[object],
                 interceptors: Sequence[ServerInterceptor] = ()) -> None:
        self._interceptors = [i.intercept_server for i in interceptors]
        self._routes: dict[str, Route] = {}
        self.streaming: dict[str, MethodSpec] = {}
        """The streaming methods by path (``rpcx.runtime.streams`` runs them)."""
        self.services: list[ServiceSpec] = []
        for impl in services:
            spec = service_spec(impl)
            if any(s.name == spec.name for s in self.services):
                raise ValueError(f"service {spec.name!r} is registered twice")
            self.services.append(spec)
            for method in spec.methods:
                self._routes[method.path] = Route(method, getattr(impl, method.py_name))
                if method.streaming is not None:
                    self.streaming[method.path] = method

    def lookup(self, path: str) -> Route | None:
        return self._routes.get(path)

    @property
    def interceptors(self) -> Sequence[Callable[[CallInfo, Any], Awaitable[Any]]]:
        """The server interceptors' ``intercept_server``, outermost first (streaming
        calls run through them too: ``rpcx.runtime.streams``)."""
        return self._interceptors

    def unary_route(self, path: str) -> Route | None:
        """The route of a unary method when a call to it may skip :meth:`dispatch`'s
        general path (no server interceptors): the server's fast path runs the same
        steps itself (:meth:`decode_args`, the handler, :meth:`result_reply` or
        :meth:`failure`). None otherwise (unknown or streaming method, interceptors)."""
        if self._interceptors or (self.streaming and path in self.streaming):
            return None
        return self._routes.get(path)

    async def dispatch(self, path: str, payload: bytes, codec: Codec, *,
                       metadata: Mapping[str, str] | None = None,
                       deadline: float = math.inf, peer: str = "",
                       idempotency_key: bytes | None = None) -> Reply:
        """Run the call through the server interceptors and the handler. The handler sees
        ``deadline``, ``metadata`` and ``idempotency_key`` as ambient
        (:func:`rpcx.current_deadline`, :func:`rpcx.current_idempotency_key`), so its own
        outgoing calls inherit the deadline. Cancelling it at the deadline is the caller's
        job (the server cancels the task a waiting handler runs in)."""
        route = self._routes.get(path)
        if route is None:
            return Failure(Status.UNIMPLEMENTED, f"unknown method {quote(path, 200)}")
        method = route.method
        if self.streaming and path in self.streaming:
            return Failure(Status.FAILED_PRECONDITION,
                           f"{quote(path, 200)} streams: it cannot be called as a unary call")
        try:
            if self._interceptors:
                async def invoke(call: CallInfo) -> Any:
                    call.args = self.decode_args(route, payload, codec)
                    with deadline_scope(call.deadline, call.metadata, idempotency_key):
                        return await route.handler(*call.args)

                info = CallInfo(method, dict(metadata) if metadata else {}, deadline,
                                peer=peer)
                result = await run_chain(self._interceptors, info, invoke)
            else:
                # The same steps without the chain: no CallInfo, no closure.
                args = self.decode_args(route, payload, codec)
                with deadline_scope(deadline, dict(metadata) if metadata else {},
                                    idempotency_key):
                    result = await route.handler(*args)
        except Exception as exc:
            return self.failure(method, exc, codec)
        reply = self.result_reply(method, result, codec)
        return Success(reply) if isinstance(reply, bytes) else reply

    @staticmethod
    def decode_args(route: Route, payload: bytes, codec: Codec) -> Any:
        """The handler's arguments; undecodable ones raise INVALID_ARGUMENT."""
        method = route.method
        try:
            return codec.decode(method.params, payload)
        except CodecError as exc:
            raise invalid_arguments(method.path, method.params, exc) from None

    @staticmethod
    def failure(method: MethodSpec, exc: Exception, codec: Codec) -> Failure:
        """The reply to a handler (or its arguments) that raised ``exc``."""
        if isinstance(exc, DeclaredError):
            return _declared_failure(method, exc, codec)
        if isinstance(exc, RpcError):
            # A handler's words go out as written, but in lower case (protocol.md § 4.3)
            return Failure(exc.code, lower_start(exc.message), exc.details)
        logger.error("handler for %s raised", method.path, exc_info=exc)
        return Failure(Status.INTERNAL, f"internal error in {method.path}")

    @staticmethod
    def result_reply(method: MethodSpec, result: Any, codec: Codec) -> bytes | Failure:
        """The encoded result a handler returned (a successful reply's payload), or the
        failure to send when it does not encode."""
        if method.result is None:
            return b""
        try:
            return codec.encode(method.result, result)
        except CodecError as exc:
            logger.error("handler for %s returned an invalid result: %s", method.path, exc)
            return Failure(Status.INTERNAL, f"internal error in {method.path}: invalid result")


def _declared_failure(method: MethodSpec, exc: DeclaredError, codec: Codec) -> Failure:
    if type(exc) not in method.throws:
        logger.error("handler for %s raised %r, which the method does not declare",
                     method.path, exc)
        return Failure(Status.INTERNAL, f"internal error in {method.path}")
    spec = spec_of(type(exc))
    assert isinstance(spec, StructSpec)
    try:
        payload = codec.encode(struct_ref(type(exc)), exc)
    except CodecError as err:
        logger.error("handler for %s raised an invalid %s: %s", method.path, spec.name, err)
        return Failure(Status.INTERNAL, f"internal error in {method.path}")
    return Failure(exc.code, exc.message, error_name=spec.name, error_payload=payload)


def unpack_reply(method: MethodSpec, reply: Reply, codec: Codec) -> Any:
    """The call's result, or raise what the server reported.

    A declared error arrives as its generated class. A payload that does not decode is
    reported as ``INTERNAL`` on the client with the codec's message (the server broke the
    contract, or the schemas have diverged).
    """
    if isinstance(reply, Success):
        if method.result is None:
            return None
        try:
            return codec.decode(method.result, reply.payload)
        except CodecError as exc:
            raise RemoteError(Status.INTERNAL,
                              f"undecodable result from {method.path}: {exc}") from None
    if reply.error_name is not None and reply.error_payload is not None:
        for cls in method.throws:
            if spec_of(cls).name == reply.error_name:
                try:
                    error = codec.decode(struct_ref(cls), reply.error_payload)
                except CodecError as exc:
                    raise RemoteError(
                        Status.INTERNAL,
                        f"undecodable {reply.error_name} from {method.path}: {exc}") from None
                assert isinstance(error, DeclaredError)
                raise error
    raise RemoteError(reply.status, reply.message, reply.details)
