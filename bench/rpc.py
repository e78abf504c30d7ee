"""RPC round-trip benchmark: rpcx against a raw trio echo (the limit), grpcio and rpyc.

Run from the repository root::

    PYTHONPATH=. python bench/rpc.py [--seconds S] [--no-write]
    PYTHONPATH=. python bench/rpc.py --profile client --mode sequential   # cProfile

Every row is a unary round trip carrying the payments request (the CBOR encoding of
``process_payment(card, Decimal("3.99"), Currency.GBP, "Acme Ltd")``), with the server in
its own process on 127.0.0.1 and the client in this process:

- ``raw trio echo``: a trio server that reads the rpcx preface and frames (12-byte header
  plus body) and answers each REQUEST-shaped frame with a RESPONSE-shaped frame carrying
  the same payload bytes. No RPC machinery; the limit of Python + trio + TCP with this
  framing.
- ``rpcx process_payment``: the real payments service through ``rpcx.serve`` and
  ``rpcx.open_channel`` (deadline 10 s per call, as in the example client). It is not
  idempotent, so every call carries an idempotency key and the server's de-dup cache
  stores every result.
- ``rpcx process_payment @idempotent``: the same call with the method marked
  ``@idempotent`` on the client (``attrs.evolve`` of the generated ``MethodSpec``): no key,
  so the server runs no de-dup. This is the call issue 12's targets are about (as in
  ``../shared/PERFORMANCE.md`` and bench/instructions.py).
- ``rpcx get_payment``: the ``@idempotent`` lookup (no key, no cache), for comparison.
- ``grpcio aio echo``: ``grpc.aio`` unary echo of the same payload bytes through a generic
  handler with identity serialisers (skipped, with a note, if grpcio is not installed:
  ``pip install -e '.[bench]'``).
- ``rpyc threaded``: rpyc's ``ThreadedServer`` (a thread per connection, brine
  serialisation), the fastest pure-Python peer, running **the same handler as rpcx's
  server**: the example's ``Payments.process_payment`` (card checks, the ledger's charge
  and event), driven to its end in rpyc's thread (it never waits for this merchant). The
  message travels as plain brine values, ``process_payment(merchant, (number, expiry,
  cvc), "3.99", currency)`` -> ``(True, payment_id)`` (brine has no Decimal: the amount
  travels as text), and is turned into the handler's types (``Card``, ``Decimal``,
  ``Currency``) on the way in, as rpcx's codec does. rpyc's client is synchronous, so
  its modes run in threads: one for ``sequential``, 64 threads with a connection each
  for ``64 connections``; ``64 in flight`` on one connection is not measured (rpyc
  serialises the calls of one connection). Skipped, with a note, if rpyc is not
  installed (the ``bench`` extra).
- ``rpyc, card check only``: the same rpyc server with the handler that earlier rounds
  measured (until 2026-12-05): only the Luhn check and a counter, none of the ledger's
  work, so rpyc did less per call than rpcx's server. Kept for comparison with them.

Three modes: ``sequential`` (one call in flight), ``64 in flight`` (64 tasks sharing one
connection) and ``64 connections`` (64 connections from this one client process, one
task each). Each mode warms up, then counts calls that complete during the measured
window. The table goes to stdout and, unless ``--no-write``, into ``bench/RESULTS.md``
under ``## RPC round trips`` (only the generated block of that section is replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime
import functools
import importlib
import io
import math
import os
import platform
import pstats
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import trio

import rpcx
from examples.payments.payments_rpcx import Card, Currency, PaymentsClient, PaymentsService
from examples.payments.service import Payments
from rpcx.schema import ServiceSpec

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## RPC round trips"
BEGIN = "<!-- bench/rpc.py: generated, replaced on every run -->"
END = "<!-- bench/rpc.py: end of generated part; text below is kept -->"

HEADER = struct.Struct(">IBBHI")
PREFACE = b"RPCX\r\n\x00\x01"
REQUEST, RESPONSE = 0x01, 0x02
FANOUT = 64
MODES = ("sequential", "64 in flight", "64 connections")
DEADLINE = 10.0

CARD = Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123")
ARGS: tuple[Any, ...] = (CARD, Decimal("3.99"), Currency.GBP, "Acme Ltd")

Call = Callable[[], Awaitable[object]]


def payload() -> bytes:
    """The payments request, encoded exactly as the rpcx client sends it."""
    service: ServiceSpec = vars(PaymentsService)["__rpcx_spec__"]
    method = service.method("process_payment")
    assert method is not None
    return rpcx.get_codec("cbor").encode(method.params, ARGS)


def _import_grpc() -> Any:
    try:
        return importlib.import_module("grpc")
    except ImportError:
        return None


def _import_rpyc() -> Any:
    try:
        return importlib.import_module("rpyc")
    except ImportError:
        return None


# ---------------------------------------------------------------- measurement


@dataclass
class Sample:
    """Completion times and latencies of the calls that ended in the measured window."""

    latencies: list[float] = field(default_factory=list)
    start: float = 0.0
    stop: float = 0.0


@dataclass
class Row:
    name: str
    mode: str
    calls: int
    seconds: float
    p50_us: float
    p99_us: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


def _percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def make_row(name: str, mode: str, sample: Sample) -> Row:
    ordered = sorted(sample.latencies)
    if not ordered:
        raise RuntimeError(f"{name} / {mode}: no call completed")
    return Row(name, mode, len(ordered), sample.stop - sample.start,
               _percentile(ordered, 0.50) * 1e6, _percentile(ordered, 0.99) * 1e6)


async def call_loop(call: Call, sample: Sample) -> None:
    """Call back to back until the window closes; works under trio and asyncio alike."""
    clock = time.perf_counter
    latencies = sample.latencies
    while True:
        began = clock()
        if began >= sample.stop:
            return
        await call()
        ended = clock()
        if sample.start <= ended <= sample.stop:
            latencies.append(ended - began)


def plan(warmup: float, seconds: float) -> Sample:
    now = time.perf_counter()
    return Sample(start=now + warmup, stop=now + warmup + seconds)


async def run_trio_mode(calls: Sequence[Call], warmup: float, seconds: float) -> Sample:
    sample = plan(warmup, seconds)
    async with trio.open_nursery() as nursery:
        for call in calls:
            nursery.start_soon(call_loop, call, sample)
    return sample


# ---------------------------------------------------------------- servers (subprocesses)


async def _until_stdin_closes() -> None:
    """Servers run until the parent closes our stdin (works the same for every kind)."""
    await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)


def _announce(port: int | str) -> None:
    print(f"READY {port}", flush=True)


async def serve_rpcx() -> None:
    async with trio.open_nursery() as nursery:
        server: rpcx.Server = await nursery.start(
            lambda task_status: rpcx.serve("tcp://127.0.0.1:0", [Payments()],
                                           task_status=task_status))
        _announce(server.addresses[0])
        await _until_stdin_closes()
        nursery.cancel_scope.cancel()


async def _echo_connection(stream: trio.SocketStream) -> None:
    """Answer every frame with a RESPONSE-shaped frame carrying the request's payload."""
    await stream.send_all(PREFACE)
    buffer = bytearray()
    need_preface = True
    unpack, pack, size = HEADER.unpack_from, HEADER.pack, HEADER.size
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            if need_preface:
                if len(buffer) < len(PREFACE):
                    continue
                if buffer[:len(PREFACE)] != PREFACE:
                    return
                del buffer[:len(PREFACE)]
                need_preface = False
            out: list[bytes] = []
            offset = 0
            while len(buffer) - offset >= size:
                body_length, _, _, meta_length, call_id = unpack(buffer, offset)
                end = offset + size + body_length
                if len(buffer) < end:
                    break
                body = bytes(buffer[offset + size + meta_length:end])
                out.append(pack(len(body), RESPONSE, 0, 0, call_id))
                out.append(body)
                offset = end
            del buffer[:offset]
            if out:
                await stream.send_all(b"".join(out))
    except trio.BrokenResourceError:
        return


