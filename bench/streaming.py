"""Server-streaming benchmark: rpcx against grpc.aio and a raw trio stream of the same
frames.

Run from the repository root::

    PYTHONPATH=. python bench/streaming.py [--messages N] [--no-write]

Every message is the payments-sized one: a ``payments.PaymentEvent`` (a charge of 3.99
GBP with its payment id), 31 bytes of CBOR. The server runs in its own process on
127.0.0.1, the client in this one. Two modes: ``one stream`` (one call streams N
messages) and ``64 streams`` (64 concurrent calls on one connection, N/64 each). Each
row is the messages received per second from the request to the last message (after a
warm-up call of the same shape):

- ``raw trio stream``: a trio server that, for each REQUEST-shaped frame, writes MESSAGE
  frames (12-byte header + the same payload bytes) in 64 KiB writes, then one RESPONSE
  frame; the client parses the frames and counts them. No flow control, no codec: the
  limit of Python + trio + TCP with this framing.
- ``rpcx watch``: ``Payments.watch`` of a service whose ``watch(n)`` yields the same
  ``PaymentEvent`` n times, through ``rpcx.serve`` and ``PaymentsClient.watch``: the
  server encodes every item with the CBOR codec, the client decodes every one into a
  ``PaymentEvent``, with the protocol's flow control.
- ``grpcio aio stream``: ``grpc.aio`` unary-stream through a generic handler with
  identity serialisers yielding the same 31 payload bytes n times (no codec on either
  side, so it does less work than rpcx). Skipped with a note if grpcio is missing.

The table goes to stdout and, unless ``--no-write``, is appended to ``bench/RESULTS.md``
under ``## Server streaming``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import importlib
import os
import platform
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

import rpcx
from examples.payments.payments_rpcx import Currency, PaymentEvent, PaymentsClient
from examples.payments.service import Payments

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
HEADER = struct.Struct(">IBBHI")
PREFACE = b"RPCX\r\n\x00\x01"
REQUEST, RESPONSE, MESSAGE = 0x01, 0x02, 0x08
FANOUT = 64
EVENT = PaymentEvent(seq=1, kind="charged", amount=Decimal("3.99"), currency=Currency.GBP,
                     payment_id="pay_000001")


def event_bytes() -> bytes:
    method = rpcx.spec_of(PaymentsClient).method("watch")  # type: ignore[union-attr]
    assert method is not None and method.result is not None
    return rpcx.get_codec("cbor").encode(method.result, EVENT)


class StreamingPayments(Payments):
    """``watch(n)`` yields the same event ``n`` times (``from_seq`` is the count)."""

    async def watch(self, from_seq: int) -> AsyncIterator[PaymentEvent]:
        for _ in range(from_seq):
            yield EVENT


# ---------------------------------------------------------------- servers


def _announce(port: int) -> None:
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()


async def _until_stdin_closes() -> None:
    await trio.to_thread.run_sync(sys.stdin.buffer.read)


async def serve_rpcx() -> None:
    async with trio.open_nursery() as nursery:
        server: rpcx.Server = await nursery.start(
            functools.partial(rpcx.serve, "tcp://127.0.0.1:0", [StreamingPayments()]))
        _announce(int(server.addresses[0].rsplit(":", 1)[1]))
        await _until_stdin_closes()
        nursery.cancel_scope.cancel()


async def _raw_connection(stream: trio.SocketStream) -> None:
    payload = event_bytes()
    await stream.send_all(PREFACE)
    buffer = bytearray()
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            if len(buffer) >= len(PREFACE) and buffer[:4] == PREFACE[:4]:
                del buffer[:len(PREFACE)]
            while len(buffer) >= HEADER.size:
                length, _, _, meta_length, call_id = HEADER.unpack_from(buffer)
                if len(buffer) < HEADER.size + length:
                    break
                count = int.from_bytes(
                    buffer[HEADER.size + meta_length:HEADER.size + length] or b"\0", "big")
                del buffer[:HEADER.size + length]
                frame = HEADER.pack(len(payload), MESSAGE, 0, 0, call_id) + payload
                per_write = max(1, 65536 // len(frame))
                sent = 0
                while sent < count:
                    batch = min(per_write, count - sent)
                    await stream.send_all(frame * batch)
                    sent += batch
                await stream.send_all(HEADER.pack(0, RESPONSE, 0, 0, call_id))
    except trio.BrokenResourceError:
        return


async def serve_raw() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, _raw_connection, 0, host="127.0.0.1"))
        _announce(listeners[0].socket.getsockname()[1])
        await _until_stdin_closes()
        nursery.cancel_scope.cancel()


async def serve_grpc() -> None:
    grpc = importlib.import_module("grpc")
    payload = event_bytes()

    async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for _ in range(int.from_bytes(request, "big")):
            yield payload

    server = grpc.aio.server()
    handler = grpc.unary_stream_rpc_method_handler(stream)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Stream", {"Watch": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _announce(port)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    await server.stop(None)


class ServerProcess:
    """``bench/streaming.py --serve KIND`` in a child process; closing stdin stops it."""

    def __init__(self, kind: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", kind],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().split()
        if not line or line[0] != "READY":
            self.stop()
            raise RuntimeError(f"{kind} server did not start")
        self.port = int(line[1])

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ---------------------------------------------------------------- clients


async def rpcx_run(port: int, streams: int, per_stream: int) -> int:
    async with rpcx.open_channel(f"tcp://127.0.0.1:{port}") as channel:
        client = PaymentsClient(channel)
        received = 0

        async def one() -> None:
            nonlocal received
            async with client.watch(per_stream, timeout=600) as events:
                async for event in events:
                    assert event.seq == 1
                    received += 1

        async with trio.open_nursery() as nursery:
            for _ in range(streams):
                nursery.start_soon(one)
        return received


async def raw_run(port: int, streams: int, per_stream: int) -> int:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(PREFACE)
    data = b"".join(HEADER.pack(4, REQUEST, 0, 0, i + 1) + per_stream.to_bytes(4, "big")
                    for i in range(streams))
    await stream.send_all(data)
    buffer = bytearray()
    received = ended = 0
    preface = True
    while ended < streams:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        buffer += chunk
        if preface and len(buffer) >= len(PREFACE):
            del buffer[:len(PREFACE)]
            preface = False
        offset = 0
        while len(buffer) - offset >= HEADER.size:
            length, kind, _, _, _ = HEADER.unpack_from(buffer, offset)
            end = offset + HEADER.size + length
            if len(buffer) < end:
                break
            if kind == MESSAGE:
                received += 1
            elif kind == RESPONSE:
                ended += 1
            offset = end
        del buffer[:offset]
    await stream.aclose()
    return received


async def grpc_run(port: int, streams: int, per_stream: int) -> int:
    grpc = importlib.import_module("grpc")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream("/bench.Stream/Watch")
        received = 0

        async def one() -> None:
            nonlocal received
            async for _ in call(per_stream.to_bytes(4, "big")):
                received += 1

        await asyncio.gather(*(one() for _ in range(streams)))
        return received


def measure(kind: str, port: int, streams: int, total: int) -> float:
    per_stream = total // streams
    run = {"rpcx": rpcx_run, "raw": raw_run, "grpc": grpc_run}[kind]

    def go(count: int) -> int:
        if kind == "grpc":
            return asyncio.run(grpc_run(port, streams, count))
        return trio.run(run, port, streams, count)

    go(max(1, per_stream // 10))  # warm up: connections, imports, caches
    start = time.perf_counter()
    received = go(per_stream)
    elapsed = time.perf_counter() - start
    assert received == per_stream * streams, (kind, received)
    return received / elapsed


NAMES = {"raw": "raw trio stream", "rpcx": "rpcx watch", "grpc": "grpcio aio stream"}


def machine() -> str:
    """The CPU model and the load when the run started (the machine is shared)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} cores, load average {load:.1f} at the start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=["rpcx", "raw", "grpc"])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--only", choices=["rpcx", "raw", "grpc"],
                        help="measure one implementation (implies --no-write)")
    args = parser.parse_args()
    if args.serve:
        if args.serve == "grpc":
            asyncio.run(serve_grpc())
        else:
            trio.run(serve_rpcx if args.serve == "rpcx" else serve_raw)
        return
    try:
        grpc: Any = importlib.import_module("grpc")
    except ImportError:
        grpc = None
    kinds = ["raw", "rpcx"] + (["grpc"] if grpc else [])
    started_on = machine()
    if args.only:
        for mode, streams in (("one stream", 1), ("64 streams", FANOUT)):
            server = ServerProcess(args.only)
            try:
                rate = measure(args.only, server.port, streams, args.messages)
            finally:
                server.stop()
            print(f"{mode:12} {NAMES[args.only]:20} {rate:12,.0f} msgs/s", flush=True)
        return
    results: dict[tuple[str, str], float] = {}
    for kind in kinds:
        server = ServerProcess(kind)
        try:
            for mode, streams in (("one stream", 1), ("64 streams", FANOUT)):
                rate = measure(kind, server.port, streams, args.messages)
                results[kind, mode] = rate
                print(f"{mode:12} {NAMES[kind]:20} {rate:12,.0f} msgs/s", flush=True)
        finally:
            server.stop()
    lines = [
        f"Run of `PYTHONPATH=. python bench/streaming.py --messages {args.messages}`. "
        f"Machine: {started_on} (shared with other sessions' work), "
        f"Python {platform.python_version()}, trio {trio.__version__}, grpcio "
        f"{grpc.__version__ if grpc else 'not installed'}; {len(event_bytes())}-byte "
        "PaymentEvent messages, server in its own process on 127.0.0.1.",
        "",
        "| mode | implementation | msgs/s | vs raw | vs grpcio |",
        "|---|---|---:|---:|---:|",
    ]
    for mode in ("one stream", "64 streams"):
        raw, theirs = results.get(("raw", mode)), results.get(("grpc", mode))
        for kind in kinds:
            rate = results[kind, mode]
            lines.append(f"| {mode} | {NAMES[kind]} | {rate:,.0f} | "
                         f"{rate / raw:.2f}x | " if raw else "- | ")
            lines[-1] += f"{rate / theirs:.2f}x |" if theirs else "- |"
    lines.append("")
    for mode in ("one stream", "64 streams"):
        ours, raw, theirs = (results.get((k, mode)) for k in ("rpcx", "raw", "grpc"))
        assert ours is not None and raw is not None
        verdict = (f"- {mode}: rpcx is {ours / raw:.2f}x the raw stream (goal >= 0.3x: "
                   f"{'met' if ours / raw >= 0.3 else 'not met'})")
        if theirs:
            verdict += (f" and {ours / theirs:.1f}x grpc.aio (goal >= 3x: "
                        f"{'met' if ours / theirs >= 3 else 'not met'})")
        lines.append(verdict)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        date = datetime.date.today().isoformat()
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(f"\n## Server streaming ({date})\n\n{text}\n")


if __name__ == "__main__":
    main()
