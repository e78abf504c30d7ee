"""A linearizability checker for client histories (Wing & Gong's search with Lowe's memo).

A *history* is what concurrent clients saw: one ``Operation`` per call, with the time it was
invoked, the time it completed and what it returned. ``check_linearizable(history, model)``
decides whether some total order of the operations (1) respects real time: an operation that
completed before another was invoked comes first, and (2) is a legal sequential run of the
``model``: each operation, applied in that order, returns what it returned. Its answer is a
``Verdict``: ``ok``, ``violation`` (with an explanation in plain words and the few operations
involved), or ``unknown`` when the time limit ran out first.

An operation whose outcome is unknown (invoked and never completed, or completed with a
timeout or "outcome unknown" error: ``output=UNKNOWN``) may have taken effect at any time
after its invocation, or never (it is treated as completing at +infinity, as Porcupine and
Jepsen's Knossos do).

The search is the Wing-Gong-Lowe algorithm as Porcupine runs it: the invocations and
completions sorted by time in a linked list; a depth-first search that linearizes an invoked
operation, lifts it out of the list and starts over from the head, and backtracks (undoing
the lift and the state) when it meets the completion of an operation not yet linearized; a
memo of the (set of linearized operations, model state) pairs already explored. A model may
partition a history (a key-value store by key): each part is checked on its own.

Operations of unknown outcome would make that search exponential (any of them may be taken
at any point), so three sound prunings apply to them: one that changes nothing where it is
tried is not taken there (it may still be later); a configuration is dominated by an explored
one with the same state and known operations that took a subset of the unknown ones (it has
every choice the other has); and one taken right after another, which would leave the same
state taken alone, is not taken there (its sibling takes it alone). The search tries both
orders of candidates (list order, and known outcomes first) by turns with a growing budget.
A violation is explained by cutting the history at the earliest completion time where it is
already not linearizable (calls in progress then taken as of unknown outcome: a cut of a
linearizable history is linearizable, so the cut's violation is one of the history).

Shipped models: ``Register`` (``Read``, ``Write``, ``Cas`` on one value) and ``KeyValue``
(the same per key, partitioned by key). Other models implement the ``Model`` protocol.
``Recorder`` records a test workload's calls with trio's clock.
"""

from __future__ import annotations

import bisect
import enum
import math
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Generic, Protocol, TypeVar

import attrs

__all__ = ["UNKNOWN", "Cas", "KeyValue", "Model", "Operation", "Outcome", "Read",
           "Recorder", "Register", "Unknown", "Verdict", "Write", "assert_linearizable",
           "check_linearizable"]


class Unknown(enum.Enum):
    """The type of ``UNKNOWN``: the output of an operation whose outcome is unknown."""

    UNKNOWN = "unknown"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown.UNKNOWN
"""The output of a call that never completed or failed with "outcome unknown"."""

I = TypeVar("I")  # the input type  # noqa: E741
O = TypeVar("O")  # the output type  # noqa: E741
S = TypeVar("S")
I_contra = TypeVar("I_contra", contravariant=True)
O_contra = TypeVar("O_contra", contravariant=True)


def _known(operation: Operation[Any, Any], attribute: object, complete: float | None) -> None:
    if complete is None and operation.output is not UNKNOWN:
        raise ValueError("an operation that never completed has output UNKNOWN")
    if complete is not None and complete < operation.invoke:
        raise ValueError(f"completed at {complete} before it was invoked at "
                         f"{operation.invoke}")


@attrs.frozen
class Operation(Generic[I, O]):
    """One call as a client saw it: ``client`` invoked ``input`` at time ``invoke`` and it
    returned ``output`` at time ``complete``.

    ``output=UNKNOWN`` says the outcome is unknown (a timeout after sending, a connection
    lost mid-call): the operation may have taken effect at any time after ``invoke``, or
    never. ``complete`` is then when the client gave up, or ``None`` if it never heard back.
    A call that *definitely* did not take effect (refused, not sent) belongs in no history.
    """

    client: Hashable
    input: I
    output: O | Unknown = UNKNOWN
    invoke: float = 0.0
    complete: float | None = attrs.field(default=None, validator=_known)

    @property
    def known(self) -> bool:
        """Whether the outcome is known (the call completed with a result)."""
        return self.output is not UNKNOWN