async def serve_raw() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, _echo_connection, 0, host="127.0.0.1"))
        _announce(listeners[0].socket.getsockname()[1])
        await _until_stdin_closes()
        nursery.cancel_scope.cancel()


async def serve_grpc() -> None:
    grpc = _import_grpc()

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(echo)  # no serialisers: bytes as is
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _announce(port)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    await server.stop(None)


def serve_rpyc(bare: bool = False) -> None:
    rpyc = _import_rpyc()
    from rpyc.utils.server import ThreadedServer

    from examples.payments.payments_rpcx import CardDeclined
    from examples.payments.service import luhn_ok

    payments = Payments()

    class PaymentsRpyc(rpyc.Service):  # type: ignore[misc,name-defined]
        """The payments call in brine's plain values, handled by the example's own
        handler (``bare``: only its card-number check, as measured until 2026-12-05)."""

        charges = 0

        def exposed_process_payment(self, merchant: str, card: tuple[str, str, str],
                                    amount: str, currency: int) -> tuple[bool, str]:
            if bare:
                if not luhn_ok(card[0]) or Decimal(amount) <= 0:
                    return False, ""
                PaymentsRpyc.charges += 1
                return True, f"pay_{PaymentsRpyc.charges:06d}"
            number, expiry, cvc = card
            coro = payments.process_payment(
                Card(card_number=number, expiry_date=expiry, cvc=cvc), Decimal(amount),
                Currency(currency), merchant)
            try:
                coro.send(None)
            except StopIteration as done:
                result = done.value
                return result.success, result.payment_id
            except CardDeclined as declined:
                return False, declined.reason
            coro.close()
            raise RuntimeError(f"the handler waited (merchant {merchant!r})")

    server = ThreadedServer(PaymentsRpyc, hostname="127.0.0.1", port=0,
                            protocol_config={"allow_public_attrs": False})
    import threading

    threading.Thread(target=server.start, daemon=True).start()
    # ThreadedServer listens only once its thread runs start(): announcing before that
    # made a loaded machine's client connect too early (ECONNREFUSED, the whole run lost).
    while not server.active:
        time.sleep(0.001)
    _announce(server.listener.getsockname()[1])
    sys.stdin.buffer.read()
    server.close()


