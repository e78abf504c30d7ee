"""The JSON codec: the HTTP gateway's mapping of the same schemas (see ``docs/marshalling.md``).

Structs are objects keyed by IDL field name; decimals are strings; bytes are base64;
timestamps are RFC 3339 strings in UTC; enums are member names. Output is compact UTF-8
with keys in declaration order, so the same value always gives the same bytes.
"""

from __future__ import annotations

import decimal
import json
import re
from typing import Any, Final

from rpcx.codec._limits import LimitedCodec, too_big
from rpcx.codec.base import (
    Schema,
)
from rpcx.codec.convert import PathError, Refused, key_seg, quote
from rpcx.errors import CodecError
from rpcx.text import plain

__all__ = ["JsonCodec"]


MAX_NUMBER_CHARS: Final = 1000
"""A JSON number with a fraction or exponent longer than this is refused ("number has too
many digits"): a double's exact expansion is shorter, a decimal has at most 19 digits. An
integer is refused when it is longer than Python converts (4300 digits by default)."""

_TOO_MANY_DIGITS: Final = "number has too many digits"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | Refused:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:  # pragma: no branch - a duplicate exists
            if key in seen:
                return Refused(f"invalid JSON: duplicate key {quote(key)}")
            seen.add(key)
    return result


def _constant(name: str) -> Refused:
    return Refused(f"invalid JSON: {name} is not JSON (write the string \"{name}\" "
                   "for a float)")


def _number(text: str) -> decimal.Decimal | Refused:
    if len(text) > MAX_NUMBER_CHARS:
        return Refused(_TOO_MANY_DIGITS)
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:  # an exponent beyond even Decimal's range
        return Refused(f"number {text[:40]} is out of range")


def _integer(text: str) -> int | Refused:
    try:
        return int(text)
    except ValueError:  # more digits than int() converts
        return Refused(_TOO_MANY_DIGITS)


_DECODE_OPTIONS: Final[dict[str, Any]] = {
    "object_pairs_hook": _object,
    # Numbers with a fraction or exponent are read exactly; float fields convert them.
    "parse_float": _number,
    "parse_constant": _constant,
}
# Only when the first parse fails on an integer: the fast path keeps json's own int().
_SLOW_OPTIONS: Final[dict[str, Any]] = {**_DECODE_OPTIONS, "parse_int": _integer}

_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def _where_too_deep(text: str, max_depth: int) -> str:
    """``line:column`` of the first array or object nested deeper than ``max_depth``
    (found by a scan that skips strings; only run after the parser gave up)."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                start = match.start()
                line = text.count("\n", 0, start) + 1
                column = start - (text.rfind("\n", 0, start) + 1) + 1
                return f"{line}:{column}"
        elif token in "]}":
            depth -= 1
    return "?"  # pragma: no cover - the parser recursed, so some nesting is deep


def _seg(key: object) -> str:
    if type(key) is int:
        return f"[{key}]"
    assert type(key) is str
    return f".{key}" if key.isidentifier() else key_seg(key)


def _check_depth(value: object, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` containers (iteratively), naming the
    path of the first container too deep."""
    stack: list[tuple[object, int, tuple[object, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, path = stack.pop()
        if type(item) is dict:
            children: Any = item.items()
        elif type(item) is list:
            children = enumerate(item)
        else:
            continue
        if depth > max_depth:
            shown = "".join(_seg(key) for key in path[:12]).removeprefix(".")
            if len(path) > 12:
                shown += "..."
            raise CodecError(f"invalid JSON: nested deeper than max_depth ({max_depth})",
                             shown)
        stack.extend((child, depth + 1, (*path, key)) for key, child in children
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
            raise CodecError(f"malformed JSON at {exc.lineno}:{exc.colno}: "
                             f"{plain(exc.msg)}") from None
        except RecursionError:
            raise CodecError(f"invalid JSON: nested deeper than max_depth ({self.max_depth}) "
                             f"at {_where_too_deep(text, self.max_depth)}") from None
        except ValueError:  # an integer with more digits than int() converts
            parsed = self._parse_slowly(text)
        except MemoryError:
            raise CodecError("invalid JSON: too large to parse") from None
        _check_depth(parsed, self.max_depth)
        try:
            return convert(parsed)
        except PathError as exc:
            raise self._decoders.explain(schema, parsed, exc) from None
        except RecursionError:
            raise CodecError("value nested too deeply to decode") from None
        except Exception as exc:  # pragma: no cover - a bug in a converter
            raise CodecError("cannot decode (internal error)") from exc

    def _parse_slowly(self, text: str) -> Any:
        """Parse again with an int hook that leaves a :class:`Refused` for over-long
        integers, so that the converter at their position names their path."""
        try:
            return json.loads(text, **_SLOW_OPTIONS)
        except json.JSONDecodeError as exc:  # pragma: no cover - the first parse got past
            raise CodecError(f"malformed JSON at {exc.lineno}:{exc.colno}: "
                             f"{plain(exc.msg)}") from None
        except (ValueError, RecursionError, MemoryError):  # pragma: no cover - as above
            raise CodecError("invalid JSON") from None
