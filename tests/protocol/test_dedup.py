"""The idempotency-key cache: at most once, waiting duplicates, bounded, expiring."""

from __future__ import annotations

import pytest

from rpcx.protocol.dedup import DedupCache, EntryState, Execute, Overloaded, Replay, Wait

M = "pay.Payments/charge"


def test_first_executes_running_duplicate_waits_done_duplicate_replays() -> None:
    cache: DedupCache[str] = DedupCache(max_entries=10, window=60)
    assert cache.begin(M, b"k", now=0) == Execute()
    assert cache.state(M, b"k", now=0) is EntryState.RUNNING
    assert cache.begin(M, b"k", now=1) == Wait()
    cache.complete(M, b"k", "receipt-1", now=2)
    assert cache.state(M, b"k", now=2) is EntryState.DONE
    assert cache.begin(M, b"k", now=3) == Replay("receipt-1")
    assert cache.begin(M, b"k", now=61.9) == Replay("receipt-1")
    # the window runs from completion (2 + 60)
    assert cache.begin(M, b"k", now=62) == Execute()


def test_keys_are_scoped_by_method() -> None:
    cache: DedupCache[int] = DedupCache()
    assert cache.begin(M, b"k", now=0) == Execute()
    assert cache.begin("other/method", b"k", now=0) == Execute()
    assert len(cache) == 2


def test_abandoned_key_lets_a_retry_execute() -> None:
    cache: DedupCache[int] = DedupCache()
    cache.begin(M, b"k", now=0)
    cache.abandon(M, b"k")
    assert cache.state(M, b"k", now=0) is None
    assert cache.begin(M, b"k", now=1) == Execute()


def test_complete_or_abandon_of_a_key_not_running_is_a_bug() -> None:
    cache: DedupCache[int] = DedupCache()
    with pytest.raises(KeyError, match="is not running"):
        cache.complete(M, b"k", 1, now=0)
    cache.begin(M, b"k", now=0)
    cache.complete(M, b"k", 1, now=0)
    with pytest.raises(KeyError, match="is not running"):
        cache.abandon(M, b"k")


def test_full_cache_evicts_oldest_done_entry_first() -> None:
    cache: DedupCache[int] = DedupCache(max_entries=3, window=100)
    for i, key in enumerate((b"a", b"b")):
        cache.begin(M, key, now=i)
        cache.complete(M, key, i, now=i)
    cache.begin(M, b"running", now=2)
    assert cache.begin(M, b"c", now=3) == Execute()  # evicts "a", the oldest DONE
    assert cache.state(M, b"a", now=3) is None
    assert cache.begin(M, b"b", now=3) == Replay(1)
    assert len(cache) == 3


def test_full_cache_of_running_entries_is_overloaded() -> None:
    cache: DedupCache[int] = DedupCache(max_entries=2)
    cache.begin(M, b"a", now=0)
    cache.begin(M, b"b", now=0)
    assert cache.begin(M, b"c", now=0) == Overloaded()
    assert cache.begin(M, b"a", now=0) == Wait()  # known keys still answer


def test_expiry_only_drops_done_entries_past_their_window() -> None:
    cache: DedupCache[int] = DedupCache(window=10)
    cache.begin(M, b"old", now=0)
    cache.complete(M, b"old", 1, now=0)
    cache.begin(M, b"new", now=5)
    cache.complete(M, b"new", 2, now=5)
    cache.begin(M, b"slow", now=0)  # running entries never expire
    cache.expire(now=12)
    assert cache.state(M, b"old", now=12) is None
    assert cache.state(M, b"new", now=12) is EntryState.DONE
    assert cache.state(M, b"slow", now=1000) is EntryState.RUNNING
    assert len(cache) == 1


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_entries must be positive"):
        DedupCache(max_entries=0)
    with pytest.raises(ValueError, match="window must be positive"):
        DedupCache(window=0)
