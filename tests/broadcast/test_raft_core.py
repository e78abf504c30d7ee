"""Unit tests of the Raft core's rules, one behaviour each, on a hand-driven ``Cluster``.

Where a rule could silently be absent, the test also runs the node with the rule switched
off (an option, or a subclass that breaks it) and shows the outcome differs.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

import attrs
import pytest

from rpcx_broadcast.core.raft import (
    ConfigChangeRefused,
    NotLeader,
    RaftNode,
    RaftOptions,
    RandomSource,
    ReadIndexUnavailable,
    Role,
)
from rpcx_broadcast.core.raft_log import RaftLog
from rpcx_broadcast.core.raft_messages import (
    Append,
    AppendReply,
    Config,
    ConfigChange,
    ConfigOp,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    RaftMessage,
    Snapshot,
    SnapshotAck,
    TimeoutNow,
    VoteReply,
    VoteRequest,
)
from rpcx_broadcast.core.storage import MemoryStorage, Recovered
from rpcx_broadcast.testing.raft_sim import Cluster, NodeFactory

ABC = ("a", "b", "c")
FIVE = ("a", "b", "c", "d", "e")


def started(voters: tuple[str, ...] = ABC, leader: str = "a", **options: int | bool) -> Cluster:
    cluster = Cluster(voters, options=RaftOptions(**options))  # type: ignore[arg-type]
    cluster.elect(leader)
    assert cluster.leader() == leader
    return cluster


def node_factory(cls: type[RaftNode]) -> NodeFactory:
    def make(name: str, rng: RandomSource, options: RaftOptions, recovered: Recovered,
             voters: tuple[str, ...]) -> RaftNode:
        return cls(name, rng, options=options, recovered=recovered, voters=voters)
    return make


# -- election -----------------------------------------------------------------------------


def test_one_leader_is_elected_and_everyone_follows_it() -> None:
    cluster = Cluster(FIVE)
    cluster.tick(times=30)
    leader = cluster.leader()
    assert leader is not None
    assert [n.role for n in cluster.nodes.values()].count(Role.LEADER) == 1
    assert {n.leader for n in cluster.nodes.values()} == {leader}
    assert len({n.term for n in cluster.nodes.values()}) == 1


def test_election_timeouts_are_randomised_from_the_given_rng() -> None:
    options = RaftOptions(election_ticks=10)
    timeouts = set()
    for seed in range(20):
        node = RaftNode("a", random.Random(seed), options=options, voters=("a", "b", "c"))
        ticks = 0
        while node.role == Role.FOLLOWER:
            node.tick()
            ticks += 1
        timeouts.add(ticks)
    assert all(10 <= t < 20 for t in timeouts)
    assert len(timeouts) > 3
    again = RaftNode("a", random.Random(3), options=options, voters=ABC)
    first = RaftNode("a", random.Random(3), options=options, voters=ABC)
    for _ in range(25):
        again.tick()
        first.tick()
    assert again.role == first.role and again.term == first.term


def test_a_single_voter_leads_and_commits_alone() -> None:
    cluster = Cluster(("solo",))
    cluster.elect("solo")
    assert cluster.leader() == "solo"
    cluster.propose(b"x")
    assert cluster.state["solo"] == [b"x"]


def test_vote_goes_only_to_an_up_to_date_log_and_once_per_term() -> None:
    node = RaftNode("a", random.Random(0), voters=ABC,
                    recovered=Recovered(HardState(2), None, (Entry(1, 1), Entry(2, 2))))
    storage = MemoryStorage()
    node.step("b", VoteRequest(3, 1, 1))        # shorter, older log: refused
    node.step("c", VoteRequest(3, 2, 2))        # as up to date: granted
    node.step("b", VoteRequest(3, 5, 2))        # already voted in term 3
    ready = node.ready()
    replies = [(s.dest, s.msg) for s in ready.persist(storage)]
    assert replies == [("b", VoteReply(3, False)), ("c", VoteReply(3, True)),
                       ("b", VoteReply(3, False))]
    assert storage.hard_state == HardState(3, "c")


def test_prevote_does_not_bump_terms_and_a_rejoining_node_does_not_disrupt() -> None:
    cluster = started()
    term = cluster.nodes["a"].term
    cluster.isolate("c")
    cluster.tick(times=60)
    assert cluster.nodes["c"].term == term          # PreVote never reached a majority
    assert cluster.nodes["c"].role == Role.PRE_CANDIDATE
    cluster.heal()
    cluster.tick(times=5)
    assert cluster.leader() == "a" and cluster.nodes["a"].term == term


def test_without_prevote_an_isolated_node_inflates_its_term_and_deposes_the_leader() -> None:
    cluster = started(pre_vote=False, check_quorum=False)
    term = cluster.nodes["a"].term
    cluster.isolate("c")
    cluster.tick(times=60)
    assert cluster.nodes["c"].term > term + 2
    cluster.heal()
    cluster.tick(times=2 * cluster.options.election_ticks)
    assert cluster.nodes["a"].term > term + 2    # c's next election pushed everyone up


def test_check_quorum_makes_an_isolated_leader_step_down() -> None:
    cluster = started()
    cluster.isolate("a")
    cluster.tick("a", times=2 * cluster.options.election_ticks)
    assert cluster.nodes["a"].role == Role.FOLLOWER
    with pytest.raises(NotLeader):
        cluster.nodes["a"].propose(b"x")


def test_without_check_quorum_an_isolated_leader_keeps_leading() -> None:
    cluster = started(check_quorum=False)
    cluster.isolate("a")
    cluster.tick("a", times=5 * cluster.options.election_ticks)
    assert cluster.nodes["a"].role == Role.LEADER


def test_leader_lease_ignores_vote_requests_while_the_leader_is_heard() -> None:
    cluster = started()
    b = cluster.nodes["b"]
    term = b.term
    b.step("c", VoteRequest(term + 1, 100, term + 1))
    assert b.term == term and b.leader == "a"
    cluster.process("b")
    assert not [m for src, _, m in cluster.sent if src == "b" and isinstance(m, VoteReply)
                and m.term == term + 1]


def _ticks_until_a_new_leader(cluster: Cluster, old: str, limit: int = 100) -> int:
    for ticks in range(1, limit + 1):
        cluster.tick()
        leader = cluster.leader()
        if leader is not None and leader != old:
            return ticks
    raise AssertionError("no new leader")


@pytest.mark.parametrize("voters", [ABC, FIVE])
def test_a_leader_known_to_be_unreachable_is_replaced_within_a_few_ticks(
        voters: tuple[str, ...]) -> None:
    e = 10
    quick: list[int] = []
    slow: list[int] = []
    for seed in range(60):
        for told in (True, False):
            cluster = Cluster(voters, options=RaftOptions(election_ticks=e), seed=seed)
            cluster.elect("a")
            cluster.crash("a")
            if told:  # the drivers of the others saw their connections to a refused
                for name in voters[1:]:
                    cluster.nodes[name].leader_unreachable()
            (quick if told else slow).append(_ticks_until_a_new_leader(cluster, "a"))
    # told: a campaign within e // 2 ticks (a split vote falls back to the timeout)
    assert statistics.median(quick) <= 3, quick
    assert statistics.median(slow) >= e, slow       # not told: a whole election timeout
    assert sum(t <= e // 2 + 1 for t in quick) >= 0.6 * len(quick), quick


def test_a_false_alarm_about_a_live_leader_changes_nothing() -> None:
    cluster = started()
    term = cluster.nodes["a"].term
    cluster.nodes["c"].leader_unreachable()  # only c's connection broke; a is alive
    cluster.isolate("c")
    cluster.tick(times=5)                    # c campaigns (PreVote) while cut off
    cluster.heal()
    cluster.tick(times=30)
    assert cluster.leader() == "a" and cluster.nodes["a"].term == term, \
        "b still heard a: its lease refused c's PreVote"
    assert cluster.nodes["c"].leader == "a"


# -- replication ----------------------------------------------------------------------------


def test_entries_commit_everywhere_in_order() -> None:
    cluster = started(FIVE)
    for k in range(20):
        cluster.propose(b"v%d" % k)
    cluster.tick(times=2)
    expected = [b"v%d" % k for k in range(20)]
    assert all(cluster.state[n] == expected for n in FIVE)


def test_a_minority_partition_commits_nothing_and_catches_up_on_heal() -> None:
    cluster = started(FIVE)
    cluster.propose(b"before")
    cluster.tick(times=2)
    cluster.partition({"a", "b"}, {"c", "d", "e"})
    lost = cluster.propose(b"minority", at="a")          # the old leader still accepts it
    cluster.tick(times=3)
    assert cluster.nodes["a"].commit < lost
    assert b"minority" not in cluster.state["a"]
    cluster.tick(times=40)                               # majority elects, a steps down
    new = cluster.leader()
    assert new in ("c", "d", "e")
    cluster.propose(b"majority")
    cluster.tick(times=2)
    assert cluster.state["c"][-1] == b"majority"
    assert cluster.state["a"] == cluster.state["b"] == [b"before"]
    cluster.heal()
    cluster.tick(times=5)
    for name in FIVE:
        assert cluster.state[name] == [b"before", b"majority"], name
    assert cluster.nodes["a"].log.entry(lost).data != b"minority"


def test_an_old_term_entry_is_not_committed_by_counting_replicas_figure_8() -> None:
    """Raft figure 8: a leader only commits entries of its own term by counting."""
    def run(cls: type[RaftNode]) -> list[int]:
        old = (Entry(1, 1, b"x"), Entry(2, 2, b"from-term-2"))
        stores = {"a": MemoryStorage(HardState(2), None, list(old)),
                  "b": MemoryStorage(HardState(2), None, [old[0]]),
                  "c": MemoryStorage(HardState(2), None, [old[0]])}
        options = RaftOptions(max_entries_per_append=1)
        cluster = Cluster(ABC, options=options, make_node=node_factory(cls),
                          make_storage=lambda: MemoryStorage())
        for name, storage in stores.items():
            cluster.storages[name] = storage
            cluster.restart(name)
        cluster.cut = {("a", "c"), ("c", "a")}
        a = cluster.nodes["a"]
        a.tick()
        for _ in range(40):
            a.tick()
            if a.role != Role.FOLLOWER:
                break
        cluster.process("a")
        commits = []
        # deliver one message at a time and watch the leader's commit index
        while cluster.inbox:
            src, dest, msg = cluster.inbox.pop(0)
            if (src, dest) in cluster.cut or dest not in cluster.nodes:
                continue
            cluster.nodes[dest].step(src, msg)
            cluster.process(dest)
            if a.role == Role.LEADER:
                commits.append(a.commit)
        assert a.role == Role.LEADER and a.term == 3
        return commits

    good = run(RaftNode)
    assert good[-1] == 3
    # b holds entry 2 (majority a, b) before it holds the no-op of term 3: not committed
    assert 2 not in good

    class CountsReplicas(RaftNode):
        def _maybe_commit(self) -> None:
            matches = sorted(self.log.last_index if v == self.id else
                             self._progress[v].match for v in self.config.voters)
            self.commit = max(self.commit, matches[len(matches) - self.config.quorum])

    assert 2 in run(CountsReplicas)


def test_batching_puts_many_proposals_in_one_append() -> None:
    cluster = started()
    cluster.tick(times=2)
    cluster.sent.clear()
    leader = cluster.nodes["a"]
    for k in range(100):
        leader.propose(b"%d" % k)
    cluster.process("a")
    appends = [m for src, _, m in cluster.sent if src == "a" and isinstance(m, Append)]
    assert len(appends) == 2 and all(len(m.entries) == 100 for m in appends)


def test_pipelining_is_bounded_by_max_inflight() -> None:
    cluster = started(max_inflight=3, max_entries_per_append=10)
    cluster.tick(times=2)
    cluster.sent.clear()
    leader = cluster.nodes["a"]
    for k in range(100):
        leader.propose(b"%d" % k)
    cluster.process("a")
    to_b = [m for src, dest, m in cluster.sent if (src, dest) == ("a", "b")
            and isinstance(m, Append)]
    assert len(to_b) == 3 and all(len(m.entries) == 10 for m in to_b)
    cluster.deliver()
    assert cluster.state["b"] == [b"%d" % k for k in range(100)]


def test_lost_appends_are_resent_after_heartbeats() -> None:
    cluster = started(max_inflight=4)
    cluster.tick(times=2)
    cluster.cut = {("a", "b")}
    cluster.propose(b"lost")
    cluster.deliver()
    cluster.heal()
    assert b"lost" not in cluster.state["b"]
    cluster.tick(times=4)
    assert cluster.state["b"] == [b"lost"]


def test_a_follower_rejecting_an_append_points_the_leader_back_fast() -> None:
    log = RaftLog(0, 0, [Entry(1, i) for i in range(1, 4)] + [Entry(2, i) for i in range(4, 9)])
    assert log.conflict_hint(8, 1) == (3, 1)
    assert log.conflict_hint(20, 5) == (8, 2)
    compacted = RaftLog(5, 1, [Entry(2, 6)])
    assert compacted.conflict_hint(3, 1) == (3, 0)


# -- leadership transfer --------------------------------------------------------------------


def test_leadership_transfer_hands_over_without_waiting_for_a_timeout() -> None:
    cluster = started()
    term = cluster.nodes["a"].term
    cluster.nodes["a"].transfer_leadership("b")
    cluster.process("a")
    cluster.deliver()
    assert cluster.leader() == "b" and cluster.nodes["b"].term == term + 1
    assert cluster.nodes["a"].role == Role.FOLLOWER


def test_transfer_to_a_lagging_follower_first_catches_it_up() -> None:
    cluster = started()
    cluster.isolate("c")
    for k in range(5):
        cluster.propose(b"%d" % k)
    cluster.tick("a", "b", times=2)
    cluster.heal()
    a = cluster.nodes["a"]
    a.transfer_leadership("c")
    with pytest.raises(NotLeader):
        a.propose(b"refused while transferring")
    cluster.process("a")
    assert not [m for src, _, m in cluster.sent if isinstance(m, TimeoutNow)]
    cluster.tick(times=3)
    assert cluster.leader() == "c"
    assert cluster.state["c"] == [b"%d" % k for k in range(5)]


def test_a_transfer_to_an_unreachable_node_is_abandoned_after_an_election_timeout() -> None:
    cluster = started()
    cluster.isolate("c")
    cluster.propose(b"x")
    a = cluster.nodes["a"]
    a.transfer_leadership("c")
    cluster.tick("a", "b", times=cluster.options.election_ticks + 1)
    assert a.role == Role.LEADER
    a.propose(b"accepted again")


# -- membership -----------------------------------------------------------------------------


def test_a_learner_catches_up_then_is_promoted_and_counts_in_the_quorum() -> None:
    cluster = started()
    for k in range(10):
        cluster.propose(b"%d" % k)
    cluster.tick(times=2)
    cluster.add("d")
    a = cluster.nodes["a"]
    cluster.isolate("d")
    a.propose_config(ConfigChange(ConfigOp.ADD_LEARNER, "d"))
    cluster.tick("a", "b", "c", times=2)
    assert a.config == Config(ABC, ("d",))
    with pytest.raises(ConfigChangeRefused, match="caught up"):
        a.propose_config(ConfigChange(ConfigOp.PROMOTE, "d"))
    cluster.heal()
    cluster.tick(times=3)
    assert cluster.state["d"] == cluster.state["a"]
    a.propose_config(ConfigChange(ConfigOp.PROMOTE, "d"))
    cluster.tick(times=2)
    assert all(n.config == Config(("a", "b", "c", "d")) for n in cluster.nodes.values())
    # quorum is now 3 of 4: with b and c cut off, a and d cannot commit
    cluster.partition({"a", "d"}, {"b", "c"})
    index = cluster.propose(b"needs three")
    cluster.tick("a", "d", times=2)
    assert a.commit < index


def test_a_learner_never_campaigns_and_its_vote_does_not_count() -> None:
    cluster = started(("a", "b"))
    cluster.add("c")
    cluster.nodes["a"].propose_config(ConfigChange(ConfigOp.ADD_LEARNER, "c"))
    cluster.tick(times=3)
    assert cluster.nodes["c"].config.learners == ("c",)
    cluster.isolate("a")
    cluster.tick("c", times=60)
    assert cluster.nodes["c"].role == Role.FOLLOWER
    assert not [m for src, _, m in cluster.sent if src == "c" and isinstance(m, VoteRequest)]
    # b campaigns (a is gone) and asks only the voters; a granted vote from the learner c
    # does not make b leader of (a, b)
    b = cluster.nodes["b"]
    cluster.elect("b")
    assert b.role == Role.PRE_CANDIDATE
    assert {dest for src, dest, m in cluster.sent if src == "b"
            and isinstance(m, VoteRequest)} == {"a"}
    b.step("c", VoteReply(b.term + 1, True, pre=True))
    assert b.role == Role.PRE_CANDIDATE


def lone_leader() -> RaftNode:
    """A leader of (x, y, z) that won with y's vote and has committed nothing yet."""
    node = RaftNode("x", random.Random(0), voters=("x", "y", "z"))
    while node.role == Role.FOLLOWER:
        node.tick()
    roles = [node.role]
    node.step("y", VoteReply(node.term + 1, True, pre=True))
    roles.append(node.role)
    node.step("y", VoteReply(node.term, True))
    roles.append(node.role)
    assert roles == [Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER]
    return node


