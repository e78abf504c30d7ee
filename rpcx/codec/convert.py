"""Value checks and conversions shared by both codecs.

Everything here is plain functions over plain values, used by the code that
:mod:`rpcx.codec._compile` generates. A failure raises :class:`PathError`, which collects
path segments while it travels up through the generated converters and becomes a
:class:`rpcx.errors.CodecError` at the codec boundary.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal
import math
import re
from collections.abc import Mapping
from typing import Final, NoReturn

from rpcx.errors import CodecError
from rpcx.schema import OpenEnum
from rpcx.text import describe, quote

__all__ = [
    "DECIMAL_MAX_DIGITS",
    "DECIMAL_MAX_EXPONENT",
    "INT64_MAX",
    "INT64_MIN",
    "PathError",
    "Refused",
    "quote",
    "show_int",
    "type_name",
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

DECIMAL_MAX_DIGITS: Final = 19
"""A decimal's coefficient has at most this many digits, so it fits a CBOR integer
(no bignum tags) and a signed 64-bit integer in other languages."""
DECIMAL_MAX_EXPONENT: Final = 6144
"""A decimal's exponent lies in ``[-6144, 6144]`` (about the decimal128 range). This stops
``1E+999999999`` and friends, which are cheap to send and expensive to compute with."""

_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_UTC: Final = _dt.UTC
_US_MIN: Final = -62135596800 * 1_000_000  # 0001-01-01T00:00:00Z
_US_MAX: Final = 253402300800 * 1_000_000 - 1  # 9999-12-31T23:59:59.999999Z


class PathError(Exception):
    """Internal failure carrying the reason and the path segments, innermost first."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segs: list[str] = []

    def to_codec_error(self, prefix: str = "") -> CodecError:
        path = prefix + "".join(reversed(self.segs))
        if path.startswith("."):
            path = path[1:]
        return CodecError(self.reason, path)


class Refused:
    """A value the JSON parser refused (a number with too many digits, ``NaN``, an object
    with a duplicate key): it is left in the parsed tree, and the converter at its position
    reports ``reason`` with the field path (a refused value in an ignored field is ignored)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def show_int(value: int) -> str:
    """An int for a message: its digits when short, else only how many there are
    (``str()`` of an int past 4300 digits raises, and a peer needs no 4000-digit echo)."""
    if -10**30 < value < 10**30:
        return str(value)
    digits = int(math.log10(abs(value))) + 1
    return f"of about {digits} digits"


_NAMES: Final[dict[type, str]] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    bytes: "bytes",
    bytearray: "bytes",
    type(None): "null",
    list: "list",
    tuple: "list",
    dict: "map",
    decimal.Decimal: "decimal",
    _dt.datetime: "timestamp",
}


def type_name(value: object) -> str:
    """How a value's type appears in error messages (IDL words where there is one)."""
    name = _NAMES.get(type(value))
    if name is not None:
        return name
    if isinstance(value, Mapping):
        return "map"
    spec = getattr(type(value), "__rpcx_spec__", None)
    if spec is not None:
        return str(spec.name)
    return type(value).__name__


def type_error(expected: str, value: object) -> PathError:
    if type(value) is Refused:
        return PathError(value.reason)
    return PathError(f"expected {expected}, got {type_name(value)}")


def fail(reason: str) -> NoReturn:
    raise PathError(reason)


def key_seg(key: object) -> str:
    """The path segment of a map entry: ``[3]`` or ``["GBP"]``."""
    if isinstance(key, OpenEnum):
        return f"[{key._name_}]"
    if type(key) is str:
        # Quoted as in JSON and cut: control characters and a lone surrogate (the reason
        # for the error, maybe) are shown escaped, \u0000, \ud800.
        return f"[{quote(key)}]"
    if type(key) is int:
        return f"[{show_int(key)}]"
    return f"[{describe(key)}]"  # a key of the wrong type, named in neutral notation


# ---- int ---------------------------------------------------------------------------

def range_error(value: int) -> PathError:
    return PathError(f"int {show_int(value)} out of signed 64-bit range")


