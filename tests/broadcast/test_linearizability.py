"""The linearizability checker: hand-made violations, unknown outcomes, partitioning, generated
linearizable histories (and the same with one read corrupted), and a history of thousands of
operations."""

from __future__ import annotations

import random
import time
from collections.abc import Hashable

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcx_broadcast.testing import (
    UNKNOWN,
    Cas,
    KeyValue,
    Model,
    Operation,
    Read,
    Recorder,
    Register,
    Unknown,
    Write,
    assert_linearizable,
    check_linearizable,
)
from rpcx_broadcast.testing.linearizability import RegisterInput

Op = Operation[RegisterInput, object]


def op(client: str, input: RegisterInput, output: object, invoke: float,
       complete: float | None) -> Op:
    return Operation(client, input, output, invoke, complete)


def w(client: str, key: str, value: int, invoke: float, complete: float) -> Op:
    return op(client, Write(value, key=key), None, invoke, complete)


def r(client: str, key: str, value: object, invoke: float, complete: float) -> Op:
    return op(client, Read(key), value, invoke, complete)


# -- hand-made violations ---------------------------------------------------------------------

def test_stale_read_is_named_with_the_write_it_missed() -> None:
    history = [w("a", "x", 1, 0, 1), w("a", "x", 2, 2, 3), r("b", "x", 1, 4, 5)]
    verdict = check_linearizable(history, KeyValue())
    assert verdict.violation and not verdict.ok and not verdict.unknown
    assert verdict.part == "x"
    assert verdict.operation == history[2]
    assert verdict.states == ("'x' held 2",)
    assert set(verdict.witness) == {history[1], history[2]}
    assert str(verdict) == (
        "not linearizable (operations on 'x'): the read of 'x' returned 1 (client b, [4, 5]) "
        "can take effect nowhere: in every order of the operations that real time allows, "
        "while it was in progress 'x' held 2 (set by the write of 2 to 'x', client a, "
        "[2, 3]). The operations involved:\n"
        "  [2, 3] client a: write of 2 to 'x'\n"
        "  [4, 5] client b: read of 'x' returned 1")


def test_the_same_read_concurrent_with_the_write_is_fine() -> None:
    history = [w("a", "x", 1, 0, 1), w("a", "x", 2, 2, 4.5), r("b", "x", 1, 4, 5)]
    assert check_linearizable(history, KeyValue()).ok


def test_lost_acknowledged_write() -> None:
    # The write of 2 was acknowledged, then every read sees the initial value.
    history = [w("a", "x", 2, 0, 1), r("b", "x", None, 2, 3), r("c", "x", None, 4, 5)]
    verdict = check_linearizable(history, KeyValue())
    assert verdict.violation
    assert verdict.operation == history[1]
    assert "the read of 'x' returned None (client b, [2, 3]) can take effect nowhere" \
        in str(verdict)
    assert "'x' held 2 (set by the write of 2 to 'x', client a, [0, 1])" in str(verdict)


def test_a_compare_and_set_applied_twice() -> None:
    # c's retry of a compare-and-set took effect again after b reset the value.
    history = [w("a", "x", 0, 0, 1), op("c", Cas(0, 1, key="x"), True, 2, 3),
               w("b", "x", 0, 4, 5), r("a", "x", 1, 6, 7)]
    verdict = check_linearizable(history, KeyValue())
    assert verdict.violation
    assert verdict.operation == history[3]
    assert verdict.states == ("'x' held 0",)
    assert "set by the write of 0 to 'x', client b, [4, 5]" in str(verdict)


def test_a_compare_and_set_that_could_not_succeed() -> None:
    history = [w("a", "x", 1, 0, 1), op("b", Cas(2, 3, key="x"), True, 2, 3)]
    verdict = check_linearizable(history, KeyValue())
    assert verdict.violation
    assert verdict.operation == history[1]
    assert "the compare-and-set of 'x' from 2 to 3 (succeeded) (client b, [2, 3]) can take " \
        "effect nowhere" in str(verdict)
    assert "'x' held 1 (set by the write of 1 to 'x'" in str(verdict)
    # The same compare-and-set failing is fine, and so is one that could have met 2.
    failed = [*history[:1], op("b", Cas(2, 3, key="x"), False, 2, 3)]
    assert check_linearizable(failed, KeyValue()).ok
    racing = [*history, w("c", "x", 2, 0.5, 2.5)]
    assert check_linearizable(racing, KeyValue()).ok


