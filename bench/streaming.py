"""Server-streaming benchmark: rpcx against grpc.aio and a raw trio stream of the same
frames.

Run from the repository root::

    PYTHONPATH=. python bench/streaming.py [--messages N] [--repeat N] [--no-write]
    PYTHONPATH=. python bench/streaming.py --instructions

Every message is the payments-sized one: a ``payments.PaymentEvent`` (a charge of 3.99
GBP with its payment id), 33 bytes of CBOR. The server runs in its own process on
127.0.0.1, the client in this one. Two modes: ``one stream`` (one call streams N
messages) and ``64 streams`` (64 concurrent calls on one connection, N/64 each). Each
row is the messages received per second from the request to the last message (after a
warm-up call of the same shape):

- ``raw trio stream``: a trio server that, for each REQUEST-shaped frame, writes MESSAGE
  frames (12-byte header + the same payload bytes) in 64 KiB writes, then one RESPONSE
  frame; the client parses the frames and counts them. No flow control, no codec: the
  limit of Python + trio + TCP with this framing.
- ``raw stream + cbor2.loads``: the raw client that also ``cbor2.loads`` every payload
  (into a plain dict: no schema, no typed object, cbor2's own Decimal), against the raw
  server: the raw stream with the least decoding a receiver can do.
- ``rpcx watch``: ``Payments.watch`` of a service whose ``watch(n)`` yields the same
  ``PaymentEvent`` n times, through ``rpcx.serve`` and ``PaymentsClient.watch``: the
  server encodes every item with the CBOR codec, the client decodes every one into a
  ``PaymentEvent``, with the protocol's flow control.
- ``grpcio aio stream``: ``grpc.aio`` unary-stream through a generic handler with
  identity serialisers yielding the same 33 payload bytes n times (no codec on either
  side, so it does less work than rpcx). Skipped with a note if grpcio is missing.

The table goes to stdout and, unless ``--no-write``, is appended to ``bench/RESULTS.md``
under ``## Server streaming``. ``--repeat N`` measures everything N times in turn and
keeps each best figure. ``--instructions`` instead counts instructions per message on
each side under ``valgrind --tool=callgrind`` (the difference of two runs of N1 and N2
messages, so start-up and warm-up cancel out), for the raw stream, the raw stream with
``cbor2.loads``, rpcx on one and on 64 streams, and the pieces of a message's path each
alone.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import importlib
import os
import platform
import re
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import trio

import rpcx
from examples.payments.payments_rpcx import Currency, PaymentEvent, PaymentsClient
from examples.payments.service import Payments
from rpcx._mypyc import compiled

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


async def raw_run(port: int, streams: int, per_stream: int, *, decode: bool = False) -> int:
    """The raw client: parse the frames and count MESSAGEs; with ``decode``, also
    ``cbor2.loads`` every payload (into a plain dict: no schema, no typed object)."""
    loads = cbor2.loads
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
                if decode:
                    loads(bytes(buffer[offset + HEADER.size:end]))
                received += 1
            elif kind == RESPONSE:
                ended += 1
            offset = end
        del buffer[:offset]
    await stream.aclose()
    return received


async def rawcbor_run(port: int, streams: int, per_stream: int) -> int:
    return await raw_run(port, streams, per_stream, decode=True)


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
    run = RUNS[kind]

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


RUNS = {"rpcx": rpcx_run, "raw": raw_run, "rawcbor": rawcbor_run, "grpc": grpc_run}
SERVES = {"rpcx": "rpcx", "raw": "raw", "rawcbor": "raw", "grpc": "grpc"}
"""The server each client talks to (the raw client that decodes uses the raw server)."""
NAMES = {"raw": "raw trio stream", "rawcbor": "raw stream + cbor2.loads",
         "rpcx": "rpcx watch", "grpc": "grpcio aio stream"}


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


# ---------------------------------------------------------------- instruction counts

N1, N2 = 3200, 12800
"""Messages of the two runs whose difference gives instructions per message (both
multiples of 64, so the 64-stream case splits them evenly)."""
COUNT_WARMUP = 640
COUNT_CASES = {
    "raw, one stream": ("raw", 1),
    "raw + cbor2.loads, one stream": ("rawcbor", 1),
    "rpcx, one stream": ("rpcx", 1),
    "rpcx, 64 streams": ("rpcx", FANOUT),
}
PARTS = ("codec.encode", "codec.decode", "cbor2.dumps", "cbor2.loads", "protocol send",
         "protocol receive")
"""Pieces of a message's path measured alone, in one process (see :func:`part`)."""
_TOTALS = re.compile(r"^totals:\s+(\d+)", re.M)


