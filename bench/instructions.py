"""Instructions per call, counted by ``valgrind --tool=callgrind`` (issue 12, items 1 and 4).

Run from the repository root::

    python bench/instructions.py            # the table (N1=200, N2=1200 calls)
    python bench/instructions.py --quick    # N1=50, N2=300: about a third of the time
    python bench/instructions.py --repeat   # every case twice: the counts must agree
    python bench/instructions.py --profile  # also the per-call profile of each side

Each case runs twice under callgrind (``--collect-atstart=yes``, the default), once with N1
and once with N2 calls after the same warm-up; instructions per call = (total(N2) -
total(N1)) / (N2 - N1), so start-up, imports and warm-up cancel out. Instruction counts do
not move with the machine's load: they are the figures to steer by.

Cases (all in one process; "the payments request" is ``process_payment(Card("4111 1111
1111 1111", "10/2030", "123"), Decimal("3.99"), Currency.GBP, "Acme Ltd")`` of
``examples/payments`` — 54 bytes of CBOR, the message of PERFORMANCE.md and bench/rpc.py):

- ``idempotent``: sequential calls through ``rpcx.serve`` + ``rpcx.open_channel`` over
  ``unix://``, client and server in one trio run. The client stub is the generated
  ``PaymentsClient.process_payment`` with the method marked ``@idempotent`` (``attrs.evolve``
  of the generated ``MethodSpec``): no idempotency key, no de-dup. The server is the real
  ``examples.payments.service.Payments`` (the server decides nothing from the flag: it
  de-dups exactly when a key arrives).
- ``keyed``: the same through the generated, non-idempotent ``process_payment``: a 16-byte
  key per call and the server's de-dup cache.
- ``inflight64``: the idempotent call with 64 tasks sharing one channel (per call).
- ``echo``: the limit. A raw trio echo over a ``socket.socketpair``:
  the client writes a 12-byte header + the 112-byte body rpcx sends (meta + payload) and
  reads the RESPONSE-shaped reply in its own task; a server task parses headers and
  answers each frame.
- ``echo64``: the raw echo with 64 callers on one socket, one writer and one reader task
  (as bench/rpc.py's raw client).
- ``marshal-typed`` / ``marshal-plain``: ``CborCodec`` encode + decode of the payments
  request vs ``cbor2.dumps`` + ``loads`` of the plain dict ``{1: {1: .., 2: .., 3: ..}, 2:
  Decimal("3.99"), 3: 1, 4: "Acme Ltd"}`` (bench/marshal.py's pair), per round trip.

**The profile** (``--profile``). CPython 3.11 runs every Python function inside
``_PyEval_EvalFrameDefault``, so callgrind alone cannot tell Python functions apart. This
script gives each function it measures a C function of its own: the function is wrapped
so that its body runs inside one of a dozen C iterators or call helpers that nothing else
on the call path uses (``itertools.starmap``'s ``starmap_next``, ``functools.reduce``,
``sys.call_tracing``...). Callgrind's inclusive cost of that C function is then the
inclusive cost of the Python function. Coroutines are driven step by step through the
helper (as ``rpcx.runtime.link._RunJob`` drives a job), so an ``async def`` is charged
for its own work and not for the time it is suspended. Which side a call belongs to comes
from a context variable set before the server and the channel start (trio copies it into
every task they spawn). Targets are measured in a few runs, a dozen each, grouped by
level so that targets of one run rarely nest. The wrapping's own overhead outside the
helper stays out of every figure, but a target's figure includes the overhead of other
targets wrapped inside it in the same run: the top-level split adds up (within 3 % of the
unwrapped total), deeper figures are good to about +-30 % (see bench/RESULTS.md): rank
by them, then confirm a change with the plain counts. ``--profile`` also prints callgrind's
C-level view (instructions per call by shared object, and the top C functions: cbor2,
the socket system calls, the garbage collector, ``os.urandom``).
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import itertools
import json
import operator
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N1, N2 = 200, 1200
QUICK = (50, 300)
WARMUP = 30
FANOUT = 64
HEADER = struct.Struct(">IBBHI")
REQUEST, RESPONSE = 0x01, 0x02

CASES = ("idempotent", "keyed", "inflight64", "echo", "echo64", "marshal-typed",
         "marshal-plain")
LABELS = {
    "idempotent": "rpcx `@idempotent` call, sequential, `unix://`",
    "keyed": "rpcx non-idempotent call (key + server de-dup)",
    "inflight64": "rpcx `@idempotent`, 64 in flight on one channel (per call)",
    "echo": "raw trio echo, sequential, socketpair (the limit)",
    "echo64": "raw trio echo, 64 in flight on one socket (per call)",
    "marshal-typed": "typed CBOR round trip of the payments request",
    "marshal-plain": "cbor2 round trip of the plain dict",
}
RATIO_TO = {"inflight64": "echo64", "marshal-typed": "marshal-plain"}

# ---------------------------------------------------------------- the payments request


def payments() -> dict[str, Any]:
    import attrs

    from examples.payments import payments_rpcx as gen

    card = gen.Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123")
    args = (card, Decimal("3.99"), gen.Currency.GBP, "Acme Ltd")
    keyed = gen._m_Payments_process_payment
    idempotent = attrs.evolve(keyed, idempotent=True)
    return {"gen": gen, "args": args, "keyed": keyed, "idempotent": idempotent}


def idempotent_client(gen: Any, method: Any) -> type[Any]:
    """``PaymentsClient`` whose ``process_payment`` is the generated stub's body with the
    method marked ``@idempotent`` (what ``rpcx gen`` writes for such a method)."""

    class IdempotentPaymentsClient(gen.PaymentsClient):  # type: ignore[misc,name-defined]
        __slots__ = ()

        async def process_payment(self, card: Any, amount: Any, currency: Any,
                                  merchant: str = "", *, timeout: float | None = None,
                                  metadata: Any = None) -> Any:
            result = await self._channel.call(
                method,
                (card, amount, currency, merchant),
                timeout=timeout,
                metadata=metadata,
            )
            return result

    return IdempotentPaymentsClient


# ---------------------------------------------------------------- cases (run under valgrind)


async def rpcx_case(case: str, calls: int) -> None:
    import trio

    import rpcx
    from examples.payments.service import Payments

    p = payments()
    path = os.path.join(tempfile.mkdtemp(prefix="rpcx-instr-"), "s.sock")
    async with trio.open_nursery() as nursery:
        SIDE.set("server")
        server = await nursery.start(
            functools.partial(rpcx.serve, f"unix://{path}", [Payments()]))
        SIDE.set("client")
        async with rpcx.open_channel(f"unix://{path}", default_timeout=10.0) as channel:
            if case == "keyed":
                client = p["gen"].PaymentsClient(channel)
            else:
                cls = idempotent_client(p["gen"], p["idempotent"])
                install_idem_stub(cls)
                client = cls(channel)
            pay = client.process_payment
            args = p["args"]
            for _ in range(WARMUP):
                await pay(*args)
            if case == "inflight64":
                left = [calls]

                async def caller() -> None:
                    while left[0] > 0:
                        left[0] -= 1
                        await pay(*args)

                async with trio.open_nursery() as callers:
                    for _ in range(FANOUT):
                        callers.start_soon(caller)
            else:
                for _ in range(calls):
                    await pay(*args)
        del server
        nursery.cancel_scope.cancel()


def echo_body() -> tuple[bytes, int]:
    import cbor2

    import rpcx

    p = payments()
    payload = rpcx.get_codec("cbor").encode(p["keyed"].params, p["args"])
    meta = cbor2.dumps({1: "payments.Payments/process_payment", 2: 10000})
    return meta + payload, len(meta)


def take_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    offset, size, unpack = 0, HEADER.size, HEADER.unpack_from
    while len(buffer) - offset >= size:
        length, _, _, meta_length, call_id = unpack(buffer, offset)
        end = offset + size + length
        if len(buffer) < end:
            break
        out.append((call_id, bytes(buffer[offset + size + meta_length:end])))
        offset = end
    del buffer[:offset]
    return out


async def echo_server(stream: Any) -> None:
    import trio

    buffer = bytearray()
    pack = HEADER.pack
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            out: list[bytes] = []
            for call_id, body in take_frames(buffer):
                out.append(pack(len(body), RESPONSE, 0, 0, call_id))
                out.append(body)
            if out:
                await stream.send_all(b"".join(out))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def echo_case(case: str, calls: int) -> None:
    import trio

    body, meta_length = echo_body()
    a, b = socket.socketpair()
    client, server = trio.SocketStream(trio.socket.from_stdlib_socket(a)), \
        trio.SocketStream(trio.socket.from_stdlib_socket(b))
    next_id = [0]
    buffer = bytearray()

    def frame() -> tuple[int, bytes]:
        next_id[0] += 1
        return next_id[0], HEADER.pack(len(body), REQUEST, 0, meta_length, next_id[0]) + body

    async def call_alone() -> None:
        call_id, data = frame()
        await client.send_all(data)
        while True:
            got = take_frames(buffer)
            if got:
                assert got[0][0] == call_id
                return
            buffer.extend(await client.receive_some(65536))

    waiting: dict[int, trio.Event] = {}
    outgoing: list[bytes] = []
    wake = [trio.Event()]

    async def call_shared() -> None:
        call_id, data = frame()
        done = waiting[call_id] = trio.Event()
        outgoing.append(data)
        wake[0].set()
        await done.wait()

    async def writer() -> None:
        while True:
            await wake[0].wait()
            wake[0] = trio.Event()
            data = b"".join(outgoing)
            outgoing.clear()
            await client.send_all(data)

    async def reader() -> None:
        while True:
            data = await client.receive_some(65536)
            if not data:
                return
            buffer.extend(data)
            for call_id, _ in take_frames(buffer):
                waiting.pop(call_id).set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo_server, server)
        if case == "echo":
            for _ in range(WARMUP + calls):
                await call_alone()
        else:
            nursery.start_soon(reader)
            nursery.start_soon(writer)
            left = [WARMUP + calls]

            async def caller() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    await call_shared()

            async with trio.open_nursery() as callers:
                for _ in range(FANOUT):
                    callers.start_soon(caller)
        nursery.cancel_scope.cancel()


SCHEDULER_SEED = 12


def marshal_case(case: str, calls: int) -> None:
    import cbor2

    from rpcx.codec import CborCodec

    p = payments()
    if case == "marshal-typed":
        codec, params, args = CborCodec(), p["keyed"].params, p["args"]
        encode, decode = codec.encode, codec.decode
        for _ in range(WARMUP + calls):
            decode(params, encode(params, args))
    else:
        plain = {1: {1: "4111 1111 1111 1111", 2: "10/2030", 3: "123"}, 2: Decimal("3.99"),
                 3: 1, 4: "Acme Ltd"}
        dumps, loads = cbor2.dumps, cbor2.loads
        for _ in range(WARMUP + calls):
            loads(dumps(plain))


def run_case(case: str, calls: int, targets: list[str]) -> None:
    import trio

    # trio reverses each batch of runnable tasks at random (trio._core._run._r): with
    # client and server in one process that changes how tasks share the run loop's rounds,
    # and so the count, by up to a few per cent between runs of the same code. Seeded, the
    # N1 and N2 runs (and the two trees of an A/B) make the same choices.
    trio._core._run._r.seed(SCHEDULER_SEED)
    if targets:
        install(targets)
    if case.startswith("marshal"):
        marshal_case(case, calls)
    elif case.startswith("echo"):
        trio.run(echo_case, case, calls)
    else:
        trio.run(rpcx_case, case, calls)


# ---------------------------------------------------------------- the profile's wrapping

SIDE: contextvars.ContextVar[str] = contextvars.ContextVar("bench_side", default="other")


class _Box:
    """Runs ``fn(*args)`` when called, keeping the value or the exception: the callable a
    C helper invokes."""

    __slots__ = ("args", "error", "fn", "kwargs", "value")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.value: Any = None
        self.error: BaseException | None = None

    def __call__(self, *_: Any) -> bool:
        try:
            self.value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.error = exc
        return True

    def result(self) -> Any:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.value


def _drain(iterator: Iterator[Any]) -> None:
    for _ in iterator:
        pass


_MC = operator.methodcaller("__call__")


# (name of the C function in callgrind's output, how to make it call box once)
HELPERS: list[tuple[str, Callable[[_Box], object]]] = [
    ("starmap_next", lambda box: next(itertools.starmap(box, ((),)))),
    ("takewhile_next", lambda box: next(itertools.takewhile(box, (0,)))),
    ("dropwhile_next", lambda box: _drain(itertools.dropwhile(box, (0,)))),
    ("filterfalse_next", lambda box: _drain(itertools.filterfalse(box, (0,)))),
    ("accumulate_next", lambda box: _drain(itertools.accumulate((0, 0), box))),
    ("functools_reduce", lambda box: functools.reduce(box, (0, 0))),
    ("calliter_iternext", lambda box: next(iter(box, False))),
    ("sys_call_tracing", lambda box: sys.call_tracing(box, ())),
    ("_operator_call", lambda box: operator.call(box)),
    ("methodcaller_call", lambda box: _MC(box)),
    ("groupby_next", lambda box: next(itertools.groupby((0,), box))),
    ("filter_next", lambda box: next(filter(box, (0,)))),
    ("map_next", lambda box: next(map(box, (0,)))),
]


class _Driven:
    """Await a coroutine, running each of its steps through a C helper (``invoke``)."""

    __slots__ = ("coro", "invoke")

    def __init__(self, coro: Any, invoke: Callable[[_Box], object]) -> None:
        self.coro, self.invoke = coro, invoke

    def __await__(self) -> Any:
        coro, invoke = self.coro, self.invoke
        box = _Box(coro.send, (None,), {})
        while True:
            invoke(box)
            try:
                trap = box.result()
            except StopIteration as stop:
                return stop.value
            try:
                sent = yield trap
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                box = _Box(coro.throw, (exc,), {})
            else:
                box = _Box(coro.send, (sent,), {})


def _resolve(dotted: str) -> tuple[Any, str]:
    """``pkg.module:Class.attr`` -> (owner object, attribute name)."""
    import importlib

    module_name, _, rest = dotted.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, attr = rest.split(".")
    for name in parents:
        owner = getattr(owner, name)
    return owner, attr


@dataclass(frozen=True)
class Target:
    key: str
    dotted: str
    sides: tuple[str, ...]
    is_async: bool
    group: str
    label: str


def T(key: str, dotted: str, sides: str, group: str, label: str, *,
      is_async: bool = False) -> Target:
    return Target(key, dotted, tuple(sides.split(",")), is_async, group, label)


# Measured targets, by level: targets of one level rarely nest inside each other.
LEVELS: dict[str, list[Target]] = {
    "top": [
        T("stub", "examples.payments.payments_rpcx:PaymentsClient.process_payment", "client",
          "generated stub", "generated stub `PaymentsClient.process_payment` (incl. below)",
          is_async=True),
        T("reader", "rpcx.runtime.link:Link._reader_loop", "client,server", "link",
          "`link.py:Link._reader_loop` (incl. everything the reader does)", is_async=True),
        T("timer", "rpcx.runtime.link:Link._timer_loop", "client,server", "link",
          "`link.py:Link._timer_loop`", is_async=True),
        T("idem-stub", "__main__:IDEM_STUB", "client", "generated stub",
          "generated stub (idempotent copy) `process_payment` (incl. below)", is_async=True),
    ],
    "runtime": [
        T("call", "rpcx.runtime.channel:Channel.call", "client", "channel",
          "`channel.py:Channel.call` (incl. below)", is_async=True),
        T("run_call", "rpcx.runtime.unary:run_call", "server", "server",
          "`unary.py:run_call` (incl. `execute`, dispatch, reply)", is_async=True),
        T("process", "rpcx.runtime.link:Link._process", "client,server", "link",
          "`link.py:Link._process` (events() + on_event; server: queues the job)"),
        T("flush", "rpcx.runtime.link:Link.flush", "client,server", "link",
          "`link.py:Link.flush` (incl. `send_all`)", is_async=True),
        T("receive_some", "rpcx.transport.sockets:SocketStream.receive_some", "client,server",
          "socket", "`sockets.py:SocketStream.receive_some` (waits, then recv)",
          is_async=True),
    ],
    "connection": [
        T("receive_data", "rpcx.protocol.connection:Connection.receive_data", "client,server",
          "connection", "`connection.py:Connection.receive_data` (incl. buffer, parse_frame)"),
        T("start_call", "rpcx.protocol.connection:Connection.start_call", "client",
          "connection", "`connection.py:Connection.start_call` (incl. RequestFrame, encode)"),
        T("send_response", "rpcx.protocol.connection:Connection.send_response", "server",
          "connection", "`connection.py:Connection.send_response` (incl. ResponseFrame)"),
        T("dispatch", "rpcx.runtime.dispatch:Dispatcher.dispatch", "server", "dispatch",
          "`dispatch.py:Dispatcher.dispatch` (incl. codec, handler)", is_async=True),
        T("unary", "rpcx.runtime.channel:unary", "client", "channel",
          "`unary.py:unary` (incl. encode, attempt, decode)", is_async=True),
        T("send_all", "rpcx.transport.sockets:SocketStream.send_all", "client,server", "socket",
          "`sockets.py:SocketStream.send_all` (only a write the socket did not take "
          "at once)", is_async=True),
        T("dedup_begin", "rpcx.protocol.dedup:DedupCache.begin", "server", "dedup",
          "`dedup.py:DedupCache.begin`"),
        T("dedup_complete", "rpcx.protocol.dedup:DedupCache.complete", "server", "dedup",
          "`dedup.py:DedupCache.complete`"),
    ],
    "leaf": [
        T("encode", "rpcx.codec.cbor_codec:CborCodec.encode", "client,server", "codec",
          "`cbor_codec.py:CborCodec.encode` (incl. cbor2.dumps)"),
        T("decode", "rpcx.codec.cbor_codec:CborCodec.decode", "client,server", "codec",
          "`cbor_codec.py:CborCodec.decode` (incl. cbor2.loads)"),
        T("handler", "examples.payments.service:Payments.process_payment", "server",
          "handler", "the handler `Payments.process_payment` (Luhn check, ledger)",
          is_async=True),
        T("attempt", "rpcx.runtime.unary:attempt", "client", "channel",
          "`unary.py:attempt` (incl. start_call, flush, wait; pure build only: compiled, "
          "`unary` calls it natively)", is_async=True),
        T("next_item", "rpcx.protocol.buffer:ReceiveBuffer.next_item", "client,server",
          "frames", "`buffer.py:ReceiveBuffer.next_item`"),
        T("scope_enter", "trio:CancelScope.__enter__", "client,server", "cancel scopes",
          "`trio.CancelScope.__enter__`"),
        T("scope_exit", "trio:CancelScope.__exit__", "client,server", "cancel scopes",
          "`trio.CancelScope.__exit__`"),
    ],
    "frames": [
        T("parse_frame", "rpcx.protocol.connection:parse_frame", "client,server", "frames",
          "`frames.py:parse_frame` (incl. meta decode, frame object)"),
        T("encode_frame", "rpcx.protocol.connection:encode_frame", "client,server", "frames",
          "`frames.py:encode_frame` (meta dict + cbor2 + header)"),
        T("req_init", "rpcx.protocol.frames:RequestFrame.__init__", "client,server", "attrs",
          "`frames.py:RequestFrame.__init__` (attrs + validators + post_init)"),
        T("resp_init", "rpcx.protocol.frames:ResponseFrame.__init__", "client,server",
          "attrs", "`frames.py:ResponseFrame.__init__` (attrs)"),
        T("cbor_dumps", "rpcx.codec.cbor_codec:_dumps", "client,server", "cbor2",
          "`cbor2.dumps` (typed codec's call)"),
        T("cbor_loads", "rpcx.codec.cbor_codec:_loads", "client,server", "cbor2",
          "`cbor2.loads` (typed codec's call)"),
        T("scope_init", "trio:CancelScope.__init__", "client,server", "cancel scopes",
          "`trio.CancelScope.__init__`"),
    ],
    "events": [
        T("req_received", "rpcx.protocol.events:RequestReceived.__init__", "server", "attrs",
          "`events.py:RequestReceived.__init__` (attrs)"),
        T("resp_received", "rpcx.protocol.events:ResponseReceived.__init__", "client",
          "attrs", "`events.py:ResponseReceived.__init__` (attrs)"),
        T("call_init", "rpcx.protocol.call:Call.__init__", "client,server", "attrs",
          "`call.py:Call.__init__`"),
        T("call_apply", "rpcx.protocol.call:Call.apply", "client,server", "connection",
          "`call.py:Call.apply` (state machine)"),
        T("callinfo", "rpcx.runtime.interceptors:CallInfo.__init__", "client,server", "attrs",
          "`interceptors.py:CallInfo.__init__`"),
        T("rearm", "rpcx.runtime.link:Link.rearm", "client,server", "link",
          "`link.py:Link.rearm` (next_deadline)"),
        T("unpack_reply", "rpcx.runtime.unary:unpack_reply", "client", "channel",
          "`dispatch.py:unpack_reply` (incl. decode)"),
        T("data_to_send", "rpcx.protocol.connection:Connection.data_to_send",
          "client,server", "connection", "`connection.py:Connection.data_to_send`"),
        T("events", "rpcx.protocol.connection:Connection.events", "client,server",
          "connection", "`connection.py:Connection.events`"),
        T("next_deadline", "rpcx.protocol.connection:Connection.next_deadline",
          "client,server", "connection", "`connection.py:Connection.next_deadline`"),
    ],
}
TARGETS = {t.key: t for level in LEVELS.values() for t in level}
IDEM_STUB: Any = None


def plan_runs(level: str) -> list[list[str]]:
    """Split a level's (target, side) pairs into runs of at most len(HELPERS) each."""
    pairs = [f"{t.key}@{side}" for t in LEVELS[level] for side in t.sides]
    size = len(HELPERS)
    return [pairs[i:i + size] for i in range(0, len(pairs), size)]


