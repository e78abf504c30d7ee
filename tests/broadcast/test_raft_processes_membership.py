"""Real processes on loopback TCP (``tests/broadcast/_raft_member.py``, FileStorage):
a member SIGKILLed while the others write past several snapshots restarts from its
directory and catches up from the leader's snapshot; a fourth process joins a running
group of three through a follower, is promoted and its broadcasts are delivered by all.

Waits are for events with generous timeouts; nothing asserts how long anything took."""

from __future__ import annotations

from pathlib import Path

from rpcx.testing import free_ports
from rpcx_broadcast.testing.member import read_log
from tests.broadcast.test_raft_processes import (
    Cluster,
    Member,
    check_logs,
    wait_until,
)


def _ids(member: Member) -> list[tuple[str, int]]:
    return [e.id for e in member.deliveries()]


def test_a_sigkilled_member_catches_up_from_a_snapshot_after_restart(tmp_path: Path) -> None:
    every = ("--snapshot-every", "100")
    cluster = Cluster(tmp_path, 3, count=100_000)
    with cluster.session():
        for name in cluster.names:
            cluster.start(name, extra=every, rate=100.0)
        wait_until(lambda: all(m.said("ready") for m in cluster.running.values()),
                   what="all ready")
        leader = cluster.leader()
        victim = next(n for n in cluster.names if n != leader)
        wait_until(lambda: all(len(m.deliveries()) >= 30 for m in cluster.running.values()),
                   what="deliveries before the kill")
        cluster.kill(victim)
        survivors = [cluster.running[n] for n in cluster.names if n != victim]
        at_kill = max(len(m.deliveries()) for m in survivors)
        wait_until(lambda: all(len(m.deliveries()) >= at_kill + 500 for m in survivors),
                   timeout=60.0, what="the survivors write past several snapshots")
        back = cluster.start(victim, extra=every, rate=100.0)
        wait_until(lambda: back.said("snapshots installed"),
                   what="the restarted member installs the leader's snapshot")
        mine = len([e for e in back.events() if e.kind == "broadcast"])
        wait_until(lambda: mine + 5 <= len([e for e in back.events()
                                            if e.kind == "broadcast"]), what="it broadcasts")

        def delivered_everywhere() -> bool:
            own = {e.id for e in back.events() if e.kind == "broadcast"}
            return bool(own) and all(own & set(_ids(m)) for m in survivors)
        wait_until(delivered_everywhere, what="its new broadcasts delivered by the others")
    # every incarnation passes the checkers by position (check_logs fills each snapshot
    # restore in with the deliveries it covers) ...
    history = check_logs(cluster)
    # ... and the restarted one jumped ahead by the leader's snapshot (it started from
    # its own, then skipped deliveries it never made), then went on delivering
    at, jumped, after = 0, False, 0
    for number, event in enumerate(back.events()):
        if event.kind == "restore":  # (the first event: its own snapshot, at start-up)
            jumped = jumped or (number > 0 and event.seq > at)
            at = max(at, event.seq)
        elif event.kind == "deliver":
            at += 1
            after += jumped
    assert jumped, "it caught up from the log, not from the leader's snapshot"
    assert after > 0, "nothing delivered after the leader's snapshot"
    assert len(history.deliveries(back.key)) == at
    assert read_log(back.log)  # (the log is readable as a whole)


def test_a_fourth_process_joins_a_running_group(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3, count=100_000)
    (port,) = free_ports(1)
    address = f"tcp://127.0.0.1:{port}"
    with cluster.session():
        for name in cluster.names:
            cluster.start(name)
        wait_until(lambda: all(m.said("ready") for m in cluster.running.values()),
                   what="all ready")
        leader = cluster.leader()
        contact = next(n for n in cluster.names if n != leader)
        wait_until(lambda: all(len(m.deliveries()) >= 30 for m in cluster.running.values()),
                   what="the group runs")
        joiner = cluster.start("p3", extra=("--join", cluster.members[contact],
                                            "--listen", address))
        wait_until(lambda: all(any(line.startswith("view ") and "p3" in line
                                   for line in m.lines())
                               for m in cluster.running.values()),
                   what="every member installs a view with the joiner")

        def joiner_delivered_everywhere() -> bool:
            own = {e.id for e in joiner.events() if e.kind == "broadcast"}
            return len(own) >= 5 and all(
                len(own & set(_ids(m))) >= 5 for m in cluster.running.values())
        wait_until(joiner_delivered_everywhere, what="the joiner's broadcasts delivered")
    check_logs(cluster)  # the joiner caught up by the log: it delivered all of it
    views = {line for m in cluster.all for line in m.lines() if line.startswith("view ")}
    by_id: dict[str, set[str]] = {}
    for line in views:
        _, view_id, names = line.split()
        by_id.setdefault(view_id, set()).add(names)
    assert all(len(v) == 1 for v in by_id.values()), by_id
