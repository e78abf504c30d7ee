"""Shared constructor plumbing: limit validation and the per-schema converter caches."""

from __future__ import annotations

from typing import Any

from rpcx.codec._compile import Compiler, Converter
from rpcx.codec.base import (
    DEFAULT_MAX_COLLECTION_LEN,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_MESSAGE_BYTES,
    Schema,
)
from rpcx.codec.convert import PathError
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

    def __init__(self, *, json: bool, encode: bool, max_collection_len: int) -> None:
        self._compiler = Compiler(json=json, encode=encode,
                                  max_collection_len=max_collection_len, track_paths=False)
        self._tracking = Compiler(json=json, encode=encode,
                                  max_collection_len=max_collection_len, track_paths=True)
        self.cache: dict[int, tuple[Schema, Converter]] = {}
        """Read directly by the codecs' hot path; :meth:`get` fills it."""

    def get(self, schema: Schema) -> Converter:
        entry = self.cache.get(id(schema))
        if entry is not None and entry[0] is schema:
            return entry[1]
        return self._compile(schema)

    def explain(self, schema: Schema, value: object, error: PathError) -> CodecError:
        """The error of the fast converter, with its path found by the tracking one."""
        try:
            self._tracking.compile(schema)(value)
        except PathError as tracked:
            return tracked.to_codec_error()
        return error.to_codec_error()  # pragma: no cover - the variants agree

    def _compile(self, schema: Any) -> Converter:
        from rpcx.schema import StructSpec, TypeRef

        if not isinstance(schema, TypeRef | StructSpec):
            raise TypeError(f"schema must be a TypeRef or StructSpec, got {schema!r}")
        fn = self._compiler.compile(schema)
        self.cache[id(schema)] = (schema, fn)
        return fn


class LimitedCodec:
    """What both codecs share: their limits (constructor parameters with safe defaults)
    and one converter cache per direction, compiled per schema node on first use."""

    name: str
    content_type: str
    _json: bool

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_depth: int = DEFAULT_MAX_DEPTH,
                 max_collection_len: int = DEFAULT_MAX_COLLECTION_LEN) -> None:
        self.max_message_bytes = check_limit("max_message_bytes", max_message_bytes)
        self.max_depth = check_limit("max_depth", max_depth)
        self.max_collection_len = check_limit("max_collection_len", max_collection_len)
        self._encoders = ConverterCache(json=self._json, encode=True,
                                        max_collection_len=max_collection_len)
        self._decoders = ConverterCache(json=self._json, encode=False,
                                        max_collection_len=max_collection_len)
        self._enc_cache = self._encoders.cache
        self._dec_cache = self._decoders.cache

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(max_message_bytes={self.max_message_bytes}, "
                f"max_depth={self.max_depth}, max_collection_len={self.max_collection_len})")
