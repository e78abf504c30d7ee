"""Real processes on loopback TCP, each a ``raft`` member with a FileStorage directory
(``tests/broadcast/_raft_member.py``): the leader is SIGKILLed while everyone broadcasts;
the survivors go on delivering; the victim restarts from its directory and catches up; a
whole-group SIGKILL and restart loses no delivered entry; with 5 members the leader is
killed five times, restarted from disk each time. Every log (each incarnation of each
member is one log) goes through the checkers: by position across snapshot restores,
then FIFO-total and prefix. The kvstore replica completes a write through a survivor
after the leader's SIGKILL.

Waits are for events (a log line, a delivery after the kill), each with a generous
timeout; nothing asserts how long anything took. The failover times seen are printed
(``-s``) and recorded in bench/RESULTS.md."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import trio

import rpcx
from examples.kvstore.kvstore_rpcx import KvStoreClient
from rpcx.testing import free_ports
from rpcx_broadcast import (
    Event,
    History,
    check_fifo_total,
    check_no_duplication,
    check_prefix_consistency,
    check_restores,
    fill_restores,
)
from rpcx_broadcast.testing.member import read_log

ROOT = Path(__file__).resolve().parents[2]
ELECTION_TIMEOUT = 0.5
RATE = 40.0
WAIT = 30.0
"""Seconds any one awaited event may take (process start-up on a loaded machine)."""


def wait_until(condition: Callable[[], bool], timeout: float = WAIT,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


@attrs.define
class Member:
    """One incarnation of a member process."""

    name: str
    incarnation: int
    proc: subprocess.Popen[bytes]
    log: Path
    out: Path

    @property
    def key(self) -> str:
        return f"{self.name}#{self.incarnation}"

    def lines(self) -> list[str]:
        return self.out.read_text(errors="replace").splitlines()

    def said(self, word: str) -> bool:
        return any(line.startswith(word) for line in self.lines())

    def leader(self) -> tuple[str, int] | None:
        found = [line.split() for line in self.lines() if line.startswith("leader ")]
        return (found[-1][1], int(found[-1][2])) if found else None

    def events(self) -> list[Event]:
        return read_log(self.log) if self.log.exists() else []

    def deliveries(self) -> list[Event]:
        return [e for e in self.events() if e.kind == "deliver"]


class Cluster:
    def __init__(self, tmp: Path, n: int, *, count: int, kv: bool = False) -> None:
        self.tmp = tmp
        self.names = [f"p{i}" for i in range(n)]
        ports = free_ports(2 * n)
        self.members = {name: f"tcp://127.0.0.1:{port}"
                        for name, port in zip(self.names, ports, strict=False)}
        self.api = self.members  # a replicated service is served on the member address
        self.count = count
        self.kv = kv
        self.running: dict[str, Member] = {}
        self.all: list[Member] = []

    def start(self, name: str, count: int | None = None, extra: tuple[str, ...] = (),
              rate: float = RATE) -> Member:
        incarnation = sum(1 for m in self.all if m.name == name) + 1
        log = self.tmp / f"{name}-{incarnation}.jsonl"
        out = self.tmp / f"{name}-{incarnation}.out"
        argv = [sys.executable, "-m", "tests.broadcast._raft_member", name,
                json.dumps(self.members), str(self.tmp / f"{name}-data"), str(log),
                "--count", str(self.count if count is None else count), "--rate", str(rate),
                "--election-timeout", str(ELECTION_TIMEOUT), *extra]
        if self.kv:
            argv += ["--kv"]
        with out.open("wb") as stdout, (self.tmp / f"{name}-{incarnation}.err").open(
                "wb") as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=stdout,
                                    stderr=stderr, cwd=ROOT,
                                    env={**os.environ, "PYTHONPATH": str(ROOT),
                                         "PYTHONUNBUFFERED": "1"})
        member = Member(name, incarnation, proc, log, out)
        self.running[name] = member
        self.all.append(member)
        return member

    def kill(self, name: str) -> float:
        member = self.running.pop(name)
        member.proc.send_signal(signal.SIGKILL)
        at = time.monotonic()
        member.proc.wait(5)
        return at

    def stop(self, name: str) -> None:
        member = self.running.pop(name)
        assert member.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            member.proc.stdin.close()
        try:
            member.proc.wait(10)
        except subprocess.TimeoutExpired:
            member.proc.kill()
            member.proc.wait(5)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Run a test's block: at its end stop every running member; on a failure print
        what each member said; whatever happens, kill what is left."""
        try:
            yield
            for name in list(self.running):
                self.stop(name)
        except BaseException:
            print(self.describe())
            raise
        finally:
            self.close()

    def close(self) -> None:
        for member in self.all:
            if member.proc.poll() is None:
                member.proc.kill()
                member.proc.wait(5)
            if member.proc.stdin is not None:
                member.proc.stdin.close()

    def leader(self, among: list[str] | None = None, newer_than: int = 0) -> str:
        """The leader a majority of the running members names, in a term above
        ``newer_than`` (waits for one)."""
        found: list[str] = []

        def agreed() -> bool:
            names = [m.leader() for n, m in self.running.items()
                     if among is None or n in among]
            known = [x for x in names if x is not None and x[1] > newer_than
                     and x[0] in self.running]
            for candidate in {x for x in known}:
                if sum(1 for x in known if x == candidate) * 2 > len(self.names):
                    found.append(candidate[0])
                    return True
            return False
        wait_until(agreed, what="a leader agreed by a majority")
        return found[0]

    def term_of(self, name: str) -> int:
        for member in self.running.values():
            known = member.leader()
            if known is not None and known[0] == name:
                return known[1]
        return 0

    def describe(self) -> str:
        parts = []
        for m in self.all:
            err = (self.tmp / f"{m.name}-{m.incarnation}.err").read_text(errors="replace")
            parts.append(f"--- {m.key} stdout\n{m.out.read_text()}--- stderr\n{err[-3000:]}")
        return "\n".join(parts)


