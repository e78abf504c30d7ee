"""A Jepsen-style workload for the key-value store: concurrent clients read, write and
compare-and-set a few keys through one channel to every replica, and every call is
recorded for the linearizability checker. Used by the demo (``python -m examples.kvstore``)
and by the tests that crash replicas under it."""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs
import trio

import rpcx
from examples.kvstore.kvstore_rpcx import KvStoreClient, NotFound
from rpcx_broadcast.testing.linearizability import Cas, Read, Recorder, Write

RegisterOp = Read | Write | Cas


@attrs.define
class Tally:
    """What the clients saw."""

    writes_acked: int = 0
    """put and successful compare_and_set calls that returned."""
    writes_unknown: int = 0
    """Writes that ended in an error (they may or may not have taken effect)."""
    reads: int = 0
    errors: int = 0
    went_back: list[str] = attrs.Factory(list)
    """Reads that returned an older revision of a key than the client had already seen."""
    put_revisions: list[int] = attrs.Factory(list)
    """The revision each acknowledged put returned: all distinct if none ran twice."""
    acked_at: list[float] = attrs.Factory(list)
    """When each write was acknowledged (trio time)."""


async def client(store: KvStoreClient, recorder: Recorder[RegisterOp, object], name: str,
                 keys: list[str], rng: random.Random, stop: Callable[[], bool],
                 tally: Tally, timeout: float = 10.0) -> None:
    """One client: random operations until ``stop()``; each call recorded."""
    seen: dict[str, int] = {}  # the newest revision of each key this client has seen
    last: dict[str, str | None] = {}
    n = 0
    while not stop():
        n += 1
        key = rng.choice(keys)
        dice = rng.random()
        op: RegisterOp
        if dice < 0.5:
            op = Read(key)
        elif dice < 0.85:
            op = Write(f"{name}-{n}", key=key)
        else:
            op = Cas(last.get(key), f"{name}-{n}", key=key)
        call = recorder.invoke(name, op)
        try:
            if isinstance(op, Read):
                try:
                    entry = await store.get(key, timeout=timeout)
                except NotFound:
                    value, revision = None, 0
                else:
                    value, revision = entry.value, entry.revision
                call.ok(value)
                tally.reads += 1
                if revision < seen.get(key, 0):
                    tally.went_back.append(f"{name} read {key} at revision {revision} after "
                                           f"seeing revision {seen[key]}")
                seen[key] = max(seen.get(key, 0), revision)
                last[key] = value
            elif isinstance(op, Write):
                assert isinstance(op.value, str)
                revision = await store.put(key, op.value, timeout=timeout)
                call.ok(None)
                tally.writes_acked += 1
                tally.put_revisions.append(revision)
                tally.acked_at.append(trio.current_time())
                seen[key] = max(seen.get(key, 0), revision)
                last[key] = op.value
            else:
                assert isinstance(op.new, str)
                expected = op.expected
                assert expected is None or isinstance(expected, str)
                done = await store.compare_and_set(key, expected, value=op.new,
                                                   timeout=timeout)
                call.ok(done)
                if done:
                    tally.writes_acked += 1
                    tally.acked_at.append(trio.current_time())
                    last[key] = op.new
        except rpcx.RpcError:
            # Sound for the checker: an error leaves the outcome open (it may have been
            # applied, or not), whatever the error says.
            call.unknown()
            tally.errors += 1
            if not isinstance(op, Read):
                tally.writes_unknown += 1
            await trio.sleep(0.01)


def keys_of(n: int) -> list[str]:
    return [f"k{i}" for i in range(n)]

