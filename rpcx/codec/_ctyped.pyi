"""Types of the optional C module ``rpcx.codec._ctyped`` (see ``_ctyped.c``)."""

from decimal import Decimal

from rpcx.codec._typed import Node

class Plan:
    """A typed CBOR plan, copied into C."""

def prepare(node: Node, fallback: object, decimal_type: type[Decimal], /) -> Plan | None:
    """The plan in C, or None when it holds a map, union or timestamp."""

def decode(plan: Plan, data: bytes, max_depth: int, /) -> object:
    """The typed value of ``data``, or the fallback given to :func:`prepare`."""

def encode(plan: Plan, value: object, /) -> bytes | object:
    """The CBOR of ``value``, or the fallback given to :func:`prepare`."""
