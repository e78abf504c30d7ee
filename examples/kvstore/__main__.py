"""The replicated key-value store demo:

    python -m examples.kvstore

Starts 3 replica processes (``examples.kvstore.replica``: the ``KvStore`` service of
``store.py`` served with ``rpcx_broadcast.serve_replicated``) on loopback TCP, each keeping
its log in a temporary directory. Six clients share one channel to all three addresses
and read, write and compare-and-set three keys for a few seconds; partway through, the
leader is killed with SIGKILL. The demo then prints how long the group took to acknowledge
a write again, whether every write took effect exactly once, whether any read went back
in time, and the linearizability checker's verdict on the whole history; it restarts the
killed replica from its directory and shows it catch up. Exit status 0 if all held.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import trio

import rpcx
from examples.kvstore.kvstore_rpcx import KvStoreClient, Summary
from examples.kvstore.workload import RegisterOp, Tally, client, keys_of
from rpcx_broadcast.testing.linearizability import KeyValue, Recorder, check_linearizable

NAMES = ("r1", "r2", "r3")
ROOT = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start(name: str, members: dict[str, str], directory: str) -> subprocess.Popen[bytes]:
    spec = ",".join(f"{n}={a}" for n, a in members.items())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, "-m", "examples.kvstore.replica", name, spec,
                             directory], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def stop(procs: Iterable[subprocess.Popen[bytes]], grace: float = 5.0) -> None:
    """SIGTERM every process still running, then SIGKILL those that do not exit."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def summary_of(address: str) -> Summary:
    async with rpcx.open_channel(address) as channel:
        return await KvStoreClient(channel).summary(timeout=10)


async def demo(duration: float = 8.0, kill_after: float = 3.0, seed: int = 7) -> int:
    members = {n: f"tcp://127.0.0.1:{p}" for n, p in zip(NAMES, free_ports(3), strict=True)}
    with tempfile.TemporaryDirectory(prefix="kvstore-") as tmp:
        dirs = {n: os.path.join(tmp, n) for n in NAMES}
        print("Starting 3 replica processes (logs fsynced under a temporary directory):")
        procs = {n: start(n, members, dirs[n]) for n in NAMES}
        for n in NAMES:
            print(f"  {n}: {members[n]} (pid {procs[n].pid})")
        try:
            return await run(members, procs, dirs, duration, kill_after, seed)
        finally:
            stop(procs.values())


async def run(members: dict[str, str], procs: dict[str, subprocess.Popen[bytes]],
              dirs: dict[str, str], duration: float, kill_after: float, seed: int) -> int:
    addresses = list(members.values())
    async with rpcx.open_channel(addresses, default_timeout=10) as channel:
        store = KvStoreClient(channel)
        first = await store.summary(timeout=30)  # waits for the group to elect a leader
        print(f"\nThe replicas elected {first.leader}. Six clients now read, write and "
              f"compare-and-set keys k0..k2 for {duration:g} s through one channel to all "
              f"three addresses.")
        recorder: Recorder[RegisterOp, object] = Recorder()
        tally = Tally()
        rng = random.Random(seed)
        start_time = trio.current_time()
        stop_at = start_time + duration
        killed: list[tuple[str, float]] = []

        async def killer() -> None:
            await trio.sleep(kill_after)
            leader = (await store.summary()).leader
            os.kill(procs[leader].pid, signal.SIGKILL)
            killed.append((leader, trio.current_time()))
            print(f"  t={trio.current_time() - start_time:.1f} s: SIGKILL to the leader, "
                  f"{leader} (pid {procs[leader].pid})")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(killer)
            for i in range(6):
                nursery.start_soon(client, store, recorder, f"c{i}", keys_of(3),
                                   random.Random(rng.random()), lambda: trio.current_time()
                                   >= stop_at, tally)
        final = await store.summary()

    victim, killed_at = killed[0]
    after = [t for t in tally.acked_at if t > killed_at]
    failover = after[0] - killed_at if after else float("inf")
    print(f"\n{tally.writes_acked} writes acknowledged, {tally.reads} reads, "
          f"{tally.errors} calls ended in an error.")
    print(f"Failover: the first write after the SIGKILL was acknowledged {failover:.2f} s "
          f"later (new leader: {final.leader}).")
    exactly_once = (tally.writes_acked <= final.revision
                    <= tally.writes_acked + tally.writes_unknown
                    and len(set(tally.put_revisions)) == len(tally.put_revisions))
    print(f"Exactly once: the store's revision is {final.revision}: every acknowledged "
          f"write counted once, none twice ({tally.writes_acked} acknowledged, "
          f"{tally.writes_unknown} of unknown outcome) -> {'yes' if exactly_once else 'NO'}")
    print("Reads never went back in time: "
          + ("yes" if not tally.went_back else f"NO: {tally.went_back[0]}"))
    verdict = check_linearizable(recorder.history(), KeyValue(), timeout=60)
    print(f"Linearizability of {len(recorder.history())} operations: {verdict}")

    print(f"\nRestarting {victim} from its directory ...")
    procs[victim] = start(victim, members, dirs[victim])
    caught_up = None
    with trio.move_on_after(20):
        while True:
            try:
                summary = await summary_of(members[victim])
            except rpcx.RpcError:
                summary = None
            if summary is not None and summary.sha256 == final.sha256:
                caught_up = summary
                break
            await trio.sleep(0.2)
    print(f"  {victim} caught up: revision {caught_up.revision}, same contents"
          if caught_up else f"  {victim} did NOT catch up")
    ok = (exactly_once and not tally.went_back and verdict.ok and after != []
          and caught_up is not None)
    print("\nAll held." if ok else "\nSomething did NOT hold (see above).")
    return 0 if ok else 1


def main() -> int:
    return trio.run(demo)


if __name__ == "__main__":
    sys.exit(main())
