"""A deterministic discrete-event simulator that drives broadcast ``Stack``s.

Virtual time, one ``random.Random(seed)`` for every random choice, and a ``FaultPlan``:
loss, duplication, delay ranges (so reordering), partitions that heal, and crashes. The
same ``SimConfig`` (seed included) always produces the same run, so a failing seed
replays exactly::

    from rpcx_broadcast.testing.sim import replay
    replay("causal", 1234)          # re-runs the seed and prints what went wrong

or ``python -m rpcx_broadcast.testing.sim causal 1234``.

Crashes are fail-stop. When ``FaultPlan.detect_after`` is set, every survivor gets a view
without the crashed node that long after the crash: an oracle standing in for the failure
detector plus membership service (both have their own unit tests).
"""

from __future__ import annotations

import heapq
import random
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import cast

import attrs

from rpcx_broadcast.core.actions import CancelTimer, Deliver, Send, SetTimer
from rpcx_broadcast.core.causal import CausalBroadcast
from rpcx_broadcast.core.fifo import FifoBroadcast
from rpcx_broadcast.core.gossip import GossipBroadcast, Hub, RandomPeers, RelayAll, Topology
from rpcx_broadcast.core.layer import Layer, Stack
from rpcx_broadcast.core.reliable import EagerReliableBroadcast
from rpcx_broadcast.core.total import LamportTotal, SequencerTotal

from .properties import Event, History, Violation, check

__all__ = ["SCENARIOS", "Crash", "FaultPlan", "Partition", "SimConfig", "SimResult",
           "make_scenario", "replay", "run_scenario", "simulate"]

StackFactory = Callable[[str, tuple[str, ...]], Stack]


@attrs.frozen
class Partition:
    """From ``start`` until ``end`` no message crosses between ``side`` and the rest."""

    start: float
    end: float
    side: frozenset[str]


@attrs.frozen
class Crash:
    """``node`` stops for good at time ``at``."""

    node: str
    at: float


@attrs.frozen
class FaultPlan:
    """What the network and the nodes do wrong."""

    loss: float = 0.0
    duplicate: float = 0.0
    delay: tuple[float, float] = (0.1, 0.1)
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    detect_after: float | None = 1.0


@attrs.frozen
class SimConfig:
    """A whole run: nodes, their stacks, the workload and the faults."""

    nodes: tuple[str, ...]
    make_stack: StackFactory
    broadcasts: tuple[tuple[float, str], ...]
    faults: FaultPlan = FaultPlan()
    seed: int = 0
    max_time: float = 120.0
    sample_every: float = 0.0
    retry_after: float = 0.01


@attrs.define
class SimResult:
    """What happened: the history to check, plus counters and measurements."""

    history: History
    messages_sent: int = 0
    end_time: float = 0.0
    broadcast_times: dict[tuple[str, int], float] = attrs.Factory(dict)
    delivery_times: dict[tuple[str, int], dict[str, float]] = attrs.Factory(dict)
    buffer_samples: list[tuple[float, dict[str, int]]] = attrs.Factory(list)
    max_buffers: dict[str, int] = attrs.Factory(dict)
    pending_broadcasts: int = 0

    def stable_latencies(self) -> list[float]:
        """Per broadcast: time until every correct node delivered it (only complete ones)."""
        correct = self.history.correct
        out: list[float] = []
        for ident, start in self.broadcast_times.items():
            times = self.delivery_times.get(ident, {})
            if all(n in times for n in correct):
                out.append(max(times[n] for n in correct) - start)
        return out


_MSG, _TIMER, _BCAST, _CRASH, _VIEW, _SAMPLE = range(6)