def delivered_after(member: Member, at: float,
                    sent: Callable[[], set[tuple[str, int]]] | None = None) -> float | None:
    """When ``member`` first delivered a message broadcast after ``at`` (by anyone still
    running: the ids ``sent`` returns), i.e. one that was not committed before."""
    ids = sent() if sent is not None else None
    times = [e.time for e in member.deliveries()
             if e.time > at and (ids is None or e.id in ids)]
    return min(times) if times else None


def broadcast_after(members: list[Member], at: float) -> Callable[[], set[tuple[str, int]]]:
    def ids() -> set[tuple[str, int]]:
        return {e.id for m in members for e in m.events()
                if e.kind == "broadcast" and e.time > at}
    return ids


def all_delivered_after(members: list[Member], at: float) -> bool:
    sent = broadcast_after(members, at)
    return all(delivered_after(m, at, sent) is not None for m in members)


def failover(members: list[Member], at: float) -> float:
    """SIGKILL of the leader → the first delivery (at any survivor) of a message that was
    broadcast after it."""
    sent = broadcast_after(members, at)
    return min(t for m in members if (t := delivered_after(m, at, sent)) is not None) - at


def check_logs(cluster: Cluster) -> History:
    """Every incarnation's log: by position, the same message at the same delivery
    everywhere, a snapshot restore never going back and covering only what some incarnation
    delivered (``check_restores``); with restores filled in, FIFO-total, prefix-consistent,
    no duplicates; every delivery was broadcast with that payload by its origin (some
    incarnation). Returns the filled history."""
    logs = {m.key: m.events() for m in cluster.all}
    raw = History.build({k: [e for e in es if e.kind in ("deliver", "restore")]
                         for k, es in logs.items()})
    found = check_restores(raw)
    assert found is None, str(found)
    history = fill_restores(raw)
    for checker in (check_no_duplication, check_fifo_total, check_prefix_consistency):
        found = checker(history)
        assert found is None, str(found)
    sent = {(e.origin, e.seq, e.payload) for es in logs.values() for e in es
            if e.kind == "broadcast"}
    for key, events in history.logs.items():
        for e in events:
            assert (e.origin, e.seq, e.payload) in sent, f"{key} delivered {e} unsent"
    return history