class Model(Protocol[S, I_contra, O_contra]):
    """A sequential specification. States must be hashable and compared by value, and
    ``step`` a pure function of its arguments (the search calls it many times, in any order).

    Subclass it to inherit the defaults of ``partition`` (no partitioning) and the
    ``describe_*`` methods; or implement all five methods in any class.
    """

    def init(self) -> S:
        """The state before any operation."""
        ...

    def step(self, state: S, input: I_contra, output: O_contra | Unknown) -> tuple[bool, S]:
        """Apply ``input`` in ``state``: whether it may return ``output`` there, and the
        state after it. ``output`` is ``UNKNOWN`` for an operation whose outcome is unknown:
        accept it (whatever it would have returned) and return the state after it."""
        ...

    def partition(self, input: I_contra) -> Hashable:
        """Which independent part of the state ``input`` touches (a key-value store: the
        key). Parts are checked separately, which is much faster; ``None``: one part."""
        return None

    def describe_operation(self, input: I_contra, output: O_contra | Unknown) -> str:
        """An operation in words, e.g. ``"read of x returned 1"``."""
        return f"{input!r} -> {output!r}"

    def describe_state(self, state: S, part: Hashable) -> str:
        """A state in words, e.g. ``"x was 2"``."""
        return f"the state was {state!r}"


# -- the register and key-value models ------------------------------------------------------

@attrs.frozen
class Read:
    """Read the value (of ``key``, for ``KeyValue``). Output: the value read."""

    key: Hashable = None


@attrs.frozen
class Write:
    """Write ``value`` (to ``key``, for ``KeyValue``). Output: ``None``."""

    value: Hashable
    key: Hashable = attrs.field(default=None, kw_only=True)


@attrs.frozen
class Cas:
    """Compare-and-set: if the value is ``expected``, make it ``new``. Output: ``True`` if it
    did, ``False`` if the value was something else (a definite failure, Maelstrom's
    "precondition failed")."""

    expected: Hashable
    new: Hashable
    key: Hashable = attrs.field(default=None, kw_only=True)


RegisterInput = Read | Write | Cas


def _register_step(state: Hashable, input: RegisterInput,
                   output: object) -> tuple[bool, Hashable]:
    if isinstance(input, Read):
        return output is UNKNOWN or output == state, state
    if isinstance(input, Write):
        return True, input.value
    if output is UNKNOWN:
        # It may have succeeded or not; either way it leaves this state.
        return True, input.new if state == input.expected else state
    if output:
        return state == input.expected, input.new
    return state != input.expected, state


def _describe(input: RegisterInput, output: object, name: str) -> str:
    if isinstance(input, Read):
        if output is UNKNOWN:
            return f"read of {name} (outcome unknown)"
        return f"read of {name} returned {output!r}"
    if isinstance(input, Write):
        suffix = " (outcome unknown)" if output is UNKNOWN else ""
        return f"write of {input.value!r} to {name}{suffix}"
    result = {True: "succeeded", False: "failed", UNKNOWN: "outcome unknown"}.get(
        output, repr(output))
    return f"compare-and-set of {name} from {input.expected!r} to {input.new!r} ({result})"


@attrs.frozen
class Register:
    """One read/write/compare-and-set register holding ``initial`` at first. Inputs ``Read``,
    ``Write``, ``Cas`` (their ``key`` is ignored); outputs: the value read, ``None``, and
    whether the compare-and-set swapped."""

    initial: Hashable = None

    def init(self) -> Hashable:
        return self.initial

    def step(self, state: Hashable, input: RegisterInput,
             output: object) -> tuple[bool, Hashable]:
        return _register_step(state, input, output)

    def partition(self, input: RegisterInput) -> Hashable:
        return None

    def describe_operation(self, input: RegisterInput, output: object) -> str:
        return _describe(input, output, "the register")

    def describe_state(self, state: Hashable, part: Hashable) -> str:
        return f"the register held {state!r}"


@attrs.frozen
class KeyValue:
    """A map of registers by key, each holding ``initial`` (``None``: absent) at first.
    Inputs ``Read(key)``, ``Write(value, key=k)``, ``Cas(expected, new, key=k)``; the history
    is checked key by key."""

    initial: Hashable = None

    def init(self) -> Hashable:
        return self.initial

    def step(self, state: Hashable, input: RegisterInput,
             output: object) -> tuple[bool, Hashable]:
        return _register_step(state, input, output)

    def partition(self, input: RegisterInput) -> Hashable:
        return input.key

    def describe_operation(self, input: RegisterInput, output: object) -> str:
        return _describe(input, output, repr(input.key))

    def describe_state(self, state: Hashable, part: Hashable) -> str:
        return f"{part!r} held {state!r}"


