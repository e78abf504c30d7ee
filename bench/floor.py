"""The floor under an rpcx call: the synchronous Python work each side must do per call.

Run from the repository root: ``PYTHONPATH=. python bench/floor.py [--calls N]``.

No sockets, no trio, no scheduling: the client's sans-I/O ``Connection`` and typed codec
produce the request bytes, the server's ``Connection`` parses them, the ``Dispatcher``
decodes the arguments, runs the real payments handler (driven to completion directly; it
does not suspend for an ordinary merchant) and encodes the result, the server frames the
reply, and the client parses it and decodes the result. Every byte is real; only the
I/O and the task switches are left out. Whatever a benchmark over TCP measures, each
process spends at least this much CPU per call, so ``1e6 / floor`` calls/s is an upper
bound for one process (one core) before any I/O.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

from examples.payments.payments_rpcx import Card, Currency, PaymentsService
from examples.payments.service import Payments
from rpcx import spec_of
from rpcx.codec import CborCodec
from rpcx.protocol import Connection, RequestReceived, ResponseReceived, Role
from rpcx.runtime.dispatch import Dispatcher, Success
from rpcx.schema import ServiceSpec

CARD = Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123")
ARGS: tuple[Any, ...] = (CARD, Decimal("3.99"), Currency.GBP, "Acme Ltd")


def run_to_completion(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends; fail loudly if it tries to."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the handler suspended; the floor needs one that does not")


def measure(calls: int) -> dict[str, float]:
    spec = spec_of(PaymentsService)
    assert isinstance(spec, ServiceSpec)
    method = next(m for m in spec.methods if m.py_name == "process_payment")
    assert method.result is not None
    codec = CborCodec()
    dispatcher = Dispatcher([Payments()])
    client = Connection(Role.CLIENT, now=0.0)
    server = Connection(Role.SERVER, now=0.0)
    server.receive_data(client.data_to_send(), 0.0)
    client.receive_data(server.data_to_send(), 0.0)
    list(server.events())
    list(client.events())
    totals = dict.fromkeys(("client encode+frame", "server parse", "server dispatch",
                            "server reply frame", "client parse+decode", "handler"), 0.0)
    args = codec.decode(method.params, codec.encode(method.params, ARGS))
    handler = Payments()
    clock = time.perf_counter
    for _ in range(calls):
        t0 = clock()
        payload = codec.encode(method.params, ARGS)
        client.start_call(method.path, payload, now=0.0, timeout=10.0, metadata={},
                          idempotency_key=os.urandom(16))
        wire = client.data_to_send()
        t1 = clock()
        server.receive_data(wire, 0.0)
        (request,) = server.events()
        assert isinstance(request, RequestReceived)
        t2 = clock()
        reply = run_to_completion(dispatcher.dispatch(request.method, request.payload, codec,
                                                      metadata=request.metadata,
                                                      deadline=math.inf))
        assert isinstance(reply, Success)
        t3 = clock()
        server.send_response(request.call_id, reply.payload)
        back = server.data_to_send()
        t4 = clock()
        client.receive_data(back, 0.0)
        (response,) = client.events()
        assert isinstance(response, ResponseReceived)
        codec.decode(method.result, response.payload)
        t5 = clock()
        run_to_completion(handler.process_payment(*args))
        t6 = clock()
        for name, spent in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5),
                               strict=True):
            totals[name] += spent
    return {name: 1e6 * spent / calls for name, spent in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    options = parser.parse_args()
    measure(min(2000, options.calls))  # warm up
    per_call = measure(options.calls)
    client = per_call["client encode+frame"] + per_call["client parse+decode"]
    server = (per_call["server parse"] + per_call["server dispatch"]
              + per_call["server reply frame"])
    print("| part | µs per call |\n| --- | ---: |")
    for name, value in per_call.items():
        label = f"{name} (inside dispatch)" if name == "handler" else name
        print(f"| {label} | {value:.1f} |")
    print(f"| **client total** | **{client:.1f}** |")
    print(f"| **server total** | **{server:.1f}** |")
    print(f"\nupper bounds before any I/O: client {1e6 / client:,.0f} calls/s, "
          f"server {1e6 / server:,.0f} calls/s (one core each)")


if __name__ == "__main__":
    main()