def test_a_failed_compare_and_set_that_should_have_succeeded() -> None:
    history = [w("a", "x", 2, 0, 1), op("b", Cas(2, 3, key="x"), False, 2, 3)]
    verdict = check_linearizable(history, KeyValue())
    assert verdict.violation
    assert "(failed)" in str(verdict)


@attrs.frozen
class Increment:
    pass


@attrs.frozen
class Get:
    pass


class Counter(Model[int, Increment | Get, int]):
    """A user's model: increments return the new count (not idempotent)."""

    def init(self) -> int:
        return 0

    def step(self, state: int, input: Increment | Get,
             output: int | Unknown) -> tuple[bool, int]:
        after = state + 1 if isinstance(input, Increment) else state
        return output is UNKNOWN or output == after, after


def test_a_user_model_finds_an_increment_applied_twice() -> None:
    history: list[Operation[Increment | Get, int]] = [
        Operation("a", Increment(), 1, 0, 1),
        Operation("b", Get(), 2, 2, 3),  # one increment, counted twice
    ]
    verdict = check_linearizable(history, Counter())
    assert verdict.violation
    assert verdict.operation == history[1]
    assert verdict.states == ("the state was 1",)
    assert "Get() -> 2 (client b, [2, 3]) can take effect nowhere" in str(verdict)
    CounterOp = Operation[Increment | Get, int]
    retry_unknown = [CounterOp("a", Increment(), UNKNOWN, 0, 1),
                     CounterOp("a", Increment(), 1, 1, 2), CounterOp("b", Get(), 2, 3, 4)]
    # The first attempt's outcome is unknown, so 2 is possible (it took effect too) ...
    assert check_linearizable(retry_unknown, Counter()).ok
    # ... but not 3.
    three = [*retry_unknown[:2], CounterOp("b", Get(), 3, 3, 4)]
    assert check_linearizable(three, Counter()).violation


def test_reads_going_back_in_time() -> None:
    history = [w("a", "x", 1, 0, 10), r("b", "x", 1, 1, 2), r("c", "x", None, 3, 4)]
    verdict = check_linearizable(history, KeyValue())
    assert verdict.violation
    assert verdict.operation == history[2]
    # Without the first read, the write may take effect after the second.
    assert check_linearizable([history[0], history[2]], KeyValue()).ok


def test_assert_linearizable_raises_with_the_explanation() -> None:
    history = [w("a", "x", 2, 0, 1), r("b", "x", None, 2, 3)]
    with pytest.raises(AssertionError, match="can take effect nowhere"):
        assert_linearizable(history, KeyValue())
    assert_linearizable(history[:1], KeyValue())


# -- unknown outcomes ---------------------------------------------------------------------------

def test_an_unknown_write_that_must_have_taken_effect() -> None:
    history = [op("a", Write(5), UNKNOWN, 0, None), op("b", Read(), 5, 10, 11),
               op("c", Read(), 5, 12, 13)]
    assert check_linearizable(history, Register()).ok
    # It took effect, so the value cannot go back to the initial one afterwards.
    back = [*history, op("c", Read(), None, 14, 15)]
    verdict = check_linearizable(back, Register())
    assert verdict.violation
    assert verdict.operation == back[3]
    assert "write of 5 to the register (outcome unknown)" in str(verdict)


def test_an_unknown_write_that_must_not_have_taken_effect() -> None:
    # It timed out at 1 (completed with "outcome unknown"): never seen, so it never happened
    # (or takes effect after everything that was observed).
    history = [op("a", Write(5), UNKNOWN, 0, 1), op("b", Read(), None, 2, 3),
               op("b", Read(), None, 4, 5)]
    assert check_linearizable(history, Register()).ok
    # Seen between the two reads of the initial value: impossible.
    seen = [*history, op("c", Read(), 5, 3.5, 3.8)]
    assert check_linearizable(seen, Register()).violation


def test_an_unknown_compare_and_set_may_have_failed_or_succeeded() -> None:
    base = [op("a", Write(1), None, 0, 1), op("b", Cas(1, 2), UNKNOWN, 2, None)]
    assert check_linearizable([*base, op("c", Read(), 2, 3, 4)], Register()).ok
    assert check_linearizable([*base, op("c", Read(), 1, 3, 4)], Register()).ok
    assert check_linearizable([*base, op("c", Read(), 3, 3, 4)], Register()).violation


