"""One group member as an OS process, for process tests and benchmarks.

    python -m rpcx_broadcast.testing.member ME ORDER MEMBERS_JSON LOG --count 100 --rate 50
    python -m rpcx_broadcast.testing.member ME ORDER - LOG --join ADDRESS --listen ADDRESS

Joins the group ``MEMBERS_JSON`` (``{"p0": "tcp://127.0.0.1:7001", ...}``) as ``ME``
(or, with ``--join``, the running group of the member at ``ADDRESS``, listening on
``--listen``; it then prints ``start {"view": ..., "delivered": {...}, "index": ...}``,
its starting point, before ``ready``),
broadcasts ``--count`` payloads at ``--rate`` per second while reading deliveries, and
writes every broadcast and delivery to ``LOG`` as JSON lines, in the order the stack did
them (``{"kind": "deliver", "origin": "p1", "seq": 3, "payload": "p1/3", "t": ...}``;
each line is flushed to the OS before the message leaves, so a SIGKILLed member's log is
a true prefix of what it did). It prints ``ready`` once serving, ``done`` once its own
broadcasts are delivered and every message it stores is held by every member of its view,
then a ``stats {...}`` line, and keeps serving until stdin closes (or SIGTERM). With
``--hold-at K`` it stops after its first K broadcasts until a line arrives on stdin (at
once if one came already): a test can keep a run going until something it waits for has
happened, however slow the machine. With ``--start-on-stdin`` it prints ``loaded`` once
its imports are done and opens the group only when a line arrives on stdin, so that a test
can start members together (on a loaded machine, starting Python takes seconds: a member
started that much later than the others would be suspected, failure_timeout, before it
is up).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import attrs
import trio

import rpcx_broadcast
from rpcx_broadcast.testing.properties import Event, History


def read_log(path: Path) -> list[Event]:
    """The events of one member's JSON-lines log (a torn last line is ignored)."""
    events: list[Event] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        events.append(Event(record["kind"], record["origin"], record["seq"],
                            record["payload"].encode(), record["t"]))
    return events


def read_history(logs: dict[str, Path], crashed: Iterable[str] = ()) -> History:
    return History.build({name: read_log(path) for name, path in logs.items()}, crashed)


async def run(me: str, order: str, members: dict[str, str] | None, log: IO[str],
              count: int, rate: float, size: int, join: str | None = None,
              listen: str | None = None, hold_at: int | None = None) -> None:
    def journal(kind: str, origin: str, seq: int, payload: bytes) -> None:
        text = payload[:64].decode("utf-8", "replace")
        log.write(json.dumps({"kind": kind, "origin": origin, "seq": seq, "payload": text,
                              "t": trio.current_time()}) + "\n")
        if kind == "broadcast":
            log.flush()

    latencies: list[float] = []
    async with rpcx_broadcast.open_group(me, members, order, journal=journal, join=join,
                                         listen=listen) as group:
        if group.start is not None:
            start_point = {"view": group.start.view, "delivered": dict(group.start.delivered),
                           "index": group.start.index}
            print("start " + json.dumps(start_point), flush=True)
        print("ready", flush=True)

        async def reader() -> None:
            async for delivery in group.deliveries:
                parts = delivery.payload.split(b"|", 2)
                if len(parts) == 3:
                    latencies.append(time.monotonic() - float(parts[1]))

        line_read = trio.Event()
        stdin_closed = trio.Event()

        async def read_stdin() -> None:
            while await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
                line_read.set()
            line_read.set()
            stdin_closed.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(read_stdin)
            start = trio.current_time()
            pad = b"x" * max(0, size - 24)
            for k in range(count):
                if k == hold_at and not line_read.is_set():
                    await line_read.wait()
                    start = trio.current_time() - k / rate  # go on at the same rate
                await trio.sleep_until(start + k / rate)
                # the system-wide monotonic clock, so another process can compute latency
                await group.broadcast(b"%s/%d|%.6f|%s" % (me.encode(), k, time.monotonic(),
                                                          pad))
            elapsed = trio.current_time() - start
            while True:
                stats = group.statistics()
                in_store = sum(v for k, v in stats.buffer_sizes.items()
                               if k.endswith((".store", ".outbox")))
                if stats.own_deliveries == count and in_store == 0:
                    break
                await trio.sleep(0.05)
            finished = trio.current_time() - start
            log.flush()
            print("done", flush=True)
            await trio.sleep(0.5)  # deliveries still arriving from others
            stats = group.statistics()
            latencies.sort()
            summary = {**attrs.asdict(stats, recurse=False), "elapsed": elapsed,
                       "finished": finished,
                       "latency_p50": latencies[len(latencies) // 2] if latencies else None,
                       "latency_p99": latencies[int(len(latencies) * 0.99)]
                       if latencies else None,
                       "buffer_sizes": dict(stats.buffer_sizes)}
            print("stats " + json.dumps(summary), flush=True)
            with trio.open_signal_receiver(signal.SIGTERM) as signals:
                async with trio.open_nursery() as waiters:
                    async def on_signal() -> None:
                        async for _ in signals:
                            waiters.cancel_scope.cancel()

                    async def on_stdin() -> None:
                        await stdin_closed.wait()
                        waiters.cancel_scope.cancel()
                    waiters.start_soon(on_signal)
                    waiters.start_soon(on_stdin)
            log.flush()
            nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("me")
    parser.add_argument("order")
    parser.add_argument("members", help="JSON object: name -> rpcx address ('-' with --join)")
    parser.add_argument("log", type=Path)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--size", type=int, default=32, help="payload bytes")
    parser.add_argument("--join", help="address of a running member: join its group")
    parser.add_argument("--listen", help="this member's own address (with --join)")
    parser.add_argument("--hold-at", type=int, help="after this many broadcasts, wait for "
                        "a line on stdin before going on")
    parser.add_argument("--start-on-stdin", action="store_true", help="print 'loaded', then "
                        "wait for a line on stdin before opening the group")
    args = parser.parse_args(argv)
    if (args.members == "-") != (args.join is not None):
        parser.error("give MEMBERS_JSON, or '-' with --join ADDRESS --listen ADDRESS")
    members = None if args.members == "-" else json.loads(args.members)
    if args.start_on_stdin:
        print("loaded", flush=True)
        if not sys.stdin.readline():
            return 0  # stdin closed: stopped before it started
    with args.log.open("w", encoding="utf-8") as log:
        trio.run(run, args.me, args.order, members, log, args.count, args.rate, args.size,
                 args.join, args.listen, args.hold_at)
    return 0


if __name__ == "__main__":
    sys.exit(main())
