"""Typed values straight to CBOR bytes and back, for the compiled build.

The ordinary path of :class:`~rpcx.codec.cbor_codec.CborCodec` takes two steps each way:
a converter generated per schema (``rpcx.codec._compile``, ``exec``'d Python, so never
compiled) turns a typed value into plain data, then CBOR is written; or CBOR is read into
plain data, then a converter checks it and builds the typed value. This module does both
steps at once, driven by a *plan* per schema (a tree of :class:`Node`, built once by
``rpcx.codec._plan``): a struct's fields are read from the object and written as CBOR
directly, and a CBOR map is read straight into the struct's fields, with no intermediate
dict. Compiled with mypyc, that is most of the codec's cost gone.

The contract is the one of ``rpcx.codec._cbor``: :func:`encode` returns exactly the bytes
of the ordinary path and :func:`decode` exactly its value, or they give up
(:data:`~rpcx.codec._cbor.FALLBACK`) on anything outside the common case (a value of a
subclass, a number out of range, an enum value not declared, an unknown or repeated map
key, a missing required field, a float that is not float64, malformed input...), and the
codec then takes the ordinary path, which also produces every error. Parts of a schema
this module does not handle itself (maps, unions, timestamps) are converted by the
ordinary converters inside it (:data:`K_CONVERT`). Nothing here has a side effect, so
giving up half way is always safe.

Interpreted, this module is slower than the ordinary path; the codec uses it only when it
is compiled (``_cbor.COMPILED``). Tests compare both paths on arbitrary values in both
builds (``tests/codec/test_typed_cbor.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Final

from rpcx.codec._cbor import (
    _BYTE,
    EXACT,
    FALLBACK,
    MANTISSA_LIMIT,
    _encode,
    _Fallback,
    _GiveUp,
    _head,
    _int,
    _pack_double,
    _Reader,
    _unpack_double,
)
from rpcx.codec.convert import DECIMAL_MAX_DIGITS, DECIMAL_MAX_EXPONENT

__all__ = ["Field", "Node", "decode", "encode"]

K_BOOL: Final = 1
K_INT: Final = 2
K_FLOAT: Final = 3
K_DECIMAL: Final = 4
K_STRING: Final = 5
K_BYTES: Final = 6
K_ENUM: Final = 7
K_STRUCT: Final = 8
K_LIST: Final = 9
K_OPTIONAL: Final = 10
K_CONVERT: Final = 11
"""A node converted by the ordinary converters (``enc`` / ``dec``) around plain CBOR."""

DEFAULT_CONST: Final = 0
DEFAULT_LIST: Final = 1
DEFAULT_DICT: Final = 2
DEFAULT_COPY: Final = 3

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_FAST_ADJUSTED: Final = DECIMAL_MAX_EXPONENT - DECIMAL_MAX_DIGITS


class _Unset:
    __slots__ = ()


_UNSET: Final = _Unset()


class Node:
    """One schema node of a plan. ``kind`` says which attributes are used."""

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.item: Node | None = None
        """LIST: the element; OPTIONAL: the inner type."""
        self.fields: list[Field] = []
        """STRUCT: the fields, in declaration (and wire) order."""
        self.by_tag: dict[int, int] = {}
        """STRUCT: field tag → index in ``fields``."""
        self.cls: type | None = None
        """STRUCT: the class (None for a method's parameters: a tuple); ENUM: the enum."""
        self.setters: list[Callable[[object, object], None]] | None = None
        """STRUCT: the slots' setters, when an instance may be built with them."""
        self.new: Callable[[type], object] | None = None
        """STRUCT with ``setters``: ``object.__new__``."""
        self.by_value: dict[int, object] = {}
        """ENUM: the members by value."""
        self.max_len = 0
        """LIST: the codec's ``max_collection_len``."""
        self.enc: Callable[[object], object] | None = None
        """CONVERT: the ordinary encoding converter (typed → plain)."""
        self.dec: Callable[[object], object] | None = None
        """CONVERT: the ordinary decoding converter (plain → typed)."""


class Field:
    """A field of a STRUCT node."""

    def __init__(self, name: str, index: int, tag: int, node: Node, *, optional: bool,
                 null_if_none: bool, omit_empty: int, required: bool, default: object,
                 default_kind: int, copy: Callable[[object], object] | None) -> None:
        self.name = name
        """The attribute (or, for parameters, the keyword) name."""
        self.index = index
        self.tag = tag
        self.key = _key(tag)
        """The tag as CBOR (the map key)."""
        self.node = node
        """The field's type (an OPTIONAL node for an optional field)."""
        inner = node.item if optional else node
        assert inner is not None
        self.inner = inner
        """What a value that is not None is encoded as (inside the optional)."""
        self.optional = optional
        self.null_if_none = null_if_none
        """An optional field whose default is not None: None is sent as null."""
        self.omit_empty = omit_empty
        """1 / 2: a list / map whose default is empty: left out when empty."""
        self.required = required
        self.default = default
        self.default_kind = default_kind
        self.copy = copy


def _key(tag: int) -> bytes:
    out: list[bytes] = []
    _int(out, tag)
    return b"".join(out)


# -- encoding ------------------------------------------------------------------------------


def encode(node: Node, value: object) -> bytes | _Fallback:
    """The CBOR of ``value`` (the ordinary path's bytes), or FALLBACK."""
    out: list[bytes] = []
    try:
        _enc(out, node, value)
    except (_GiveUp, RecursionError):
        return FALLBACK
    except Exception:  # a converter (CONVERT) refused: the ordinary path says why
        return FALLBACK
    return b"".join(out)


def _enc(out: list[bytes], node: Node, value: object) -> None:
    kind = node.kind
    cls = value.__class__
    if kind == K_STRUCT:
        _enc_struct(out, node, value)
    elif kind == K_STRING:
        if cls is not str:
            raise _GiveUp
        assert isinstance(value, str)
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise _GiveUp from None
        size = len(data)
        if size < 24:
            out.append(_BYTE[0x60 | size])
        else:
            _head(out, 0x60, size)
        out.append(data)
    elif kind == K_INT:
        if cls is not int:
            raise _GiveUp
        assert isinstance(value, int)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _GiveUp
        _int(out, value)
    elif kind == K_OPTIONAL:
        if value is None:
            out.append(b"\xf6")
        else:
            assert node.item is not None
            _enc(out, node.item, value)
    elif kind == K_BOOL:
        if value is True:
            out.append(b"\xf5")
        elif value is False:
            out.append(b"\xf4")
        else:
            raise _GiveUp
    elif kind == K_DECIMAL:
        if cls is not Decimal:
            raise _GiveUp
        assert isinstance(value, Decimal)
        if (not value.is_finite() or len(str(value)) > DECIMAL_MAX_DIGITS
                or not -_FAST_ADJUSTED <= value.adjusted() <= _FAST_ADJUSTED):
            raise _GiveUp  # the converter's precise check decides
        _encode(out, value)
    elif kind == K_ENUM:
        enum = node.cls
        assert enum is not None
        if not isinstance(value, enum):
            raise _GiveUp
        number: object = value._value_  # type: ignore[attr-defined]
        if number.__class__ is not int or not _INT64_MIN <= number <= _INT64_MAX:
            raise _GiveUp
        _int(out, number)
    elif kind == K_LIST:
        if cls is not list and not isinstance(value, list | tuple):
            raise _GiveUp
        assert isinstance(value, list | tuple)
        if len(value) > node.max_len:
            raise _GiveUp
        item = node.item
        assert item is not None
        _head(out, 0x80, len(value))
        for element in value:
            _enc(out, item, element)
    elif kind == K_FLOAT:
        if cls is not float:
            raise _GiveUp
        assert isinstance(value, float)
        if value != value or value in (float("inf"), float("-inf")):
            raise _GiveUp
        out.append(b"\xfb")
        out.append(_pack_double(value))
    elif kind == K_BYTES:
        if cls is not bytes:
            raise _GiveUp
        assert isinstance(value, bytes)
        _head(out, 0x40, len(value))
        out.append(value)
    else:
        convert = node.enc
        assert kind == K_CONVERT and convert is not None
        _encode(out, convert(value))


def _enc_struct(out: list[bytes], node: Node, obj: object) -> None:
    fields = node.fields
    cls = node.cls
    params: tuple[object, ...] | list[object] = ()
    if cls is None:
        if obj.__class__ is not tuple and not isinstance(obj, tuple | list):
            raise _GiveUp
        assert isinstance(obj, tuple | list)
        if len(obj) != len(fields):
            raise _GiveUp
        params = obj
    elif not isinstance(obj, cls):
        raise _GiveUp
    slot = len(out)
    out.append(b"")
    count = 0
    for field in fields:
        value = params[field.index] if cls is None else getattr(obj, field.name)
        if field.optional:
            if value is None:
                if field.null_if_none:
                    out.append(field.key)
                    out.append(b"\xf6")
                    count += 1
                continue
        elif field.omit_empty:
            omit = field.omit_empty
            if not value and ((omit == 1 and value.__class__ is list)
                              or (omit == 2 and value.__class__ is dict)):
                continue
        out.append(field.key)
        _enc(out, field.inner, value)
        count += 1
    if count < 24:
        out[slot] = _BYTE[0xA0 | count]
    else:
        head: list[bytes] = []
        _head(head, 0xA0, count)
        out[slot] = b"".join(head)


# -- decoding ------------------------------------------------------------------------------


def decode(node: Node, data: bytes, max_depth: int,
           decimal: Callable[[object, bool], object]) -> object:
    """The typed value of ``data`` (the ordinary path's value), or FALLBACK. Bytes after
    the first CBOR item are ignored, as on the ordinary path."""
    reader = _Reader(data, max_depth, decimal)
    try:
        return _dec(reader, node, 0)
    except (_GiveUp, RecursionError):
        return FALLBACK
    except Exception:  # a converter (CONVERT) refused: the ordinary path says why
        return FALLBACK


def _dec(r: _Reader, node: Node, depth: int) -> object:
    kind = node.kind
    data = r.data
    pos = r.pos
    if pos >= len(data):
        raise _GiveUp
    initial = data[pos]
    major = initial >> 5
    if kind == K_STRUCT:
        return _dec_struct(r, node, depth)
    if kind == K_STRING:
        if major != 3:
            raise _GiveUp
        r.pos = pos + 1
        length = r.argument(initial & 0x1F)
        start = r.pos
        end = start + length
        if end > len(data):
            raise _GiveUp
        r.pos = end
        try:
            return data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            raise _GiveUp from None
    if kind in (K_INT, K_ENUM):
        r.pos = pos + 1
        if major == 0:
            number = r.argument(initial & 0x1F)
        elif major == 1:
            number = -1 - r.argument(initial & 0x1F)
        else:
            raise _GiveUp
        if kind == K_ENUM:
            member = node.by_value.get(number)
            if member is None:
                raise _GiveUp  # not declared: the converter's open-enum path
            return member
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise _GiveUp
        return number
    if kind == K_OPTIONAL:
        if initial == 0xF6:
            r.pos = pos + 1
            return None
        assert node.item is not None
        return _dec(r, node.item, depth)
    if kind == K_BOOL:
        r.pos = pos + 1
        if initial == 0xF5:
            return True
        if initial == 0xF4:
            return False
        raise _GiveUp
    if kind == K_DECIMAL:
        # tag 4 with [exponent, mantissa] within the limits (anything else: the ordinary
        # path and its decimal hook decide)
        if (initial != 0xC4 or pos + 1 >= len(data) or data[pos + 1] != 0x82
                or depth + 1 >= r.max_depth - 1):
            raise _GiveUp
        r.pos = pos + 2
        exponent = _dec_int(r)
        mantissa = _dec_int(r)
        if (-DECIMAL_MAX_EXPONENT <= exponent <= DECIMAL_MAX_EXPONENT
                and -MANTISSA_LIMIT < mantissa < MANTISSA_LIMIT):
            return Decimal(mantissa).scaleb(exponent, EXACT)
        raise _GiveUp
    if kind == K_LIST:
        if major != 4 or depth >= r.max_depth - 1:
            raise _GiveUp
        r.pos = pos + 1
        count = r.argument(initial & 0x1F)
        if count > node.max_len or count > len(data):
            raise _GiveUp
        item = node.item
        assert item is not None
        items: list[object] = []
        for _ in range(count):
            items.append(_dec(r, item, depth + 1))
        return items
    if kind == K_FLOAT:
        if initial != 0xFB or pos + 9 > len(data):
            raise _GiveUp
        r.pos = pos + 9
        value: float = _unpack_double(data, pos + 1)[0]
        return value
    if kind == K_BYTES:
        if major != 2:
            raise _GiveUp
        r.pos = pos + 1
        length = r.argument(initial & 0x1F)
        start = r.pos
        end = start + length
        if end > len(data):
            raise _GiveUp
        r.pos = end
        return data[start:end]
    convert = node.dec
    assert kind == K_CONVERT and convert is not None
    return convert(r.item(depth))


def _dec_int(r: _Reader) -> int:
    data = r.data
    pos = r.pos
    if pos >= len(data):
        raise _GiveUp
    initial = data[pos]
    r.pos = pos + 1
    major = initial >> 5
    if major == 0:
        return r.argument(initial & 0x1F)
    if major == 1:
        return -1 - r.argument(initial & 0x1F)
    raise _GiveUp


def _dec_struct(r: _Reader, node: Node, depth: int) -> object:
    data = r.data
    pos = r.pos
    initial = data[pos]
    if initial >> 5 != 5 or depth >= r.max_depth - 1:
        raise _GiveUp
    r.pos = pos + 1
    count = r.argument(initial & 0x1F)
    fields = node.fields
    by_tag = node.by_tag
    values: list[object] = [_UNSET] * len(fields)
    for _ in range(count):
        pos = r.pos
        if pos >= len(data):
            raise _GiveUp
        initial = data[pos]
        if initial >> 5 != 0:
            raise _GiveUp  # a key other than a tag: the ordinary path decides
        r.pos = pos + 1
        index = by_tag.get(r.argument(initial & 0x1F), -1)
        if index < 0 or values[index] is not _UNSET:
            raise _GiveUp  # an unknown field (skipped there) or a repeated one (refused)
        values[index] = _dec(r, fields[index].node, depth + 1)
    for index, field in enumerate(fields):
        if values[index] is _UNSET:
            if field.required:
                raise _GiveUp
            kind = field.default_kind
            if kind == DEFAULT_CONST:
                values[index] = field.default
            elif kind == DEFAULT_LIST:
                values[index] = []
            elif kind == DEFAULT_DICT:
                values[index] = {}
            else:
                copy = field.copy
                assert copy is not None
                values[index] = copy(field.default)
    cls = node.cls
    if cls is None:
        return tuple(values)
    setters = node.setters
    new = node.new
    if setters is not None and new is not None:
        obj = new(cls)
        for index, setter in enumerate(setters):
            setter(obj, values[index])
        return obj
    kwargs = {field.name: values[index] for index, field in enumerate(fields)}
    try:
        return cls(**kwargs)
    except Exception:
        raise _GiveUp from None  # the ordinary path reports it