def test_leader_sigkill_restart_and_whole_group_restart(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3, count=100_000)  # broadcast until stopped
    with cluster.session():
        for name in cluster.names:
            cluster.start(name)
        wait_until(lambda: all(m.said("ready") for m in cluster.running.values()),
                   what="all ready")
        leader = cluster.leader()
        wait_until(lambda: all(len(m.deliveries()) >= 30 for m in cluster.running.values()),
                   what="deliveries before the kill")
        killed_at = cluster.kill(leader)
        survivors = [cluster.running[n] for n in cluster.names if n != leader]
        wait_until(functools.partial(all_delivered_after, survivors, killed_at),
                   what="a delivery at every survivor after the leader's SIGKILL")
        gap = failover(survivors, killed_at)
        print(f"\nfailover (3 members, election timeout {ELECTION_TIMEOUT} s): "
              f"{gap:.3f} s")
        # the victim restarts from its directory and catches up with the survivors
        before = max(len(m.deliveries()) for m in survivors)
        back = cluster.start(leader)
        wait_until(lambda: len(back.deliveries()) > before, what="the restarted member "
                   "delivers everything delivered before it came back, and more")

        def new_broadcast_delivered() -> bool:
            own = {(e.id, e.payload) for e in back.events() if e.kind == "broadcast"}
            return any((e.id, e.payload) in own for e in survivors[0].deliveries())
        wait_until(new_broadcast_delivered,
                   what="the restarted member's new broadcasts are delivered")
        # the whole group is SIGKILLed, then restarted from the directories
        for name in list(cluster.running):
            cluster.kill(name)
        delivered = {m.key: len(m.deliveries()) for m in cluster.all}
        for name in cluster.names:
            cluster.start(name, count=5)
        wait_until(lambda: all(m.said("done") for m in cluster.running.values()),
                   timeout=2 * WAIT, what="every restarted member's broadcasts delivered")
        most = max(delivered.values())
        wait_until(lambda: all(len(m.deliveries()) >= most + 15
                               for m in cluster.running.values()),
                   what="the restarted group delivers everything delivered before")
    history = check_logs(cluster)
    # nothing delivered before the whole-group crash is lost (prefix consistency, and the
    # last incarnations delivered more than any earlier one)
    finals = [m for m in cluster.all if m.incarnation == max(
        x.incarnation for x in cluster.all if x.name == m.name)]
    for final in finals:
        assert len(history.deliveries(final.key)) >= most + 15
    # every broadcast of the last incarnations (stopped gracefully) was delivered
    for final in finals:
        mine = {e.id for e in final.events() if e.kind == "broadcast"}
        assert len(mine) == 5
        for other in finals:
            assert mine <= {e.id for e in history.deliveries(other.key)}


def test_five_members_leader_killed_five_times_and_restarted_from_disk(tmp_path: Path) -> None:
    """Issue 10, item 6: 5 members broadcasting; five times the leader is SIGKILLed, the
    survivors go on delivering, and the victim restarts from its directory before the
    next kill. Every incarnation's log passes the checkers (by position, then filled)."""
    cluster = Cluster(tmp_path, 5, count=100_000)
    gaps = []
    with cluster.session():
        for name in cluster.names:
            cluster.start(name)
        wait_until(lambda: all(m.said("ready") for m in cluster.running.values()),
                   what="all ready")
        term = 0
        for _ in range(5):
            leader = cluster.leader(newer_than=term)
            term = cluster.term_of(leader)
            wait_until(lambda: all(len(m.deliveries()) >= 20
                                   for m in cluster.running.values()),
                       what="deliveries before the kill")
            killed_at = cluster.kill(leader)
            survivors = list(cluster.running.values())
            wait_until(functools.partial(all_delivered_after, survivors, killed_at),
                       what="a delivery at every survivor after the leader's SIGKILL")
            gaps.append(failover(survivors, killed_at))
            back = cluster.start(leader)
            wait_until(functools.partial(back.said, "ready"), what="the victim restarts")
        print(f"\nfailovers (5 members, election timeout {ELECTION_TIMEOUT} s): "
              + ", ".join(f"{g:.3f} s" for g in gaps))
        counts = {m.name: len(m.deliveries()) for m in cluster.running.values()}
        wait_until(lambda: all(len(m.deliveries()) > max(counts.values()) + 20
                               for m in cluster.running.values()),
                   what="all five deliver again, the restarted ones included")
    history = check_logs(cluster)
    assert len(history.logs) == 10  # 5 first incarnations, 5 restarts


def test_kvstore_write_through_a_survivor_after_the_leaders_sigkill(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3, count=0, kv=True)

    async def put(name: str, key: str, value: str) -> int:
        async with rpcx.open_channel(cluster.api[name]) as channel:
            return await KvStoreClient(channel).put(key, value, timeout=WAIT)

    async def get(name: str, key: str) -> str:
        async with rpcx.open_channel(cluster.api[name]) as channel:
            client = KvStoreClient(channel)
            for _ in range(int(WAIT / 0.05)):
                with contextlib.suppress(rpcx.RpcError):
                    return (await client.get(key, timeout=WAIT)).value
                await trio.sleep(0.05)
        raise AssertionError(f"{key} never readable at {name}")

    with cluster.session():
        for name in cluster.names:
            cluster.start(name)
        wait_until(lambda: all(m.said("listening on") for m in cluster.running.values()),
                   what="all replicas serving")
        leader = cluster.leader()
        follower = next(n for n in cluster.names if n != leader)
        assert trio.run(put, follower, "colour", "blue") == 1
        cluster.kill(leader)
        survivors = [n for n in cluster.names if n != leader]
        # started right after the kill: waits through the election, then completes
        revision = trio.run(put, survivors[0], "colour", "green")
        assert revision == 2
        # reads are linearizable: the other survivor sees the acknowledged write at once
        assert trio.run(get, survivors[1], "colour") == "green"
        wait_until(lambda: len(cluster.running[survivors[1]].deliveries()) == 2,
                   what="the other survivor applies the write")
    check_logs(cluster)