def install(pairs: list[str]) -> None:
    """Wrap each ``key@side`` target so that its work runs inside its own C helper."""
    by_key: dict[str, dict[str, Callable[[_Box], object]]] = {}
    for index, pair in enumerate(pairs):
        key, _, side = pair.partition("@")
        by_key.setdefault(key, {})[side] = HELPERS[index][1]
    for key, helpers in by_key.items():
        target = TARGETS[key]
        if target.dotted.startswith("__main__:"):
            global IDEM_STUB
            IDEM_STUB = helpers
            continue
        owner, attr = _resolve(target.dotted)
        original = getattr(owner, attr, None)
        if original is None:  # moved or renamed: say so rather than stop the whole run
            print(f"not measured: {target.dotted} (not found)", file=sys.stderr)
            continue
        try:
            setattr(owner, attr, _wrap(original, helpers, target.is_async))
        except TypeError:  # a class compiled by mypyc (the compiled build) takes no wrapper
            print(f"not measured: {target.dotted} (compiled)", file=sys.stderr)
            continue
        if target.dotted == "rpcx.protocol.connection:encode_frame":
            import rpcx.protocol.frames as frames
            frames.encode_frame = getattr(owner, attr)


def _wrap(original: Callable[..., Any], helpers: dict[str, Callable[[_Box], object]],
          is_async: bool) -> Callable[..., Any]:
    side = SIDE.get
    if is_async:
        @functools.wraps(original)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            invoke = helpers.get(side())
            if invoke is None:
                return await original(*args, **kwargs)
            return await _Driven(original(*args, **kwargs), invoke)
        return async_wrapper

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        invoke = helpers.get(side())
        if invoke is None:
            return original(*args, **kwargs)
        box = _Box(original, args, kwargs)
        invoke(box)
        return box.result()
    return wrapper


