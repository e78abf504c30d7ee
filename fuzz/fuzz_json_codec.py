"""Atheris target: the JSON codec's decoder on arbitrary bytes.

    python fuzz/fuzz_json_codec.py -atheris_runs=200000      # (see fuzz/README.md)

The first byte chooses a schema (the payments parameters, a map of decimals, nested lists
and maps, a union, ...); the rest is decoded as JSON against it. The property: decoding
returns a value or raises :class:`rpcx.errors.CodecError` only (no RecursionError,
ValueError, ...), whose message has no Python notation; a decoded value encodes again.
Hypothesis twins: ``tests/codec/test_fuzz.py`` and ``tests/codec/test_json_hostile.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    from rpcx.codec import JsonCodec
    from rpcx.errors import CodecError
    from rpcx.schema import BYTES, FLOAT, INT, STRING, TIMESTAMP, list_of, map_of, optional
    from rpcx.testing.fuzzing import python_notation
    from tests.codec.schemas import CARD, CURRENCY, PAYMENT_METHOD, PRICES, PROCESS_PAYMENT

CODEC = JsonCodec(max_message_bytes=1 << 16)
SCHEMAS: list[Any] = [PROCESS_PAYMENT, CARD, PRICES, PAYMENT_METHOD, list_of(INT),
                      list_of(list_of(FLOAT)), map_of(INT, optional(STRING)),
                      map_of(CURRENCY, TIMESTAMP), BYTES, list_of(map_of(STRING, INT))]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    schema = SCHEMAS[data[0] % len(SCHEMAS)]
    try:
        value = CODEC.decode(schema, data[1:])
    except CodecError as exc:
        found = python_notation(str(exc))
        if found is not None:
            raise AssertionError(f"Python notation {found!r} in {str(exc)!r}") from None
        return
    CODEC.encode(schema, value)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
