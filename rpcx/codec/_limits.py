"""Shared constructor plumbing: limit validation and the per-schema converter caches."""

from __future__ import annotations

from typing import Any

from rpcx.codec._compile import Compiler, Converter
from rpcx.codec.base import Schema
from rpcx.errors import CodecError

__all__ = ["ConverterCache", "check_limit", "too_big"]


def check_limit(name: str, value: int) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def too_big(size: int, limit: int) -> CodecError:
    return CodecError(f"message of {size} bytes exceeds max_message_bytes ({limit})")


class ConverterCache:
    """Converters by schema identity. The schema is kept, so its ``id`` stays unique."""

    def __init__(self, compiler: Compiler) -> None:
        self._compiler = compiler
        self._cache: dict[int, tuple[Schema, Converter]] = {}

    def get(self, schema: Schema) -> Converter:
        entry = self._cache.get(id(schema))
        if entry is not None and entry[0] is schema:
            return entry[1]
        return self._compile(schema)

    def _compile(self, schema: Any) -> Converter:
        from rpcx.schema import StructSpec, TypeRef

        if not isinstance(schema, TypeRef | StructSpec):
            raise TypeError(f"schema must be a TypeRef or StructSpec, got {schema!r}")
        fn = self._compiler.compile(schema)
        self._cache[id(schema)] = (schema, fn)
        return fn
