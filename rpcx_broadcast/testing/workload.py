"""A Jepsen-style workload for a replicated key-value store.

Concurrent clients read, write and compare-and-set a few keys while a test (or a demo)
crashes, restarts and partitions the replicas; every call is recorded. Afterwards
:meth:`Workload.problems` says, in plain words, what did not hold:

- the history is linearizable (:func:`check_linearizable` with the ``KeyValue`` model);
- no write ran twice and none acknowledged was lost: the store's final version lies
  between the writes acknowledged and those plus the writes of unknown outcome, and no
  two acknowledged writes got the same version;
- no client read an older version of a key than it had already seen.

The store is anything with the three methods of :class:`VersionedStore` (a few lines
adapt a generated client). Its *version* counts the writes it has applied (puts and
successful compare-and-sets), like etcd's revision.

```python
workload = Workload(seed=7)
async with trio.open_nursery() as nursery:
    for i in range(6):
        nursery.start_soon(workload.client, f"c{i}", store, stop)
...
assert not workload.problems(final_version)
```
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

import trio

import rpcx

from .linearizability import Cas, KeyValue, Read, Recorder, Verdict, Write, check_linearizable

__all__ = ["VersionedStore", "Workload"]

RegisterOp = Read | Write | Cas


class VersionedStore(Protocol):
    async def read(self, key: str) -> tuple[str | None, int]:
        """The value under ``key`` (``None``: absent) and the version that wrote it (0)."""

    async def write(self, key: str, value: str) -> int:
        """Store ``value`` under ``key``; the store's version after this write."""

    async def cas(self, key: str, expected: str | None, value: str) -> bool:
        """Store ``value`` if ``key`` now holds ``expected``; whether it did."""


class Workload:
    """The clients' shared record: every call, and what the checks need."""

    def __init__(self, keys: int = 3, *, seed: int = 0, reads: float = 0.5,
                 cas: float = 0.15) -> None:
        self.keys = [f"k{i}" for i in range(keys)]
        self.recorder: Recorder[RegisterOp, object] = Recorder()
        self._rng = random.Random(seed)
        self._reads, self._cas = reads, cas
        self.writes_acked = 0
        """Writes (puts and successful compare-and-sets) that returned."""
        self.writes_unknown = 0
        """Writes that ended in an error: they may or may not have taken effect."""
        self.reads_done = 0
        self.errors = 0
        self.versions: list[int] = []
        """The version each acknowledged put returned: all distinct if none ran twice."""
        self.acked_at: list[float] = []
        """When each write was acknowledged (trio time)."""
        self.went_back: list[str] = []
        """Reads that returned an older version of a key than their client had seen."""

    async def client(self, name: str, store: VersionedStore, stop: Callable[[], bool]) -> None:
        """One client: random operations on ``store`` until ``stop()``, each recorded. An
        error leaves the call's outcome open (it may have been applied, or not), whatever
        the error says: that keeps the check sound."""
        rng = random.Random(self._rng.random())
        seen: dict[str, int] = {}
        last: dict[str, str | None] = {}
        n = 0
        while not stop():
            n += 1
            key, dice, value = rng.choice(self.keys), rng.random(), f"{name}-{n}"
            op: RegisterOp = Read(key) if dice < self._reads else Write(value, key=key) \
                if dice < 1 - self._cas else Cas(last.get(key), value, key=key)
            call = self.recorder.invoke(name, op)
            try:
                if isinstance(op, Read):
                    value_read, version = await store.read(key)
                    call.ok(value_read)
                    self.reads_done += 1
                    if version < seen.get(key, 0):
                        self.went_back.append(f"{name} read {key} at version {version} after "
                                              f"seeing version {seen[key]}")
                    seen[key] = max(seen.get(key, 0), version)
                    last[key] = value_read
                    continue
                if isinstance(op, Write):
                    version = await store.write(key, value)
                    self.versions.append(version)
                    seen[key] = max(seen.get(key, 0), version)
                    done = True
                    call.ok(None)
                else:
                    done = await store.cas(key, last.get(key), value)
                    call.ok(done)
                if done:
                    self.writes_acked += 1
                    self.acked_at.append(trio.current_time())
                    last[key] = value
            except rpcx.RpcError:
                call.unknown()
                self.errors += 1
                self.writes_unknown += not isinstance(op, Read)
                await trio.sleep(0.01)

    def first_ack_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` (trio time) to the next acknowledged write."""
        return next((t - moment for t in self.acked_at if t > moment), None)

    def linearizable(self, timeout: float = 60.0) -> Verdict[RegisterOp, object]:
        return check_linearizable(self.recorder.history(), KeyValue(), timeout=timeout)

    def exactly_once(self, final_version: int) -> str | None:
        """What says that a write ran twice or got lost, if anything."""
        if not self.writes_acked <= final_version <= self.writes_acked + self.writes_unknown:
            return (f"the store's version is {final_version}, but {self.writes_acked} "
                    f"writes were acknowledged and {self.writes_unknown} of unknown outcome")
        if len(set(self.versions)) != len(self.versions):
            return "two acknowledged writes got the same version"
        return None

    def problems(self, final_version: int, timeout: float = 60.0) -> list[str]:
        """Everything that did not hold, in plain words (empty: all held)."""
        verdict = self.linearizable(timeout)
        found = [] if verdict.ok else [f"linearizability: {verdict}"]
        found += filter(None, [self.exactly_once(final_version)])
        return found + [f"a read went back: {text}" for text in self.went_back[:1]]