def simulate(config: SimConfig) -> SimResult:
    """Run ``config`` to quiescence (or ``max_time``) and return what happened."""
    rng = random.Random(config.seed)
    nodes = tuple(sorted(config.nodes))
    stacks = {n: config.make_stack(n, nodes) for n in nodes}
    logs: dict[str, list[Event]] = {n: [] for n in nodes}
    crashed: set[str] = set()
    members = set(nodes)
    timers: dict[tuple[str, str], int] = {}
    queue: list[tuple[float, int, int, object]] = []
    counter = 0
    result = SimResult(History.build({}))
    outbox: dict[str, deque[bytes]] = {n: deque() for n in nodes}
    retry_armed: set[str] = set()
    sent_count: dict[str, int] = dict.fromkeys(nodes, 0)
    faults = config.faults

    def push(at: float, kind: int, data: object) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(queue, (at, counter, kind, data))

    def cut(a: str, b: str, now: float) -> bool:
        for p in faults.partitions:
            if p.start <= now < p.end and ((a in p.side) != (b in p.side)):
                return True
        return False

    def perform(node: str, actions: Sequence[object], now: float) -> None:
        for action in actions:
            if isinstance(action, Send):
                result.messages_sent += 1
                if action.dest in crashed or cut(node, action.dest, now):
                    continue
                if faults.loss and rng.random() < faults.loss:
                    continue
                copies = 2 if faults.duplicate and rng.random() < faults.duplicate else 1
                lo, hi = faults.delay
                for _ in range(copies):
                    delay = lo if hi <= lo else rng.uniform(lo, hi)
                    push(now + delay, _MSG, (action.dest, node, action.msg))
            elif isinstance(action, Deliver):
                payload = action.payload
                assert isinstance(payload, bytes), f"application got {payload!r}"
                logs[node].append(Event("deliver", action.origin, action.seq, payload, now))
                result.delivery_times.setdefault((action.origin, action.seq), {}) \
                    .setdefault(node, now)
            elif isinstance(action, SetTimer):
                gen = timers.get((node, action.key), 0) + 1
                timers[(node, action.key)] = gen
                push(max(action.at, now), _TIMER, (node, action.key, gen))
            elif isinstance(action, CancelTimer):
                timers.pop((node, action.key), None)
            else:
                raise TypeError(f"stack of {node} returned {action!r}")

    def try_broadcast(node: str, now: float) -> None:
        stack = stacks[node]
        pending = outbox[node]
        while pending and stack.writable:
            payload = pending.popleft()
            seq = sent_count[node]
            sent_count[node] = seq + 1
            logs[node].append(Event("broadcast", node, seq, payload, now))
            result.broadcast_times[(node, seq)] = now
            perform(node, stack.on_broadcast(payload, now), now)
        if pending and node not in retry_armed:
            retry_armed.add(node)
            push(now + config.retry_after, _BCAST, (node, None))

    for index, (at, node) in enumerate(config.broadcasts):
        push(at, _BCAST, (node, f"{node}/{index}".encode()))
    for crash in faults.crashes:
        push(crash.at, _CRASH, crash.node)
    if config.sample_every:
        push(config.sample_every, _SAMPLE, None)

    now = 0.0
    while queue:
        at, _, kind, data = heapq.heappop(queue)
        if at > config.max_time:
            break
        now = at
        if kind == _MSG:
            dest, src, msg = cast(tuple[str, str, object], data)
            if dest in crashed:
                continue
            perform(dest, stacks[dest].on_receive(src, msg, now), now)
        elif kind == _TIMER:
            node, key, gen = cast(tuple[str, str, int], data)
            if node in crashed or timers.get((node, key)) != gen:
                continue
            del timers[(node, key)]
            perform(node, stacks[node].on_timer(key, now), now)
        elif kind == _BCAST:
            node, payload = cast(tuple[str, 'bytes | None'], data)
            if node in crashed:
                continue
            if payload is None:
                retry_armed.discard(node)
            else:
                outbox[node].append(payload)
            try_broadcast(node, now)
        elif kind == _CRASH:
            assert isinstance(data, str)
            crashed.add(data)
            if faults.detect_after is not None:
                push(now + faults.detect_after, _VIEW, data)
        elif kind == _VIEW:
            assert isinstance(data, str)
            members.discard(data)
            view = tuple(sorted(members))
            for node in view:
                if node not in crashed:
                    perform(node, stacks[node].on_view(view, now), now)
                    try_broadcast(node, now)
        else:
            sizes: dict[str, int] = {}
            for node in nodes:
                if node in crashed:
                    continue
                for name, size in stacks[node].buffer_sizes().items():
                    sizes[name] = max(sizes.get(name, 0), size)
            result.buffer_samples.append((now, sizes))
            for name, size in sizes.items():
                result.max_buffers[name] = max(result.max_buffers.get(name, 0), size)
            if any(kind != _SAMPLE for _, _, kind, _ in queue):
                push(now + config.sample_every, _SAMPLE, None)
        if kind != _SAMPLE:
            for node in list(retry_armed):
                if node not in crashed and stacks[node].writable:
                    retry_armed.discard(node)
                    try_broadcast(node, now)
    result.history = History.build(logs, crashed)
    result.end_time = now
    result.pending_broadcasts = sum(len(q) for n, q in outbox.items() if n not in crashed)
    return result


# -- scenarios: one per order, randomised by seed -----------------------------------------


def _reliable(kind: str, me: str, members: tuple[str, ...], seed: int) -> Layer:
    if kind == "eager":
        return EagerReliableBroadcast(me, members, rto=0.15)
    topology: Topology
    if kind == "gossip-hub":
        topology = Hub()
    elif kind == "gossip-all":
        topology = RelayAll()
    else:
        topology = RandomPeers(fanout=2, seed=seed * 1000 + members.index(me))
    return GossipBroadcast(me, members, topology=topology, batch_delay=0.02,
                           sync_interval=0.2)