def test_a_history_of_only_unknown_outcomes_is_linearizable() -> None:
    history = [op("a", Cas(7, 8), UNKNOWN, 0, None), op("b", Read(), UNKNOWN, 0, 2)]
    assert check_linearizable(history, Register()).ok
    assert check_linearizable([], Register()).ok


def test_an_operation_without_completion_must_have_unknown_output() -> None:
    with pytest.raises(ValueError, match="UNKNOWN"):
        op("a", Read(), 1, 0, None)
    with pytest.raises(ValueError, match="before it was invoked"):
        op("a", Read(), 1, 5, 4)


# -- partitioning -------------------------------------------------------------------------------

def test_keys_are_checked_separately() -> None:
    history = [w("a", "x", 1, 0, 1), r("b", "y", None, 2, 3), r("b", "x", 1, 4, 5)]
    assert check_linearizable(history, KeyValue()).ok
    # As one register (keys ignored) the read of y would have to see 1.
    assert check_linearizable(history, Register()).violation
    stale_y = [*history, w("c", "y", 7, 6, 7), r("c", "y", None, 8, 9)]
    verdict = check_linearizable(stale_y, KeyValue())
    assert verdict.violation and verdict.part == "y"
    assert all(o.input.key == "y" for o in verdict.witness)


def test_heavy_concurrency_is_accepted() -> None:
    # 12 clients, all overlapping: writes 0..11 and reads of any of them (or the initial
    # value) in one big concurrent window, then a read of one of the written values.
    history = [w(f"c{k}", "x", k, 0, 10) for k in range(6)]
    history += [r(f"d{k}", "x", (k * 5) % 6, 0.5, 9.5) for k in range(5)]
    history += [r("d9", "x", None, 0.1, 9), r("e", "x", 3, 11, 12)]
    assert check_linearizable(history, KeyValue()).ok
    # ... but not two later reads that disagree.
    disagree = [*history, r("e", "x", 4, 13, 14)]
    assert check_linearizable(disagree, KeyValue()).violation


# -- generated histories --------------------------------------------------------------------------

def generate(rng: random.Random, count: int, keys: int, clients: int,
             unknown: float = 0.05, overlap: float = 1.0) -> list[Op]:
    """Run a sequential key-value store with ``clients`` concurrent clients: each operation
    takes effect at a random point of its interval, in the order of those points; so the
    history is linearizable by construction. Some outcomes are unknown (and then took effect
    or not)."""
    clock = dict.fromkeys(range(clients), 0.0)
    planned: list[tuple[float, int, RegisterInput, float, float, bool]] = []
    fresh = 0
    for _ in range(count):
        client = rng.randrange(clients)
        key = f"k{rng.randrange(keys)}"
        invoke = clock[client] + rng.uniform(0, 0.2)
        point = invoke + rng.uniform(0, overlap)
        complete = point + rng.uniform(0, overlap)
        clock[client] = complete
        kind = rng.random()
        input: RegisterInput
        if kind < 0.4:
            input = Read(key)
        elif kind < 0.75:
            fresh += 1
            input = Write(fresh, key=key)
        else:
            fresh += 1
            input = Cas(rng.randrange(max(1, fresh - 3), fresh + 1), fresh, key=key)
        lost = rng.random() < unknown
        planned.append((point, client, input, invoke, complete, lost))
    store: dict[Hashable, Hashable] = {}
    history: list[Op] = []
    for _, client, input, invoke, complete, lost in sorted(planned, key=lambda p: p[0]):
        took_effect = not lost or rng.random() < 0.5
        value = store.get(input.key)
        output: object
        if isinstance(input, Read):
            output = value
        elif isinstance(input, Write):
            output = None
            if took_effect:
                store[input.key] = input.value
        else:
            output = value == input.expected
            if output and took_effect:
                store[input.key] = input.new
        if lost:
            end = None if rng.random() < 0.5 else complete
            history.append(op(f"c{client}", input, UNKNOWN, invoke, end))
        else:
            history.append(op(f"c{client}", input, output, invoke, complete))
    rng.shuffle(history)
    return history


def corrupt_a_read(rng: random.Random, history: list[Op]) -> tuple[list[Op], Op] | None:
    reads = [k for k, o in enumerate(history) if isinstance(o.input, Read) and o.known]
    if not reads:
        return None
    k = rng.choice(reads)
    bad = attrs.evolve(history[k], output="never written")
    return [*history[:k], bad, *history[k + 1:]], bad


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), count=st.integers(1, 60), keys=st.integers(1, 3),
       clients=st.integers(1, 6), overlap=st.sampled_from([0.1, 1.0, 3.0]),
       unknown=st.sampled_from([0.0, 0.05, 0.3]))
