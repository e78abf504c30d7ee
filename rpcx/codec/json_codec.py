"""The JSON codec: the HTTP gateway's mapping of the same schemas (see ``docs/marshalling.md``).

Structs are objects keyed by IDL field name; decimals are strings; bytes are base64;
timestamps are RFC 3339 strings in UTC; enums are member names. Output is compact UTF-8
with keys in declaration order, so the same value always gives the same bytes.
"""

from __future__ import annotations

import decimal
import json
from typing import Any, Final, NoReturn

from rpcx.codec._limits import LimitedCodec, too_big
from rpcx.codec.base import (
    Schema,
)
from rpcx.codec.convert import PathError
from rpcx.errors import CodecError

__all__ = ["JsonCodec"]


class _BadJson(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:  # pragma: no branch - a duplicate exists
            if key in seen:
                raise _BadJson(f"duplicate key {key[:40]!r}")
            seen.add(key)
    return result


def _constant(name: str) -> NoReturn:
    raise _BadJson(f"{name} is not JSON (write the string {name!r} for a float)")


def _number(text: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:  # an exponent beyond even Decimal's range
        raise _BadJson(f"number {text[:40]} is out of range") from None


_DECODE_OPTIONS: Final[dict[str, Any]] = {
    "object_pairs_hook": _object,
    # Numbers with a fraction or exponent are read exactly; float fields convert them.
    "parse_float": _number,
    "parse_constant": _constant,
}


def _check_depth(value: object, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` containers (iteratively)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            children: Any = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth > max_depth:
            raise CodecError(f"invalid JSON: nested deeper than max_depth ({max_depth})")
        stack.extend((child, depth + 1) for child in children
                     if type(child) is dict or type(child) is list)


class JsonCodec(LimitedCodec):
    """Name-keyed JSON, validated against the schema both ways.

    :param max_message_bytes: the largest encoded message accepted or produced.
    :param max_depth: the deepest nesting of JSON arrays and objects accepted when decoding.
    :param max_collection_len: the most entries in one schema list or map, both ways.
    """

    name: str = "json"
    content_type: str = "application/json"
    _json = True

    def encode(self, schema: Schema, value: object) -> bytes:
        # Written out in each codec rather than shared through the base class: this is
        # the call path, and the shared version measured 2-3 % slower.
        entry = self._enc_cache.get(id(schema))
        if entry is not None and entry[0] is schema:
            convert = entry[1]
        else:
            convert = self._encoders.get(schema)
        try:
            text = json.dumps(convert(value), ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False)
            data = text.encode("utf-8")
        except PathError as exc:
            raise self._encoders.explain(schema, value, exc) from None
        except RecursionError:
            raise CodecError("value nested too deeply to encode") from None
        except Exception as exc:
            raise CodecError(f"cannot encode: {exc}") from exc
        if len(data) > self.max_message_bytes:
            raise too_big(len(data), self.max_message_bytes)
        return data

    def decode(self, schema: Schema, data: bytes) -> Any:
        entry = self._dec_cache.get(id(schema))
        if entry is not None and entry[0] is schema:
            convert = entry[1]
        else:
            convert = self._decoders.get(schema)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise CodecError(f"expected bytes to decode, got {type(data).__name__}")
        if len(data) > self.max_message_bytes:
            raise too_big(len(data), self.max_message_bytes)
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"invalid JSON: not UTF-8 at byte {exc.start}") from None
        try:
            parsed = json.loads(text, **_DECODE_OPTIONS)
        except json.JSONDecodeError as exc:
            raise CodecError(f"malformed JSON at {exc.lineno}:{exc.colno}: {exc.msg}") from None
        except _BadJson as exc:
            raise CodecError(f"invalid JSON: {exc}") from None
        except RecursionError:
            raise CodecError("invalid JSON: nested too deeply") from None
        except Exception as exc:  # int too long, out of memory, ...
            raise CodecError(f"invalid JSON: {exc}") from None
        _check_depth(parsed, self.max_depth)
        try:
            return convert(parsed)
        except PathError as exc:
            raise self._decoders.explain(schema, parsed, exc) from None
        except RecursionError:
            raise CodecError("value nested too deeply to decode") from None
        except Exception as exc:  # pragma: no cover - a bug in a converter
            raise CodecError(f"cannot decode: {exc!r}") from exc