def test_a_new_leader_makes_no_change_before_committing_its_own_entry() -> None:
    leader = lone_leader()
    with pytest.raises(ConfigChangeRefused, match="not committed"):
        leader.propose_config(ConfigChange(ConfigOp.REMOVE, "z"))
    ready = leader.ready()
    ready.persist(MemoryStorage())  # the leader's own write of its no-op
    leader.advance(ready)
    leader.step("y", AppendReply(leader.term, True, leader.log.last_index))
    leader.has_ready()  # the leader commits its no-op
    assert leader.log.term(leader.commit) == leader.term
    leader.propose_config(ConfigChange(ConfigOp.REMOVE, "z"))


def test_the_leader_cannot_remove_itself_but_can_leave_after_a_transfer() -> None:
    cluster = started()
    cluster.tick(times=2)
    a = cluster.nodes["a"]
    with pytest.raises(ConfigChangeRefused, match="transfer"):
        a.propose_config(ConfigChange(ConfigOp.REMOVE, "a"))
    a.transfer_leadership("b")
    cluster.process("a")
    cluster.deliver()
    b = cluster.nodes["b"]
    cluster.tick(times=1)
    b.propose_config(ConfigChange(ConfigOp.REMOVE, "a"))
    cluster.process("b")
    cluster.tick(times=2)
    assert b.committed_config == Config(("b", "c"))
    cluster.crash("a")
    cluster.propose(b"after the leave")
    cluster.tick(times=2)
    assert cluster.state["c"][-1] == b"after the leave"


