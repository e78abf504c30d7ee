"""The HTTP/JSON face of rpcx services and their OpenAPI description (``docs/http.md``)."""

from __future__ import annotations

from rpcx.gateway.openapi import openapi_document as openapi_document
from rpcx.gateway.server import DEFAULT_MAX_BODY_BYTES as DEFAULT_MAX_BODY_BYTES
from rpcx.gateway.server import HTTP_STATUS as HTTP_STATUS
from rpcx.gateway.server import HttpServer as HttpServer
from rpcx.gateway.server import open_http_server as open_http_server
from rpcx.gateway.server import serve_http as serve_http

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "HTTP_STATUS",
    "HttpServer",
    "open_http_server",
    "openapi_document",
    "serve_http",
]
