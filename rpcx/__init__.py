"""rpcx: typed, pluggable RPC for Python on trio.

Everything an application needs is importable from here; the submodules hold the
implementation. Generated modules import :mod:`rpcx.stubs`.
"""

from __future__ import annotations

from rpcx.codec import CborCodec as CborCodec
from rpcx.codec import Codec as Codec
from rpcx.codec import JsonCodec as JsonCodec
from rpcx.codec import get_codec as get_codec
from rpcx.compiler import CompileResult as CompileResult
from rpcx.compiler import compile_files as compile_files
from rpcx.errors import Cancelled as Cancelled
from rpcx.errors import CodecError as CodecError
from rpcx.errors import DeadlineExceeded as DeadlineExceeded
from rpcx.errors import DeclaredError as DeclaredError
from rpcx.errors import IdlError as IdlError
from rpcx.errors import LocalProtocolError as LocalProtocolError
from rpcx.errors import ProtocolError as ProtocolError
from rpcx.errors import RemoteError as RemoteError
from rpcx.errors import RemoteProtocolError as RemoteProtocolError
from rpcx.errors import RpcError as RpcError
from rpcx.errors import RpcxError as RpcxError
from rpcx.errors import Unavailable as Unavailable
from rpcx.gateway import HttpServer as HttpServer
from rpcx.gateway import open_http_server as open_http_server
from rpcx.gateway import openapi_document as openapi_document
from rpcx.gateway import serve_http as serve_http
from rpcx.runtime.channel import Channel as Channel
from rpcx.runtime.channel import ChannelStatistics as ChannelStatistics
from rpcx.runtime.channel import open_channel as open_channel
from rpcx.runtime.interceptors import CallInfo as CallInfo
from rpcx.runtime.interceptors import ClientInterceptor as ClientInterceptor
from rpcx.runtime.interceptors import LoggingInterceptor as LoggingInterceptor
from rpcx.runtime.interceptors import ServerInterceptor as ServerInterceptor
from rpcx.runtime.interceptors import TokenAuth as TokenAuth
from rpcx.runtime.options import current_deadline as current_deadline
from rpcx.runtime.options import current_idempotency_key as current_idempotency_key
from rpcx.runtime.options import incoming_metadata as incoming_metadata
from rpcx.runtime.replicas import ReplicaChannel as ReplicaChannel
from rpcx.runtime.retry import NO_RETRY as NO_RETRY
from rpcx.runtime.retry import RetryPolicy as RetryPolicy
from rpcx.runtime.server import Server as Server
from rpcx.runtime.server import ServerStatistics as ServerStatistics
from rpcx.runtime.server import open_server as open_server
from rpcx.runtime.server import serve as serve
from rpcx.schema import MISSING as MISSING
from rpcx.schema import EnumSpec as EnumSpec
from rpcx.schema import FieldSpec as FieldSpec
from rpcx.schema import Kind as Kind
from rpcx.schema import MethodSpec as MethodSpec
from rpcx.schema import OpenEnum as OpenEnum
from rpcx.schema import ServiceSpec as ServiceSpec
from rpcx.schema import StructSpec as StructSpec
from rpcx.schema import TypeRef as TypeRef
from rpcx.schema import UnionSpec as UnionSpec
from rpcx.schema import spec_of as spec_of
from rpcx.status import RETRYABLE as RETRYABLE
from rpcx.status import Status as Status
from rpcx.transport import LinkFaults as LinkFaults
from rpcx.transport import MemoryTransport as MemoryTransport
from rpcx.transport import SimNetwork as SimNetwork
from rpcx.transport import TcpTransport as TcpTransport
from rpcx.transport import TlsTransport as TlsTransport
from rpcx.transport import Transport as Transport
from rpcx.transport import UnixTransport as UnixTransport

__version__ = "0.1.0"

__all__ = [
    "MISSING",
    "NO_RETRY",
    "RETRYABLE",
    "CallInfo",
    "Cancelled",
    "CborCodec",
    "Channel",
    "ChannelStatistics",
    "ClientInterceptor",
    "Codec",
    "CodecError",
    "CompileResult",
    "DeadlineExceeded",
    "DeclaredError",
    "EnumSpec",
    "FieldSpec",
    "HttpServer",
    "IdlError",
    "JsonCodec",
    "Kind",
    "LinkFaults",
    "LocalProtocolError",
    "LoggingInterceptor",
    "MemoryTransport",
    "MethodSpec",
    "OpenEnum",
    "ProtocolError",
    "RemoteError",
    "RemoteProtocolError",
    "ReplicaChannel",
    "RetryPolicy",
    "RpcError",
    "RpcxError",
    "Server",
    "ServerInterceptor",
    "ServerStatistics",
    "ServiceSpec",
    "SimNetwork",
    "Status",
    "StructSpec",
    "TcpTransport",
    "TlsTransport",
    "TokenAuth",
    "Transport",
    "TypeRef",
    "Unavailable",
    "UnionSpec",
    "UnixTransport",
    "compile_files",
    "current_deadline",
    "current_idempotency_key",
    "get_codec",
    "incoming_metadata",
    "open_channel",
    "open_http_server",
    "open_server",
    "openapi_document",
    "serve",
    "serve_http",
    "spec_of",
]


def _fix_module_names() -> None:
    """Show ``rpcx.Status``, not ``rpcx.status.Status``, in reprs, docs and tracebacks."""
    for name in __all__:
        obj = globals()[name]
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and module.startswith("rpcx.") and (
                isinstance(obj, type) or callable(obj)):
            obj.__module__ = "rpcx"


_fix_module_names()