def install_idem_stub(cls: type[Any]) -> None:
    if IDEM_STUB:
        cls.process_payment = _wrap(cls.process_payment, IDEM_STUB, True)


# ---------------------------------------------------------------- driving valgrind


def python() -> str:
    return sys.executable


_TOTALS = re.compile(r"^totals:\s+(\d+)", re.M)
_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.*?)(?:\s+\[(.*)\])?\s*$")


def callgrind(case: str, calls: int, out: Path, pairs: list[str], reuse: bool = False) -> int:
    if reuse and out.exists():
        found = _TOTALS.search(out.read_text(errors="replace"))
        if found:
            return int(found.group(1))
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               python(), str(Path(__file__).resolve()), "--child", case, str(calls)]
    if pairs:
        command += ["--targets", ",".join(pairs)]
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(ROOT))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{case} ({calls} calls) failed:\n{done.stderr[-3000:]}")
    match = _TOTALS.search(out.read_text(errors="replace"))
    if match is None:
        raise RuntimeError(f"{out}: no totals line")
    return int(match.group(1))


def annotate(out: Path, inclusive: bool) -> dict[str, int]:
    """Function -> instructions, from callgrind_annotate (all functions)."""
    done = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                           "--threshold=100", str(out)], capture_output=True, text=True,
                          check=True)
    costs: dict[str, int] = {}
    started = False
    for line in done.stdout.splitlines():
        if "file:function" in line:
            started = True
            continue
        if not started:
            continue
        match = _LINE.match(line)
        if match and match.group(2):
            name = match.group(2)
            if match.group(3):
                name = f"{name} [{match.group(3)}]"
            costs[name] = costs.get(name, 0) + int(match.group(1).replace(",", ""))
    return costs


