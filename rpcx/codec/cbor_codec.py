"""The CBOR codec: the rpcx wire format for payloads (see ``docs/marshalling.md``).

Structs are CBOR maps keyed by integer field tag; unions are one-entry maps; decimals are
tag 4 decimal fractions; timestamps are integer microseconds since the Unix epoch. Decoding
refuses every CBOR tag other than 4, duplicate map keys, indefinite lengths and anything
nested deeper than ``max_depth``. Bytes after the first complete CBOR item are ignored
(``cbor2.loads`` does not report them; the RPC framing delimits each payload exactly).
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn

import cbor2

from rpcx.codec import _cbor, _typed
from rpcx.codec._limits import LimitedCodec, too_big
from rpcx.codec.base import (
    DEFAULT_MAX_COLLECTION_LEN,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_MESSAGE_BYTES,
    Schema,
)
from rpcx.codec.convert import (
    DECIMAL_MAX_EXPONENT,
    PathError,
    decimal_from_parts,
)
from rpcx.errors import CodecError
from rpcx.text import plain

if TYPE_CHECKING:
    from rpcx.codec import _ctyped

__all__ = ["CborCodec"]

DECIMAL_TAG: Final = 4

# Tags cbor2 6.x decodes by itself (found by probing 0..70000 on cbor2 6.3.0). They go
# through ``semantic_decoders``; every other tag goes through ``tag_hook``. Both refuse.
_BUILTIN_TAGS: Final = (0, 1, 2, 3, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258,
                        260, 261, 1004, 43000, 55799)

_dumps: Final = cbor2.dumps
_loads: Final = cbor2.loads
_FAST: Final = _cbor.COMPILED
"""In the compiled build, the common messages are encoded and decoded by rpcx.codec._cbor
(the same bytes and values as cbor2, which handles everything else)."""
_fast_dumps: Final = _cbor.dumps
_fast_loads: Final = _cbor.loads
_FALLBACK: Final = _cbor.FALLBACK
_typed_encode: Final = _typed.encode
_typed_decode: Final = _typed.decode

try:  # the compiled build's C module (hatch_build.py); the pure build goes without
    from rpcx.codec._ctyped import Decoder as _CDecoder
    from rpcx.codec._ctyped import Encoder as _CEncoder
    from rpcx.codec._ctyped import decode as _c_decode
    from rpcx.codec._ctyped import encode as _c_encode
    from rpcx.codec._ctyped import prepare as _c_prepare
    _C_TYPED = True
    """The typed path in C (rpcx.codec._ctyped) is there: a plan without maps, unions
    or timestamps takes it, in either build (when False, the three names are unbound)."""
except ImportError:  # pragma: no cover - depends on the build
    _C_TYPED = False
_TYPED: Final = _FAST or _C_TYPED
"""Typed values go straight to bytes and back (rpcx.codec._typed or _ctyped)."""
_Plan = tuple[Schema, "_typed.Node | None", "_ctyped.Plan | None"]


def _refuse(tag: int) -> NoReturn:
    raise PathError(f"CBOR tag {tag} is not allowed (only tag 4, decimal fraction)")


def _semantic_refuse(tag: int) -> Any:
    def refuse(_value: object, _immutable: bool) -> NoReturn:
        _refuse(tag)

    return refuse


def _tag_hook(tag: cbor2.CBORTag, _immutable: bool) -> NoReturn:
    _refuse(tag.tag)


_MANTISSA_LIMIT: Final = _cbor.MANTISSA_LIMIT
_EXACT: Final = _cbor.EXACT


def _decimal(value: Any, _immutable: bool) -> decimal.Decimal:
    """Tag 4 content ``[exponent, mantissa]`` → the exact Decimal, within the limits."""
    if (value.__class__ is list or value.__class__ is tuple) and len(value) == 2:
        exponent, mantissa = value
        if (exponent.__class__ is int and mantissa.__class__ is int
                and -DECIMAL_MAX_EXPONENT <= exponent <= DECIMAL_MAX_EXPONENT
                and -_MANTISSA_LIMIT < mantissa < _MANTISSA_LIMIT):
            # Exact: the private context has room for every allowed mantissa, traps
            # Inexact, and does not depend on the thread's decimal context.
            return decimal.Decimal(mantissa).scaleb(exponent, _EXACT)
        return decimal_from_parts(exponent, mantissa)  # raises the precise error
    raise PathError("decimal fraction must be [int exponent, int mantissa]")


_SEMANTIC: Final[dict[int, Any]] = {tag: _semantic_refuse(tag) for tag in _BUILTIN_TAGS}
_SEMANTIC[DECIMAL_TAG] = _decimal


def _decode_error(exc: BaseException) -> CodecError:
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, PathError):
        cause = cause.__cause__
    if isinstance(cause, PathError):
        return CodecError(f"invalid CBOR: {cause.reason}")
    if isinstance(exc, RecursionError):
        return CodecError("invalid CBOR: nested too deeply")
    if isinstance(exc, MemoryError):
        return CodecError("invalid CBOR: out of memory")
    reason = plain(str(exc))  # cbor2's own words, without any Python notation
    return CodecError(f"invalid CBOR: {reason}" if reason else "invalid CBOR")


class CborCodec(LimitedCodec):
    """Tag-keyed CBOR through cbor2, validated against the schema both ways.

    :param max_message_bytes: the largest encoded message accepted or produced.
    :param max_depth: the deepest nesting of CBOR containers accepted when decoding.
    :param max_collection_len: the most entries in one schema list or map, both ways.
    """

    name: str = "cbor"
    content_type: str = "application/cbor"
    _json = False

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_depth: int = DEFAULT_MAX_DEPTH,
                 max_collection_len: int = DEFAULT_MAX_COLLECTION_LEN) -> None:
        super().__init__(max_message_bytes=max_message_bytes, max_depth=max_depth,
                         max_collection_len=max_collection_len)
        self._plans: dict[int, _Plan] = {}
        """Compiled build: the typed path's plan per schema: the schema, its plan for
        ``rpcx.codec._typed`` (when that is compiled) and its copy for
        ``rpcx.codec._ctyped`` (None when the C module is missing or does not take it)."""

    def _plan(self, schema: Schema) -> _Plan:
        from rpcx.codec._plan import plan
        from rpcx.schema import StructSpec, TypeRef

        given: object = schema  # (typed, but a caller may pass anything)
        node = plan(given, self._encoders, self._decoders, self.max_collection_len) \
            if isinstance(given, TypeRef | StructSpec) else None  # (else: refused below)
        c_plan = _c_prepare(node, _FALLBACK, decimal.Decimal) \
            if node is not None and _C_TYPED else None
        entry = (schema, node if _FAST else None, c_plan)
        self._plans[id(schema)] = entry
        return entry

    def _known(self, schema: Schema) -> _Plan:
        """The schema's plans (see :meth:`_plan`), made on first use."""
        known = self._plans.get(id(schema))
        if known is None or known[0] is not schema:
            known = self._plan(schema)
        return known

    def decoder(self, schema: Schema) -> Callable[[bytes], Any]:
        """``decode`` for one schema as one callable: with the C module, a
        ``rpcx.codec._ctyped.Decoder`` (no Python frame for a message it takes)."""
        slow = functools.partial(self.decode, schema)
        plan = self._known(schema)[2] if _C_TYPED else None
        if plan is None:
            return slow
        return _CDecoder(plan, self.max_depth, self.max_message_bytes, slow)

    def encoder(self, schema: Schema) -> Callable[[Any], bytes]:
        """``encode`` for one schema as one callable (see :meth:`decoder`)."""
        slow = functools.partial(self.encode, schema)
        plan = self._known(schema)[2] if _C_TYPED else None
        if plan is None:
            return slow
        return _CEncoder(plan, self.max_depth, self.max_message_bytes, slow)

    def encode(self, schema: Schema, value: object) -> bytes:
        if _TYPED:
            # Typed value straight to bytes (rpcx.codec._ctyped or _typed); anything it
            # does not take, and every error, goes the ordinary way below.
            known = self._plans.get(id(schema))  # (_known, inline: the call path)
            if known is None or known[0] is not schema:
                known = self._plan(schema)
            _, node, c_plan = known
            if c_plan is not None:
                typed = _c_encode(c_plan, value)
            else:
                typed = _typed_encode(node, value) if node is not None else _FALLBACK
            if isinstance(typed, bytes):
                if len(typed) > self.max_message_bytes:
                    raise too_big(len(typed), self.max_message_bytes)
                return typed
        # Written out in each codec rather than shared through the base class: this is
        # the call path, and the shared version measured 2-3 % slower.
        entry = self._enc_cache.get(id(schema))
        if entry is not None and entry[0] is schema:
            convert = entry[1]
        else:
            convert = self._encoders.get(schema)
        try:
            plain = convert(value)
            fast = _fast_dumps(plain) if _FAST else _FALLBACK
            data = fast if isinstance(fast, bytes) else _dumps(plain)
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
        if type(data) is not bytes:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise CodecError(f"expected bytes to decode, got {type(data).__name__}")
            data = bytes(data)
        if len(data) > self.max_message_bytes:
            raise too_big(len(data), self.max_message_bytes)
        if _TYPED:
            known = self._plans.get(id(schema))  # (_known, inline: the call path)
            if known is None or known[0] is not schema:
                known = self._plan(schema)
            _, node, c_plan = known
            if c_plan is not None:
                typed = _c_decode(c_plan, data, self.max_depth)
            else:
                typed = _typed_decode(node, data, self.max_depth, _decimal) \
                    if node is not None else _FALLBACK
            if typed is not _FALLBACK:
                return typed
        entry = self._dec_cache.get(id(schema))
        if entry is not None and entry[0] is schema:
            convert = entry[1]
        else:
            convert = self._decoders.get(schema)
        plain = _fast_loads(data, self.max_depth, _decimal) if _FAST else _FALLBACK
        try:
            if plain is _FALLBACK:
                plain = _loads(
                    data,
                    semantic_decoders=_SEMANTIC,
                    tag_hook=_tag_hook,
                    max_depth=self.max_depth,
                    allow_indefinite=False,
                    allow_duplicate_keys=False,
                )
        except Exception as exc:
            raise _decode_error(exc) from None
        try:
            return convert(plain)
        except PathError as exc:
            raise self._decoders.explain(schema, plain, exc) from None
        except RecursionError:
            raise CodecError("value nested too deeply to decode") from None
        except Exception as exc:  # pragma: no cover - a bug in a converter
            raise CodecError("cannot decode: internal error in the decoder") from exc
