"""A CBOR encoder and decoder for the plain data of typed messages, for the compiled build.

cbor2 is the reference: :func:`dumps` returns exactly the bytes ``cbor2.dumps`` returns,
and :func:`loads` exactly the value ``cbor2.loads`` returns with the codec's options, or
they give up (:data:`FALLBACK`) on anything outside the common case (floats other than
float64, big integers, tags other than 4, indefinite lengths, duplicate or unusual map
keys, malformed or truncated input, nesting near the limit...), and the caller asks cbor2,
which then also produces every error. So results are the same byte for byte whichever
path a message takes; a test checks both against cbor2 on arbitrary values.

Interpreted, this module is slower than cbor2 (a Rust extension), so the codec uses it
only when it is compiled (:data:`COMPILED`: ``RPCX_MYPYC=1``, see ``hatch_build.py``):
there it avoids cbor2's per-call argument parsing and its Python-level Decimal handling,
which are most of the cost of a small message.
"""

from __future__ import annotations

import decimal
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from rpcx.codec.convert import DECIMAL_MAX_DIGITS, DECIMAL_MAX_EXPONENT

__all__ = ["COMPILED", "FALLBACK", "dumps", "loads"]

COMPILED: Final = not __file__.endswith(".py")
"""True when this module was compiled (its ``__file__`` is an extension, not a ``.py``)."""


class _Fallback:
    """The type of :data:`FALLBACK`."""

    __slots__ = ()


FALLBACK: Final = _Fallback()
"""Returned by :func:`dumps` and :func:`loads` for "ask cbor2"."""

_U64: Final = 0x10000000000000000
MANTISSA_LIMIT: Final = 10**DECIMAL_MAX_DIGITS
EXACT: Final = decimal.Context(prec=2 * DECIMAL_MAX_DIGITS, Emax=2 * DECIMAL_MAX_EXPONENT,
                               Emin=-2 * DECIMAL_MAX_EXPONENT,
                               traps=[decimal.Inexact, decimal.InvalidOperation])
"""The decimal context of tag 4 decoding (shared with rpcx.codec.cbor_codec): room for
every allowed mantissa, Inexact trapped, independent of the thread's context."""
_pack_double = struct.Struct(">d").pack
_unpack_double = struct.Struct(">d").unpack_from


class _GiveUp(Exception):
    """Inside this module only: the value or input is not one this module handles."""


_BYTE: Final = [bytes((i,)) for i in range(256)]
"""Every one-byte string, by value (a head below 24, a major type's marker)."""


def _head(out: list[bytes], major: int, value: int) -> None:
    if value < 24:
        out.append(_BYTE[major | value])
    elif value < 0x100:
        out.append(_BYTE[major | 24])
        out.append(_BYTE[value])
    elif value < 0x10000:
        out.append(_BYTE[major | 25])
        out.append(value.to_bytes(2, "big"))
    elif value < 0x100000000:
        out.append(_BYTE[major | 26])
        out.append(value.to_bytes(4, "big"))
    else:
        out.append(_BYTE[major | 27])
        out.append(value.to_bytes(8, "big"))


def _int(out: list[bytes], value: int) -> None:
    if value >= 0:
        if value < 24:
            out.append(_BYTE[value])
            return
        if value >= _U64:
            raise _GiveUp  # cbor2 writes a bignum (tag 2)
        _head(out, 0x00, value)
    else:
        value = -1 - value
        if value >= _U64:
            raise _GiveUp  # tag 3
        _head(out, 0x20, value)


def _encode(out: list[bytes], value: object) -> None:
    cls = value.__class__
    if cls is str:
        assert isinstance(value, str)
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise _GiveUp from None  # lone surrogates: cbor2 reports them
        _head(out, 0x60, len(data))
        out.append(data)
    elif cls is int:
        assert isinstance(value, int)
        _int(out, value)
    elif cls is dict:
        assert isinstance(value, dict)
        _head(out, 0xA0, len(value))
        for key, item in value.items():
            _encode(out, key)
            _encode(out, item)
    elif cls is list or cls is tuple:
        assert isinstance(value, list | tuple)
        _head(out, 0x80, len(value))
        for item in value:
            _encode(out, item)
    elif cls is bytes:
        assert isinstance(value, bytes)
        _head(out, 0x40, len(value))
        out.append(value)
    elif value is None:
        out.append(b"\xf6")
    elif value is True:
        out.append(b"\xf5")
    elif value is False:
        out.append(b"\xf4")
    elif cls is Decimal:
        assert isinstance(value, Decimal)
        if not value.is_finite():
            raise _GiveUp
        # The exponent and signed coefficient (what cbor2 takes from as_tuple()), read
        # from the text form, which keeps both exactly and is much cheaper to make.
        text = str(value)
        negative = text.startswith("-")
        if negative:
            text = text[1:]
        exponent = 0
        marker = text.find("E")
        if marker >= 0:
            exponent = int(text[marker + 1:])
            text = text[:marker]
        dot = text.find(".")
        if dot >= 0:
            exponent -= len(text) - dot - 1
            text = text[:dot] + text[dot + 1:]
        mantissa = int(text)
        out.append(b"\xc4\x82")  # tag 4, decimal fraction: [exponent, mantissa]
        _int(out, exponent)
        _int(out, -mantissa if negative else mantissa)
    elif cls is float:
        assert isinstance(value, float)
        if value != value or value in (float("inf"), float("-inf")):
            raise _GiveUp  # cbor2 writes these as half floats
        out.append(b"\xfb")
        out.append(_pack_double(value))
    else:
        raise _GiveUp


