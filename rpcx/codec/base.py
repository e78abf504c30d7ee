"""The codec interface and the registry of codecs by name."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, Protocol, TypeAlias

from rpcx.schema import StructSpec, TypeRef

__all__ = [
    "DEFAULT_MAX_COLLECTION_LEN",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "Codec",
    "Schema",
    "decoder_of",
    "encoder_of",
    "get_codec",
]

Schema: TypeAlias = TypeRef | StructSpec
"""What a codec encodes: a type, or a struct/params spec."""

DEFAULT_MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024
"""4 MiB: larger than any sane RPC payload, small enough that a hostile one is cheap."""
DEFAULT_MAX_DEPTH: Final = 64
"""Nesting of containers (structs, unions, lists and maps all count)."""
DEFAULT_MAX_COLLECTION_LEN: Final = 100_000
"""Entries in one list or map of the schema."""


class Codec(Protocol):
    """Turns schema-typed values into bytes and back.

    ``decode`` validates everything against the schema. Every failure, in either direction,
    is a :class:`rpcx.errors.CodecError` whose ``path`` says where the bad value is.
    """

    name: str
    """``"cbor"`` or ``"json"``."""
    content_type: str
    """``"application/cbor"`` or ``"application/json"``."""

    def encode(self, schema: Schema, value: object) -> bytes: ...

    def decode(self, schema: Schema, data: bytes) -> Any: ...


def decoder_of(codec: Codec, schema: Schema) -> Callable[[bytes], Any]:
    """``codec.decode`` for one schema as one callable: the codec's own, made for the
    schema, when it has a ``decoder(schema)`` method (:class:`CborCodec` does), else
    ``decode`` with the schema bound. For a loop that decodes many values of one type
    (the items of a stream)."""
    make = getattr(codec, "decoder", None)
    if make is not None:
        decoder: Callable[[bytes], Any] = make(schema)
        return decoder
    return functools.partial(codec.decode, schema)


def encoder_of(codec: Codec, schema: Schema) -> Callable[[Any], bytes]:
    """``codec.encode`` for one schema as one callable (see :func:`decoder_of`)."""
    make = getattr(codec, "encoder", None)
    if make is not None:
        encoder: Callable[[Any], bytes] = make(schema)
        return encoder
    return functools.partial(codec.encode, schema)


_DEFAULTS: dict[str, Codec] = {}


def get_codec(name: str) -> Codec:
    """The codec with the default limits, by name (``"cbor"`` or ``"json"``). One shared
    instance per name, so every channel and server using the default shares its
    converters, compiled once per schema (not once per connection)."""
    codec = _DEFAULTS.get(name)
    if codec is not None:
        return codec
    from rpcx.codec.cbor_codec import CborCodec
    from rpcx.codec.json_codec import JsonCodec

    if name == "cbor":
        codec = CborCodec()
    elif name == "json":
        codec = JsonCodec()
    else:
        raise ValueError(f"unknown codec {name!r} (expected 'cbor' or 'json')")
    _DEFAULTS[name] = codec
    return codec
