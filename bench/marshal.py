"""Marshalling benchmark: the payments request through the typed codec vs plain cbor2.

Run: ``python bench/marshal.py [--seconds S]``. Prints ops/s and µs/op for typed encode,
decode and round trip (CBOR and JSON), and for cbor2 on an equivalent plain dict; the ratio
column is plain-cbor2 time / typed time (1.0 = as fast as cbor2 alone).
"""

from __future__ import annotations

import argparse
import decimal
import importlib
import timeit
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

import attrs
import cbor2

from rpcx.codec import CborCodec, JsonCodec
from rpcx.schema import (
    DECIMAL,
    STRING,
    EnumSpec,
    FieldSpec,
    OpenEnum,
    StructSpec,
    enum_ref,
    list_of,
    optional,
    struct_ref,
)


class _Currency(OpenEnum):
    GBP = 1
    EUR = 2
    USD = 3


@attrs.frozen(kw_only=True)
class _Card:
    __rpcx_spec__: ClassVar[StructSpec]
    card_number: str
    expiry_date: str
    cvc: str
    holder: str | None = None
    tags: list[str] = attrs.field(factory=list)


def hand_built_payments() -> tuple[StructSpec, type[Any], type[OpenEnum]]:
    """The payments params spec, Card and Currency built by hand.

    TODO: drop this once examples/payments/payments_rpcx.py (generated) exists; it is used
    only when that module cannot be imported.
    """
    _Currency.__rpcx_spec__ = EnumSpec("payments.Currency", _Currency)  # type: ignore[attr-defined]
    _Card.__rpcx_spec__ = StructSpec("payments.Card", _Card, (
        FieldSpec(1, "card_number", STRING),
        FieldSpec(2, "expiry_date", STRING),
        FieldSpec(3, "cvc", STRING),
        FieldSpec(4, "holder", optional(STRING), None),
        FieldSpec(5, "tags", list_of(STRING), []),
    ))
    params = StructSpec("payments.Payments/process_payment", None, (
        FieldSpec(1, "card", struct_ref(_Card)),
        FieldSpec(2, "amount", DECIMAL),
        FieldSpec(3, "currency", enum_ref(_Currency)),
        FieldSpec(4, "merchant", STRING),
    ))
    return params, _Card, _Currency


def _generated() -> ModuleType | None:
    try:
        return importlib.import_module("examples.payments.payments_rpcx")
    except ImportError:
        return None


def load_payments() -> tuple[StructSpec, type[Any], type[OpenEnum], str]:
    """(params spec, Card, Currency, where they came from)."""
    module = _generated()
    if module is not None:
        service = getattr(module, "PaymentsService_SPEC", None)
        if service is None:  # the generator attaches the ServiceSpec to the service class
            service = module.PaymentsService.__rpcx_spec__
        method = service.method("process_payment")
        return method.params, module.Card, module.Currency, "examples/payments/payments_rpcx.py"
    params, card, currency = hand_built_payments()
    return params, card, currency, "hand-built specs (generated module not found)"


def _time(fn: Callable[[], object], seconds: float) -> float:
    """Best µs per call over five runs of about ``seconds / 5`` each."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    per_run = max(1, int(number * seconds / 5 / max(timer.timeit(number), 1e-9)))
    return min(timer.repeat(repeat=5, number=per_run)) / per_run * 1e6


def run(seconds: float) -> list[tuple[str, float, float]]:
    params, card_cls, currency, source = load_payments()
    print(f"schema: {source}")
    value = (card_cls(card_number="4111111111111111", expiry_date="12/2030", cvc="123"),
             decimal.Decimal("3.99"), currency(1), "Acme Ltd")
    plain = {1: {1: "4111111111111111", 2: "12/2030", 3: "123"}, 2: decimal.Decimal("3.99"),
             3: 1, 4: "Acme Ltd"}
    cbor, js = CborCodec(), JsonCodec()
    data, plain_data, json_data = cbor.encode(params, value), cbor2.dumps(plain), js.encode(
        params, value)
    assert cbor.decode(params, data) == value and js.decode(params, json_data) == value

    cases: list[tuple[str, Callable[[], object], str]] = [
        ("cbor2 dumps (plain dict)", lambda: cbor2.dumps(plain), ""),
        ("cbor2 loads (plain dict)", lambda: cbor2.loads(plain_data), ""),
        ("cbor2 round trip (plain dict)", lambda: cbor2.loads(cbor2.dumps(plain)), ""),
        ("rpcx cbor encode", lambda: cbor.encode(params, value), "cbor2 dumps (plain dict)"),
        ("rpcx cbor decode", lambda: cbor.decode(params, data), "cbor2 loads (plain dict)"),
        ("rpcx cbor round trip", lambda: cbor.decode(params, cbor.encode(params, value)),
         "cbor2 round trip (plain dict)"),
        ("rpcx json encode", lambda: js.encode(params, value), "cbor2 dumps (plain dict)"),
        ("rpcx json decode", lambda: js.decode(params, json_data), "cbor2 loads (plain dict)"),
        ("rpcx json round trip", lambda: js.decode(params, js.encode(params, value)),
         "cbor2 round trip (plain dict)"),
    ]
    results: dict[str, float] = {}
    rows = []
    for label, fn, baseline in cases:
        us = _time(fn, seconds)
        results[label] = us
        ratio = results[baseline] / us if baseline else 1.0
        rows.append((label, us, ratio))
    print(f"{'case':32} {'ops/s':>10} {'µs/op':>8} {'ratio':>6}")
    for label, us, ratio in rows:
        print(f"{label:32} {1e6 / us:10,.0f} {us:8.2f} {ratio:6.2f}")
    print(f"wire: {len(data)} bytes typed CBOR, {len(plain_data)} bytes plain dict, "
          f"{len(json_data)} bytes JSON")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per case")
    run(parser.parse_args().seconds)


if __name__ == "__main__":
    main()
