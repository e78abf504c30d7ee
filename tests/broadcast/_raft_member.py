"""One member of a ``raft`` group as an OS process, for the process tests.

    python -m tests.broadcast._raft_member ME MEMBERS_JSON DIR LOG --count 100 --rate 50

Opens ``open_group(ME, MEMBERS_JSON, RAFT, storage=FileStorage(DIR))``, broadcasts
``--count`` payloads ``ME/<incarnation>/<k>`` at ``--rate`` per second, and writes every
broadcast and delivery to ``LOG`` as JSON lines (``{"kind", "origin", "seq", "payload",
"t"}``, ``t`` = ``time.monotonic()``, the same clock in every process), each line flushed
to the OS as it is written, so a SIGKILLed member's log is a true prefix of what it did.
Prints ``ready`` once serving, ``leader NAME TERM`` whenever the leader it knows changes,
``done`` once its own broadcasts are delivered, and keeps serving until stdin closes
(then it stops broadcasting, if it still is, and leaves).

``--snapshot-every N`` sets the group's snapshot interval (it prints ``snapshots
installed N`` whenever it installs a leader's snapshot, ``view ID M1,M2,...`` on each view).
``--join CONTACT --listen ADDRESS`` joins the running group at CONTACT instead (MEMBERS_JSON
is then ignored).

With ``--kv`` it is a kvstore replica instead (``examples.kvstore``'s service through
``serve_replicated``), serving ``kvstore.KvStore`` on its member address (printing
``listening on URL``), and broadcasts nothing itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import IO

import trio

import rpcx_broadcast
from examples.kvstore.store import KvStore


async def _report_leader(group: rpcx_broadcast.Group) -> None:
    known = ("", -1)
    installed = 0
    view = -1
    while True:
        stats = group.statistics()
        if (stats.leader, stats.term) != known and stats.leader:
            known = (stats.leader, stats.term)
            print(f"leader {stats.leader} {stats.term}", flush=True)
        if stats.buffer_sizes.get("raft.snapshots_installed", 0) != installed:
            installed = stats.buffer_sizes["raft.snapshots_installed"]
            print(f"snapshots installed {installed}", flush=True)
        if group.view != view:
            view = group.view
            print(f"view {view} {','.join(group.members)}", flush=True)
        await trio.sleep(0.02)


async def _until_stdin_closes() -> None:
    await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


async def run(me: str, members: dict[str, str], directory: Path, log: IO[str], count: int,
              rate: float, election_timeout: float, kv: bool,
              snapshot_every: int | None = None, join: str | None = None,
              listen: str | None = None) -> None:
    storage = rpcx_broadcast.FileStorage(directory)
    incarnation = time.time_ns()

    def journal(kind: str, origin: str, seq: int, payload: bytes) -> None:
        log.write(json.dumps({"kind": kind, "origin": origin, "seq": seq,
                              "payload": payload.decode("utf-8", "replace"),
                              "t": time.monotonic()}) + "\n")
        log.flush()

    if kv:
        async with rpcx_broadcast.serve_replicated(
                me, members, KvStore(), storage=storage,
                election_timeout=election_timeout, journal=journal) as replicated, \
                trio.open_nursery() as nursery:
            print(f"listening on {members[me]}", flush=True)
            nursery.start_soon(_report_leader, replicated.group)
            await _until_stdin_closes()
            nursery.cancel_scope.cancel()
        return

    options: dict[str, object] = {}
    if snapshot_every is not None:
        options["snapshot_every"] = snapshot_every
    async with rpcx_broadcast.open_group(me, None if join else members, rpcx_broadcast.RAFT,
                                         storage=storage, join=join, listen=listen,
                                         election_timeout=election_timeout,
                                         journal=journal,
                                         **options) as group:  # type: ignore[arg-type]
        print("ready", flush=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_report_leader, group)

            async def reader() -> None:
                async for _ in group.deliveries:
                    pass

            async def broadcaster() -> None:
                start = trio.current_time()
                for k in range(count):
                    await trio.sleep_until(start + k / rate)
                    await group.broadcast(f"{me}/{incarnation}/{k}".encode())
                await group.wait_stable()
                print("done", flush=True)

            nursery.start_soon(reader)
            nursery.start_soon(broadcaster)
            await _until_stdin_closes()  # stop broadcasting, leave the group, exit
            nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("me")
    parser.add_argument("members", help="JSON object: name -> rpcx address")
    parser.add_argument("directory", type=Path, help="FileStorage directory")
    parser.add_argument("log", type=Path)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--election-timeout", type=float, default=1.0)
    parser.add_argument("--kv", action="store_true",
                        help="serve the kvstore API (replicated) instead")
    parser.add_argument("--snapshot-every", type=int)
    parser.add_argument("--join", help="a running member's address: join its group")
    parser.add_argument("--listen", help="this member's address (with --join)")
    args = parser.parse_args(argv)
    with args.log.open("a", encoding="utf-8") as log:
        trio.run(run, args.me, json.loads(args.members), args.directory, log, args.count,
                 args.rate, args.election_timeout, args.kv, args.snapshot_every, args.join,
                 args.listen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