def count_child(kind: str, streams: int, messages: int) -> None:
    """Under callgrind: a server process (traced too) and this client, a warm-up, then
    ``messages`` messages over ``streams`` streams."""
    server = ServerProcess(SERVES[kind])
    try:
        run = RUNS[kind]
        received = trio.run(run, server.port, streams, COUNT_WARMUP // streams)
        received = trio.run(run, server.port, streams, messages // streams)
        assert received == messages, received
    finally:
        server.stop()


def part(name: str, messages: int) -> None:
    """One piece of the path, ``messages`` times: the codec's encode or decode of the
    event, cbor2's alone (of the plain dict the converter makes / of the payload), the
    sans-I/O connection's server side (``send_message`` and ``data_to_send``, in 16 KiB
    batches, as the server writes) or its client side (``receive_data`` of 64 KiB reads
    of MESSAGE frames and the events that come out)."""

    method = rpcx.spec_of(PaymentsClient).method("watch")  # type: ignore[union-attr]
    assert method is not None and method.result is not None
    codec: Any = rpcx.get_codec("cbor")
    payload = event_bytes()
    if name == "codec.encode":
        for _ in range(messages):
            codec.encode(method.result, EVENT)
    elif name == "codec.decode":
        for _ in range(messages):
            codec.decode(method.result, payload)
    elif name == "cbor2.dumps":
        plain = codec._encoders.get(method.result)(EVENT)
        for _ in range(messages):
            cbor2.dumps(plain)
    elif name == "cbor2.loads":
        for _ in range(messages):
            cbor2.loads(payload)
    else:
        protocol(name == "protocol send", messages, payload)


def protocol(send: bool, messages: int, payload: bytes) -> None:
    """The sans-I/O connection alone: the server's ``send_message`` (credit given back
    by WINDOW frames as the client would) and ``data_to_send`` per 16 KiB, or the
    client's ``receive_data`` of 64 KiB reads of MESSAGE frames, its events and the
    credit given back."""
    from rpcx.protocol import Connection, Role
    from rpcx.protocol.streams import encode_message, encode_window

    server = Connection(Role.SERVER, now=0.0)
    client = Connection(Role.CLIENT, now=0.0)
    call_id = client.start_call("payments.Payments/watch", b"\x01", now=0.0)
    server.receive_data(client.data_to_send(), 0.0)
    server.events()
    if send:
        window = encode_window(call_id, 32768)
        # (queue_message: the server's per-item path since the second round)
        queue = getattr(server, "queue_message", server.send_message)
        for _ in range(messages):
            if server.stream_credit(call_id) <= 0:
                server.receive_data(window, 0.0)
                server.events()
            queue(call_id, payload)
            if server.bytes_to_send() >= 16384:
                server.data_to_send()
        return
    per_read = 65536 // (HEADER.size + len(payload))
    chunk = encode_message(call_id, payload) * per_read
    client.receive_data(server.data_to_send(), 0.0)  # the preface
    left = messages
    while left:
        count = min(left, per_read)
        left -= count
        client.receive_data(chunk if count == per_read else chunk[:count * len(chunk)
                                                                   // per_read], 0.0)
        client.events()
        client.consume(call_id, count * len(payload))
        client.data_to_send()


def callgrind(args: list[str], out_dir: Path) -> dict[str, int]:
    """Run ``bench/streaming.py ARGS`` under callgrind (children traced): instructions
    of this process (``client``) and of the server process it starts (``server``)."""
    for old in out_dir.glob("cg.*"):
        old.unlink()
    env = dict(os.environ, PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=yes",
         f"--callgrind-out-file={out_dir}/cg.%p", sys.executable,
         str(Path(__file__).resolve()), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    _, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{err.decode(errors='replace')[-3000:]}")
    counts: dict[str, int] = {}
    for out in out_dir.glob("cg.*"):
        text = out.read_text(errors="replace")
        found = _TOTALS.search(text)
        assert found is not None, out
        if out.name == f"cg.{process.pid}":
            counts["client"] = int(found.group(1))
        elif re.search(r"^cmd:.*--serve", text, re.M):
            counts["server"] = int(found.group(1))
        # (any other process, e.g. one a library starts at import, is left out)
    return counts


def instructions() -> list[str]:
    """Instructions per message, per side: (count(N2) - count(N1)) / (N2 - N1)."""
    lines = [f"Instructions per message (`valgrind --tool=callgrind`, difference of "
             f"{N2:,} and {N1:,} messages after a warm-up of {COUNT_WARMUP}):", "",
             "| case | client | server | both |", "|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="rpcx-stream-cg-") as work:
        out_dir = Path(work)
        for label, (kind, streams) in COUNT_CASES.items():
            low = callgrind(["--count", kind, str(streams), str(N1)], out_dir)
            high = callgrind(["--count", kind, str(streams), str(N2)], out_dir)
            per = {side: (high[side] - low[side]) / (N2 - N1) for side in high}
            lines.append(f"| {label} | {per['client']:,.0f} | {per['server']:,.0f} | "
                         f"{per['client'] + per['server']:,.0f} |")
            print(lines[-1], flush=True)
        lines += ["", "The pieces, each alone in one process:", "",
                  "| piece | per message |", "|---|---:|"]
        for name in PARTS:
            alone = [callgrind(["--part", name, str(n)], out_dir)["client"] for n in (N1, N2)]
            lines.append(f"| {name} | {(alone[1] - alone[0]) / (N2 - N1):,.0f} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=["rpcx", "raw", "grpc"])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure everything N times, in turn, and keep each best "
                             "figure (the machine is shared: the best is the least "
                             "disturbed)")
    parser.add_argument("--only", choices=list(RUNS),
                        help="measure one implementation (implies --no-write)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per message under callgrind instead "
                             "(needs valgrind; implies --no-write)")
    parser.add_argument("--count", nargs=3, metavar=("KIND", "STREAMS", "N"),
                        help=argparse.SUPPRESS)  # one run under callgrind
    parser.add_argument("--part", nargs=2, metavar=("PIECE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        if args.serve == "grpc":
            asyncio.run(serve_grpc())
        else:
            trio.run(serve_rpcx if args.serve == "rpcx" else serve_raw)
        return
    if args.count:
        count_child(args.count[0], int(args.count[1]), int(args.count[2]))
        return
    if args.part:
        part(args.part[0], int(args.part[1]))
        return
    if args.instructions:
        print("\n".join(instructions()))
        return
    try:
        grpc: Any = importlib.import_module("grpc")
    except ImportError:
        grpc = None
    kinds = ["raw", "rawcbor", "rpcx"] + (["grpc"] if grpc else [])
    started_on = machine()
    if args.only:
        for mode, streams in (("one stream", 1), ("64 streams", FANOUT)):
            server = ServerProcess(SERVES[args.only])
            try:
                rate = measure(args.only, server.port, streams, args.messages)
            finally:
                server.stop()
            print(f"{mode:12} {NAMES[args.only]:24} {rate:12,.0f} msgs/s", flush=True)
        return
    results: dict[tuple[str, str], float] = {}
    for _ in range(args.repeat):
        for kind in kinds:
            server = ServerProcess(SERVES[kind])
            try:
                for mode, streams in (("one stream", 1), ("64 streams", FANOUT)):
                    rate = measure(kind, server.port, streams, args.messages)
                    results[kind, mode] = max(rate, results.get((kind, mode), 0.0))
                    print(f"{mode:12} {NAMES[kind]:24} {rate:12,.0f} msgs/s", flush=True)
            finally:
                server.stop()
    repeat = f" --repeat {args.repeat}" if args.repeat > 1 else ""
    lines = [
        f"Run of `PYTHONPATH=. python bench/streaming.py --messages {args.messages}{repeat}`"
        + (f" (each figure the best of {args.repeat} rounds, the rounds interleaved)"
           if args.repeat > 1 else "") + ". "
        f"Machine: {started_on} (shared with other sessions' work), "
        f"Python {platform.python_version()}, trio {trio.__version__}, grpcio "
        f"{grpc.__version__ if grpc else 'not installed'}; {len(event_bytes())}-byte "
        "PaymentEvent messages, server in its own process on 127.0.0.1; build: "
        f"{'compiled' if all(compiled().values()) else 'pure Python'}.",
        "",
        "| mode | implementation | msgs/s | vs raw | vs raw + cbor2 | vs grpcio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mode in ("one stream", "64 streams"):
        raw, decoding, theirs = (results.get((k, mode)) for k in ("raw", "rawcbor", "grpc"))
        for kind in kinds:
            rate = results[kind, mode]
            row = f"| {mode} | {NAMES[kind]} | {rate:,.0f} |"
            for base in (raw, decoding, theirs):
                row += f" {rate / base:.2f}x |" if base else " - |"
            lines.append(row)
    lines.append("")
    for mode in ("one stream", "64 streams"):
        ours, raw, decoding, theirs = (results.get((k, mode))
                                       for k in ("rpcx", "raw", "rawcbor", "grpc"))
        assert ours is not None and raw is not None and decoding is not None
        verdict = (f"- {mode}: rpcx is {ours / raw:.2f}x the raw stream (goal >= 0.3x: "
                   f"{'met' if ours / raw >= 0.3 else 'not met'}; {ours / decoding:.2f}x "
                   "the raw stream that also decodes with cbor2)")
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
