"""Types of the optional C module ``rpcx.codec._ctyped`` (see ``_ctyped.c``)."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from rpcx.codec._typed import Node

class Plan:
    """A typed CBOR plan, copied into C."""

def prepare(node: Node, fallback: object, decimal_type: type[Decimal], /) -> Plan | None:
    """The plan in C, or None when it holds a map, union or timestamp."""

def decode(plan: Plan, data: bytes, max_depth: int, /) -> object:
    """The typed value of ``data``, or the fallback given to :func:`prepare`."""

def encode(plan: Plan, value: object, /) -> bytes | object:
    """The CBOR of ``value``, or the fallback given to :func:`prepare`."""

class Decoder:
    """One schema's decode: :func:`decode` for bytes of at most ``max_bytes``, ``slow``
    for everything else (and for the fallback)."""

    def __init__(self, plan: Plan, max_depth: int, max_bytes: int,
                 slow: Callable[[Any], Any]) -> None: ...
    def __call__(self, data: Any, /) -> Any: ...

class Encoder:
    """One schema's encode: :func:`encode`, and ``slow`` for what it gives up on (or
    whose bytes are over ``max_bytes``)."""

    def __init__(self, plan: Plan, max_depth: int, max_bytes: int,
                 slow: Callable[[Any], bytes]) -> None: ...
    def __call__(self, value: Any, /) -> bytes: ...
