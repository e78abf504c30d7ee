"""Membership by consensus: the view-synchrony split-brain schedule of issue 10 (item 3)
cannot happen when configurations are committed log entries.

With ``DynamicMembership`` (a coordinator decides views), false suspicions and message
order alone give two disjoint views with the same id: view 0 = (a, b, c, d); b suspects a
and installs (b, c, d) as view 1; a suspects b and installs (a, c, d) as view 1; c gets
a's view first, d gets b's; a suspects c and installs (a, d) as view 2; b suspects d and
installs (b, c) as view 2. Here the same suspicions are link cuts, and each "install" is a
configuration change that only a leader can propose and only a majority of the current
configuration can commit: the configuration at each log index is the same at every node,
and two disjoint configurations are never both committed.
"""

from __future__ import annotations

import random

import pytest

from rpcx_broadcast.core.raft import ConfigChangeRefused, NotLeader, RaftOptions, Role
from rpcx_broadcast.core.raft_messages import Config, ConfigChange, ConfigOp, EntryKind
from rpcx_broadcast.testing.raft_sim import Cluster

FOUR = ("a", "b", "c", "d")


def committed_configs(cluster: Cluster) -> dict[str, dict[int, Config]]:
    """Per node: the configuration entries at or below its commit index, by index."""
    out: dict[str, dict[int, Config]] = {}
    for name, node in cluster.nodes.items():
        log = node.log
        out[name] = {e.index: e.config for e in log.slice(log.first_index, node.commit + 1)
                     if e.kind == EntryKind.CONFIG and e.config is not None}
    return out


class Observer:
    """Every configuration any node ever saw committed, by log index."""

    def __init__(self) -> None:
        self.by_index: dict[int, set[Config]] = {}

    def look(self, cluster: Cluster) -> None:
        for configs in committed_configs(cluster).values():
            for index, config in configs.items():
                self.by_index.setdefault(index, set()).add(config)

    def check(self) -> list[Config]:
        for index, configs in self.by_index.items():
            assert len(configs) == 1, f"two configurations committed at {index}: {configs}"
        chain = [next(iter(self.by_index[i])) for i in sorted(self.by_index)]
        previous = Config(FOUR)
        for config in chain:
            # single-server changes: consecutive voter sets differ by at most one member,
            # so their majorities overlap
            assert len(set(previous.voters) ^ set(config.voters)) <= 1, (previous, config)
            previous = config
        return chain


def leaders(cluster: Cluster) -> set[str]:
    return {n for n, node in cluster.nodes.items() if node.role == Role.LEADER}


def try_change(cluster: Cluster, name: str, op: ConfigOp, target: str) -> bool:
    try:
        cluster.nodes[name].propose_config(ConfigChange(op, target))
    except (NotLeader, ConfigChangeRefused):
        return False
    cluster.process(name)
    return True


def test_the_issue_10_schedule_commits_one_chain_of_configurations() -> None:
    cluster = Cluster(FOUR, options=RaftOptions())
    cluster.elect("a")
    cluster.propose(b"view 0 traffic")
    cluster.tick(times=2)
    seen = Observer()

    # b and a suspect each other: the link between them fails
    cluster.cut = {("a", "b"), ("b", "a")}
    # b would install (b, c, d): it is not the leader, and cannot become it, since c and d
    # still hear a (their leader lease makes them ignore b's vote requests)
    assert not try_change(cluster, "b", ConfigOp.REMOVE, "a")
    cluster.tick("b", times=3 * cluster.options.election_ticks)
    cluster.tick("a", "c", "d", times=1)
    assert leaders(cluster) == {"a"}
    # a installs (a, c, d); c receives it first, d does not (a -> d fails too)
    cluster.cut |= {("a", "d")}
    assert try_change(cluster, "a", ConfigOp.REMOVE, "b")
    cluster.deliver()
    seen.look(cluster)
    assert cluster.nodes["a"].committed_config == Config(("a", "c", "d"))  # a and c: 2 of 3
    # a suspects c and installs (a, d): that needs d, which a cannot reach
    cluster.cut |= {("a", "c"), ("c", "a"), ("d", "a")}
    assert try_change(cluster, "a", ConfigOp.REMOVE, "c")
    cluster.tick(times=3)
    seen.look(cluster)
    assert cluster.nodes["a"].committed_config == Config(("a", "c", "d"))
    # b suspects d and would install (b, c): b cannot lead (it counts 4 voters and hears
    # only c). c can: with d it is a majority of (a, c, d), the configuration it holds, and
    # its removal of d continues the same chain of configurations instead of forking it
    cluster.cut |= {("b", "d"), ("d", "b")}
    for _ in range(6):
        cluster.tick(times=cluster.options.election_ticks)
        seen.look(cluster)
        for name in ("b", "c"):
            assert not try_change(cluster, name, ConfigOp.REMOVE, "d") \
                or cluster.nodes[name].committed_config != Config(("b", "c"))
    assert "b" not in leaders(cluster)
    # heal: everyone converges on the one chain
    cluster.heal()
    cluster.tick(times=4 * cluster.options.election_ticks)
    seen.look(cluster)
    chain = seen.check()
    assert Config(("b", "c")) not in chain and Config(("b", "c", "d")) not in chain
    assert chain[0] == Config(("a", "c", "d"))
    leader = cluster.leader()
    assert leader is not None
    final = cluster.nodes[leader].committed_config
    assert final == chain[-1]
    assert {cluster.nodes[m].committed_config for m in final.members} == {final}
    # a member removed while reachable is told: the leader keeps sending it the log until
    # the removal commits (here c removed d). b was removed while cut off, so it still
    # believes in (a, b, c, d): harmless (PreVote keeps it from disrupting anyone), and
    # the adapter must tell it (docs/consensus.md, "Membership")
    assert final == Config(("a", "c"))
    assert "d" not in cluster.nodes["d"].config.members
    assert cluster.nodes["b"].config == Config(FOUR)
    terms = {n: cluster.nodes[n].term for n in final.members}
    cluster.tick(times=4 * cluster.options.election_ticks)
    assert {n: cluster.nodes[n].term for n in final.members} == terms


@pytest.mark.parametrize("seed", range(100))
def test_false_suspicions_never_commit_two_configurations_at_one_index(seed: int) -> None:
    """Random suspicions (link cuts, including one-way ones) and removals proposed by
    whoever leads on each side: one chain of committed configurations, everywhere."""
    rng = random.Random(seed)
    cluster = Cluster(FOUR, seed=seed, keep_sent=False)
    seen = Observer()
    for _ in range(8):
        cluster.heal()
        names = list(FOUR)
        for a in names:
            for b in names:
                if a != b and rng.random() < 0.35:
                    cluster.cut.add((a, b))
        for _ in range(rng.randint(5, 25)):
            cluster.tick()
            for name, node in list(cluster.nodes.items()):
                if node.role == Role.LEADER and rng.random() < 0.3:
                    unreachable = [m for m in node.config.members
                                   if m != name and (name, m) in cluster.cut]
                    if unreachable:
                        try_change(cluster, name, ConfigOp.REMOVE, rng.choice(unreachable))
                    elif rng.random() < 0.5:
                        cluster.propose(b"w", at=name)
            seen.look(cluster)
    cluster.heal()
    cluster.tick(times=60)
    seen.look(cluster)
    seen.check()
    # every node still in the group agrees on the latest committed configuration
    leader = cluster.leader()
    assert leader is not None, f"seed {seed}: no leader after the heal"
    members = cluster.nodes[leader].committed_config.members
    assert len({cluster.nodes[m].committed_config for m in members}) == 1, f"seed {seed}"