# -- the verdict ----------------------------------------------------------------------------

class Outcome(enum.Enum):
    OK = "ok"
    VIOLATION = "violation"
    UNKNOWN = "unknown"


@attrs.frozen
class Verdict(Generic[I, O]):
    """What ``check_linearizable`` found. ``str(verdict)`` is the explanation.

    On a violation: ``part`` is the partition (key) where it was found, ``operation`` the
    operation that could not take effect anywhere in its interval, ``states`` the states
    (in words) the object could be in while it was in progress, and ``witness`` the few
    operations involved, by invocation time.
    """

    outcome: Outcome
    explanation: str
    part: Hashable = None
    operation: Operation[I, O] | None = None
    states: tuple[str, ...] = ()
    witness: tuple[Operation[I, O], ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def violation(self) -> bool:
        return self.outcome is Outcome.VIOLATION

    @property
    def unknown(self) -> bool:
        return self.outcome is Outcome.UNKNOWN

    def __str__(self) -> str:
        return self.explanation


# -- the search ------------------------------------------------------------------------------

class _Timeout(Exception):
    pass


class _OverBudget(Exception):
    pass


@attrs.define
class _Search:
    """One depth-first search over one part's operations (Porcupine's ``checkSingle``)."""

    ops: Sequence[Operation[Any, Any]]
    model: Model[Any, Any, Any]
    deadline: float
    watch: int | None = None
    """An operation whose attempts to record: the state before each, and the operation
    linearized just before it."""
    attempts: dict[Hashable, int | None] = attrs.field(factory=dict)
    known_first: bool = True
    """Try the operations of known outcome first at each step: slower to find an order
    that needs unknown ones, but the memo then prunes much more of a failing search."""
    budget: float = math.inf
    reached: int = 0
    """The most operations of known outcome, in the order they completed, linearized in one
    configuration."""
    """How many steps of the search to take before giving up with ``_OverBudget``."""

    def _attempt(self, state: Hashable, stack: list[tuple[int, Hashable]],
                 op_of: list[int]) -> None:
        """Note the state the watched operation meets, and the last operation that changed
        the state to it."""
        last = None
        for entry, before in reversed(stack):
            if before != state:
                last = op_of[entry]
                break
        self.attempts[state] = last

    def run(self) -> bool:
        ops = self.ops
        n = len(ops)
        # Entries 1..2n: call of op k is the entry of (time, 0, k), its return (time, 1, k);
        # a call sorts before a return at the same time (so touching intervals overlap).
        keyed: list[tuple[float, int, int]] = []
        for k, op in enumerate(ops):
            keyed.append((op.invoke, 0, k))
            end = op.complete if op.known and op.complete is not None else math.inf
            keyed.append((end, 1, k))
        keyed.sort()
        head, tail = 0, 2 * n + 1
        nxt = [*range(1, 2 * n + 2), tail]
        prv = [0, *range(2 * n + 1)]
        op_of = [0] * (2 * n + 2)
        is_call = [False] * (2 * n + 2)
        match = [0] * (2 * n + 2)
        call_entry = [0] * n
        for entry, (_, kind, k) in enumerate(keyed, start=1):
            op_of[entry] = k
            if kind == 0:
                is_call[entry] = True
                call_entry[k] = entry
            else:
                match[call_entry[k]] = entry
        # How far the search got: the most operations of known outcome, taken in the order
        # they completed, that one configuration had all linearized.
        by_completion = sorted((k for k in range(n) if ops[k].known),
                               key=lambda k: ops[k].complete or 0.0)
        prefix = [0]
        for k in by_completion:
            prefix.append(prefix[-1] | (1 << k))
        inputs = [op.input for op in ops]
        outputs = [op.output for op in ops]
        known = [op.known for op in ops]
        remaining = sum(known)
        step = self.model.step
        watch = self.watch
        # The memo: per (linearized operations of known outcome, state), the sets of
        # linearized operations of unknown outcome already explored with them.
        cache: dict[tuple[int, Hashable], list[int]] = {}
        stack: list[tuple[int, Hashable]] = []
        state: Hashable = self.model.init()
        bits = 0  # the linearized operations of known outcome
        maybe = 0  # ... and of unknown outcome
        entry = nxt[head]
        # Each configuration tries the operations of known outcome first (phase 0), then
        # those of unknown outcome (phase 1): the configurations that take fewer unknown
        # ones come first, and dominate those that take more.
        phase = 0 if self.known_first else 1
        countdown = 1024
        while True:
            if remaining == 0:
                # Every operation with a known outcome is linearized; the rest may never
                # have taken effect.
                return True
            countdown -= 1
            if countdown == 0:
                countdown = 1024
                self.budget -= 1024
                if self.budget < 0:
                    raise _OverBudget
                if time.monotonic() > self.deadline:
                    raise _Timeout
            if is_call[entry]:
                k = op_of[entry]
                if self.known_first and known[k] == phase:  # (a known one in phase 1, ...)
                    entry = nxt[entry]
                    continue
                if k == watch and state not in self.attempts:
                    self._attempt(state, stack, op_of)
                ok, after = step(state, inputs[k], outputs[k])
                # An operation of unknown outcome that changes nothing here may as well
                # never take effect (it still may later).
                if ok and not known[k] and after != state and stack \
                        and not known[op_of[stack[-1][0]]]:
                    # Right after another of unknown outcome: if it leaves the same state
                    # without that one, this configuration (with one more unknown taken) is
                    # dominated by the sibling that takes this one alone.
                    alone, instead = step(stack[-1][1], inputs[k], outputs[k])
                    if alone and instead == after:
                        ok = False
                if ok and (known[k] or after != state):
                    if known[k]:
                        key, others = (bits | (1 << k), after), maybe
                    else:
                        key, others = (bits, after), maybe | (1 << k)
                    explored = cache.get(key)
                    if explored is None:
                        cache[key] = [others]
                    elif all(seen & ~others for seen in explored):
                        # Not dominated: no configuration explored with the same state and
                        # known operations had fewer unknown ones taken (which leaves more
                        # choices, as unknown operations never have to take effect).
                        explored[:] = [seen for seen in explored if others & ~seen]
                        explored.append(others)
                    else:
                        entry = nxt[entry]
                        continue
                    stack.append((entry, state))
                    state = after
                    bits, maybe = key[0], others
                    remaining -= known[k]
                    while self.reached < len(by_completion) \
                            and bits & prefix[self.reached + 1] == prefix[self.reached + 1]:
                        self.reached += 1
                    phase = 0 if self.known_first else 1
                    ret = match[entry]
                    nxt[prv[entry]] = nxt[entry]
                    prv[nxt[entry]] = prv[entry]
                    nxt[prv[ret]] = nxt[ret]
                    prv[nxt[ret]] = prv[ret]
                    entry = nxt[head]
                    continue
                entry = nxt[entry]
            elif phase == 0:
                # The end of the operations that may take effect now: try the unknown ones.
                phase = 1
                entry = nxt[head]
            else:
                # The completion of an operation not linearized yet: undo the last choice.
                if not stack:
                    return False
                entry, state = stack.pop()
                k = op_of[entry]
                phase = 0 if known[k] and self.known_first else 1
                if known[k]:
                    bits ^= 1 << k
                    remaining += 1
                else:
                    maybe ^= 1 << k
                ret = match[entry]
                nxt[prv[ret]] = ret
                prv[nxt[ret]] = ret
                nxt[prv[entry]] = entry
                prv[nxt[entry]] = entry
                entry = nxt[entry]


def _decide(ops: Sequence[Operation[Any, Any]], model: Model[Any, Any, Any], deadline: float,
            watch: int | None = None) -> tuple[bool, _Search]:
    """Search ``ops`` in both orders by turns, with a budget growing fourfold, so the
    time taken is within a small factor of the better order's."""
    budget = 20_000.0
    while True:
        for known_first in (False, True):
            search = _Search(ops, model, deadline, watch, known_first=known_first,
                             budget=budget)
            try:
                return search.run(), search
            except _OverBudget:
                pass
        budget *= 4


def _weaken(op: Operation[I, O]) -> Operation[I, O]:
    return attrs.evolve(op, output=UNKNOWN)


def _cut(ops: Sequence[Operation[I, O]], at: float) -> list[Operation[I, O]]:
    """The history as known at time ``at``: the operations invoked by then, those not
    completed by then with their outcome unknown. If ``ops`` is linearizable, so is this
    (the same order works), so a violation here is a violation of ``ops``."""
    return [op if op.known and op.complete is not None and op.complete <= at else _weaken(op)
            for op in ops if op.invoke <= at]


def _when(op: Operation[Any, Any]) -> str:
    end = "?" if op.complete is None else f"{op.complete:g}"
    return f"[{op.invoke:g}, {end}]"


def _line(op: Operation[I, O], model: Model[Any, I, O]) -> str:
    return (f"  {_when(op)} client {op.client}: "
            f"{model.describe_operation(op.input, op.output)}")


_SHOWN_STATES = 6


def _where(part: Hashable) -> str:
    return "" if part is None else f" (operations on {part!r})"


def _explain(ops: Sequence[Operation[I, O]], model: Model[Any, I, O], part: Hashable,
             deadline: float, reached: int) -> Verdict[I, O]:
    """Explain why ``ops`` (one part, known not linearizable) is not: the earliest time at
    which what clients had seen was already not linearizable, the operation completing then,
    and the states it could have met. ``reached``: the search of ``ops`` linearized the first
    ``reached`` operations of known outcome to complete (so the cuts up to the last of them
    are linearizable)."""
    ops = sorted(ops, key=lambda op: op.invoke)
    ends = sorted(op.complete for op in ops if op.known and op.complete is not None)
    times = sorted(set(ends))
    # The first cut not known to be linearizable, then cuts further and further away until
    # one is not, then halving.
    low = bisect.bisect_left(times, ends[reached]) if reached < len(ends) else len(times) - 1
    high = len(times) - 1
    try:
        gap = 1
        while low + gap - 1 < high:
            if not _decide(_cut(ops, times[low + gap - 1]), model, deadline)[0]:
                high = low + gap - 1
                break
            low += gap
            gap *= 2
        while low < high:
            middle = (low + high) // 2
            if _decide(_cut(ops, times[middle]), model, deadline)[0]:
                low = middle + 1
            else:
                high = middle
        at = times[low]
        history = _cut(ops, at)
        culprits = [k for k, op in enumerate(history) if op.known and op.complete == at]
        search: _Search | None = None
        for k in culprits:
            others = [_weaken(op) if j in culprits and j != k else op
                      for j, op in enumerate(history)]
            linearizable, attempt = _decide(others, model, deadline, watch=k)
            if not linearizable:
                history, search = others, attempt
                break
    except _Timeout:
        lines = "\n".join(_line(op, model) for op in ops[:20])
        more = f"\n  ... and {len(ops) - 20} more" if len(ops) > 20 else ""
        return Verdict(Outcome.VIOLATION,
                       f"not linearizable{_where(part)} (no time left to explain it); its "
                       f"operations:\n{lines}{more}", part=part, witness=tuple(ops))
    # Shown as clients saw them (the search took those completing after the cut as unknown).
    shown = [op for op in ops if op.invoke <= at]
    if search is None or search.watch is None:
        # Several completed at that time, and each alone could take effect.
        start = min(shown[k].invoke for k in culprits)
        witness = tuple(op for op in shown if (op.complete is not None and op.complete >= start)
                        or (op.complete is None and op.invoke >= start))
        return Verdict(
            Outcome.VIOLATION,
            f"not linearizable{_where(part)}: the operations that completed at {at:g} cannot "
            f"all take effect, in any order of the others that real time allows. The "
            f"operations involved:\n" + "\n".join(_line(op, model) for op in witness),
            part=part, operation=shown[culprits[0]], witness=witness)
    culprit = shown[search.watch]
    states = tuple(model.describe_state(state, part) for state in search.attempts)
    involved = {search.watch}
    involved.update(k for k in search.attempts.values() if k is not None)
    # The operations concurrent with it (of those never heard from, the ones invoked while
    # it was in progress; the earlier ones appear if they could have set a state it met).
    involved.update(k for k, op in enumerate(shown)
                    if (op.complete is not None and op.complete >= culprit.invoke)
                    or (op.complete is None and op.invoke >= culprit.invoke))
    witness = tuple(sorted((shown[k] for k in involved), key=lambda op: op.invoke))
    what = model.describe_operation(culprit.input, culprit.output)
    if search.attempts:
        befores = []
        for state, last in list(search.attempts.items())[:_SHOWN_STATES]:
            text = model.describe_state(state, part)
            if last is None:
                text += " (from the start)"
            else:
                before = shown[last]
                text += (f" (set by the {model.describe_operation(before.input, before.output)},"
                         f" client {before.client}, {_when(before)})")
            befores.append(text)
        if len(search.attempts) > _SHOWN_STATES:
            befores.append(f"{len(search.attempts) - _SHOWN_STATES} other states")
        why = ("in every order of the operations that real time allows, while it was in "
               "progress " + " or ".join(befores))
    else:
        why = "no order of the operations before it lets it take effect"
    text = (f"not linearizable{_where(part)}: the {what} (client {culprit.client}, "
            f"{_when(culprit)}) can take effect nowhere: {why}. The operations involved:\n"
            + "\n".join(_line(op, model) for op in witness))
    return Verdict(Outcome.VIOLATION, text, part=part, operation=culprit, states=states,
                   witness=witness)


def check_linearizable(history: Iterable[Operation[I, O]], model: Model[Any, I, O], *,
                       timeout: float | None = None) -> Verdict[I, O]:
    """Whether ``history`` is linearizable against ``model``.

    Returns a ``Verdict``: ``ok``; ``violation`` with an explanation naming the operation
    that could not take effect, the states it could have met and the operations involved;
    or ``unknown`` if ``timeout`` seconds (of wall-clock time) passed first. The search is
    exponential in the worst case (many concurrent operations), usually fast in practice.
    """
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    parts: dict[Hashable, list[Operation[I, O]]] = {}
    for op in history:
        parts.setdefault(model.partition(op.input), []).append(op)
    try:
        for part, ops in parts.items():
            linearizable, search = _decide(ops, model, deadline)
            if not linearizable:
                return _explain(ops, model, part, deadline, search.reached)
    except _Timeout:
        return Verdict(Outcome.UNKNOWN, f"no verdict within the time limit of {timeout} s")
    count = sum(len(ops) for ops in parts.values())
    plural = "" if len(parts) == 1 else "s"
    return Verdict(Outcome.OK, f"linearizable ({count} operations, {len(parts)} part{plural})")


def assert_linearizable(history: Iterable[Operation[I, O]], model: Model[Any, I, O], *,
                        timeout: float | None = None) -> None:
    """Raise ``AssertionError`` with the explanation unless ``history`` is linearizable
    (a verdict of ``unknown`` fails too)."""
    verdict = check_linearizable(history, model, timeout=timeout)
    if not verdict.ok:
        raise AssertionError(str(verdict))


# -- recording a workload -------------------------------------------------------------------

def _trio_clock() -> float:
    import trio

    return trio.current_time()


@attrs.define
class _Call(Generic[I, O]):
    recorder: Recorder[I, O]
    client: Hashable
    input: I
    invoke: float
    done: bool = False

    def ok(self, output: O) -> None:
        """The call returned ``output``."""
        self._finish(attrs.evolve(self._op(), output=output, complete=self.recorder.now()))

    def unknown(self) -> None:
        """The call's outcome is unknown (timed out after sending, connection lost)."""
        self._finish(attrs.evolve(self._op(), complete=self.recorder.now()))

    def failed(self) -> None:
        """The call definitely did not take effect (refused, never sent): not recorded."""
        self.done = True

    def _op(self) -> Operation[I, O]:
        return Operation(self.client, self.input, UNKNOWN, self.invoke, None)

    def _finish(self, op: Operation[I, O]) -> None:
        if self.done:
            raise RuntimeError("this call already has its outcome")
        self.done = True
        self.recorder.operations.append(op)


@attrs.define
class Recorder(Generic[I, O]):
    """Records a workload's calls for ``check_linearizable``, with trio's clock by default::

        recorder: Recorder[RegisterInput, object] = Recorder()
        with recorder.call("client-1", Write(3, key="x")) as call:
            await kv.put("x", 3)
            call.ok(None)
        ...
        verdict = check_linearizable(recorder.history(), KeyValue())

    A call left without ``ok``/``failed`` (an exception, a cancellation) is recorded with
    its outcome unknown, as is one still in progress when ``history()`` is taken.
    """

    clock: Callable[[], float] = _trio_clock
    operations: list[Operation[I, O]] = attrs.field(factory=list)
    pending: list[_Call[I, O]] = attrs.field(factory=list)

    def now(self) -> float:
        return self.clock()

    def invoke(self, client: Hashable, input: I) -> _Call[I, O]:
        """Note that ``client`` invokes ``input`` now; settle it with ``ok``, ``unknown``
        or ``failed`` on the returned handle."""
        call = _Call(self, client, input, self.now())
        self.pending.append(call)
        return call

    @contextmanager
    def call(self, client: Hashable, input: I) -> Iterator[_Call[I, O]]:
        """``invoke`` as a context manager: leaving it unsettled records an unknown
        outcome (the exception, if any, propagates)."""
        call = self.invoke(client, input)
        try:
            yield call
        finally:
            if not call.done:
                call.unknown()

    def history(self) -> list[Operation[I, O]]:
        """The operations so far, the pending ones with their outcome unknown."""
        self.pending = [call for call in self.pending if not call.done]
        return self.operations + [call._op() for call in self.pending]
