"""Every order passes its checker on >= 1,000 seeded simulations with faults.

Each scenario (``rpcx_broadcast.testing.sim.make_scenario``) picks 3-5 nodes, 5-25
broadcasts, a reliable layer (eager, or gossip over a hub, relay-all or seeded-random
topology), loss, duplication, delay jitter (reordering), maybe a partition that heals,
and, where the algorithm tolerates it, a crash. A failing seed prints itself and how to
replay it; ``RPCX_BROADCAST_SEED=<seed>`` runs just that seed.
"""

from __future__ import annotations

import os

import pytest

from rpcx_broadcast.testing import sim
from rpcx_broadcast.testing.properties import check
from rpcx_broadcast.testing.sim import SCENARIOS, describe_failure, run_scenario, simulate

SEEDS_PER_ORDER = 1000
CHUNK = 250
_ONLY = os.environ.get("RPCX_BROADCAST_SEED")


def _seeds(start: int) -> range:
    if _ONLY is not None:
        return range(int(_ONLY), int(_ONLY) + 1) if start == 0 else range(0)
    return range(start, start + CHUNK)


@pytest.mark.parametrize("start", range(0, SEEDS_PER_ORDER, CHUNK))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_seeds_pass_their_checker(name: str, start: int) -> None:
    failures: list[str] = []
    for seed in _seeds(start):
        _, violation = run_scenario(name, seed)
        if violation is not None:
            failures.append(describe_failure(name, seed, violation))
    assert not failures, f"{len(failures)} failing seeds:\n" + "\n".join(failures[:5])


def test_a_seed_replays_exactly() -> None:
    first, _ = run_scenario("causal", 42)
    second, _ = run_scenario("causal", 42)
    assert first.history == second.history
    assert first.messages_sent == second.messages_sent


def test_failure_message_names_seed_and_replay() -> None:
    from rpcx_broadcast.testing.properties import Violation
    text = describe_failure("fifo", 17, Violation("FIFO", "node n1 delivered n0:2 before n0:1"))
    assert "seed 17" in text and "RPCX_BROADCAST_SEED=17" in text
    assert "python -m rpcx_broadcast.testing.sim fifo 17" in text


@pytest.mark.parametrize(("weaker", "stronger"), [("fifo", "causal"), ("reliable", "total"),
                                                  ("reliable", "fifo"),
                                                  ("causal", "fifo_total")])
def test_checkers_catch_a_weaker_algorithm(weaker: str, stronger: str) -> None:
    """Non-vacuity: running a weaker order's stack under a stronger checker fails."""
    order = SCENARIOS[stronger][0]
    caught = sum(check(simulate(sim.make_scenario(weaker, seed)).history, order) is not None
                 for seed in range(150))
    assert caught > 0
