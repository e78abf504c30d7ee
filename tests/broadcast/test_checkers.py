"""The checkers on hand-made histories, each violating exactly one property."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcx_broadcast import (
    Event,
    History,
    check,
    check_agreement,
    check_causal,
    check_fifo,
    check_fifo_total,
    check_integrity,
    check_no_duplication,
    check_prefix_consistency,
    check_restores,
    check_total,
    check_uniform_agreement,
    check_validity,
    count_duplicates,
    fill_restores,
)
from rpcx_broadcast.testing.properties import Violation


def b(node: str, seq: int, payload: bytes | None = None) -> Event:
    return Event("broadcast", node, seq, payload or f"{node}{seq}".encode())


def d(origin: str, seq: int, payload: bytes | None = None) -> Event:
    return Event("deliver", origin, seq, payload or f"{origin}{seq}".encode())


def notes_fifo_example() -> History:
    """The notes' figure: A broadcasts m1 and m3, B delivers m1 then broadcasts m2,
    C delivers m2 before m1. FIFO holds; causality does not."""
    return History.build({
        "A": [b("A", 0), d("A", 0), b("A", 1), d("A", 1), d("B", 0)],
        "B": [d("A", 0), b("B", 0), d("B", 0), d("A", 1)],
        "C": [d("B", 0), d("A", 0), d("A", 1)],
    })


def test_notes_fifo_example_is_fifo_but_not_causal() -> None:
    history = notes_fifo_example()
    assert check(history, "fifo") is None
    found = check_causal(history)
    assert found is not None
    assert str(found) == ("causal violated: node C delivered B:0 before A:0, which B had "
                          "delivered before broadcasting B:0")
    assert check(history, "causal") == found


def test_good_total_history_passes_everything() -> None:
    seq = [d("A", 0), d("B", 0), d("A", 1)]
    history = History.build({
        "A": [b("A", 0), b("A", 1), *seq[:1], d("B", 0), d("A", 1)],
        "B": [b("B", 0), *seq],
    })
    for order in ("reliable", "fifo", "total", "fifo_total"):
        assert check(history, order) is None, order


def test_integrity_changed_payload_and_invented_message() -> None:
    changed = History.build({"A": [b("A", 0), d("A", 0, b"evil")]})
    assert "payload b'evil'" in str(check_integrity(changed))
    invented = History.build({"A": [d("Z", 3)]})
    assert str(check_integrity(invented)) == \
        "integrity violated: node A delivered Z:3, which was never broadcast"
    misnumbered = History.build({"A": [b("A", 1)]})
    assert check_integrity(misnumbered) is not None


def test_duplicates_are_counted() -> None:
    history = History.build({"A": [b("A", 0), d("A", 0), d("A", 0), d("A", 0)],
                             "B": [d("A", 0), d("A", 0)]})
    assert count_duplicates(history) == 3
    assert str(check_no_duplication(history)) == ("no duplication violated: 3 duplicate "
                                                  "deliveries; first: node A delivered A:0 "
                                                  "twice")


def test_validity_needs_own_delivery_but_not_from_crashed() -> None:
    history = History.build({"A": [b("A", 0)], "B": []})
    assert "correct node A broadcast A:0 but never delivered it" in str(check_validity(history))
    assert check_validity(History.build({"A": [b("A", 0)], "B": []}, crashed={"A"})) is None


def test_agreement_and_uniform_agreement() -> None:
    history = History.build({"A": [b("A", 0), d("A", 0)], "B": [], "C": [d("A", 0)]},
                            crashed={"A"})
    assert "correct node C delivered A:0 but correct node B never did" in \
        str(check_agreement(history))
    only_crashed = History.build({"A": [b("A", 0), d("A", 0)], "B": []}, crashed={"A"})
    assert check_agreement(only_crashed) is None
    assert "crashed node A delivered A:0" in str(check_uniform_agreement(only_crashed))


def test_fifo_reorder_and_gap() -> None:
    reorder = History.build({"A": [b("A", 0), b("A", 1), d("A", 1), d("A", 0)]})
    assert str(check_fifo(reorder)) == "FIFO violated: node A delivered A:1 before A:0"
    gap = History.build({"A": [b("A", 0), b("A", 1), b("A", 2)],
                         "B": [d("A", 0), d("A", 2)]})
    assert str(check_fifo(gap)) == "FIFO violated: node B delivered A:2 before A:1"


def test_causal_own_earlier_broadcast() -> None:
    history = History.build({"A": [b("A", 0), b("A", 1)], "B": [d("A", 1), d("A", 0)]})
    assert "which A had broadcast before broadcasting A:1" in str(check_causal(history))


def test_causal_is_transitive() -> None:
    # A:0 -> (B delivered it) B:0 -> (C delivered it) C:0; D delivers C:0 before A:0
    history = History.build({
        "A": [b("A", 0), d("A", 0)],
        "B": [d("A", 0), b("B", 0), d("B", 0)],
        "C": [d("A", 0), d("B", 0), b("C", 0), d("C", 0)],
        "D": [d("B", 0), d("C", 0), d("A", 0)],
    })
    found = check_causal(history)
    assert found is not None and "node D delivered B:0 before A:0" in str(found)


def test_receipts_create_no_dependency() -> None:
    # B broadcast B:0 without delivering A:0 (it may have *received* it): concurrent.
    history = History.build({"A": [b("A", 0), d("A", 0), d("B", 0)],
                             "B": [b("B", 0), d("B", 0), d("A", 0)]})
    assert check_causal(history) is None


def test_total_order_disagreement() -> None:
    history = History.build({
        "A": [b("A", 0), d("A", 0), d("B", 0)],
        "B": [b("B", 0), d("B", 0), d("A", 0)],
    })
    assert check_fifo(history) is None
    assert str(check_total(history)) == ("total order violated: node A delivered A:0 before "
                                         "B:0, but node B delivered B:0 first")
    assert check_fifo_total(history) is not None


def test_prefix_consistency_catches_a_skip_that_total_order_misses() -> None:
    # B skips A:0 that A delivered; the common messages are in the same order.
    history = History.build({
        "A": [b("A", 0), b("A", 1), d("A", 0), d("A", 1)],
        "B": [d("A", 1)],
    })
    assert check_total(history) is None
    assert str(check_prefix_consistency(history)) == ("prefix consistency violated: at "
                                                      "position 0 node A delivered A:0 but "
                                                      "node B delivered A:1")


def test_fifo_total_catches_fifo_violation_in_agreed_order() -> None:
    history = History.build({
        "A": [b("A", 0), b("A", 1), d("A", 1), d("A", 0)],
        "B": [d("A", 1), d("A", 0)],
    })
    assert check_total(history) is None
    assert str(check_fifo_total(history)) == "FIFO violated: node A delivered A:1 before A:0"


def test_unknown_order() -> None:
    with pytest.raises(ValueError, match="unknown order 'psychic'"):
        check(History.build({}), "psychic")


# Malformed histories: every checker gives a verdict, never an exception (issue 10, item 7).

ALL_CHECKERS = (check_integrity, check_no_duplication, check_validity, check_agreement,
                check_uniform_agreement, check_fifo, check_causal, check_total,
                check_prefix_consistency, check_fifo_total, check_restores)
ORDER_NAMES = ("reliable", "fifo", "causal", "total", "fifo_total")


def verdicts(history: History) -> dict[str, Violation | None]:
    """Every checker and every order on ``history``; an exception fails the test."""
    found: dict[str, Violation | None] = {c.__name__: c(history) for c in ALL_CHECKERS}
    found.update({f"order {o}": check(history, o) for o in ORDER_NAMES})
    return found


def test_total_order_reports_a_duplicate_delivery_instead_of_crashing() -> None:
    # A delivered A:0 twice: its common subsequence with B was longer than B's, and
    # zip(strict=True) raised ValueError.
    history = History.build({
        "A": [b("A", 0), d("A", 0), b("A", 1), d("A", 1), d("A", 0)],
        "B": [d("A", 0), d("A", 1)],
    })
    found = check_total(history)
    assert found is not None
    assert str(found) == ("total order violated: node A delivered A:0 twice "
                          "(deliveries 0 and 2), so it has no single place in the order")
    assert check_fifo_total(history) is not None
    for order in ("reliable", "total", "fifo_total"):
        found = check(history, order)
        assert found is not None and found.property == "no duplication", order
        assert "node A delivered A:0 twice" in found.message


def test_duplicate_on_both_sides_with_mismatched_counts() -> None:
    # B delivers A:0 three times, A twice: the two common subsequences have 3 and 4 items.
    history = History.build({
        "A": [b("A", 0), d("A", 0), d("A", 0), b("A", 1), d("A", 1)],
        "B": [d("A", 0), d("A", 1), d("A", 0), d("A", 0)],
    })
    found = verdicts(history)
    total = found["check_total"]
    assert total is not None and "node A delivered A:0 twice" in total.message
    assert found["check_no_duplication"] == Violation(
        "no duplication", "3 duplicate deliveries; first: node A delivered A:0 twice")


def test_duplicate_of_a_message_the_other_node_lacks() -> None:
    # The duplicate is not in the common set: the lengths match, but the verdict still
    # names the duplicate.
    history = History.build({
        "A": [b("A", 0), d("A", 0), d("A", 0)],
        "B": [b("B", 0), d("B", 0)],
    })
    total = check_total(history)
    assert total is not None and "A:0 twice" in total.message


def test_delivery_of_a_message_never_broadcast_gets_verdicts() -> None:
    history = History.build({
        "A": [b("A", 0), d("Z", 5), d("A", 0), d("Z", 5)],
        "B": [d("Z", 5), d("A", 0)],
    })
    found = verdicts(history)
    assert found["check_integrity"] == Violation(
        "integrity", "node A delivered Z:5, which was never broadcast")
    assert found["check_total"] is not None
    assert all(found[f"order {o}"] is not None for o in ORDER_NAMES)


def test_empty_histories_pass_everything() -> None:
    for history in (History.build({}), History.build({"A": [], "B": []}),
                    History.build({"A": []}, crashed=["A", "ghost"])):
        assert all(v is None for v in verdicts(history).values()), history


def test_a_node_with_no_deliveries() -> None:
    history = History.build({
        "A": [b("A", 0), d("A", 0), d("A", 0)],
        "B": [],
    })
    found = verdicts(history)
    assert found["check_agreement"] is not None
    assert found["check_total"] is not None and "twice" in found["check_total"].message
    assert found["check_prefix_consistency"] is None


def test_mismatched_lengths_without_duplicates() -> None:
    history = History.build({
        "A": [b("A", 0), d("A", 0), b("A", 1), d("A", 1), b("A", 2), d("A", 2)],
        "B": [d("A", 0)],
        "C": [d("A", 0), d("A", 2)],
    })
    found = verdicts(history)
    assert found["check_total"] is None
    assert found["check_prefix_consistency"] == Violation(
        "prefix consistency", "at position 1 node A delivered A:1 but node C delivered A:2")
    assert found["check_agreement"] is not None


_NODES = ("A", "B", "C")
_events = st.builds(Event, st.sampled_from(("broadcast", "deliver", "restore")),
                    st.sampled_from((*_NODES, "Z")), st.integers(-1, 3),
                    st.sampled_from((b"", b"x", b"A0", b"B0")))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(logs=st.dictionaries(st.sampled_from(_NODES), st.lists(_events, max_size=8),
                            max_size=3),
       crashed=st.frozensets(st.sampled_from((*_NODES, "Z"))),
       prior=st.dictionaries(st.sampled_from(_NODES),
                             st.frozensets(st.tuples(st.sampled_from(_NODES),
                                                     st.integers(0, 3)), max_size=3),
                             max_size=2))
def test_random_small_histories_get_verdicts_never_exceptions(
        logs: dict[str, list[Event]], crashed: frozenset[str],
        prior: dict[str, frozenset[tuple[str, int]]]) -> None:
    history = History.build(logs, crashed, prior)
    for name, verdict in verdicts(history).items():
        assert verdict is None or isinstance(verdict, Violation), name
    for name, verdict in verdicts(fill_restores(history)).items():
        assert verdict is None or isinstance(verdict, Violation), f"filled: {name}"
    assert (check_no_duplication(history) is None) == (count_duplicates(history) == 0)


def r(delivered: int) -> Event:
    """A snapshot restore: the node's state now holds the group's first ``delivered``."""
    return Event("restore", "", delivered, b"")


def _snapshot_logs() -> dict[str, list[Event]]:
    """The group's order is A:0 B:0 A:1 B:1 A:2. X delivered it all; Y restarted from its own
    snapshot of 1, delivered 2 from its log, then installed the leader's snapshot of 4;
    Z started from nothing and delivered the first one only."""
    return {
        "X": [b("X", 0), d("A", 0), d("B", 0), d("A", 1), d("B", 1), d("A", 2)],
        "Y": [r(1), d("B", 0), d("A", 1), r(4), d("A", 2)],
        "Z": [d("A", 0)],
    }


def test_restores_by_position_pass_and_fill_in_to_the_whole_order() -> None:
    history = History.build(_snapshot_logs())
    assert check_restores(history) is None
    filled = fill_restores(history)
    assert [e.id for e in filled.deliveries("Y")] == [
        ("A", 0), ("B", 0), ("A", 1), ("B", 1), ("A", 2)]
    assert [e.kind for e in filled.logs["Y"]] == ["deliver"] * 5
    for checker in (check_fifo_total, check_prefix_consistency, check_no_duplication):
        assert checker(filled) is None, checker.__name__
    # without filling, a log that starts at a snapshot looks like a FIFO gap: the false
    # alarm "FIFO violated: node p0#5 delivered p3:1874 before p3:0" of 2026-12-02
    found = check_fifo(History.build({"Y": _snapshot_logs()["Y"]}))
    assert found is not None and "before A:0" in str(found)


def test_a_restore_that_takes_deliveries_back_is_reported() -> None:
    logs = _snapshot_logs()
    logs["Y"] = [r(1), d("B", 0), d("A", 1), r(2), d("A", 1)]
    found = check_restores(History.build(logs))
    assert str(found) == ("restore violated: node Y restored a snapshot of 2 deliveries "
                          "after delivering 3: deliveries were taken back")


def test_two_messages_at_one_position_is_a_total_order_violation() -> None:
    logs = _snapshot_logs()
    logs["Y"] = [r(1), d("A", 1)]  # A:1 at position 1, where X delivered B:0
    found = check_restores(History.build(logs))
    assert str(found) == ("total order violated: delivery 1 of the group is A:1 at node Y "
                          "but B:0 at node X")


def test_a_restore_over_deliveries_nobody_made_is_reported() -> None:
    logs = _snapshot_logs()
    logs["X"] = logs["X"][:3]  # nobody delivered positions 2 and 3 that Y's r(4) skips
    found = check_restores(History.build(logs))
    assert str(found) == ("restore violated: node Y restored a snapshot of 4 deliveries, "
                          "but no node delivered delivery 3 of the group")


def test_filled_logs_expose_a_fifo_violation_hidden_behind_a_snapshot() -> None:
    # the order itself breaks FIFO (A:1 before A:0): Y, which skipped both by a snapshot,
    # is reported once filled in, like the node that delivered them
    logs = {"X": [d("A", 1), d("A", 0), d("B", 0)], "Y": [r(2), d("B", 0)]}
    history = History.build(logs)
    assert check_restores(history) is None
    found = check_fifo(fill_restores(History.build({"Y": logs["Y"], "X": logs["X"]})))
    assert found is not None and "node X" in str(found)
    only_y = fill_restores(history)
    assert check_fifo(History.build({"Y": only_y.logs["Y"]})) is not None
