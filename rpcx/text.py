"""Text that is safe to send to a peer: bounded, escaped, and free of Python notation.

Error messages often quote what the peer sent ("method must be text, got ..."). A peer
controls that value, so quoting it naively can make the message larger than the frame
that carries it, or show the peer Python's own spelling of it (``b'...'``,
``bytearray(...)``, a ``repr``) which means nothing to a client written in another
language. Everything here is pure: no I/O, no clock.

- :func:`describe` names any decoded value in the notation of CBOR diagnostic notation
  (RFC 8949 §8): text as a JSON-style quoted string, bytes as ``h'0a1b'``, ``true``,
  ``null``, arrays and maps by their size, always truncated.
- :func:`quote` quotes a text the same way, truncated to a number of characters.
- :func:`plain` passes on a library's own message (cbor2's, h11's) without the Python
  notation it may hold, first letter lower-cased as docs/protocol.md §4.3 asks.
- :func:`lower_start` lower-cases a message's first letter (§ 4.3) and nothing else.
- :func:`clip` cuts a message to a number of UTF-8 bytes on a character boundary, and
  replaces anything that is not valid UTF-8 (a lone surrogate), so it always encodes.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_MESSAGE_BYTES", "clip", "describe", "kind", "lower_start", "plain", "quote"]

MAX_MESSAGE_BYTES: Final = 1024
"""Longest message (in UTF-8 bytes) rpcx puts in an ERROR or GOAWAY frame or an HTTP error
body. Longer ones are cut and end with ``...``; the frame limits can then never be hit."""

_QUOTE_CHARS: Final = 48
"""Characters of a quoted peer text shown before it is cut."""
_HEX_BYTES: Final = 16
"""Bytes of a peer byte string shown (as hex) before it is cut."""
_BIG_INT_DIGITS: Final = 40

_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    special = _ESCAPES.get(ch)
    if special is not None:
        return special
    code = ord(ch)
    if ch.isprintable() and not 0xD800 <= code <= 0xDFFF:
        return ch
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quote(text: str, limit: int = _QUOTE_CHARS) -> str:
    """``text`` as a double-quoted string with JSON-style escapes (control characters,
    quotes, backslashes, unpaired surrogates), cut after ``limit`` characters with a note
    of the full length."""
    shown = "".join(_escape_char(ch) for ch in text[:limit])
    if len(text) <= limit:
        return f'"{shown}"'
    return f'"{shown}..." ({len(text)} characters)'


def kind(value: object) -> str:
    """The CBOR name of ``value``'s type, with its article: "a byte string", "text"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bytes | bytearray | memoryview):
        return "a byte string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a map"
    return "a tagged or special value"


def describe(value: object) -> str:
    """``value`` (anything a CBOR or JSON decoder returns) in a short, language-neutral
    notation: never longer than a couple of hundred characters, whatever its size."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 128:  # str() of a huge int is slow, or raises past 4300 digits
            sign = "a negative" if value < 0 else "an"
            return f"{sign} integer of {value.bit_length()} bits"
        text = str(value)
        return text if len(text) <= _BIG_INT_DIGITS else f"an integer of {len(text)} digits"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)  # a float's repr is plain decimal notation, as in JSON
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value[:_HEX_BYTES])
        size = len(value)
        if size <= _HEX_BYTES:
            return f"h'{data.hex()}'"
        return f"h'{data.hex()}...' ({size} bytes)"
    if isinstance(value, list | tuple):
        return f"an array of {_count(len(value), 'item')}"
    if isinstance(value, dict):
        return f"a map of {_count(len(value), 'entry', 'entries')}"
    return kind(value)


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def clip(message: str, max_bytes: int = MAX_MESSAGE_BYTES) -> str:
    """``message`` cut to at most ``max_bytes`` bytes of UTF-8 (ending ``...`` when cut);
    anything that cannot be encoded (a lone surrogate) becomes U+FFFD."""
    if message.isascii():
        if len(message) <= max_bytes:
            return message
        return message[: max(0, max_bytes - 3)] + "..."
    # surrogatepass then replace: a lone surrogate becomes U+FFFD instead of failing
    text = message.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max(0, max_bytes - 3)].decode("utf-8", "ignore") + "..."


_PYTHON_NOTATION: Final = re.compile(
    r"""(?<![\w'"])b['"]|bytearray\(|memoryview\(|<[\w.]+ object|<class |Traceback"""
    r"""|File "|\\x[0-9a-f]{2}"""
    r"""|\(\d+ digits\)|sys\.set_int_max_str_digits|\b[A-Z]\w*(Error|Exception)\b"""
)


def lower_start(message: str) -> str:
    """``message`` with its first letter lower-cased, as docs/protocol.md § 4.3 asks
    (``Card expired`` → ``card expired``), unless it starts an acronym (``JSON ...``)."""
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        return message[0].lower() + message[1:]
    return message


def plain(message: str, limit: int = 160) -> str:
    """A library's error text made fit for a peer: its first line, cut before anything
    that looks like Python notation (a bytes literal, a repr, an exception class name),
    its first letter lower-cased (unless it starts an acronym), at most ``limit``
    characters; empty if nothing plain is left."""
    text = message.strip().split("\n", 1)[0]
    found = _PYTHON_NOTATION.search(text)
    if found is not None:
        text = text[: found.start()]
    text = text.rstrip(" :;,(=")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return clip(text, limit) if len(text) <= limit else text[: limit - 3] + "..."
