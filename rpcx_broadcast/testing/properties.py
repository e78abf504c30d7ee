"""Checkers for broadcast histories (BROADCAST.md section b).

A ``History`` holds, per node, its local sequence of ``Event``s: ``broadcast`` events (the
node's k-th broadcast is message ``(node, k)``) and ``deliver`` events naming
``(origin, seq)`` and the payload delivered. ``crashed`` names nodes that crashed; the
others are *correct*.

Every ``check_*`` function returns ``None`` when the property holds, or the first
``Violation`` found, worded for a person: which node, which message, what went wrong.
A checker gives a verdict for any history, however malformed (a message delivered twice,
one never broadcast, empty logs): it never raises on the history's content.
``check(history, order)`` runs every property an order promises.

Causality uses the deliveries-based definition: m1 precedes m2 if the origin of m2
broadcast m1 earlier, or delivered m1 before broadcasting m2 (transitively).

A node that joined a running group has a *starting point*: ``History.prior[node]`` is the
set of messages it counts as delivered before its log begins (``prior_from_counts`` makes
it from per-origin counts). The checkers treat them as delivered first: agreement does
not ask the node for them, delivering one again is a duplicate, FIFO and causal order
continue from them, and prefix consistency compares the sequences without them.

A node of an order with snapshots (``raft``) may also log ``restore`` events: at that point
its state became a snapshot holding the group's first ``seq`` deliveries (at start-up from
its own storage, or installed from the leader), and the deliveries the snapshot covers are
not delivered there. ``check_restores`` checks such logs against each other by position
(the k-th delivery of the group's order is the same message everywhere; a restore never
goes back), and ``fill_restores`` turns them into plain logs, each restore replaced by the
deliveries it stands for, which the other checkers then take as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import attrs

__all__ = ["ORDERS", "Event", "History", "MsgId", "Violation", "check", "prior_from_counts",
           "check_agreement", "check_causal", "check_fifo", "check_fifo_total",
           "check_integrity", "check_no_duplication", "check_prefix_consistency",
           "check_restores", "check_total", "check_uniform_agreement", "check_validity",
           "count_duplicates", "fill_restores"]

MsgId = tuple[str, int]


@attrs.frozen
class Event:
    """One entry of a node's log: it broadcast, or delivered, message ``(origin, seq)``; or
    (``restore``, with ``origin`` empty) its state became a snapshot of the group's first
    ``seq`` deliveries."""

    kind: str = attrs.field(validator=attrs.validators.in_(("broadcast", "deliver",
                                                            "restore")))
    origin: str
    seq: int
    payload: bytes
    time: float = 0.0

    @property
    def id(self) -> MsgId:
        return (self.origin, self.seq)


@attrs.frozen
class History:
    """Per-node event logs and the set of crashed nodes."""

    logs: Mapping[str, tuple[Event, ...]]
    crashed: frozenset[str] = frozenset()
    prior: Mapping[str, frozenset[MsgId]] = attrs.field(factory=dict)
    """Per node that joined mid-run: the messages delivered before its log begins."""

    def prior_of(self, node: str) -> frozenset[MsgId]:
        return self.prior.get(node, frozenset())

    @property
    def correct(self) -> list[str]:
        return sorted(n for n in self.logs if n not in self.crashed)

    def deliveries(self, node: str) -> list[Event]:
        return [e for e in self.logs[node] if e.kind == "deliver"]

    def broadcasts(self) -> dict[MsgId, Event]:
        return {e.id: e for events in self.logs.values() for e in events
                if e.kind == "broadcast"}

    @classmethod
    def build(cls, logs: Mapping[str, Iterable[Event]], crashed: Iterable[str] = (),
              prior: Mapping[str, Iterable[MsgId]] | None = None) -> History:
        return cls({n: tuple(es) for n, es in logs.items()}, frozenset(crashed),
                   {n: frozenset(ids) for n, ids in (prior or {}).items()})


def prior_from_counts(counts: Mapping[str, int]) -> frozenset[MsgId]:
    """The messages ``(origin, seq)`` with ``seq < counts[origin]``: a per-origin start
    vector as a ``History.prior`` entry."""
    return frozenset((origin, seq) for origin, count in counts.items()
                     for seq in range(count))


@attrs.frozen
class Violation:
    """The first counterexample to a property, in plain words."""

    property: str
    message: str

    def __str__(self) -> str:
        return f"{self.property} violated: {self.message}"


def _name(ident: MsgId) -> str:
    return f"{ident[0]}:{ident[1]}"


def check_integrity(history: History) -> Violation | None:
    """Every delivered message was broadcast, by its origin, with the same payload."""
    for node, events in sorted(history.logs.items()):
        count = 0
        for event in events:
            if event.kind == "broadcast":
                if event.origin != node or event.seq != count:
                    return Violation("integrity", f"node {node} logged broadcast "
                                     f"{_name(event.id)}, expected {node}:{count}")
                count += 1
    sent = history.broadcasts()
    for node in sorted(history.logs):
        for event in history.deliveries(node):
            original = sent.get(event.id)
            if original is None:
                return Violation("integrity", f"node {node} delivered {_name(event.id)}, "
                                 "which was never broadcast")
            if original.payload != event.payload:
                return Violation("integrity", f"node {node} delivered {_name(event.id)} with "
                                 f"payload {event.payload!r}, but it was broadcast with "
                                 f"{original.payload!r}")
    return None


def count_duplicates(history: History) -> int:
    """How many deliveries repeat a message the same node already delivered."""
    total = 0
    for node in history.logs:
        seen: set[MsgId] = set(history.prior_of(node))
        for event in history.deliveries(node):
            if event.id in seen:
                total += 1
            seen.add(event.id)
    return total


def check_no_duplication(history: History) -> Violation | None:
    """No node delivers a message twice. The message counts every duplicate."""
    total = count_duplicates(history)
    if not total:
        return None
    for node in sorted(history.logs):
        prior = history.prior_of(node)
        seen: set[MsgId] = set(prior)
        for event in history.deliveries(node):
            if event.id in prior:
                return Violation("no duplication", f"{total} duplicate deliveries; first: "
                                 f"node {node} delivered {_name(event.id)}, which is before "
                                 "its starting point")
            if event.id in seen:
                return Violation("no duplication", f"{total} duplicate deliveries; first: "
                                 f"node {node} delivered {_name(event.id)} twice")
            seen.add(event.id)
    raise AssertionError("unreachable")  # pragma: no cover


def check_validity(history: History) -> Violation | None:
    """A correct node delivers each of its own broadcasts."""
    for node in history.correct:
        delivered = {e.id for e in history.deliveries(node)}
        for event in history.logs[node]:
            if event.kind == "broadcast" and event.id not in delivered:
                return Violation("validity", f"correct node {node} broadcast "
                                 f"{_name(event.id)} but never delivered it")
    return None


def _agreement(history: History, sources: list[str], name: str) -> Violation | None:
    correct = history.correct
    have = {n: {e.id for e in history.deliveries(n)} for n in history.logs}
    for source in sources:
        for event in history.deliveries(source):
            for node in correct:
                if event.id not in have[node] and event.id not in history.prior_of(node):
                    who = "correct node" if source not in history.crashed else "crashed node"
                    return Violation(name, f"{who} {source} delivered {_name(event.id)} "
                                     f"but correct node {node} never did")
    return None


def check_agreement(history: History) -> Violation | None:
    """If a correct node delivers m, every correct node delivers m."""
    return _agreement(history, history.correct, "agreement")


def check_uniform_agreement(history: History) -> Violation | None:
    """If any node (even one that later crashed) delivers m, every correct node does."""
    return _agreement(history, sorted(history.logs), "uniform agreement")


def check_fifo(history: History) -> Violation | None:
    """Per node and origin, delivered seqs run 0, 1, 2, ... with no gap or reordering."""
    for node in sorted(history.logs):
        expected: dict[str, int] = {}
        prior = history.prior_of(node)
        for origin, _ in prior:
            while (origin, expected.get(origin, 0)) in prior:
                expected[origin] = expected.get(origin, 0) + 1
        for event in history.deliveries(node):
            want = expected.get(event.origin, 0)
            if event.seq != want:
                if event.seq < want:
                    detail = "after already delivering a later message from the same origin"
                else:
                    detail = f"before {_name((event.origin, want))}"
                return Violation("FIFO", f"node {node} delivered {_name(event.id)} {detail}")
            expected[event.origin] = want + 1
    return None


def _causal_predecessors(history: History) -> dict[MsgId, list[MsgId]]:
    """Direct predecessors: the origin's previous broadcast and what it delivered since."""
    preds: dict[MsgId, list[MsgId]] = {}
    for events in history.logs.values():
        since: list[MsgId] = []
        previous: MsgId | None = None
        for event in events:
            if event.kind == "deliver":
                since.append(event.id)
            elif event.kind == "broadcast":
                preds[event.id] = ([previous] if previous else []) + since
                previous, since = event.id, []
    return preds