def test_generated_histories_are_linearizable_and_a_corrupted_read_is_not(
        seed: int, count: int, keys: int, clients: int, overlap: float,
        unknown: float) -> None:
    rng = random.Random(seed)
    history = generate(rng, count, keys, clients, unknown=unknown, overlap=overlap)
    verdict = check_linearizable(history, KeyValue(), timeout=30)
    assert verdict.ok, str(verdict)
    corrupted = corrupt_a_read(rng, history)
    if corrupted is not None:
        bad_history, bad = corrupted
        verdict = check_linearizable(bad_history, KeyValue(), timeout=30)
        assert verdict.violation, str(verdict)
        assert verdict.operation == bad
        assert bad in verdict.witness
        assert "returned 'never written'" in str(verdict)


def linearizable_by_brute_force(history: list[Op], model: KeyValue) -> bool:
    """Every order real time allows, each operation of unknown outcome taking effect at some
    point or never: the definition, for a few operations."""

    def search(state: Hashable, left: list[Op]) -> bool:
        if all(not o.known for o in left):
            return True
        deadline = min(o.complete for o in left if o.known and o.complete is not None)
        for k, o in enumerate(left):
            if o.invoke > deadline:
                continue
            rest = left[:k] + left[k + 1:]
            ok, after = model.step(state, o.input, o.output)
            if ok and search(after, rest):
                return True
            if not o.known and search(state, rest):  # it never takes effect
                return True
        return False

    return search(model.init(), history)


values = st.sampled_from([None, 1, 2])


@st.composite
def small_histories(draw: st.DrawFn) -> list[Op]:
    """Any few operations on one key, at random times, with random results."""
    history = []
    for client in range(draw(st.integers(1, 7))):
        invoke = draw(st.integers(0, 6))
        length = draw(st.integers(0, 4))
        kind = draw(st.sampled_from(["read", "write", "cas"]))
        input: RegisterInput
        if kind == "read":
            input, output = Read("x"), draw(values)
        elif kind == "write":
            input, output = Write(draw(values), key="x"), None
        else:
            input, output = Cas(draw(values), draw(values), key="x"), draw(st.booleans())
        if draw(st.integers(0, 3)) == 0:
            complete = draw(st.sampled_from([None, invoke + length]))
            history.append(op(f"c{client}", input, UNKNOWN, invoke, complete))
        else:
            history.append(op(f"c{client}", input, output, invoke, invoke + length))
    return history


@settings(max_examples=400, deadline=None)
@given(history=small_histories())
def test_the_verdict_agrees_with_brute_force_on_small_histories(history: list[Op]) -> None:
    verdict = check_linearizable(history, KeyValue())
    assert verdict.ok == linearizable_by_brute_force(history, KeyValue()), str(verdict)
    if verdict.violation:
        assert verdict.operation in history
        assert verdict.operation in verdict.witness


