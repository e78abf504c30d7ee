"""``lamport_fifo_total`` when a member crashes (issue 10, item 7): the documented limit.

``LamportTotal`` delivers a held message once every member of the *current view* has sent
something later. When a crashed member is removed from the view, a survivor that installs
the view before the crashed member's last messages reach it (relayed by the reliable
layer) stops waiting for them, delivers later messages, and delivers the crashed member's
message afterwards, while a survivor that had it earlier delivered it first: two correct
members deliver in different orders. A fix needs the survivors to agree on the crashed
member's last message before dropping it from the threshold (a flush round, which needs a
wire message the runtime does not have yet). Until then these tests pin the limit: with a
view change after a crash total order can break; without one, a crash only blocks
delivery and the order stays safe. The order that survives crashes is ``raft``.
"""

from __future__ import annotations

import random

import attrs
import pytest

from rpcx_broadcast.testing import sim
from rpcx_broadcast.testing.properties import (
    History,
    Violation,
    check_fifo,
    check_integrity,
    check_no_duplication,
    check_prefix_consistency,
    check_total,
)

#: seeds of the lamport scenario that, with one crash added, broke total order between
#: two correct members (found by running 400 seeds; seed 5 has no partition at all)
BROKEN_SEEDS = (5, 48, 75, 173, 224)


def with_crash(seed: int, *, view_change: bool) -> sim.SimConfig:
    """The ``lamport`` scenario for ``seed`` plus one crash of a seeded member."""
    config = sim.make_scenario("lamport", seed)
    rng = random.Random(seed)
    victim = rng.choice(config.nodes)
    crash = sim.Crash(victim, rng.uniform(0, 2.0))
    faults = attrs.evolve(config.faults, crashes=(crash,),
                          detect_after=config.faults.detect_after if view_change else None)
    return attrs.evolve(config, faults=faults)


def correct_only(history: History) -> History:
    """The correct members' logs, and only the broadcasts of the crashed ones."""
    return History.build({n: [e for e in events if n not in history.crashed
                              or e.kind == "broadcast"]
                          for n, events in history.logs.items()}, history.crashed)


def test_seed_5_two_correct_members_disagree_on_the_crashed_members_last_message() -> None:
    config = with_crash(5, view_change=True)
    assert config.faults.partitions == ()
    history = sim.simulate(config).history
    assert history.crashed == {"n2"}
    found = check_total(correct_only(history))
    assert found == Violation("total order", "node n0 delivered n2:3 before n3:2, but node "
                              "n1 delivered n3:2 first")


@pytest.mark.parametrize("seed", BROKEN_SEEDS)
def test_view_change_after_a_crash_can_break_total_order(seed: int) -> None:
    history = correct_only(sim.simulate(with_crash(seed, view_change=True)).history)
    found = check_total(history)
    assert found is not None
    # what does hold: each member's own sequence is still FIFO, with no duplicate or
    # invented message
    assert check_integrity(history) is None
    assert check_no_duplication(history) is None
    assert check_fifo(history) is None


@pytest.mark.parametrize("seed", BROKEN_SEEDS + tuple(range(20)))
def test_without_a_view_change_a_crash_only_blocks(seed: int) -> None:
    """The crashed member stays in the view: survivors wait for it (liveness is lost once
    they need its clock) but never disagree."""
    history = correct_only(sim.simulate(with_crash(seed, view_change=False)).history)
    for checker in (check_integrity, check_no_duplication, check_fifo, check_total,
                    check_prefix_consistency):
        assert checker(history) is None, (seed, checker.__name__)