def dumps(value: object) -> bytes | _Fallback:
    """``cbor2.dumps(value)``, or :data:`FALLBACK` for a value this module leaves to cbor2."""
    out: list[bytes] = []
    try:
        _encode(out, value)
    except (_GiveUp, RecursionError):
        return FALLBACK
    return b"".join(out)


class _Reader:
    """One input being decoded."""

    def __init__(self, data: bytes, max_depth: int,
                 decimal: Callable[[object, bool], object]) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.decimal = decimal

    def argument(self, info: int) -> int:
        data = self.data
        pos = self.pos
        if info < 24:
            return info
        if info == 24:
            if pos + 1 > len(data):
                raise _GiveUp
            self.pos = pos + 1
            return data[pos]
        if info == 25:
            size = 2
        elif info == 26:
            size = 4
        elif info == 27:
            size = 8
        else:
            raise _GiveUp  # reserved, or indefinite length
        end = pos + size
        if end > len(data):
            raise _GiveUp
        self.pos = end
        return int.from_bytes(data[pos:end], "big")

    def item(self, depth: int) -> object:
        data = self.data
        pos = self.pos
        if pos >= len(data):
            raise _GiveUp
        initial = data[pos]
        self.pos = pos + 1
        major = initial >> 5
        info = initial & 0x1F
        if major == 0:
            return self.argument(info)
        if major == 3 or major == 2:
            length = self.argument(info)
            start = self.pos
            end = start + length
            if end > len(data):
                raise _GiveUp
            self.pos = end
            if major == 2:
                return data[start:end]
            try:
                return data[start:end].decode("utf-8")
            except UnicodeDecodeError:
                raise _GiveUp from None
        if major == 1:
            return -1 - self.argument(info)
        if depth >= self.max_depth - 1:
            raise _GiveUp  # near cbor2's limit: let it decide
        if major == 5:
            count = self.argument(info)
            if count > len(data):
                raise _GiveUp
            result: dict[object, object] = {}
            for _ in range(count):
                key = self.item(depth + 1)
                if (key.__class__ is not int and key.__class__ is not str) or key in result:
                    raise _GiveUp  # cbor2 freezes other keys, and refuses duplicates
                result[key] = self.item(depth + 1)
            return result
        if major == 4:
            count = self.argument(info)
            if count > len(data):
                raise _GiveUp
            items: list[object] = []
            for _ in range(count):
                items.append(self.item(depth + 1))
            return items
        if major == 6:
            if self.argument(info) != 4:
                raise _GiveUp
            start = self.pos
            if (start < len(data) and data[start] == 0x82
                    and depth + 1 < self.max_depth - 1):
                # [exponent, mantissa] within the limits: what the codec's decimal hook
                # does for them, without calling it
                self.pos = start + 1
                exponent = self.item(depth + 2)
                mantissa = self.item(depth + 2)
                # (the class first, while the values are still objects: once narrowed to
                # int, mypyc unboxes them and a bool's class would read as int)
                if (exponent.__class__ is int and mantissa.__class__ is int
                        and isinstance(exponent, int) and isinstance(mantissa, int)
                        and -DECIMAL_MAX_EXPONENT <= exponent <= DECIMAL_MAX_EXPONENT
                        and -MANTISSA_LIMIT < mantissa < MANTISSA_LIMIT):
                    return Decimal(mantissa).scaleb(exponent, EXACT)
                self.pos = start
            content = self.item(depth + 1)
            try:
                return self.decimal(content, False)
            except Exception:
                raise _GiveUp from None  # cbor2 reports it the codec's way
        if initial == 0xF6:
            return None
        if initial == 0xF5:
            return True
        if initial == 0xF4:
            return False
        if initial == 0xFB:
            if pos + 9 > len(data):
                raise _GiveUp
            self.pos = pos + 9
            value: float = _unpack_double(data, pos + 1)[0]
            return value
        raise _GiveUp


def loads(data: bytes, max_depth: int,
          decimal: Callable[[object, bool], object]) -> object:
    """``cbor2.loads(data, ...)`` with the codec's options (refusing every tag but 4,
    which ``decimal`` turns into a value; no duplicate keys; no indefinite lengths;
    ``max_depth``), or :data:`FALLBACK` to ask cbor2. Bytes after the first item are
    ignored, as cbor2 ignores them."""
    reader = _Reader(data, max_depth, decimal)
    try:
        return reader.item(0)
    except (_GiveUp, RecursionError):
        return FALLBACK