def test_a_removed_node_does_not_campaign() -> None:
    cluster = started()
    cluster.nodes["a"].propose_config(ConfigChange(ConfigOp.REMOVE, "c"))
    cluster.tick(times=3)
    c = cluster.nodes["c"]
    assert c.config == Config(("a", "b"))
    cluster.isolate("c")
    cluster.tick("c", times=60)
    assert c.role == Role.FOLLOWER


def test_config_changes_are_validated() -> None:
    config = Config(ABC, ("d",))
    assert config.changed(ConfigChange(ConfigOp.PROMOTE, "d")) == Config(("a", "b", "c", "d"))
    assert config.changed(ConfigChange(ConfigOp.REMOVE, "d")) == Config(ABC)
    for bad in (ConfigChange(ConfigOp.ADD_LEARNER, "a"), ConfigChange(ConfigOp.PROMOTE, "a"),
                ConfigChange(ConfigOp.REMOVE, "zz")):
        with pytest.raises(ValueError):
            config.changed(bad)
    with pytest.raises(ValueError, match="last voter"):
        Config(("a",)).changed(ConfigChange(ConfigOp.REMOVE, "a"))
    with pytest.raises(ValueError, match="both"):
        Config(("a",), ("a",))
    with pytest.raises(ValueError):
        ConfigChange(ConfigOp.REMOVE, "")