def test_thousands_of_operations(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(11)
    history = generate(rng, 5000, keys=10, clients=5)
    started = time.monotonic()
    verdict = check_linearizable(history, KeyValue(), timeout=60)
    took = time.monotonic() - started
    assert verdict.ok, str(verdict)
    assert str(verdict) == "linearizable (5000 operations, 10 parts)"
    corrupted = corrupt_a_read(rng, history)
    assert corrupted is not None
    bad_history, bad = corrupted
    started = time.monotonic()
    verdict = check_linearizable(bad_history, KeyValue(), timeout=60)
    took_bad = time.monotonic() - started
    assert verdict.violation and verdict.operation == bad
    # The explanation names a few operations, not the whole key's history.
    assert len(verdict.witness) <= 12, str(verdict)
    # Busier: 20 clients, a fifth of the outcomes unknown.
    busy = generate(random.Random(12), 5000, keys=10, clients=20, unknown=0.2)
    started = time.monotonic()
    verdict = check_linearizable(busy, KeyValue(), timeout=60)
    took_busy = time.monotonic() - started
    assert verdict.ok, str(verdict)
    with capsys.disabled():
        print(f"\n5,000 operations, 10 keys, 5 clients: linearizable in {took:.2f} s; "
              f"with one corrupted read, explained in {took_bad:.2f} s; with 20 clients and "
              f"20 % unknown outcomes, linearizable in {took_busy:.2f} s")


def test_a_time_limit_gives_unknown() -> None:
    history = generate(random.Random(3), 3000, keys=1, clients=5)
    verdict = check_linearizable(history, KeyValue(), timeout=0)
    assert verdict.unknown and not verdict.ok and not verdict.violation
    assert str(verdict) == "no verdict within the time limit of 0 s"
    with pytest.raises(AssertionError, match="time limit"):
        assert_linearizable(history, KeyValue(), timeout=0)


# -- the recorder ---------------------------------------------------------------------------------

async def test_the_recorder_uses_trio_time_and_records_unknown_outcomes(
        autojump_clock: trio.testing.MockClock) -> None:
    recorder: Recorder[RegisterInput, object] = Recorder()
    store: dict[Hashable, Hashable] = {}

    async def put(key: str, value: int) -> None:
        await trio.sleep(1)
        store[key] = value

    start = trio.current_time()
    with recorder.call("a", Write(1, key="x")) as call:
        await put("x", 1)
        call.ok(None)
    with pytest.raises(trio.TooSlowError), recorder.call("a", Write(2, key="x")):
        with trio.fail_after(0.5):
            await put("x", 2)  # times out after sending: outcome unknown
    with recorder.call("b", Write(3, key="x")) as call:
        call.failed()  # refused: definitely not applied, not recorded
    pending = recorder.invoke("c", Read("x"))  # still in progress
    done = recorder.invoke("d", Read("x"))
    done.ok(store.get("x"))
    with pytest.raises(RuntimeError, match="already"):
        done.ok(None)
    history = recorder.history()
    assert [(o.client, o.output) for o in history] == [("a", None), ("a", UNKNOWN),
                                                       ("d", 1), ("c", UNKNOWN)]
    assert history[0].invoke == start and history[0].complete == start + 1
    assert history[1].complete == start + 1.5
    assert history[3].complete is None and pending.invoke == start + 1.5
    assert check_linearizable(history, KeyValue()).ok
    pending.ok(2)
    assert check_linearizable(recorder.history(), KeyValue()).ok  # the unknown write of 2


def test_the_recorder_takes_any_clock() -> None:
    ticks = iter(range(100))
    recorder: Recorder[RegisterInput, object] = Recorder(clock=lambda: float(next(ticks)))
    recorder.invoke("a", Write(1)).ok(None)
    recorder.invoke("b", Read()).ok(None)
    verdict = check_linearizable(recorder.history(), Register())
    assert verdict.violation
    assert "the read of the register returned None (client b, [2, 3])" in str(verdict)


def test_operations_completing_after_the_violation_are_shown_as_seen() -> None:
    # The write of 3 was still in progress when the read completed: the search takes its
    # outcome as unknown at that point, the explanation shows it as the client saw it.
    history = [w("a", "x", 1, 0, 1), w("a", "x", 2, 2, 3), w("c", "x", 3, 3.5, 9),
               r("b", "x", 1, 4, 5), r("b", "x", 3, 10, 11)]
    verdict = check_linearizable(history, KeyValue())
    assert verdict.violation and verdict.operation == history[3]
    assert history[2] in verdict.witness
    assert "  [3.5, 9] client c: write of 3 to 'x'\n" in str(verdict)
    assert sorted(verdict.states) == ["'x' held 2", "'x' held 3"]
    assert "'x' held 3 (set by the write of 3 to 'x', client c, [3.5, 9])" in str(verdict)


def test_many_possible_states_are_summed_up() -> None:
    history = [w(f"c{k}", "x", k, 0, 10) for k in range(9)] + [r("z", "x", 99, 1, 2)]
    verdict = check_linearizable(history, KeyValue())
    assert verdict.violation and len(verdict.states) == 10  # 0..8 and the initial None
    assert str(verdict).count(" or ") == 6
    assert "or 4 other states." in str(verdict)


def test_two_operations_completing_together_that_cannot_both_take_effect() -> None:
    history = [op("a", Cas(None, 1, key="x"), True, 1, 2),
               op("b", Cas(None, 2, key="x"), True, 1, 2), r("c", "x", None, 0, 0.5)]
    verdict = check_linearizable(history, KeyValue())
    assert verdict.violation
    assert verdict.operation == history[0]
    assert set(verdict.witness) == set(history[:2])
    assert "the operations that completed at 2 cannot all take effect" in str(verdict)
    assert check_linearizable([history[0], history[2]], KeyValue()).ok
