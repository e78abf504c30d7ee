"""Marshalling, driven by the runtime schema.

Two codecs share one interface, :class:`Codec`: :class:`CborCodec` (the RPC wire format,
structs keyed by field tag) and :class:`JsonCodec` (the HTTP gateway, structs keyed by
field name). See ``docs/marshalling.md`` for the exact wire formats.
"""

from __future__ import annotations

from rpcx.codec.base import (
    DEFAULT_MAX_COLLECTION_LEN as DEFAULT_MAX_COLLECTION_LEN,
)
from rpcx.codec.base import (
    DEFAULT_MAX_DEPTH as DEFAULT_MAX_DEPTH,
)
from rpcx.codec.base import (
    DEFAULT_MAX_MESSAGE_BYTES as DEFAULT_MAX_MESSAGE_BYTES,
)
from rpcx.codec.base import (
    Codec as Codec,
)
from rpcx.codec.base import (
    Schema as Schema,
)
from rpcx.codec.base import (
    decoder_of as decoder_of,
)
from rpcx.codec.base import (
    encoder_of as encoder_of,
)
from rpcx.codec.base import (
    get_codec as get_codec,
)
from rpcx.codec.cbor_codec import CborCodec as CborCodec
from rpcx.codec.json_codec import JsonCodec as JsonCodec

__all__ = [
    "DEFAULT_MAX_COLLECTION_LEN",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "CborCodec",
    "Codec",
    "JsonCodec",
    "Schema",
    "decoder_of",
    "encoder_of",
    "get_codec",
]
