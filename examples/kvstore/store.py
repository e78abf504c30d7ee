"""The key-value store: an ordinary rpcx service implementation. Nothing in it knows about
replication, except the rules a replicated service's handlers follow (docs/replication.md):
writes are deterministic and do not wait; ``snapshot``/``restore`` let the replicas keep
their logs short."""

from __future__ import annotations

import hashlib
import json

from examples.kvstore.kvstore_rpcx import Entry, KvStoreService, NotFound, Summary


class KvStore(KvStoreService):
    def __init__(self) -> None:
        self.data: dict[str, Entry] = {}
        self.revision = 0

    async def put(self, key: str, value: str) -> int:
        self.revision += 1
        self.data[key] = Entry(value=value, revision=self.revision)
        return self.revision

    async def compare_and_set(self, key: str, expected: str | None, value: str) -> bool:
        entry = self.data.get(key)
        if (entry.value if entry is not None else None) != expected:
            return False
        await self.put(key, value)
        return True

    async def delete(self, key: str) -> bool:
        if self.data.pop(key, None) is None:
            return False
        self.revision += 1
        return True

    async def get(self, key: str) -> Entry:
        try:
            return self.data[key]
        except KeyError:
            raise NotFound(key=key) from None

    async def summary(self) -> Summary:
        return Summary(revision=self.revision, keys=len(self.data), sha256=self.sha256())

    def sha256(self) -> str:
        text = json.dumps(sorted((k, e.value, e.revision) for k, e in self.data.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- snapshots (the replicas call these; clients never do) ---------------------------

    def snapshot(self) -> bytes:
        return json.dumps({"revision": self.revision,
                           "data": sorted((k, e.value, e.revision)
                                          for k, e in self.data.items())},
                          separators=(",", ":")).encode()

    def restore(self, data: bytes) -> None:
        state = json.loads(data)
        self.revision = int(state["revision"])
        self.data = {str(k): Entry(value=str(v), revision=int(r))
                     for k, v, r in state["data"]}