def check_causal(history: History) -> Violation | None:
    """Every node delivers a message only after all its causal predecessors."""
    preds = _causal_predecessors(history)
    for node in sorted(history.logs):
        delivered: set[MsgId] = set(history.prior_of(node))
        for event in history.deliveries(node):
            for pred in preds.get(event.id, ()):
                if pred not in delivered and pred != event.id:
                    return Violation("causal", f"node {node} delivered {_name(event.id)} "
                                     f"before {_name(pred)}, which {event.origin} had "
                                     + ("broadcast" if pred[0] == event.origin else "delivered")
                                     + f" before broadcasting {_name(event.id)}")
            delivered.add(event.id)
    return None


def check_total(history: History) -> Violation | None:
    """Any two nodes deliver the messages they both deliver in the same order."""
    seqs = {n: [e.id for e in history.deliveries(n)] for n in sorted(history.logs)}
    for node, seq in seqs.items():
        # A message delivered twice has no single position in the node's order, and the
        # common subsequences below would differ in length: report it instead.
        first: dict[MsgId, int] = {}
        for pos, ident in enumerate(seq):
            if ident in first:
                return Violation("total order", f"node {node} delivered {_name(ident)} "
                                 f"twice (deliveries {first[ident]} and {pos}), so it has no "
                                 "single place in the order")
            first[ident] = pos
    nodes = list(seqs)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            common = set(seqs[a]) & set(seqs[b])
            order_a = [m for m in seqs[a] if m in common]
            order_b = [m for m in seqs[b] if m in common]
            # distinct messages on both sides, the same set: the lengths are equal
            for x, y in zip(order_a, order_b, strict=True):
                if x != y:
                    return Violation("total order", f"node {a} delivered {_name(x)} before "
                                     f"{_name(y)}, but node {b} delivered {_name(y)} first")
    return None