def server_main(kind: str, profile: str | None) -> None:
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    if kind == "grpc":
        asyncio.run(serve_grpc())
    elif kind in ("rpyc", "rpyc-bare"):
        serve_rpyc(bare=kind == "rpyc-bare")
    else:
        trio.run(serve_rpcx if kind == "rpcx" else serve_raw)
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)


class ServerProcess:
    """``bench/rpc.py --serve KIND`` in a child process; closing its stdin stops it."""

    def __init__(self, kind: str, profile: str | None = None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", kind]
        if profile:
            command += ["--profile-out", profile]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env, cwd=ROOT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().split()
        if not line or line[0] != "READY":
            self.stop()
            raise RuntimeError(f"{kind} server did not start")
        self.address = line[1]

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ---------------------------------------------------------------- clients


class RawConnection:
    """A connection of the raw echo: send REQUEST-shaped frames, match replies by id.

    With one caller it sends and reads in the caller's task (nothing to demultiplex);
    with several, callers queue their frames for one writer task (a single write for all
    that are pending) and one reader task wakes the caller whose call id came back.
    """

    def __init__(self, stream: trio.SocketStream, meta_and_payload: bytes,
                 meta_length: int) -> None:
        self.stream = stream
        self.body = meta_and_payload
        self.meta_length = meta_length
        self.next_id = 1
        self.buffer = bytearray()
        self.outgoing: list[bytes] = []
        self.wake_writer = trio.Event()
        self.waiting: dict[int, trio.Event] = {}

    @classmethod
    async def open(cls, port: int, body: bytes, meta_length: int) -> RawConnection:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(PREFACE)
        conn = cls(stream, body, meta_length)
        while len(conn.buffer) < len(PREFACE):
            conn.buffer += await stream.receive_some(65536)
        del conn.buffer[:len(PREFACE)]
        return conn

    def _frame(self) -> tuple[int, bytes]:
        call_id = self.next_id
        self.next_id += 1
        header = HEADER.pack(len(self.body), REQUEST, 0, self.meta_length, call_id)
        return call_id, header + self.body

    def _take_frames(self) -> list[int]:
        ids: list[int] = []
        offset = 0
        buffer = self.buffer
        while len(buffer) - offset >= HEADER.size:
            body_length, _, _, _, call_id = HEADER.unpack_from(buffer, offset)
            end = offset + HEADER.size + body_length
            if len(buffer) < end:
                break
            ids.append(call_id)
            offset = end
        del buffer[:offset]
        return ids

    async def call_alone(self) -> None:
        call_id, frame = self._frame()
        await self.stream.send_all(frame)
        while True:
            ids = self._take_frames()
            if ids:
                assert ids == [call_id]
                return
            self.buffer += await self.stream.receive_some(65536)

    async def call_shared(self) -> None:
        call_id, frame = self._frame()
        done = self.waiting[call_id] = trio.Event()
        self.outgoing.append(frame)
        self.wake_writer.set()
        await done.wait()

    async def writer(self) -> None:
        """Send every queued request frame in one write: callers never wait for the socket."""
        while True:
            await self.wake_writer.wait()
            self.wake_writer = trio.Event()
            data = b"".join(self.outgoing)
            self.outgoing.clear()
            await self.stream.send_all(data)

    async def reader(self) -> None:
        while True:
            data = await self.stream.receive_some(65536)
            if not data:
                return
            self.buffer += data
            for call_id in self._take_frames():
                self.waiting.pop(call_id).set()


def raw_request_body(data: bytes) -> tuple[bytes, int]:
    """Meta (method and timeout, as rpcx sends them) + payload, and the meta length."""
    import cbor2

    meta = cbor2.dumps({1: "payments.Payments/process_payment", 2: 10000})
    return meta + data, len(meta)


async def raw_client(port: int, mode: str, warmup: float, seconds: float) -> Sample:
    body, meta_length = raw_request_body(payload())
    async with trio.open_nursery() as nursery:
        if mode == "64 in flight":
            conn = await RawConnection.open(port, body, meta_length)
            nursery.start_soon(conn.reader)
            nursery.start_soon(conn.writer)
            sample = await run_trio_mode([conn.call_shared] * FANOUT, warmup, seconds)
            conns = [conn]
        else:
            count = 1 if mode == "sequential" else FANOUT
            conns = [await RawConnection.open(port, body, meta_length) for _ in range(count)]
            sample = await run_trio_mode([c.call_alone for c in conns], warmup, seconds)
        nursery.cancel_scope.cancel()
    for conn in conns:
        await conn.stream.aclose()
    return sample


def _pay(client: PaymentsClient) -> Call:
    async def call() -> object:
        return await client.process_payment(*ARGS)
    return call


def _pay_idempotent(channel: rpcx.Channel) -> Call:
    method = attrs.evolve(vars(PaymentsService)["__rpcx_spec__"].method("process_payment"),
                          idempotent=True)

    async def call() -> object:
        return await channel.call(method, ARGS)
    return call


def _get(client: PaymentsClient, payment_id: str) -> Call:
    async def call() -> object:
        return await client.get_payment(payment_id)
    return call


def _echo(stub: Any, data: bytes) -> Call:
    async def call() -> object:
        return await stub(data, timeout=DEADLINE)
    return call


async def rpcx_client(url: str, method: str, mode: str, warmup: float,
                      seconds: float) -> Sample:
    channels = 1 if mode != "64 connections" else FANOUT
    async with AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(
            rpcx.open_channel(url, default_timeout=DEADLINE)) for _ in range(channels)]
        clients = [PaymentsClient(channel) for channel in opened]
        calls: list[Call]
        if method == "process_payment":
            calls = [_pay(c) for c in clients]
        elif method == "idempotent":
            calls = [_pay_idempotent(channel) for channel in opened]
        else:
            paid = await clients[0].process_payment(*ARGS)
            assert paid.payment_id is not None
            calls = [_get(c, paid.payment_id) for c in clients]
        if mode == "64 in flight":
            calls = calls * FANOUT
        return await run_trio_mode(calls, warmup, seconds)