@dataclass
class Measure:
    case: str
    n1: int
    n2: int
    total1: int
    total2: int
    files: tuple[Path, Path]

    @property
    def per_call(self) -> float:
        return (self.total2 - self.total1) / (self.n2 - self.n1)


REUSE = False
"""--reuse: take callgrind's files already in --keep instead of running again."""


def measure(case: str, n1: int, n2: int, work: Path, pairs: list[str] | None = None,
            tag: str = "", pool: ThreadPoolExecutor | None = None) -> Measure:
    pairs = pairs or []
    files = (work / f"{case}{tag}.{n1}.out", work / f"{case}{tag}.{n2}.out")
    if pool is None:
        t1 = callgrind(case, n1, files[0], pairs, REUSE)
        t2 = callgrind(case, n2, files[1], pairs, REUSE)
    else:
        f1 = pool.submit(callgrind, case, n1, files[0], pairs, REUSE)
        f2 = pool.submit(callgrind, case, n2, files[1], pairs, REUSE)
        t1, t2 = f1.result(), f2.result()
    return Measure(case, n1, n2, t1, t2, files)


def helper_cost(inclusive: dict[str, float], name: str) -> float:
    """A C helper's inclusive cost: callgrind lists inlined parts of a function under the
    header they came from, nested in the function's own entry, so take the largest."""
    found = [v for k, v in inclusive.items() if k.split(" [")[0].endswith(f":{name}")]
    return max(found, default=0.0)


