"""OpenAPI 3.1 for the HTTP face, from runtime :class:`~rpcx.schema.ServiceSpec` objects.

The one implementation behind both ``GET /openapi.json`` (the specs a server dispatches to)
and ``rpcx openapi FILE...`` (the specs of the modules generated from the files). Every
method is ``POST /PACKAGE.SERVICE/METHOD``; request and response bodies follow the JSON
mapping of ``docs/marshalling.md``, with each named type as a component schema
(``#/components/schemas/payments.Card``). Schemas describe what the server *writes*; where
the server is more lenient on input (an int as a string, a decimal as a number, an enum as
its number) the schema admits that too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rpcx.gateway.server import HTTP_STATUS
from rpcx.schema import (
    MISSING,
    EnumSpec,
    FieldSpec,
    Kind,
    MethodSpec,
    ServiceSpec,
    StructSpec,
    TypeRef,
    UnionSpec,
    spec_of,
)
from rpcx.status import Status

__all__ = ["openapi_document"]

_INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}
_DECIMAL_PATTERN = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
_ERROR_REF = {"$ref": "#/components/schemas/rpcx.Error"}
NDJSON = "application/x-ndjson"

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A failed call. `error` and `fields` are present for an error the "
                   "method declares in the IDL.",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {"type": "string", "enum": [s.name for s in Status if s is not Status.OK]},
        "message": {"type": "string"},
        "details": {"type": "object"},
        "error": {"type": "string", "description": "Qualified name of the declared error"},
        "fields": {"type": "object", "description": "The declared error's fields"},
    },
}

_ERROR_RESPONSES = {
    "400": "Malformed JSON, bad arguments (the message names the field), a declared error "
           "with status FAILED_PRECONDITION, INVALID_ARGUMENT or OUT_OF_RANGE",
    "401": "UNAUTHENTICATED", "403": "PERMISSION_DENIED",
    "404": "Unknown method (UNIMPLEMENTED) or NOT_FOUND",
    "409": "ALREADY_EXISTS or ABORTED", "413": "Request body too large",
    "415": "Content-Type is not application/json",
    "422": "The Idempotency-Key was used before with a different body (nothing ran)",
    "429": "RESOURCE_EXHAUSTED",
    "500": "INTERNAL, UNKNOWN or DATA_LOSS", "503": "UNAVAILABLE",
    "504": "DEADLINE_EXCEEDED",
}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {"rpcx.Error": _ERROR_SCHEMA}

    def ref(self, ref: TypeRef) -> dict[str, Any]:
        kind = ref.kind
        if kind is Kind.BOOL:
            return {"type": "boolean"}
        if kind is Kind.INT:
            # Written as a number; a decimal string is accepted too (JavaScript loses
            # precision past 2**53).
            return {"anyOf": [{"type": "integer", **_INT64},
                              {"type": "string", "pattern": r"^-?[0-9]{1,19}$"}],
                    "format": "int64"}
        if kind is Kind.FLOAT:
            return {"anyOf": [{"type": "number"},
                              {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}],
                    "format": "double"}
        if kind is Kind.DECIMAL:
            return {"anyOf": [{"type": "string", "pattern": _DECIMAL_PATTERN,
                               "maxLength": 40},
                              {"type": "number"}],
                    "format": "decimal",
                    "description": "An exact decimal number, written as a string (\"3.99\");"
                                   " a JSON number is accepted too (read exactly), at most "
                                   "19 digits"}
        if kind is Kind.STRING:
            return {"type": "string"}
        if kind is Kind.BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        if kind is Kind.TIMESTAMP:
            return {"type": "string", "format": "date-time"}
        if kind is Kind.LIST:
            assert ref.item is not None
            return {"type": "array", "items": self.ref(ref.item)}
        if kind is Kind.MAP:
            assert ref.item is not None and ref.key is not None
            schema: dict[str, Any] = {"type": "object",
                                      "additionalProperties": self.ref(ref.item)}
            if ref.key.kind is Kind.INT:
                schema["propertyNames"] = {"pattern": r"^-?[0-9]+$"}
            elif ref.key.kind is Kind.ENUM:
                schema["propertyNames"] = self.ref(ref.key)
            return schema
        if kind is Kind.OPTIONAL:
            assert ref.item is not None
            return {"anyOf": [self.ref(ref.item), {"type": "null"}]}
        assert ref.cls is not None
        return {"$ref": f"#/components/schemas/{self.named(ref.cls)}"}

    def named(self, cls: type[Any]) -> str:
        spec = spec_of(cls)
        if spec.name in self.components:
            return spec.name
        self.components[spec.name] = {}  # placeholder: recursive types end here
        if isinstance(spec, EnumSpec):
            # Written as a member name; a value this schema does not know is written as
            # its number, and numbers are accepted too.
            schema: dict[str, Any] = {"anyOf": [
                {"type": "string", "enum": [m.name for m in spec.cls]},
                {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}]}
        elif isinstance(spec, UnionSpec):
            schema = {"type": "object", "minProperties": 1, "maxProperties": 1,
                      "oneOf": [{"type": "object", "required": [v.name],
                                 "properties": {v.name: self.ref(v.type)}}
                                for v in spec.variants],
                      "description": "Exactly one of: "
                                     + ", ".join(v.name for v in spec.variants)}
        else:
            assert isinstance(spec, StructSpec)
            schema = self.object(spec.fields)
        if spec.doc:
            schema["description"] = spec.doc
        self.components[spec.name] = schema
        return spec.name

    def object(self, fields: Sequence[FieldSpec]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for field in fields:
            prop = self.ref(field.type)
            if field.doc:
                prop = {**prop, "description": field.doc}
            properties[field.name] = prop
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        required = [f.name for f in fields if f.default is MISSING]
        if required:
            schema["required"] = required
        return schema


def _operation(method: MethodSpec, schemas: _Schemas) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if method.oneway:
        responses["202"] = {"description": "Accepted (one-way: no result)"}
    elif method.server_stream and method.client_stream is None:
        assert method.result is not None
        responses["200"] = {
            "description": "A stream, sent as it comes: newline-delimited JSON, one "
                           '{"message": ITEM} line per item, then one {"end": STATUS} '
                           'line (code "OK", or the error body of a call that failed '
                           "after its first item)",
            "content": {NDJSON: {"schema": {"oneOf": [
                {"type": "object", "required": ["message"],
                 "properties": {"message": schemas.ref(method.result)}},
                {"type": "object", "required": ["end"],
                 "properties": {"end": _ERROR_REF}},
            ]}}}}
    elif method.client_stream is not None:
        pass  # refused over HTTP (400): described below
    else:
        result = {"type": "null"} if method.result is None else schemas.ref(method.result)
        responses["200"] = {"description": "The result",
                            "content": {"application/json": {"schema": result}}}
    for status, description in _ERROR_RESPONSES.items():
        responses[status] = {"description": description,
                             "content": {"application/json": {"schema": _ERROR_REF}}}
    description = method.doc
    if method.throws:
        declared = ", ".join(
            f"{spec_of(cls).name} (HTTP {HTTP_STATUS[cls.rpcx_code]}, {cls.rpcx_code.name})"
            for cls in method.throws)
        description += f"\n\nDeclared errors: {declared}."
        for cls in method.throws:
            schemas.named(cls)
    if method.client_stream is not None:
        description += ("\n\nStreams from the client (rpcx.gateway.streaming): not "
                        "callable over HTTP, always answered 400; use the native protocol.")
    elif method.server_stream:
        description += ("\n\nServer streaming: the answer is newline-delimited JSON "
                        "(application/x-ndjson), read it as it arrives.")
    operation: dict[str, Any] = {
        "operationId": f"{method.service}.{method.name}".replace(".", "_"),
        "tags": [method.service],
        "summary": method.doc.split("\n")[0] if method.doc else method.path,
        "description": description.strip(),
        "parameters": [{
            "name": "rpcx-timeout", "in": "header", "required": False,
            "description": "The call's deadline, in seconds from now",
            "schema": {"type": "string",
                       "pattern": r"^([0-9]*[1-9][0-9]*(\.[0-9]*)?|[0-9]*\.[0-9]*[1-9][0-9]*)$"}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": schemas.object(method.params.fields)}}},
        "responses": responses,
    }
    if method.deprecated is not None:
        operation["deprecated"] = True
    if method.streaming is not None:
        operation["x-rpcx-streaming"] = method.streaming
    return operation


def openapi_document(services: Iterable[ServiceSpec], *, title: str = "rpcx services",
                     version: str = "1", server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (as JSON-able data) of the HTTP face of ``services``."""
    schemas = _Schemas()
    paths: dict[str, Any] = {}
    tags = []
    for service in services:
        tags.append({"name": service.name, "description": service.doc or service.name})
        for method in service.methods:
            paths[f"/{method.path}"] = {"post": _operation(method, schemas)}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "JSON over HTTP for rpcx services: POST the parameters as "
                                "a JSON object to /PACKAGE.SERVICE/METHOD. An "
                                "Idempotency-Key header makes a retry safe: the same key "
                                "and body get the first answer without running the call "
                                "again; the same key with another body is 422."},
        "tags": tags,
        "paths": paths,
        "components": {"schemas": schemas.components},
    }
    if server_url is not None:
        document["servers"] = [{"url": server_url}]
    return document