async def grpc_client(port: int, mode: str, warmup: float, seconds: float) -> Sample:
    grpc = _import_grpc()
    data = payload()
    count = FANOUT if mode == "64 connections" else 1
    # A local subchannel pool gives each channel its own TCP connection.
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                          options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(count)]
    stubs = [channel.unary_unary("/bench.Echo/Echo") for channel in channels]
    calls = [_echo(stub, data) for stub in stubs]
    if mode == "64 in flight":
        calls = calls * FANOUT
    sample = plan(warmup, seconds)
    await asyncio.gather(*(call_loop(call, sample) for call in calls))
    for channel in channels:
        await channel.close()
    return sample


def thread_loop(call: Callable[[], object], sample: Sample) -> None:
    """``call_loop`` for a synchronous client, in a thread of its own."""
    clock = time.perf_counter
    latencies = sample.latencies
    while True:
        began = clock()
        if began >= sample.stop:
            return
        call()
        ended = clock()
        if sample.start <= ended <= sample.stop:
            latencies.append(ended - began)


def rpyc_client(port: int, mode: str, warmup: float, seconds: float) -> Sample:
    import threading

    rpyc = _import_rpyc()
    count = FANOUT if mode == "64 connections" else 1
    conns = [rpyc.connect("127.0.0.1", port) for _ in range(count)]
    card = (CARD.card_number, CARD.expiry_date, CARD.cvc)

    def make(conn: Any) -> Callable[[], object]:
        pay = conn.root.process_payment

        def call() -> object:
            result = pay("Acme Ltd", card, "3.99", Currency.GBP.value)
            assert result[0]
            return result
        return call

    calls = [make(conn) for conn in conns]
    sample = plan(warmup, seconds)
    threads = [threading.Thread(target=thread_loop, args=(call, sample)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for conn in conns:
        conn.close()
    return sample


# ---------------------------------------------------------------- the run


RAW = "raw trio echo"
RPCX_PAY = "rpcx process_payment"
RPCX_GET = "rpcx get_payment"
RPCX_IDEM = "rpcx process_payment @idempotent"
GRPC = "grpcio aio echo"
RPYC = "rpyc threaded"
RPYC_BARE = "rpyc, card check only"
RPYC_MODES = ("sequential", "64 connections")


def run_kind(kind: str, warmup: float, seconds: float) -> list[Row]:
    server = ServerProcess({GRPC: "grpc", RAW: "raw", RPYC: "rpyc", RPYC_BARE: "rpyc-bare"}
                           .get(kind, "rpcx"))
    rows = []
    try:
        for mode in MODES:
            if kind in (RPYC, RPYC_BARE) and mode not in RPYC_MODES:
                continue
            if kind in (RPYC, RPYC_BARE):
                sample = rpyc_client(int(server.address), mode, warmup, seconds)
            elif kind == RAW:
                sample = trio.run(raw_client, int(server.address), mode, warmup, seconds)
            elif kind == GRPC:
                sample = asyncio.run(grpc_client(int(server.address), mode, warmup, seconds))
            else:
                method = {RPCX_PAY: "process_payment", RPCX_IDEM: "idempotent"}.get(
                    kind, "get_payment")
                sample = trio.run(rpcx_client, server.address, method, mode, warmup, seconds)
            row = make_row(kind, mode, sample)
            print(f"  {kind:22} {mode:15} {row.rate:9,.0f} calls/s  p50 {row.p50_us:7.0f} µs"
                  f"  p99 {row.p99_us:7.0f} µs", flush=True)
            rows.append(row)
    finally:
        server.stop()
    return rows


def versions() -> str:
    grpc = _import_grpc()
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True,
                                   check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"trio {trio.__version__}, "
            f"grpcio {grpc.__version__ if grpc else 'not installed'}, "
            f"rpyc {_rpyc_version()}; "
            f"{datetime.date.today().isoformat()}")


def _rpyc_version() -> str:
    rpyc = _import_rpyc()
    if rpyc is None:
        return "not installed"
    version = rpyc.__version__
    return version if isinstance(version, str) else ".".join(map(str, version))


def table(rows: list[Row]) -> tuple[list[str], list[str]]:
    """The markdown table and the target verdicts."""
    by = {(r.name, r.mode): r for r in rows}
    lines = ["| mode | implementation | calls/s | p50 µs | p99 µs | vs raw echo | p99 vs grpcio |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for mode in MODES:
        raw, grpc = by.get((RAW, mode)), by.get((GRPC, mode))
        for name in (RAW, RPCX_PAY, RPCX_IDEM, RPCX_GET, GRPC, RPYC, RPYC_BARE):
            row = by.get((name, mode))
            if row is None:
                continue
            ratio = f"{row.rate / raw.rate:.2f}x" if raw else "-"
            p99 = f"{row.p99_us / grpc.p99_us:.2f}x" if grpc else "-"
            bold = "**" if name == RPCX_PAY else ""
            lines.append(f"| {mode} | {bold}{name}{bold} | {row.rate:,.0f} | {row.p50_us:,.0f} "
                         f"| {row.p99_us:,.0f} | {ratio} | {p99} |")
    verdicts = []

    def ratio_target(mode: str, goal: float) -> None:
        raw, ours = by.get((RAW, mode)), by.get((RPCX_PAY, mode))
        if raw and ours:
            got = ours.rate / raw.rate
            verdicts.append(f"- {mode}: calls/s ≥ {goal:.2f}x raw echo — reached {got:.2f}x: "
                            f"**{'met' if got >= goal else 'not met'}**")

    ratio_target("sequential", 0.75)
    rpyc_seq, idem_seq = by.get((RPYC, "sequential")), by.get((RPCX_IDEM, "sequential"))
    if rpyc_seq and idem_seq:
        got = idem_seq.rate / rpyc_seq.rate
        verdicts.append(f"- sequential (issue 12): rpcx @idempotent calls/s ≥ rpyc's — "
                        f"reached {got:.2f}x ({idem_seq.rate:,.0f} vs {rpyc_seq.rate:,.0f}): "
                        f"**{'met' if got >= 1 else 'not met'}**")
    ratio_target("64 in flight", 0.30)
    grpc, ours = by.get((GRPC, "64 in flight")), by.get((RPCX_PAY, "64 in flight"))
    if grpc and ours:
        got = ours.p99_us / grpc.p99_us
        verdicts.append(f"- 64 in flight: p99 ≤ 0.20x grpcio's — reached {got:.2f}x "
                        f"({ours.p99_us:,.0f} µs vs {grpc.p99_us:,.0f} µs): "
                        f"**{'met' if got <= 0.20 else 'not met'}**")
    else:
        verdicts.append("- p99 vs grpcio: not measured (grpcio not installed)")
    return lines, verdicts


def write_results(block: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    generated = f"{BEGIN}\n{block.rstrip()}\n{END}\n"
    start = text.find(f"\n{SECTION}\n")
    if start < 0:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{generated}"
    else:
        begin, end = text.find(BEGIN, start), text.find(END, start)
        if begin < 0 or end < 0:
            raise SystemExit(f"{RESULTS}: the {SECTION} section lost its generated markers")
        text = text[:begin] + generated + text[end + len(END) + 1:]
    RESULTS.write_text(text)


KINDS = {"raw": RAW, "pay": RPCX_PAY, "idem": RPCX_IDEM, "get": RPCX_GET, "grpc": GRPC,
         "rpyc": RPYC, "rpyc-bare": RPYC_BARE}


def benchmark(seconds: float, warmup: float, write: bool, only: Sequence[str]) -> None:
    kinds = [KINDS[k] for k in only or KINDS]
    note = ""
    if GRPC in kinds and _import_grpc() is None:
        note = "grpcio is not installed (`pip install -e '.[bench]'`): its row is skipped.\n"
        print(note.strip())
        kinds.remove(GRPC)
    if (RPYC in kinds or RPYC_BARE in kinds) and _import_rpyc() is None:
        note += "rpyc is not installed (`pip install -e '.[bench]'`): its rows are skipped.\n"
        print(note.strip())
        kinds = [kind for kind in kinds if kind not in (RPYC, RPYC_BARE)]
    rows: list[Row] = []
    for kind in kinds:
        rows += run_kind(kind, warmup, seconds)
    lines, verdicts = table(rows)
    machine = versions()
    print()
    print("\n".join(lines))
    print("\n".join(verdicts))
    print(machine)
    if write:
        block = (f"`PYTHONPATH=. python bench/rpc.py --seconds {seconds:g}` — {warmup:g} s "
                 f"warm-up, then {seconds:g} s measured per mode; server in its own process, "
                 f"client in one process; 64 connections = 64 channels in that one client "
                 f"process.\n\nMachine: {machine}.\n\n{note}"
                 + "\n".join(lines) + "\n\nTargets (rpcx process_payment):\n\n"
                 + "\n".join(verdicts) + "\n")
        write_results(block)
        print(f"written to {RESULTS.relative_to(ROOT)}")


def profile(side: str, mode: str, seconds: float, top: int) -> None:
    """Profile the rpcx process_payment client or server in one mode; print the top."""
    out = f"/tmp/rpcx-bench-{side}-{mode.replace(' ', '-')}.prof"
    server = ServerProcess("rpcx", profile=out if side == "server" else None)
    profiler = cProfile.Profile()
    try:
        if side == "client":
            profiler.enable()
        sample = trio.run(rpcx_client, server.address, "process_payment", mode, 0.5, seconds)
        profiler.disable()
    finally:
        server.stop()
    row = make_row(RPCX_PAY, mode, sample)
    print(f"{mode}: {row.rate:,.0f} calls/s (slowed by the profiler)")
    if side == "client":
        profiler.dump_stats(out)
    stream = io.StringIO()
    stats = pstats.Stats(out, stream=stream)
    stats.sort_stats("tottime").print_stats(top)
    print(stream.getvalue())
    print(f"stats in {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Unary round trips: rpcx vs raw echo, grpcio, rpyc.")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured time per mode")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up time per mode")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--only", action="append", choices=tuple(KINDS), default=[],
                        help="run only these rows (repeatable; implies --no-write)")
    parser.add_argument("--profile", choices=("client", "server"),
                        help="profile rpcx process_payment instead of benchmarking")
    parser.add_argument("--mode", choices=MODES, default="sequential",
                        help="the mode to profile")
    parser.add_argument("--top", type=int, default=30, help="profile lines to print")
    parser.add_argument("--serve", choices=("rpcx", "raw", "grpc", "rpyc", "rpyc-bare"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        server_main(args.serve, args.profile_out)
    elif args.profile:
        profile(args.profile, args.mode, args.seconds, args.top)
    else:
        benchmark(args.seconds, args.warmup, not (args.no_write or args.only), args.only)


if __name__ == "__main__":
    main()