def per_call_by_function(m: Measure, inclusive: bool) -> dict[str, float]:
    a, b = annotate(m.files[0], inclusive), annotate(m.files[1], inclusive)
    span = m.n2 - m.n1
    return {name: (b.get(name, 0) - a.get(name, 0)) / span for name in set(a) | set(b)}


# ---------------------------------------------------------------- reports


def table(results: dict[str, Measure], second: dict[str, Measure] | None) -> str:
    echo = results["echo"].per_call if "echo" in results else None
    head = "| case | instructions per call | vs raw echo | vs its peer |"
    rule = "| --- | ---: | ---: | ---: |"
    if second:
        head += " second run | agreement |"
        rule += " ---: | ---: |"
    lines = [head, rule]
    for case in CASES:
        m = results.get(case)
        if m is None:
            continue
        ratio = f"{m.per_call / echo:.2f}x" if echo and not case.startswith("marshal") else "-"
        peer_case = RATIO_TO.get(case)
        peer = results.get(peer_case) if peer_case else None
        peer_text = f"{m.per_call / peer.per_call:.2f}x {peer_case}" if peer else "-"
        row = f"| {LABELS[case]} | {m.per_call:,.0f} | {ratio} | {peer_text} |"
        if second and case in second:
            other = second[case].per_call
            row += f" {other:,.0f} | {abs(other - m.per_call) / m.per_call * 100:.2f} % |"
        lines.append(row)
    return "\n".join(lines)


