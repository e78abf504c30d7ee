"""Saturation benchmark: does ``broadcast()`` push back, so that delivery latency stays
bounded when every member broadcasts as fast as it can? (issue 10, item 4)

    PYTHONPATH=. python bench/broadcast_saturation.py [--orders raft,fifo_total]
        [--members 3] [--seconds 20] [--size 32] [--memory]

Each member is an OS process on loopback TCP (this script with ``--member``) that, for
``--seconds``, broadcasts ``--size``-byte messages back to back: the next ``broadcast()``
starts as soon as the previous one returns. Every payload carries the system monotonic
clock at the broadcast, so any member computes the latency of every delivery (all
origins). Reported per order: delivered msgs/s per member (deliveries during the run /
its duration, mean over members), latency p50 / p99 / max over all deliveries of all
members, and the resident memory (RSS) of the members in the first and last second of the
run (max over members). The ``raft`` order uses a FileStorage with fsync (``--memory``:
MemoryStorage). Nothing is checked for correctness here: the process tests do that.

Environment: ``SAT_INFO=1`` logs views and suspicions, ``SAT_STATUS=1`` also each
member's queues once a second (inbox, pushes waiting for room, the longest wait of a push
``lag``, own unstable broadcasts, CPU seconds used), ``SAT_WINDOW=n`` runs the stack orders
with a gossip window of ``n`` instead of the default.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

import rpcx_broadcast
from rpcx.testing import free_ports
from rpcx_broadcast.runtime import make_stack

ROOT = Path(__file__).resolve().parents[1]
logging.basicConfig(level=logging.DEBUG if os.environ.get("SAT_DEBUG") else logging.INFO
                    if os.environ.get("SAT_INFO") else logging.WARNING,
                    format="%(relativeCreated)8.0f %(name)s %(message)s")
if os.environ.get("SAT_STATUS"):  # each member's queues once a second (Node._status)
    logging.getLogger("rpcx_broadcast").setLevel(logging.DEBUG)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0




async def member(me: str, order: str, members: dict[str, str], seconds: float, size: int,
                 directory: str | None) -> None:
    options: dict[str, object] = {}
    window = os.environ.get("SAT_WINDOW")
    if window and order != rpcx_broadcast.RAFT:  # (an experiment: the gossip window)
        options["stack"] = functools.partial(make_stack, order,
                                             window=int(window))
    if order == rpcx_broadcast.RAFT:
        options["storage"] = (rpcx_broadcast.FileStorage(directory) if directory
                              else rpcx_broadcast.MemoryStorage())
    latencies: list[float] = []
    rss: list[int] = []
    sent = 0
    error = ""
    async with rpcx_broadcast.open_group(me, members, order, leave_timeout=5.0,
                                         **options) as group:  # type: ignore[arg-type]
        # warm up: one message delivered (a leader elected, this member's session open)
        warm = trio.Event()

        async def warm_reader() -> None:
            async for delivery in group.deliveries:
                if delivery.origin == me:
                    warm.set()
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(warm_reader)
            await group.broadcast(b"%s|%.6f|warm-up" % (me.encode(), time.monotonic()))
            await warm.wait()
        print("ready", flush=True)
        go = float(await trio.to_thread.run_sync(sys.stdin.readline))  # one start for all
        await trio.sleep(max(0.0, go - time.monotonic()))
        end = go + seconds

        async def reader() -> None:
            async for delivery in group.deliveries:
                now = time.monotonic()
                if now > end:
                    continue
                stamp = delivery.payload.split(b"|", 2)[1]
                latencies.append(now - float(stamp))

        async def sampler() -> None:
            while time.monotonic() < end:
                rss.append(_rss_kib())
                await trio.sleep(1.0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(sampler)
            pad = b"x" * max(0, size - 24)
            try:
                while time.monotonic() < end:
                    await group.broadcast(b"%s|%.6f|%s" % (me.encode(), time.monotonic(),
                                                           pad))
                    sent += 1
            except rpcx_broadcast.NotAMember as exc:
                error = str(exc)  # removed while alive: reported, not a crash of the run
            await trio.sleep(max(0.0, end - time.monotonic()) + 2.0)  # in flight: not counted
            stats = group.statistics()
            nursery.cancel_scope.cancel()
    latencies.sort()
    print("result " + json.dumps({"me": me, "sent": sent, "delivered": len(latencies),
                                  "latencies": latencies[::max(1, len(latencies) // 20000)],
                                  "rss_first": rss[0] if rss else 0,
                                  "rss_last": rss[-1] if rss else 0,
                                  "dropped": stats.frames_dropped,
                                  "buffers": dict(stats.buffer_sizes),
                                  "view": stats.view, "members": list(stats.members),
                                  "error": error}),
              flush=True)


def run(order: str, n: int, seconds: float, size: int, memory: bool) -> dict[str, object]:
    names = [f"p{i}" for i in range(n)]
    members = {m: f"tcp://127.0.0.1:{p}" for m, p in zip(names, free_ports(n), strict=True)}
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for name in names:
            argv = [sys.executable, str(Path(__file__).resolve()), "--member", name,
                    "--orders", order, "--seconds", str(seconds), "--size", str(size),
                    "--json", json.dumps(members)]
            if order == rpcx_broadcast.RAFT and not memory:
                argv += ["--directory", str(Path(tmp) / name)]
            procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          cwd=ROOT, text=True))
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"member did not start: {line!r}")
        go = time.monotonic() + 1.0
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{go}\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds + 60)
            found = [line for line in out.splitlines() if line.startswith("result ")]
            if not found:
                raise RuntimeError(f"no result from a member: {out[-2000:]!r}")
            results.append(json.loads(found[0][len("result "):]))
    latencies = sorted(x for r in results for x in r["latencies"])
    for r in results:
        print(f"  {r['me']}: dropped {r['dropped']} view {r.get('view')} {r.get('members')} "
              f"{r['buffers']} {r.get('error', '')}", file=sys.stderr)

    def pct(q: float) -> float:
        return float(latencies[min(len(latencies) - 1, int(len(latencies) * q))]) * 1000

    return {"order": order, "members": n, "seconds": seconds,
            "rate": statistics.mean(r["delivered"] for r in results) / seconds,
            "sent": statistics.mean(r["sent"] for r in results) / seconds,
            "p50": pct(0.5), "p99": pct(0.99), "ratio": pct(0.99) / pct(0.5),
            "max": latencies[-1] * 1000,
            "rss_first": max(r["rss_first"] for r in results) / 1024,
            "rss_last": max(r["rss_last"] for r in results) / 1024,
            "views": max(r["view"] for r in results)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", default="raft")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--memory", action="store_true", help="raft: MemoryStorage")
    parser.add_argument("--member", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.member:
        trio.run(member, args.member, args.orders, json.loads(args.json), args.seconds,
                 args.size, args.directory)
        return 0
    print("| order | members | delivered msgs/s per member | broadcasts/s per member "
          "| latency p50 | p99 | p99/p50 | max | RSS first s → last s | views |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for order in args.orders.split(","):
        r = run(order, args.members, args.seconds, args.size, args.memory)
        print(f"| {order} | {r['members']} | {r['rate']:,.0f} | {r['sent']:,.0f} "
              f"| {r['p50']:.1f} ms | {r['p99']:.1f} ms | {r['ratio']:.1f} "
              f"| {r['max']:.1f} ms | {r['rss_first']:.0f} → {r['rss_last']:.0f} MiB "
              f"| {r['views']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
