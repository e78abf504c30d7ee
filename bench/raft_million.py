"""1,000,000 log entries through a ``raft`` group, with snapshots: do memory and disk stay
bounded? (issue 10, item 2)

    PYTHONPATH=. python bench/raft_million.py [--members 1] [--entries 1000000]
        [--every 50000] [--snapshot-every 10000] [--writers 64]
        [--app-bytes 0] [--late 0]

All members run in this one process on the ``mem://`` transport with real time; each
keeps a ``FileStorage`` in a fresh temporary directory with **fsync off** (the files are
written as usual; only the fsync calls are skipped) and the default 8 MiB segments.
``--writers`` tasks on the first member broadcast 16-byte payloads back to back. The
leader batches the broadcasts one member makes in one loop turn into one log entry
(``Command.payloads``); here that batching is turned off (``_max_run = 1`` on every member,
a private knob) so that each broadcast is its own log entry, and the run counts *entries*
as the first member's ``node.log.last_index`` (which also holds the leader's no-op and
the configuration entries, a handful). Every ``--every`` entries it samples, per member:
the in-memory log length (entries after the snapshot), the snapshot index, and the size
of its storage directory; and the process's resident memory (RSS, all members together).
``--app-bytes N`` gives every member an application state (the ``state=`` hook) whose
snapshot is N bytes, so each snapshot carries it; ``--late K`` (3 or more members) starts
the last member only once the log holds K entries: it catches up from the leader's
snapshot, sent in ``snapshot_chunk_bytes`` (512 KiB) chunks, and the run reports how many
chunks it received and how long it took to apply the commit index of its start. Nothing is
checked here beyond the figures: ``tests/broadcast/test_raft_snapshots.py``
asserts the bounds on a shorter run.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import trio

import rpcx_broadcast
from rpcx_broadcast import RAFT, FileStorage
from rpcx_broadcast.runtime.raft_node import RaftMember


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _disk_mib(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.iterdir()) / (1 << 20)


class Blob:
    """An application state of ``size`` bytes (content derived from the delivery count)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self.restored = 0

    def applied(self) -> int:
        return self.count

    def snapshot(self) -> bytes:
        return self.count.to_bytes(8, "big") * (self.size // 8)

    def restore(self, data: bytes | None, delivered: int) -> None:
        assert data is None or len(data) == self.size // 8 * 8
        self.count = delivered
        self.restored += 1


Row = tuple[int, float, float, list[int], list[int], list[float]]


async def run(n: int, entries: int, every: int, snapshot_every: int, writers: int,
              root: Path, app_bytes: int, late: int) -> tuple[list[Row], str]:
    run_id = os.getpid()
    members = {f"m{i}": f"mem://million-{run_id}-m{i}" for i in range(n)}
    groups: dict[str, rpcx_broadcast.Group] = {}
    dirs = {me: root / me for me in members}
    rows: list[Row] = []
    done = trio.Event()
    blobs = {me: Blob(app_bytes) for me in members}
    last = f"m{n - 1}"
    note = ""

    async def member(me: str) -> None:
        storage = FileStorage(dirs[me], fsync=False)
        async with rpcx_broadcast.open_group(me, members, RAFT, storage=storage,
                                             snapshot_every=snapshot_every,
                                             state=blobs[me] if app_bytes else None,
                                             max_pending=1024) as group:
            node = group._node
            assert isinstance(node, RaftMember)
            node._max_run = 1  # one broadcast per log entry (see the docstring)
            groups[me] = group
            async with trio.open_nursery() as inner:
                async def drain() -> None:
                    async for _ in group.deliveries:
                        blobs[me].count += 1
                inner.start_soon(drain)
                await done.wait()
                inner.cancel_scope.cancel()

    def raft(me: str) -> RaftMember:
        node = groups[me]._node
        assert isinstance(node, RaftMember)
        return node

    async with trio.open_nursery() as nursery:
        for me in members:
            if not (late and me == last):
                nursery.start_soon(member, me)
        while (len(groups) < n - (1 if late else 0)  # noqa: ASYNC110
               or not groups["m0"].statistics().leader):
            await trio.sleep(0.05)
        first = "m0"
        start = time.monotonic()
        next_sample = 0
        stop = False

        def sample() -> None:
            nonlocal next_sample
            top = raft(first).node.log.last_index
            there = [m for m in members if m in groups]
            while top >= next_sample:
                rows.append((top, time.monotonic() - start, _rss_mib(),
                             [len(raft(m).node.log) for m in there],
                             [raft(m).node.log.snapshot_index for m in there],
                             [_disk_mib(dirs[m]) for m in there]))
                next_sample += every

        async def late_member() -> None:
            nonlocal note
            while raft(first).node.log.last_index < late:  # noqa: ASYNC110
                await trio.sleep(0.05)
            began = time.monotonic()
            at = raft(first).node.commit
            nursery.start_soon(member, last)
            while last not in groups or raft(last).node.applied < at:  # noqa: ASYNC110
                await trio.sleep(0.01)
            took = time.monotonic() - began
            stats = groups[last].statistics().buffer_sizes
            snap = raft(last).node.snapshot
            note = (f"{last} started at entry {at:,}: had applied the leader's commit index after "
                    f"{took:.1f} s; snapshots installed {stats['raft.snapshots_installed']}, "
                    f"InstallSnapshot chunks received {stats['raft.snapshot_chunks_received']}"
                    f", snapshot data {len(snap.data) if snap else 0:,} bytes")

        async def writer() -> None:
            payload = b"0123456789abcdef"
            while not stop:
                await groups[first].broadcast(payload)

        async with trio.open_nursery() as writing:
            for _ in range(writers):
                writing.start_soon(writer)
            if late:
                writing.start_soon(late_member)
            while raft(first).node.log.last_index < entries:
                sample()
                await trio.sleep(0.05)
            while late and not note:  # noqa: ASYNC110
                await trio.sleep(0.05)
            stop = True
            writing.cancel_scope.cancel()
        sample()
        done.set()
    return rows, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=50_000)
    parser.add_argument("--snapshot-every", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--app-bytes", type=int, default=0)
    parser.add_argument("--late", type=int, default=0)
    args = parser.parse_args()
    if args.late and args.members < 3:
        parser.error("--late needs 3 or more members (the others must be a majority)")
    with tempfile.TemporaryDirectory(prefix="raft-million-") as tmp:
        began = time.monotonic()
        rows, note = trio.run(run, args.members, args.entries, args.every,
                              args.snapshot_every, args.writers, Path(tmp), args.app_bytes,
                              args.late)
        took = time.monotonic() - began
    print(f"# raft, {args.members} member(s), mem:// transport, FileStorage fsync off, "
          f"snapshot every {args.snapshot_every:,} entries, {args.writers} writers, "
          f"application state {args.app_bytes:,} bytes, last member late: {args.late:,}, "
          f"{platform.machine()} {os.cpu_count()} CPUs, python {platform.python_version()}")
    print("| entries | elapsed s | RSS MiB | in-memory log (per member) | snapshot index "
          "| directory MiB (per member) |")
    print("| ---: | ---: | ---: | --- | --- | --- |")
    for last, elapsed, rss, logs, snaps, disks in rows:
        print(f"| {last:,} | {elapsed:.0f} | {rss:.0f} | {', '.join(f'{x:,}' for x in logs)} "
              f"| {', '.join(f'{x:,}' for x in snaps)} "
              f"| {', '.join(f'{x:.1f}' for x in disks)} |")
    last = rows[-1][0]
    print(f"total: {last:,} entries in {took:.0f} s ({last / took:,.0f} entries/s); "
          f"max in-memory log {max(max(r[3]) for r in rows):,}; "
          f"max RSS {max(r[2] for r in rows):.0f} MiB; "
          f"max directory {max(max(r[5]) for r in rows):.1f} MiB")
    if note:
        print(note)


if __name__ == "__main__":
    main()