def c_level(m: Measure, top: int) -> str:
    """Instructions per call by shared object and the top C functions (self cost).

    Callgrind lists code inlined from headers under the header, without a shared object:
    it is merged here into its function (and that function's object); ``'2`` (recursion)
    suffixes are merged too."""
    raw = per_call_by_function(m, inclusive=False)
    objects: dict[str, str] = {}
    funcs: dict[str, float] = {}
    for name, cost in raw.items():
        location, _, obj = name.partition(" [")
        function = location.rsplit(":", 1)[-1].split("'")[0]
        if obj:
            objects.setdefault(function, Path(obj.rstrip("]")).name)
        funcs[function] = funcs.get(function, 0.0) + cost
    by_object: dict[str, float] = {}
    for function, cost in funcs.items():
        obj = objects.get(function, "?")
        by_object[obj] = by_object.get(obj, 0.0) + cost
    lines = [f"C-level view of `{m.case}`: {m.per_call:,.0f} instructions per call", "",
             "| shared object | instr/call |", "| --- | ---: |"]
    for obj, cost in sorted(by_object.items(), key=lambda kv: -kv[1])[:10]:
        if cost >= 1:
            lines.append(f"| {obj} | {cost:,.0f} |")
    lines += ["", "| C function (self, inlined parts merged) | object | instr/call |",
              "| --- | --- | ---: |"]
    for function, cost in sorted(funcs.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| `{function}` | {objects.get(function, '?')} | {cost:,.0f} |")
    interesting = [f for f in funcs if re.search(
        r"gc_collect|os_urandom|getrandom|epoll|sock_recv|sock_send|__libc_(recv|send)|"
        r"^(recv|send|write|read)$|cbor|struct_pack|s_pack|s_unpack", f)]
    picked = sorted((f for f in interesting if funcs[f] >= 20), key=lambda f: -funcs[f])
    if picked:
        lines += ["", "Named C functions of interest: " + ", ".join(
            f"`{f}` {funcs[f]:,.0f}" for f in picked[:14])]
    return "\n".join(lines)


def profile(case: str, n1: int, n2: int, work: Path, pool: ThreadPoolExecutor,
            levels: list[str]) -> dict[str, Any]:
    """Inclusive instructions per call of every target, per side."""
    jobs: list[tuple[str, list[str]]] = []
    for level in levels:
        for index, pairs in enumerate(plan_runs(level)):
            if case != "keyed" and any(p.startswith("dedup") for p in pairs):
                pairs = [p for p in pairs if not p.startswith("dedup")]
            if case == "keyed":
                pairs = [p for p in pairs if not p.startswith("idem-stub")]
            else:
                pairs = [p for p in pairs if not p.startswith("stub@")]
            if pairs:
                jobs.append((f".{level}{index}", pairs))
    futures = [(tag, pairs, pool.submit(measure, case, n1, n2, work, pairs, tag))
               for tag, pairs in jobs]
    costs: dict[str, float] = {}
    totals: list[float] = []
    for _tag, pairs, future in futures:
        m = future.result()
        totals.append(m.per_call)
        inclusive = per_call_by_function(m, inclusive=True)
        for index, pair in enumerate(pairs):
            name = HELPERS[index][0]
            costs[pair] = helper_cost(inclusive, name)
    return {"case": case, "costs": costs, "wrapped_totals": totals}


def profile_table(data: dict[str, Any], total: float) -> str:
    costs = data["costs"]
    lines = [f"Inclusive instructions per call of `{data['case']}` ({total:,.0f} in all, "
             "unwrapped):", "",
             "| side | function (inclusive) | group | instr/call | share of the call |",
             "| --- | --- | --- | ---: | ---: |"]
    rows = []
    for pair, cost in costs.items():
        key, _, side = pair.partition("@")
        target = TARGETS[key]
        if cost < 50:
            continue
        rows.append((side, -cost, target.label, target.group))
    for side, neg, label, group in sorted(rows):
        lines.append(f"| {side} | {label} | {group} | {-neg:,.0f} | {-neg / total * 100:.1f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Instructions per call under callgrind.")
    parser.add_argument("--quick", action="store_true", help=f"N1, N2 = {QUICK}")
    parser.add_argument("--n1", type=int, default=None)
    parser.add_argument("--n2", type=int, default=None)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--repeat", action="store_true", help="run every case twice")
    parser.add_argument("--profile", action="store_true",
                        help="per-call profile of each side (idempotent and keyed)")
    parser.add_argument("--levels", default=",".join(LEVELS),
                        help="profile levels for the idempotent call")
    parser.add_argument("--keyed-levels", default="top,connection",
                        help="profile levels for the keyed call (de-dup, the stub)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="valgrind processes at once (default 2: the machine has 2 cores)")
    parser.add_argument("--keep", help="directory for callgrind's files (default: a temp dir)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse callgrind's files found in --keep (same N1, N2)")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "CALLS"), help=argparse.SUPPRESS)
    parser.add_argument("--targets", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_case(args.child[0], int(args.child[1]),
                 [p for p in args.targets.split(",") if p])
        return
    global REUSE
    REUSE = args.reuse
    n1, n2 = QUICK if args.quick else (N1, N2)
    n1, n2 = args.n1 or n1, args.n2 or n2
    work = Path(args.keep or tempfile.mkdtemp(prefix="rpcx-callgrind-"))
    work.mkdir(parents=True, exist_ok=True)
    cases = [c for c in args.cases.split(",") if c]
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs // 2)) as outer, \
            ThreadPoolExecutor(max_workers=max(1, args.jobs)) as inner:
        first = {c: outer.submit(measure, c, n1, n2, work, None, "", inner) for c in cases}
        results = {c: f.result() for c, f in first.items()}
        second = None
        if args.repeat:
            again = {c: outer.submit(measure, c, n1, n2, work, None, ".again", inner)
                     for c in cases}
            second = {c: f.result() for c, f in again.items()}
        print(f"N1={n1}, N2={n2} calls; valgrind's files in {work}\n")
        print(table(results, second))
        report: dict[str, Any] = {"n1": n1, "n2": n2,
                                  "per_call": {c: m.per_call for c, m in results.items()}}
        if second:
            report["second"] = {c: m.per_call for c, m in second.items()}
        if args.profile:
            for case in ("idempotent", "keyed"):
                if case not in results:
                    continue
                print()
                print(c_level(results[case], 25))
                levels = args.levels if case == "idempotent" else args.keyed_levels
                data = profile(case, n1, n2, work, inner, levels.split(","))
                print()
                print(profile_table(data, results[case].per_call))
                report[f"profile-{case}"] = data
            for case in ("echo",):
                if case in results:
                    print()
                    print(c_level(results[case], 15))
    print(f"\n{time.monotonic() - began:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