def as_int(value: object, expected: str) -> int:
    """Slow path of an int check: int subclasses other than bool are accepted."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise type_error(expected, value)


# ---- float -------------------------------------------------------------------------

def as_float(value: object, expected: str) -> float:
    """Slow path of a float check on encode: ints are accepted (PEP 484), bools are not."""
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise PathError(f"int {show_int(value)} too large for a float") from None
    raise type_error(expected, value)


# ---- str / bytes -------------------------------------------------------------------

def as_str(value: object, expected: str) -> str:
    if isinstance(value, str):
        return str.__str__(value)
    raise type_error(expected, value)


def as_bytes(value: object, expected: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise type_error(expected, value)


def check_text(value: str) -> str:
    """Reject lone surrogates (they cannot be encoded as UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PathError("string contains a lone surrogate") from None
    return value


# ---- decimal -----------------------------------------------------------------------

def check_decimal(value: object, expected: str = "decimal") -> decimal.Decimal:
    """A finite decimal within the digit and exponent limits."""
    if not isinstance(value, decimal.Decimal):
        raise type_error(expected, value)
    if not value.is_finite():
        raise PathError(f"decimal must be finite, got {value}")
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not -DECIMAL_MAX_EXPONENT <= exponent <= DECIMAL_MAX_EXPONENT:
        raise PathError(f"decimal exponent {exponent} out of range "
                        f"[-{DECIMAL_MAX_EXPONENT}, {DECIMAL_MAX_EXPONENT}]")
    if len(digits) > DECIMAL_MAX_DIGITS:
        raise PathError(f"decimal has {len(digits)} digits, more than {DECIMAL_MAX_DIGITS}")
    return value


def decimal_from_parts(exponent: object, mantissa: object) -> decimal.Decimal:
    """Build the exact decimal ``mantissa * 10**exponent`` from CBOR tag 4 contents."""
    if type(exponent) is not int or type(mantissa) is not int:
        raise PathError("decimal fraction must be [int exponent, int mantissa]")
    if not -DECIMAL_MAX_EXPONENT <= exponent <= DECIMAL_MAX_EXPONENT:
        raise PathError(f"decimal exponent {exponent} out of range "
                        f"[-{DECIMAL_MAX_EXPONENT}, {DECIMAL_MAX_EXPONENT}]")
    if not -(10**DECIMAL_MAX_DIGITS) < mantissa < 10**DECIMAL_MAX_DIGITS:
        raise PathError(f"decimal mantissa has more than {DECIMAL_MAX_DIGITS} digits")
    # Built from text, so the result is exact and independent of the decimal context.
    return decimal.Decimal(f"{mantissa}E{exponent}")


_DECIMAL_TEXT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def decimal_from_text(text: str) -> decimal.Decimal:
    """Parse a JSON decimal string (JSON number syntax) exactly."""
    if len(text) > 200 or _DECIMAL_TEXT.fullmatch(text) is None:
        raise PathError(f"invalid decimal {quote(text)}")
    try:
        value = decimal.Decimal(text)
    except (decimal.DecimalException, ValueError):  # pragma: no cover - regex guards it
        raise PathError(f"invalid decimal {quote(text)}") from None
    return check_decimal(value)


# ---- timestamp ---------------------------------------------------------------------

def timestamp_to_us(value: object) -> int:
    """Microseconds since the Unix epoch of a timezone-aware datetime."""
    if not isinstance(value, _dt.datetime):
        raise type_error("timestamp", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise PathError("timestamp must be timezone-aware (naive datetime given)")
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def us_to_timestamp(value: int) -> _dt.datetime:
    if not _US_MIN <= value <= _US_MAX:
        raise PathError(f"timestamp {show_int(value)} out of range (years 1 to 9999)")
    return _EPOCH + _dt.timedelta(microseconds=value)


def timestamp_to_text(value: object) -> str:
    """RFC 3339 in UTC with a ``Z``; microseconds only when not zero."""
    utc = us_to_timestamp(timestamp_to_us(value))
    return utc.replace(tzinfo=None).isoformat() + "Z"


_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def timestamp_from_text(text: str) -> _dt.datetime:
    """Parse RFC 3339 (any offset; fractions beyond microseconds are truncated)."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise PathError(f"invalid RFC 3339 timestamp {quote(text)}")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6])
    if m.group(8):
        tz = _UTC
    else:
        off = _dt.timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if off >= _dt.timedelta(hours=24):
            raise PathError(f"invalid RFC 3339 timestamp {quote(text)}")
        tz = _dt.timezone(-off if m.group(9) == "-" else off)
    try:
        local = _dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        return local.astimezone(_UTC)
    except (ValueError, OverflowError):
        raise PathError(f"invalid RFC 3339 timestamp {quote(text)}") from None


# ---- enums -------------------------------------------------------------------------

def enum_unknown(cls: type[OpenEnum], value: int) -> OpenEnum:
    """The pseudo-member for a value this schema does not declare."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise range_error(value)
    return cls(value)


def enum_from_json(cls: type[OpenEnum], by_name: Mapping[str, OpenEnum],
                   by_value: Mapping[int, OpenEnum], value: object, expected: str) -> OpenEnum:
    """A JSON enum: the member name, or the number (for values this side may not know)."""
    if type(value) is str:
        member = by_name.get(value)
        if member is None:
            names = ", ".join(by_name)
            raise PathError(f"unknown name {quote(value)} of enum '{expected}' "
                            f"(expected one of {names})")
        return member
    if type(value) is int:
        member = by_value.get(value)
        return member if member is not None else enum_unknown(cls, value)
    raise type_error(expected, value)


def enum_key_from_json(cls: type[OpenEnum], by_name: Mapping[str, OpenEnum],
                       by_value: Mapping[int, OpenEnum], key: str, expected: str) -> OpenEnum:
    if _INT_TEXT.fullmatch(key) is not None:
        return enum_from_json(cls, by_name, by_value, int(key), expected)
    return enum_from_json(cls, by_name, by_value, key, expected)


# ---- JSON scalars ------------------------------------------------------------------

_INT_TEXT: Final = re.compile(r"-?(?:0|[1-9][0-9]{0,19})")


def int_from_json(value: object, expected: str) -> int:
    """A JSON int: a number, or a decimal string (for JavaScript's 53-bit numbers)."""
    if type(value) is str:
        if _INT_TEXT.fullmatch(value) is None:
            raise PathError(f"invalid int string {quote(value)}")
        value = int(value)
    if type(value) is not int:
        raise type_error(expected, value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise range_error(value)
    return value


def int_key_from_json(key: str) -> int:
    if _INT_TEXT.fullmatch(key) is None:
        raise PathError(f"invalid int map key {quote(key)}")
    value = int(key)
    if not INT64_MIN <= value <= INT64_MAX:
        raise range_error(value)
    return value


_NONFINITE_OUT: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_NONFINITE_IN: Final = {"NaN": float("nan"), "Infinity": float("inf"),
                        "-Infinity": float("-inf")}


def float_to_json(value: float) -> float | str:
    if value - value == 0.0:  # finite
        return value
    return _NONFINITE_OUT[repr(value)]


def float_from_json(value: object, expected: str) -> float:
    """A JSON float: any number, or "NaN" / "Infinity" / "-Infinity"."""
    if type(value) is float:
        return value
    if type(value) is decimal.Decimal or type(value) is int:
        try:
            result = float(value)
        except OverflowError:
            result = float("inf")
        if result - result != 0.0:
            shown = show_int(value) if type(value) is int else str(value)[:40]
            raise PathError(f"number {shown} out of float range")
        return result
    if type(value) is str:
        special = _NONFINITE_IN.get(value)
        if special is not None:
            return special
    raise type_error(expected, value)


def decimal_from_json(value: object, expected: str) -> decimal.Decimal:
    """A JSON decimal: a string or a number, both read exactly."""
    if type(value) is str:
        value = decimal_from_text(value)
    elif type(value) is decimal.Decimal:
        value = check_decimal(value)
    elif type(value) is int:
        return check_decimal(decimal.Decimal(value))
    else:
        raise type_error(expected, value)
    # The sign of a zero is not kept, as in CBOR (whose mantissa 0 has no sign).
    return value.copy_abs() if value.is_zero() else value


def bytes_to_json(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


_B64_URL: Final = bytes.maketrans(b"-_", b"+/")


def bytes_from_json(value: object, expected: str) -> bytes:
    """Base64, standard or URL-safe alphabet, padding optional."""
    if type(value) is not str:
        raise type_error(expected, value)
    try:
        raw = value.encode("ascii").translate(_B64_URL)
        raw += b"=" * (-len(raw) % 4)
        return base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise PathError("invalid base64") from None