# -- snapshots ------------------------------------------------------------------------------


def test_a_far_behind_follower_catches_up_from_a_snapshot() -> None:
    cluster = started()
    cluster.isolate("c")
    for k in range(50):
        cluster.propose(b"%d" % k)
    cluster.tick("a", "b", times=2)
    cluster.snapshot("a")
    a = cluster.nodes["a"]
    assert a.log.snapshot_index > 50 and len(a.log) == 0
    cluster.heal()
    cluster.tick(times=4)
    assert cluster.installed.get("c") == 1
    assert cluster.state["c"] == [b"%d" % k for k in range(50)]
    assert cluster.nodes["c"].log.snapshot_index == a.log.snapshot_index
    cluster.propose(b"after")
    cluster.tick(times=2)
    assert cluster.state["c"][-1] == b"after"


def test_a_new_member_catches_up_from_a_snapshot() -> None:
    cluster = started()
    for k in range(30):
        cluster.propose(b"%d" % k)
    cluster.tick(times=2)
    for name in ABC:
        cluster.snapshot(name)
    cluster.add("d")
    cluster.nodes["a"].propose_config(ConfigChange(ConfigOp.ADD_LEARNER, "d"))
    cluster.tick(times=4)
    assert cluster.installed.get("d") == 1
    assert cluster.state["d"] == cluster.state["a"]
    assert cluster.nodes["d"].config == Config(ABC, ("d",))


