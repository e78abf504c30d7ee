"""INVALID_ARGUMENT for arguments that do not decode, with details a client can act on.

The message says it in words (``invalid arguments to payments.Payments/process_payment:
card.expiry_date: expected string, got int``); the details say it for a program, the same
natively (ERROR key 3) and in the HTTP JSON body (``details``)::

    {"field": "card.expiry_date", "expected": "string",
     "reason": "expected string, got int"}

- ``field``: where the bad value is, as a path into the parameters (``card.tags[2]``,
  ``prices["GBP"]``); for a missing required field, that field's path; ``""`` for the
  arguments as a whole (a body that is not JSON, or not an object).
- ``expected``: the IDL type the field has (``string``, ``decimal``, ``payments.Card``,
  ``list<string>``, ``payments.Currency``); absent when ``field`` is ``""``.
- ``reason``: the codec's words without the path.
"""

from __future__ import annotations

import re
from typing import Any, Final

from rpcx.errors import CodecError, RpcError
from rpcx.schema import FieldSpec, Kind, StructSpec, TypeRef, UnionSpec, spec_of
from rpcx.status import Status

__all__ = ["argument_details", "invalid_arguments", "type_at"]

_MISSING: Final = re.compile(r"missing required field '([A-Za-z_][A-Za-z0-9_]*)'")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _segments(path: str) -> list[str] | None:
    """``card.tags[2]`` → ``["card", "tags", "[2]"]`` (bracketed segments kept whole, a
    quoted key may hold ``.`` and ``]``); None if the path has another shape."""
    out: list[str] = []
    i = 0
    while i < len(path):
        if path[i] == "[":
            j = i + 1
            if j < len(path) and path[j] == '"':
                j += 1
                while j < len(path) and path[j] != '"':
                    j += 2 if path[j] == "\\" else 1
                j += 1
            j = path.find("]", j)
            if j < 0:
                return None
            out.append(path[i:j + 1])
            i = j + 1
            continue
        if path[i] == "." and out:
            i += 1
        found = _NAME.match(path, i)
        if found is None:
            return None
        out.append(found.group())
        i = found.end()
    return out


def _fields(ref: TypeRef) -> tuple[FieldSpec, ...] | None:
    if ref.kind in (Kind.STRUCT, Kind.UNION) and ref.cls is not None:
        spec = spec_of(ref.cls)
        if isinstance(spec, StructSpec):
            return spec.fields
        if isinstance(spec, UnionSpec):
            return spec.variants
    return None


def type_at(params: StructSpec, path: str) -> TypeRef | None:
    """The type of the value at ``path`` in ``params`` (None if the path leads nowhere)."""
    segments = _segments(path)
    if not segments:
        return None
    fields: tuple[FieldSpec, ...] | None = params.fields
    ref: TypeRef | None = None
    for segment in segments:
        if ref is not None:
            while ref.kind is Kind.OPTIONAL and ref.item is not None:
                ref = ref.item
        if segment.startswith("["):
            if ref is None or ref.kind not in (Kind.LIST, Kind.MAP) or ref.item is None:
                return None
            ref = ref.item
            continue
        if ref is not None:
            fields = _fields(ref)
        if fields is None:
            return None
        found = next((f for f in fields if f.name == segment), None)
        if found is None:
            return None
        ref = found.type
    return ref


def argument_details(params: StructSpec, exc: CodecError) -> dict[str, Any]:
    """The structured details of arguments that failed to decode with ``exc``."""
    field = exc.path
    missing = _MISSING.fullmatch(exc.reason)
    if missing is not None:
        field = f"{field}.{missing.group(1)}" if field else missing.group(1)
    details: dict[str, Any] = {"field": field}
    ref = type_at(params, field) if field else None
    if ref is not None:
        details["expected"] = ref.describe()
    details["reason"] = exc.reason
    return details


def invalid_arguments(method_path: str, params: StructSpec, exc: CodecError) -> RpcError:
    """The INVALID_ARGUMENT error for arguments to ``method_path`` that did not decode."""
    return RpcError(Status.INVALID_ARGUMENT, f"invalid arguments to {method_path}: {exc}",
                    argument_details(params, exc))
