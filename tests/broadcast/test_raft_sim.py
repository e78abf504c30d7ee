"""Seeded simulations of whole Raft clusters under faults, checked for Raft's safety
properties, durability and liveness (``rpcx_broadcast.testing.raft_sim``).

Each schedule (``make_schedule(seed)``) picks 3 or 5 voters, 10-40 proposals, message
loss, duplication, delay and reordering, timer jitter, full, partial and asymmetric
partitions, crashes with restart from storage (some in the middle of a write, some of
the whole cluster), membership changes (a learner added then promoted, a voter or the
leader removed) and snapshots every few entries, sent in chunks of 5 or 13 bytes in two
schedules out of three (so a transfer takes many chunks under loss and partitions);
after 60 ticks the faults stop and the cluster must be live within 100 ticks. A failing
seed prints itself and how to replay it; ``RPCX_RAFT_SEED=<seed>`` runs only that seed.

The checkers are shown to fail on deliberately broken nodes and storages.
"""

from __future__ import annotations

import os
from collections import Counter

import attrs
import pytest

from rpcx_broadcast.core.actions import Send
from rpcx_broadcast.core.raft import RaftNode, RaftOptions, RandomSource, Ready
from rpcx_broadcast.core.raft_messages import HardState, VoteRequest
from rpcx_broadcast.core.storage import MemoryStorage, Recovered
from rpcx_broadcast.testing.properties import Violation
from rpcx_broadcast.testing.raft_sim import (
    NodeFactory,
    RaftSimResult,
    StorageFactory,
    describe_failure,
    make_schedule,
    run_schedule,
    simulate,
)
from rpcx_broadcast.testing.raft_sim_first import run_send_first

SCHEDULES = int(os.environ.get("RPCX_RAFT_SCHEDULES", "1000"))
CHUNK = 250
_ONLY = os.environ.get("RPCX_RAFT_SEED")


def _seeds(start: int) -> range:
    if _ONLY is not None:
        return range(int(_ONLY), int(_ONLY) + 1) if start == 0 else range(0)
    return range(start, min(start + CHUNK, SCHEDULES))


@pytest.mark.parametrize("start", range(0, max(SCHEDULES, 1), CHUNK))
def test_seeded_schedules_keep_raft_safe_and_live(start: int) -> None:
    failures: list[str] = []
    seen: Counter[str] = Counter()
    for seed in _seeds(start):
        result = run_schedule(seed)
        if result.violation is not None:
            failures.append(describe_failure(seed, result.violation))
        seen["leader changes"] += len(result.leaders) > 1
        seen["snapshots installed"] += result.snapshots_installed
        seen["chunked transfers"] += result.snapshot_chunks > 0
        seen["torn writes"] += result.torn_writes
        seen["config changes"] += result.configs_committed > 0
        seen["crashes"] += result.crashes
        seen["leader crashes"] += result.leader_crashes
        seen["acknowledged"] += result.acked
    assert not failures, f"{len(failures)} failing seeds:\n" + "\n".join(failures[:5])
    if _ONLY is None:
        # the schedules exercise what they claim to (not vacuously safe)
        assert all(seen[k] > 10 for k in ("leader changes", "snapshots installed",
                                          "chunked transfers",
                                          "torn writes", "config changes", "crashes",
                                          "leader crashes", "acknowledged")), seen


def test_a_seed_replays_exactly() -> None:
    first = attrs.asdict(run_schedule(7))
    assert first == attrs.asdict(run_schedule(7))
    assert first != attrs.asdict(run_schedule(8))


def test_failure_message_names_seed_and_replay() -> None:
    text = describe_failure(17, Violation("election safety", "x and y both lead term 3"))
    assert "seed 17" in text and "RPCX_RAFT_SEED=17" in text
    assert "python -m rpcx_broadcast.testing.raft_sim 17" in text


# -- the checkers catch broken variants -------------------------------------------------------


def _factory(cls: type[RaftNode]) -> NodeFactory:
    def make(name: str, rng: RandomSource, options: RaftOptions, recovered: Recovered,
             voters: tuple[str, ...]) -> RaftNode:
        return cls(name, rng, options=options, recovered=recovered, voters=voters)
    return make


def _caught(seeds: range, *, make_node: NodeFactory | None = None,
            make_storage: StorageFactory | None = None,
            crashes: bool = True) -> Counter[str]:
    found: Counter[str] = Counter()
    for seed in seeds:
        config = make_schedule(seed)
        if not crashes:
            config = attrs.evolve(config, faults=attrs.evolve(config.faults, crashes=()))
        if make_node is not None:
            config = attrs.evolve(config, make_node=make_node)
        if make_storage is not None:
            config = attrs.evolve(config, make_storage=make_storage)
        result: RaftSimResult = simulate(config)
        if result.violation is not None:
            found[result.violation.property] += 1
    return found