def test_a_snapshot_at_an_index_the_follower_holds_keeps_its_log() -> None:
    node = RaftNode("b", random.Random(0), voters=ABC,
                    recovered=Recovered(HardState(1), None, tuple(Entry(1, i)
                                                                  for i in range(1, 6))))
    node.step("a", InstallSnapshot(1, Snapshot(3, 1, Config(ABC), b"s")))
    ready = node.ready()
    assert ready.snapshot is None
    assert node.commit == 3 and node.log.last_index == 5
    assert [s.msg for s in ready.persist(MemoryStorage())] == [AppendReply(1, True, 3)]


# -- snapshots in chunks ---------------------------------------------------------------------


def behind_by_a_snapshot(chunk: int = 16, entries: int = 50) -> Cluster:
    """a leads, c missed ``entries`` entries that a (and b) compacted away; healed, c's
    transfer has not started yet. Snapshots go in ``chunk``-byte chunks."""
    cluster = started(snapshot_chunk_bytes=chunk)
    cluster.isolate("c")
    for k in range(entries):
        cluster.propose(b"%d" % k)
    cluster.tick("a", "b", times=2)
    cluster.snapshot("a")
    cluster.snapshot("b")
    cluster.heal()
    return cluster


def chunks_to(cluster: Cluster, dest: str) -> list[InstallSnapshot]:
    return [m for _, d, m in cluster.sent if d == dest and isinstance(m, InstallSnapshot)]


Lose = Callable[[str, str, RaftMessage], bool]


def run(cluster: Cluster, *, rounds: int, lose: Lose = lambda s, d, m: False, times: int = 1,
        until: Callable[[], bool] = lambda: False) -> None:
    """``rounds`` times: tick every node, then deliver one message at a time until none is
    left, dropping the first ``times`` messages for which ``lose(src, dest, msg)`` holds;
    stop as soon as ``until()``. Checks all along that a node holds at most one snapshot
    being assembled, never more than that snapshot's size."""
    for _ in range(rounds):
        for name in tuple(cluster.nodes):
            cluster.nodes[name].tick()
            cluster.process(name)
        while cluster.inbox:
            src, dest, msg = cluster.inbox[0]
            if times and lose(src, dest, msg):
                cluster.inbox.pop(0)
                times -= 1
                if until():
                    return
                continue
            cluster.deliver(limit=1)
            for node in cluster.nodes.values():
                held = node.receiving
                snap = cluster.nodes["a"].snapshot if "a" in cluster.nodes else None
                assert held is None or snap is None or held[1] < len(snap.data)
            if until():
                return


def test_a_snapshot_goes_in_chunks_in_order_one_in_flight() -> None:
    cluster = behind_by_a_snapshot(chunk=16)
    cluster.tick(times=4)
    a = cluster.nodes["a"]
    assert a.snapshot is not None and len(a.snapshot.data) > 5 * 16
    assert cluster.installed.get("c") == 1
    assert cluster.state["c"] == [b"%d" % k for k in range(50)]
    chunks = chunks_to(cluster, "c")
    assert [m.offset for m in chunks] == list(range(0, len(a.snapshot.data), 16))
    assert [m.done for m in chunks] == [False] * (len(chunks) - 1) + [True]
    assert b"".join(m.snapshot.data for m in chunks) == a.snapshot.data
    assert all(len(m.snapshot.data) <= 16 for m in chunks)
    # one chunk in flight: the next one leaves only after c acknowledged the previous
    in_flight = 0
    for src, dest, msg in cluster.sent:
        if (src, dest) == ("a", "c") and isinstance(msg, InstallSnapshot):
            in_flight += 1
        elif (src, dest) == ("c", "a") and isinstance(msg, SnapshotAck | AppendReply):
            in_flight = max(0, in_flight - 1)
        assert in_flight <= 1
    assert cluster.nodes["c"].receiving is None  # nothing kept once installed


