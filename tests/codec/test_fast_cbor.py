"""rpcx.codec._cbor (the compiled build's CBOR path) against cbor2, the reference: every
value it encodes is cbor2's bytes, every input it decodes is cbor2's value, and it gives
up on everything else (cbor2 then handles it, errors included). The compiled build runs
these tests too, on the compiled module."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcx.codec import _cbor
from rpcx.codec.cbor_codec import _SEMANTIC, _decimal, _tag_hook

_ints = st.integers(min_value=-(2**66), max_value=2**66) | st.sampled_from(
    [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1, 2**64, -(2**64),
     -(2**64) - 1, -1, -24, -25])
_decimals = st.decimals(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [Decimal("-0"), Decimal("0.00"), Decimal("1E+3"), Decimal("1.0E+2"), Decimal("3.99"),
     Decimal("123456789012345678901234")])
_scalars = (st.none() | st.booleans() | _ints | st.floats() | st.text() | st.binary()
            | _decimals)
_keys = st.integers(min_value=-(2**70), max_value=2**70) | st.text() | st.booleans()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
    | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _reference(data: bytes, max_depth: int = 32) -> Any:
    return cbor2.loads(data, semantic_decoders=_SEMANTIC, tag_hook=_tag_hook,
                       max_depth=max_depth, allow_indefinite=False, allow_duplicate_keys=False)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_dumps_writes_cbor2s_bytes_or_gives_up(value: Any) -> None:
    data = _cbor.dumps(value)
    if data is not _cbor.FALLBACK:
        assert data == cbor2.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.text() | st.binary()
    | st.decimals(allow_nan=False, allow_infinity=False, places=4, max_value=10**12,
                  min_value=-(10**12)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.integers(min_value=0, max_value=1000) | st.text(max_size=8), inner, max_size=4),
    max_leaves=12))
def test_the_common_values_take_the_fast_path_both_ways(value: Any) -> None:
    data = _cbor.dumps(value)
    assert data == cbor2.dumps(value)
    assert isinstance(data, bytes)
    back = _cbor.loads(data, 32, _decimal)
    assert back is not _cbor.FALLBACK
    assert _same(back, _reference(data))


@settings(max_examples=400, deadline=None)
@given(_values, st.integers(min_value=1, max_value=40))
def test_loads_returns_cbor2s_value_or_gives_up(value: Any, max_depth: int) -> None:
    data = cbor2.dumps(value)
    _check_loads(data, max_depth)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=40) | st.builds(lambda v, tail: cbor2.dumps(v)[:-1] + tail,
                                          _values, st.binary(max_size=3)))
def test_loads_on_arbitrary_bytes(data: bytes) -> None:
    _check_loads(data, 32)


def _check_loads(data: bytes, max_depth: int) -> None:
    got = _cbor.loads(data, max_depth, _decimal)
    try:
        expected = _reference(data, max_depth)
    except Exception:
        assert got is _cbor.FALLBACK
        return
    if got is not _cbor.FALLBACK:
        assert _same(got, expected)


def test_the_payments_request_takes_the_fast_path() -> None:
    value = {1: {1: "4111 1111 1111 1111", 2: "10/2030", 3: "123"}, 2: Decimal("3.99"),
             3: 1, 4: "Acme Ltd"}
    data = _cbor.dumps(value)
    assert data == cbor2.dumps(value)
    assert isinstance(data, bytes)
    assert _cbor.loads(data, 32, _decimal) == value


@pytest.mark.parametrize("data", [b"\xc4\x82\x00\xf4", b"\xc4\x82\xf5\x01", b"\xc4\x82\xf4\xf5"])
def test_a_decimal_with_a_boolean_part_is_refused_like_cbor2_does(data: bytes) -> None:
    """Found by the property test on the compiled build: tag 4 [0, false] came back as
    Decimal('0') (a bool narrowed to int lost its class)."""
    assert _cbor.loads(data, 32, _decimal) is _cbor.FALLBACK