class _VotesForAnyLog(RaftNode):
    def _vote_log_ok(self, last_index: int, last_term: int) -> bool:
        return True


class _ForgetsItsVote(MemoryStorage):
    def save(self, hard_state: HardState | None, entries: object,
             snapshot: object = None) -> None:
        if hard_state is not None:
            hard_state = HardState(hard_state.term, "")
        super().save(hard_state, entries, snapshot)  # type: ignore[arg-type]


class _LosesTheTail(MemoryStorage):
    """fsync lied: the newest entry is gone after a crash."""

    def load(self) -> Recovered:
        recovered = super().load()
        if recovered.entries:
            del self.entries[-1]
        return attrs.evolve(recovered, entries=recovered.entries[:-1])


class _VotesTwice(RaftNode):
    def _on_vote_request(self, src: str, msg: VoteRequest) -> None:
        self.vote = self.leader = ""  # forgets whom it voted for in this term
        super()._on_vote_request(src, msg)


class _NeverCampaigns(RaftNode):
    def tick(self) -> None:
        if self.role.name == "LEADER":
            super().tick()


def test_leader_completeness_catches_votes_for_stale_logs() -> None:
    assert _caught(range(100), make_node=_factory(_VotesForAnyLog))["leader completeness"]


def test_election_safety_catches_a_node_that_votes_twice_in_a_term() -> None:
    assert _caught(range(40), make_node=_factory(_VotesTwice), crashes=False)["election safety"]


def test_durability_catches_a_storage_that_forgets_the_vote() -> None:
    assert _caught(range(60), make_storage=_ForgetsItsVote)["durability"]


def test_durability_catches_a_storage_that_loses_acknowledged_entries() -> None:
    assert _caught(range(60), make_storage=_LosesTheTail)["durability"]


def test_liveness_catches_a_cluster_that_never_elects() -> None:
    assert _caught(range(5), make_node=_factory(_NeverCampaigns))["liveness"] == 5


# -- the leader sends before it writes (Ready.send_first) -----------------------------------


SEND_FIRST_SCHEDULES = int(os.environ.get("RPCX_RAFT_SEND_FIRST_SCHEDULES",
                                          str(SCHEDULES)))


@pytest.mark.parametrize("start", range(0, max(SEND_FIRST_SCHEDULES, 1), CHUNK))
def test_a_leader_sending_before_its_own_write_keeps_raft_safe_and_live(start: int) -> None:
    """The seeded schedules again, driven as the trio adapter drives its node: a Ready's
    ``send_first()`` messages leave at once, the write takes time while the node keeps
    being stepped, and two more leader crashes per schedule land inside a leader's write,
    after its Appends left and before anything of the batch was stored."""
    failures: list[str] = []
    seen: Counter[str] = Counter()
    stop = min(start + CHUNK, SEND_FIRST_SCHEDULES)
    for seed in (_seeds(start) if _ONLY is not None else range(start, stop)):
        result, sim = run_send_first(seed)
        if result.violation is not None:
            failures.append(describe_failure(seed, result.violation)
                            + " (rpcx_broadcast/testing/raft_sim_first.py)")
        seen["sent first"] += sim.early_sent > 0
        seen["leader crashed before its write"] += sim.leader_lost_writes
        seen["crashed in a write"] += sim.lost_writes
        seen["torn writes"] += result.torn_writes
        seen["acknowledged"] += result.acked
    assert not failures, f"{len(failures)} failing seeds:\n" + "\n".join(failures[:5])
    if _ONLY is None and stop - start >= 100:
        assert all(seen[k] > 50 for k in seen), seen


@attrs.define(eq=False)
class _LeakyReady(Ready):
    """Sends a follower's acknowledgements (and votes) before the write, too."""

    def send_first(self) -> tuple[Send, ...]:
        if self.persisted:
            raise RuntimeError("send_first() comes before persist()")
        if self._taken:
            return ()
        self._taken = True
        early, self._messages = self._messages, ()
        return early


class _AcknowledgesBeforeItsWrite(RaftNode):
    def ready(self) -> Ready:
        ready = super().ready()
        leaky = _LeakyReady(ready.hard_state, ready.entries, ready.snapshot,
                            ready.compaction, ready.committed, ready.read_states,
                            ready._messages)
        self._outstanding = leaky
        return leaky


def test_the_send_first_simulator_catches_acknowledgements_sent_before_the_write() -> None:
    found: Counter[str] = Counter()
    for seed in range(60):
        config = attrs.evolve(make_schedule(seed),
                              make_node=_factory(_AcknowledgesBeforeItsWrite))
        result, _ = run_send_first(seed, config)
        if result.violation is not None:
            found[result.violation.property] += 1
    assert found["durability"], found