def test_a_snapshot_smaller_than_a_chunk_is_one_message_as_before() -> None:
    cluster = behind_by_a_snapshot(chunk=1 << 20)
    cluster.tick(times=4)
    chunks = chunks_to(cluster, "c")
    snap = cluster.nodes["a"].snapshot
    assert snap is not None
    assert chunks == [InstallSnapshot(chunks[0].term, snap)]  # offset 0, done
    assert cluster.installed.get("c") == 1
    assert not [m for _, _, m in cluster.sent if isinstance(m, SnapshotAck)]


def test_a_lost_chunk_is_sent_again_after_a_few_heartbeats() -> None:
    cluster = behind_by_a_snapshot(chunk=16)
    run(cluster, rounds=3, lose=lambda s, d, m: isinstance(m, InstallSnapshot) and m.offset == 48,
        until=lambda: [m.offset for m in chunks_to(cluster, "c")][-1:] == [48]
        and not any(isinstance(m, InstallSnapshot) for _, _, m in cluster.inbox))
    cluster.deliver()
    assert cluster.nodes["c"].receiving == (cluster.nodes["a"].log.snapshot_index, 48)
    assert cluster.installed.get("c") is None  # stalled: nothing more until heartbeats
    run(cluster, rounds=4)
    assert cluster.installed.get("c") == 1
    assert cluster.state["c"] == cluster.state["a"]
    offsets = [m.offset for m in chunks_to(cluster, "c")]
    assert offsets.count(48) == 2 and offsets.count(32) == 1


def test_a_lost_acknowledgement_and_a_lost_last_chunk_are_recovered() -> None:
    cluster = behind_by_a_snapshot(chunk=16)
    run(cluster, rounds=3, lose=lambda s, d, m: isinstance(m, SnapshotAck) and m.offset == 32)
    run(cluster, rounds=6, lose=lambda s, d, m: isinstance(m, InstallSnapshot) and m.done)
    assert cluster.installed.get("c") == 1
    assert cluster.state["c"] == cluster.state["a"]


def chunked(term: int, snap: Snapshot, size: int) -> list[InstallSnapshot]:
    data = snap.data
    return [InstallSnapshot(term, attrs.evolve(snap, data=data[k:k + size]), k,
                            k + size >= len(data)) for k in range(0, len(data), size)]


def follower_b() -> tuple[RaftNode, MemoryStorage]:
    return RaftNode("b", random.Random(0), voters=ABC), MemoryStorage()


def answers(node: RaftNode, storage: MemoryStorage) -> list[object]:
    out: list[object] = []
    while node.has_ready():
        ready = node.ready()
        out.extend(s.msg for s in ready.persist(storage))
        if ready.snapshot is not None:
            out.append(ready.snapshot)
        node.advance(ready)
    return out


SNAP = Snapshot(20, 2, Config(ABC), bytes(range(40)))


def test_duplicated_and_reordered_chunks_are_answered_with_what_the_follower_holds() -> None:
    node, storage = follower_b()
    c0, c1, c2, c3 = chunked(2, SNAP, 10)
    for msg, expect in [(c0, [SnapshotAck(2, 20, 10)]),
                        (c0, [SnapshotAck(2, 20, 10)]),   # a duplicate: ignored
                        (c2, [SnapshotAck(2, 20, 10)]),   # ahead (c1 late): ignored
                        (c1, [SnapshotAck(2, 20, 20)]),
                        (c1, [SnapshotAck(2, 20, 20)]),
                        (c2, [SnapshotAck(2, 20, 30)])]:
        node.step("a", msg)
        assert answers(node, storage) == expect
        assert node.receiving is not None and node.receiving[0] == 20
    node.step("a", c3)
    assert answers(node, storage) == [AppendReply(2, True, 20), SNAP]
    assert storage.snapshot == SNAP and node.receiving is None
    node.step("a", c3)  # late duplicates after the install: the log is there already
    node.step("a", c1)
    assert answers(node, storage) == [AppendReply(2, True, 20)] * 2


def test_the_follower_assembles_one_snapshot_at_a_time() -> None:
    node, storage = follower_b()
    newer = Snapshot(30, 2, Config(ABC), bytes(range(100, 135)))
    old = chunked(2, SNAP, 10)
    new = chunked(2, newer, 10)
    node.step("a", old[0])
    node.step("a", old[1])
    node.step("a", new[1])  # not a first chunk: ignored, the old transfer is kept
    assert node.receiving == (20, 20)
    assert answers(node, storage)[-1] == SnapshotAck(2, 30, 0)
    node.step("a", new[0])  # a first chunk of another snapshot replaces it
    assert node.receiving == (30, 10)
    node.step("a", old[2])
    assert node.receiving == (30, 10)
    assert answers(node, storage)[-1] == SnapshotAck(2, 20, 0)
    for msg in new[1:]:
        node.step("a", msg)
    assert answers(node, storage)[-2:] == [AppendReply(2, True, 30), newer]


def test_a_new_leader_restarts_the_transfer() -> None:
    node, storage = follower_b()
    old = chunked(2, SNAP, 10)
    node.step("a", old[0])
    node.step("a", old[1])
    assert (node.receiving or (0, 0)) == (20, 20)
    # the same snapshot from the leader of term 3: its chunks do not continue term 2's
    new = chunked(3, SNAP, 10)
    node.step("c", new[2])
    assert node.receiving is None  # (the term changed: what was held is dropped)
    assert answers(node, storage)[-1] == SnapshotAck(3, 20, 0)
    for msg in new:
        node.step("c", msg)
    assert answers(node, storage)[-2:] == [AppendReply(3, True, 20), SNAP]


