"""Failover time of the ``raft`` order with real processes (for bench/RESULTS.md).

    python -m tests.broadcast._raft_failover --members 3 --kills 5 --election-timeout 1.0

Starts ``--members`` member processes (``_raft_member``, FileStorage in a temporary
directory, each broadcasting 40/s), then ``--kills`` times: waits for the leader, SIGKILLs
it, measures the time from the kill to the first delivery (at any survivor) of a message
broadcast after the kill, and restarts the victim from its directory. Prints one line per
kill and a summary; the logs pass the FIFO-total checker at the end.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.broadcast import test_raft_processes as procs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--election-timeout", type=float, default=1.0)
    args = parser.parse_args(argv)
    procs.ELECTION_TIMEOUT = args.election_timeout
    gaps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cluster = procs.Cluster(Path(tmp), args.members, count=1_000_000)
        try:
            for name in cluster.names:
                cluster.start(name)
            procs.wait_until(lambda: all(m.said("ready") for m in cluster.running.values()),
                             what="all ready")
            term = 0
            for kill in range(args.kills):
                leader = cluster.leader(newer_than=term)
                term = cluster.term_of(leader)
                time.sleep(1.0)  # steady load under this leader
                killed_at = cluster.kill(leader)
                survivors = list(cluster.running.values())
                procs.wait_until(functools.partial(procs.all_delivered_after, survivors,
                                                   killed_at), what="failover")
                gap = procs.failover(survivors, killed_at)
                gaps.append(gap)
                print(f"kill {kill + 1}: leader {leader} (term {term}) -> next delivery "
                      f"after {gap:.3f} s", flush=True)
                cluster.start(leader)
            for name in list(cluster.running):
                cluster.stop(name)
        finally:
            cluster.close()
        procs.check_logs(cluster)
    print(f"{args.members} members, election timeout {args.election_timeout} s, "
          f"{len(gaps)} kills: median {statistics.median(gaps):.3f} s, "
          f"min {min(gaps):.3f} s, max {max(gaps):.3f} s; logs check FIFO-total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