def check_prefix_consistency(history: History) -> Violation | None:
    """Of any two nodes' delivery sequences, one is a prefix of the other (leaving out the
    messages before either node's starting point)."""
    seqs = {n: [e.id for e in history.deliveries(n)] for n in sorted(history.logs)}
    nodes = list(seqs)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            skip = history.prior_of(a) | history.prior_of(b)
            seq_a = [m for m in seqs[a] if m not in skip]
            seq_b = [m for m in seqs[b] if m not in skip]
            for pos, (x, y) in enumerate(zip(seq_a, seq_b, strict=False)):
                if x != y:
                    return Violation("prefix consistency", f"at position {pos} node {a} "
                                     f"delivered {_name(x)} but node {b} delivered {_name(y)}")
    return None


def _positions(history: History) -> tuple[dict[int, tuple[Event, str]], Violation | None]:
    """The group's order by position (each position's delivery and a node that made it),
    from every log with restores; and the first inconsistency found, if any."""
    order: dict[int, tuple[Event, str]] = {}
    for node in sorted(history.logs):
        at = 0
        for event in history.logs[node]:
            if event.kind == "restore":
                if event.seq < at:
                    return order, Violation(
                        "restore", f"node {node} restored a snapshot of {event.seq} "
                        f"deliveries after delivering {at}: deliveries were taken back")
                at = event.seq
            elif event.kind == "deliver":
                known = order.setdefault(at, (event, node))
                if known[0].id != event.id:
                    return order, Violation(
                        "total order", f"delivery {at} of the group is {_name(event.id)} at "
                        f"node {node} but {_name(known[0].id)} at node {known[1]}")
                at += 1
    return order, None


def check_restores(history: History) -> Violation | None:
    """For logs with ``restore`` events: numbering each node's deliveries from 0 (or from
    the last restore's count), no position holds two different messages across nodes, no
    restore goes back, and every position a restore skips was delivered by some node (a
    snapshot holds only what was delivered somewhere), so the group's order is known in
    full. Logs without restores pass trivially when they agree by position."""
    order, found = _positions(history)
    if found is not None:
        return found
    for node in sorted(history.logs):
        for event in history.logs[node]:
            if event.kind == "restore":
                missing = next((i for i in range(event.seq) if i not in order), None)
                if missing is not None:
                    return Violation("restore", f"node {node} restored a snapshot of "
                                     f"{event.seq} deliveries, but no node delivered "
                                     f"delivery {missing} of the group")
    return None


def fill_restores(history: History) -> History:
    """``history`` with each ``restore`` replaced by the deliveries it skipped (taken from
    the other logs by position), so that FIFO, total order, prefix consistency and
    no-duplication can be checked as if every node had delivered everything itself. Call
    ``check_restores`` first: a position nobody delivered is left out here."""
    order, _ = _positions(history)
    logs: dict[str, list[Event]] = {}
    for node, events in history.logs.items():
        out: list[Event] = []
        at = 0
        for event in events:
            if event.kind == "restore":
                for i in range(at, event.seq):
                    if i in order:
                        skipped = order[i][0]
                        out.append(attrs.evolve(skipped, time=event.time))
                at = max(at, event.seq)
                continue
            if event.kind == "deliver":
                at += 1
            out.append(event)
        logs[node] = out
    return History.build(logs, history.crashed, history.prior)


def check_fifo_total(history: History) -> Violation | None:
    """FIFO and total order together."""
    return check_fifo(history) or check_total(history)


Checker = Callable[[History], Violation | None]
_BASE: tuple[Checker, ...] = (check_integrity, check_no_duplication, check_validity,
                              check_agreement)
ORDERS: dict[str, tuple[Checker, ...]] = {
    "reliable": _BASE,
    "fifo": (*_BASE, check_fifo),
    "causal": (*_BASE, check_fifo, check_causal),
    "total": (*_BASE, check_total, check_prefix_consistency),
    "fifo_total": (*_BASE, check_fifo, check_total, check_prefix_consistency, check_causal),
}


def check(history: History, order: str) -> Violation | None:
    """Run every property that ``order`` promises; return the first violation."""
    try:
        checkers = ORDERS[order]
    except KeyError:
        raise ValueError(f"unknown order {order!r}; known: {sorted(ORDERS)}") from None
    for checker in checkers:
        found = checker(history)
        if found is not None:
            return found
    return None