def test_a_leader_change_in_the_middle_of_a_transfer() -> None:
    cluster = behind_by_a_snapshot(chunk=16)
    run(cluster, rounds=3, until=lambda: (cluster.nodes["c"].receiving or (0, 0))[1] >= 48)
    assert cluster.nodes["c"].receiving is not None  # a few chunks reached c
    cluster.crash("a")
    for _ in range(40):  # (c heard from a lately: it votes once its lease ran out)
        cluster.tick("b", "c")
        if cluster.leader():
            break
    assert cluster.leader() == "b"  # (c's log is behind: it cannot win)
    cluster.tick("b", "c", times=4)
    assert cluster.installed.get("c") == 1
    assert cluster.state["c"] == cluster.state["b"]
    from_b = [m for s, d, m in cluster.sent if (s, d) == ("b", "c")
              and isinstance(m, InstallSnapshot)]
    assert from_b[0].offset == 0 and from_b[-1].done


def test_a_compaction_in_the_middle_of_a_transfer_restarts_it_with_the_new_snapshot() -> None:
    cluster = behind_by_a_snapshot(chunk=16)
    a = cluster.nodes["a"]
    first = a.log.snapshot_index
    run(cluster, rounds=3, until=lambda: (cluster.nodes["c"].receiving or (0, 0))[1] >= 48)
    held = cluster.nodes["c"].receiving
    assert held is not None and held[0] == first
    cluster.cut.add(("a", "c"))  # (the chunks in flight wait while a writes on)
    for k in range(10):
        cluster.propose(b"more %d" % k)
    cluster.tick("a", "b", times=2)
    cluster.snapshot("a")
    assert a.log.snapshot_index > first
    cluster.heal()
    cluster.tick(times=6)
    assert cluster.installed.get("c") == 1
    assert cluster.nodes["c"].log.snapshot_index == a.log.snapshot_index
    assert cluster.state["c"] == cluster.state["a"]
    chunks = chunks_to(cluster, "c")
    restart = next(k for k, m in enumerate(chunks) if m.snapshot.index != first)
    assert chunks[restart].offset == 0 and chunks[-1].snapshot.index == a.log.snapshot_index


def test_compaction_cannot_pass_the_applied_index() -> None:
    cluster = started()
    with pytest.raises(ValueError, match="applied"):
        cluster.nodes["a"].compact(cluster.nodes["a"].applied + 1, b"")


# -- reads ----------------------------------------------------------------------------------


def test_read_index_is_confirmed_by_a_quorum() -> None:
    cluster = started()
    with pytest.raises(NotLeader):
        cluster.nodes["b"].read_index()
    cluster.propose(b"w")
    cluster.tick(times=2)
    request = cluster.nodes["a"].read_index()
    cluster.process("a")
    cluster.deliver()
    assert [(r.request, r.index) for r in cluster.read_states["a"]] == \
        [(request, cluster.nodes["a"].commit)]


def test_a_cut_off_leader_confirms_no_read() -> None:
    cluster = started()
    cluster.tick(times=2)
    cluster.isolate("a")
    cluster.nodes["a"].read_index()
    cluster.tick("a", times=3)
    assert cluster.read_states["a"] == []


def test_read_index_waits_for_an_entry_of_the_leaders_term() -> None:
    with pytest.raises(ReadIndexUnavailable):
        lone_leader().read_index()


# -- the Ready contract ----------------------------------------------------------------------


def test_advance_refuses_a_ready_that_was_not_persisted() -> None:
    node = RaftNode("a", random.Random(0), voters=("a",))
    for _ in range(25):
        node.tick()
    ready = node.ready()
    with pytest.raises(RuntimeError, match="advance"):
        node.ready()
    with pytest.raises(RuntimeError, match="persist"):
        node.advance(ready)
    assert not node.has_ready()
    ready.persist(MemoryStorage())
    node.advance(ready)


def test_the_vote_is_on_disk_before_the_reply_can_be_sent() -> None:
    """Messages come only out of ``Ready.persist``, after ``Storage.save`` returned."""
    seen: list[str] = []

    class Spy(MemoryStorage):
        def save(self, hard_state: HardState | None, entries: object,
                 snapshot: object = None) -> None:
            seen.append(f"save {hard_state}")
            super().save(hard_state, entries, snapshot)  # type: ignore[arg-type]

    node = RaftNode("b", random.Random(0), voters=ABC)
    node.step("a", VoteRequest(1, 0, 0))
    ready = node.ready()
    replies = ready.persist(Spy())
    seen.append(f"send {replies[0].msg}")
    assert seen == ["save HardState(term=1, vote='a')",
                    "send VoteReply(term=1, granted=True, pre=False)"]


