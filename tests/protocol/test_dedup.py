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
    assert isinstance(cache.begin(M, b"c", now=0), Overloaded)
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
    with pytest.raises(ValueError, match="quota must be positive"):
        DedupCache(quota=0)
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        DedupCache(max_bytes=0)


# ---------------------------------------------------------------- owners (issue 9, finding 4)


def run(cache: DedupCache[bytes], key: bytes, owner: str, now: float,
        reply: bytes = b"ok") -> Execute | Wait | Replay[bytes] | Overloaded:
    decision = cache.begin(M, key, now, owner)
    if isinstance(decision, Execute):
        cache.complete(M, key, reply, now)
    return decision


def test_one_owner_flooding_keys_never_drops_another_owners_key() -> None:
    """The finding: one client's 10,000 keyed calls evicted another client's paid key, and
    the retry charged again. Now the flooder only ever drops its own oldest keys."""
    cache: DedupCache[bytes] = DedupCache(max_entries=1_000, quota=100, window=300)
    assert run(cache, b"paid", "alice", 0.0, b"receipt") == Execute()
    for i in range(10_000):
        assert run(cache, b"k%d" % i, "mallory", 1 + i / 100) == Execute()
        assert len(cache) <= 101
    assert cache.begin(M, b"paid", 299.0, "alice-reconnected") == Replay(b"receipt")
    assert cache.owned("mallory") == 100  # its newest 100
    assert cache.state(M, b"k9899", 299.0) is None
    assert cache.state(M, b"k9900", 299.0) is EntryState.DONE


def test_a_full_cache_refuses_an_owner_with_nothing_of_its_own_to_drop() -> None:
    cache: DedupCache[bytes] = DedupCache(max_entries=10, quota=100)
    for owner in "abcde":
        for i in range(2):
            run(cache, f"{owner}{i}".encode(), owner, 0.0)
    refused = cache.begin(M, b"new", 1.0, "newcomer")
    assert isinstance(refused, Overloaded) and "cache is full" in refused.reason
    assert len(cache) == 10  # nobody else's entry was dropped
    assert run(cache, b"a2", "a", 1.0) == Execute()  # "a" makes room from its own
    assert cache.state(M, b"a0", 1.0) is None and cache.owned("a") == 2
    assert cache.begin(M, b"new", 301.0, "newcomer") == Execute()  # after the window


def test_the_byte_bound_counts_stored_replies() -> None:
    cache: DedupCache[bytes] = DedupCache(max_bytes=10_000, size=len)
    assert run(cache, b"big", "a", 0.0, b"x" * 9_600) == Execute()
    assert cache.bytes_held == 9_600 + 256
    refused = cache.begin(M, b"k", 0.0, "b")
    assert isinstance(refused, Overloaded)
    assert run(cache, b"k2", "a", 0.0) == Execute()  # drops a's own big reply
    assert cache.state(M, b"big", 0.0) is None
    assert cache.bytes_held == 2 + 256


def test_an_owner_at_its_quota_of_running_calls_is_refused() -> None:
    cache: DedupCache[bytes] = DedupCache(quota=2)
    cache.begin(M, b"1", 0.0, "a")
    cache.begin(M, b"2", 0.0, "a")
    refused = cache.begin(M, b"3", 0.0, "a")
    assert isinstance(refused, Overloaded) and "2 keyed calls" in refused.reason
    assert cache.begin(M, b"3", 0.0, "b") == Execute()
    cache.abandon(M, b"1")
    assert cache.begin(M, b"3b", 0.0, "a") == Execute()
    assert cache.owned("a") == 2 and cache.bytes_held == 3 * 256


def test_accounting_returns_to_zero() -> None:
    cache: DedupCache[bytes] = DedupCache(window=10, size=len)
    for i in range(50):
        run(cache, b"%d" % i, "abc"[i % 3], float(i), b"r" * i)
    cache.expire(1_000.0)
    assert len(cache) == 0 and cache.bytes_held == 0
    assert all(cache.owned(owner) == 0 for owner in "abc")