_UPPER: dict[str, Callable[[str, tuple[str, ...]], list[Layer]]] = {
    "reliable": lambda me, ms: [],
    "fifo": lambda me, ms: [FifoBroadcast(me, nak_delay=0.15)],
    "causal": lambda me, ms: [CausalBroadcast(me)],
    "total": lambda me, ms: [SequencerTotal(me, ms)],
    "fifo_total": lambda me, ms: [SequencerTotal(me, ms, fifo=True)],
    "lamport": lambda me, ms: [FifoBroadcast(me, nak_delay=0.15), LamportTotal(me, ms)],
}

#: scenario name -> (checker order name, whether crashes are tolerated)
SCENARIOS: dict[str, tuple[str, bool]] = {
    "reliable": ("reliable", True),
    "fifo": ("fifo", True),
    "causal": ("causal", True),
    "total": ("total", True),
    "fifo_total": ("fifo_total", True),
    "lamport": ("fifo_total", False),
}
_RELIABLE_KINDS = ("eager", "gossip-hub", "gossip-all", "gossip-random")


def make_scenario(name: str, seed: int) -> SimConfig:
    """A small random run for scenario ``name``: 3-5 nodes, tens of broadcasts, faults."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}")
    rng = random.Random(f"{name}/{seed}")
    n = rng.randint(3, 5)
    nodes = tuple(f"n{i}" for i in range(n))
    kind = _RELIABLE_KINDS[rng.randrange(len(_RELIABLE_KINDS))]
    count = rng.randint(5, 25)
    horizon = 2.0
    broadcasts = tuple(sorted((round(rng.uniform(0, horizon), 4), rng.choice(nodes))
                              for _ in range(count)))
    partitions: list[Partition] = []
    if rng.random() < 0.4:
        start = rng.uniform(0, horizon)
        side = frozenset(rng.sample(nodes, rng.randint(1, n - 1)))
        partitions.append(Partition(start, start + rng.uniform(0.1, 2.0), side))
    crashes: list[Crash] = []
    _, tolerant = SCENARIOS[name]
    if tolerant and rng.random() < 0.3:
        # the sequencer's leader is nodes[0]; it must not crash (no leader change)
        victims = nodes[1:] if name in ("total", "fifo_total") else nodes
        crashes.append(Crash(rng.choice(victims), rng.uniform(0, horizon)))
    lo = rng.uniform(0.001, 0.05)
    faults = FaultPlan(loss=rng.choice((0.0, 0.05, 0.2)), duplicate=rng.choice((0.0, 0.05)),
                       delay=(lo, lo + rng.choice((0.0, 0.02, 0.1))),
                       partitions=tuple(partitions), crashes=tuple(crashes),
                       detect_after=0.5)
    upper = _UPPER[name]

    def make_stack(me: str, members: tuple[str, ...]) -> Stack:
        return Stack([_reliable(kind, me, members, seed), *upper(me, members)])

    return SimConfig(nodes, make_stack, broadcasts, faults, seed=seed, max_time=60.0)


def run_scenario(name: str, seed: int) -> tuple[SimResult, Violation | None]:
    """Simulate scenario ``name`` with ``seed`` and check it; return result and violation."""
    config = make_scenario(name, seed)
    result = simulate(config)
    order, _ = SCENARIOS[name]
    found = check(result.history, order)
    if found is None and result.pending_broadcasts:
        found = Violation("liveness", f"{result.pending_broadcasts} broadcasts never left "
                          "their node (flow control never reopened)")
    return result, found


def describe_failure(name: str, seed: int, violation: Violation) -> str:
    """The message a failing seed prints: what broke and how to replay it."""
    return (f"scenario {name!r} seed {seed}: {violation}\n"
            f"replay: RPCX_BROADCAST_SEED={seed} pytest tests/broadcast/test_properties_sim.py"
            f" -k {name}  or  python -m rpcx_broadcast.testing.sim {name} {seed}")


def replay(name: str, seed: int) -> Violation | None:
    """Re-run one seed, print its fault plan, outcome and history summary."""
    config = make_scenario(name, seed)
    result, found = run_scenario(name, seed)
    print(f"scenario {name} seed {seed}: nodes={config.nodes} faults={config.faults}")
    print(f"  {len(config.broadcasts)} broadcasts, {result.messages_sent} messages, "
          f"ended at t={result.end_time:.3f}, crashed={sorted(result.history.crashed)}")
    for node, events in result.history.logs.items():
        delivered = " ".join(f"{e.origin}:{e.seq}" for e in events if e.kind == "deliver")
        print(f"  {node} delivered: {delivered}")
    print(f"  result: {found or 'ok'}")
    return found


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1 if replay(sys.argv[1], int(sys.argv[2])) else 0)