def test_entries_are_on_disk_before_they_are_acknowledged() -> None:
    stored: list[int] = []

    class Spy(MemoryStorage):
        def save(self, hard_state: HardState | None, entries: object,
                 snapshot: object = None) -> None:
            super().save(hard_state, entries, snapshot)  # type: ignore[arg-type]
            stored[:] = [e.index for e in self.entries]

    node = RaftNode("b", random.Random(0), voters=ABC)
    node.step("a", Append(1, 0, 0, (Entry(1, 1, b"x"), Entry(1, 2, b"y")), 0))
    ready = node.ready()
    assert ready.entries and stored == []
    (reply,) = ready.persist(Spy())
    assert reply.msg == AppendReply(1, True, 2) and stored == [1, 2]


def persisted_leader() -> tuple[RaftNode, MemoryStorage]:
    """``lone_leader`` with its election batch (vote, no-op) persisted and its no-op
    committed with y's and z's acknowledgements (both now replicating)."""
    leader, storage = lone_leader(), MemoryStorage()
    ready = leader.ready()
    ready.persist(storage)
    leader.advance(ready)
    leader.step("y", AppendReply(leader.term, True, leader.log.last_index))
    leader.step("z", AppendReply(leader.term, True, leader.log.last_index))
    ready = leader.ready()
    ready.persist(storage)
    leader.advance(ready)
    assert leader.commit == leader.log.last_index == 1
    return leader, storage


def test_a_leader_sends_its_appends_before_its_own_write() -> None:
    leader, storage = persisted_leader()
    index = leader.propose(b"x")
    ready = leader.ready()
    first = ready.send_first()
    assert {s.dest for s in first} == {"y", "z"}
    assert all(isinstance(s.msg, Append) and s.msg.entries[-1].index == index
               for s in first)
    assert ready.persist(storage) == ()  # nothing is left for after the write
    with pytest.raises(RuntimeError, match="before persist"):
        ready.send_first()
    leader.advance(ready)


def test_a_leader_counts_itself_in_the_quorum_only_once_its_write_is_done() -> None:
    leader, storage = persisted_leader()
    index = leader.propose(b"x")
    ready = leader.ready()
    ready.send_first()
    # y has written the entry and says so before the leader's own write returned: one
    # of three is not a quorum, so nothing commits (the leader may crash and lose it)
    leader.step("y", AppendReply(leader.term, True, index))
    assert leader.has_ready() is False  # (the Ready is still out)
    assert leader.commit == index - 1
    ready.persist(storage)
    leader.advance(ready)
    assert leader.has_ready() and leader.commit == index  # now it holds it too
    assert [e.index for e in leader.ready().committed] == [index]


def test_two_followers_commit_an_entry_the_leader_has_not_written_yet() -> None:
    leader, storage = persisted_leader()
    index = leader.propose(b"x")
    ready = leader.ready()
    ready.send_first()
    leader.step("y", AppendReply(leader.term, True, index))
    leader.step("z", AppendReply(leader.term, True, index))
    ready.persist(storage)
    leader.advance(ready)
    leader.has_ready()
    assert leader.commit == index  # (a majority held it durably without the leader)


def test_votes_and_acknowledgements_never_leave_before_the_write() -> None:
    voter = RaftNode("b", random.Random(0), voters=ABC)
    voter.step("a", VoteRequest(1, 0, 0))
    ready = voter.ready()
    assert ready.send_first() == ()
    assert [s.msg for s in ready.persist(MemoryStorage())] == [VoteReply(1, True)]
    voter.advance(ready)
    voter.step("a", Append(1, 0, 0, (Entry(1, 1, b"x"),), 0))
    ready = voter.ready()
    assert ready.send_first() == ()
    assert [s.msg for s in ready.persist(MemoryStorage())] == [AppendReply(1, True, 1)]


def test_a_batch_that_changes_the_term_sends_nothing_first() -> None:
    leader, storage = persisted_leader()
    leader.propose(b"x")
    leader.step("z", VoteRequest(leader.term + 1, 0, 0))  # (lease: ignored) ...
    leader.step("z", AppendReply(leader.term + 1, False, 0))  # ... a newer term deposes it
    assert leader.role == Role.FOLLOWER
    ready = leader.ready()
    assert ready.hard_state is not None and ready.send_first() == ()
    ready.persist(storage)
    leader.advance(ready)


def test_a_restarted_node_keeps_term_vote_and_log() -> None:
    cluster = started()
    for k in range(5):
        cluster.propose(b"%d" % k)
    cluster.tick(times=2)
    before = cluster.nodes["b"]
    cluster.crash("b")
    after = cluster.restart("b")
    assert (after.term, after.vote) == (before.term, before.vote)
    assert after.log.last_index == before.log.last_index
    assert after.commit == 0 and cluster.state["b"] == []
    cluster.tick(times=2)
    assert cluster.state["b"] == [b"%d" % k for k in range(5)]


def test_options_are_validated() -> None:
    with pytest.raises(ValueError):
        RaftOptions(election_ticks=2, heartbeat_ticks=2)
    with pytest.raises(ValueError):
        RaftOptions(max_inflight=0)
    with pytest.raises(ValueError):
        RaftNode("", random.Random(0))


def test_messages_hold_only_plain_data() -> None:
    entry = Entry(1, 2, b"d", EntryKind.CONFIG, Config(("a",), ("b",)))
    assert entry.config is not None and entry.config.members == ("a", "b")
    assert Append(1, 0, 0, (entry,), 0).entries[0] == entry
