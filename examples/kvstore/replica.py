"""One replica: a deterministic key-value state machine fed by FIFO-total broadcast,
and the ``kvstore.KvStore`` rpcx service that clients call.

A write (``put``/``delete``) is not applied where it arrives: the replica broadcasts a
command and applies commands only in delivery order, so every replica applies the same
commands in the same order and ends in the same state (BROADCAST.md a.8). The caller's
reply waits until this replica has applied its own command (which, under total order,
is not immediate: it waits for its place in the order).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

import rpcx
import rpcx_broadcast
from examples.kvstore.kvstore_rpcx import Digest, KvStoreService, NotFound


class StateMachine:
    """The replicated state: applied in delivery order, deterministically."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.applied = 0

    def apply(self, command: Mapping[str, str]) -> bool:
        """Apply one command; the result (for delete: was the key there) is deterministic."""
        self.applied += 1
        if command["op"] == "put":
            self.data[command["key"]] = command["value"]
            return True
        return self.data.pop(command["key"], None) is not None

    def digest(self) -> Digest:
        text = json.dumps(sorted(self.data.items())).encode()
        return Digest(applied=self.applied, sha256=hashlib.sha256(text).hexdigest()[:16])


class Replica(KvStoreService):
    def __init__(self, name: str, group: rpcx_broadcast.Group) -> None:
        self.name = name
        self.group = group
        self.state = StateMachine()
        self._next_id = 0
        self._waiting: dict[str, tuple[trio.Event, list[object]]] = {}

    async def _replicate(self, command: dict[str, str]) -> tuple[int, bool]:
        self._next_id += 1
        command["id"] = f"{self.name}/{self._next_id}"
        done = trio.Event()
        result: list[object] = []
        self._waiting[command["id"]] = (done, result)
        await self.group.broadcast(json.dumps(command, sort_keys=True).encode())
        await done.wait()
        index, outcome = result
        assert isinstance(index, int) and isinstance(outcome, bool)
        return index, outcome

    async def apply_deliveries(self) -> None:
        """The only writer of the state: apply commands in delivery order."""
        async for delivery in self.group.deliveries:
            command = json.loads(delivery.payload)
            outcome = self.state.apply(command)
            waiter = self._waiting.pop(command["id"], None)
            if waiter is not None:
                waiter[1].extend((delivery.index, outcome))
                waiter[0].set()

    async def put(self, key: str, value: str) -> int:
        index, _ = await self._replicate({"op": "put", "key": key, "value": value})
        return index

    async def delete(self, key: str) -> bool:
        _, existed = await self._replicate({"op": "delete", "key": key})
        return existed

    async def get(self, key: str) -> str:
        try:
            return self.state.data[key]
        except KeyError:
            raise NotFound(key=key) from None

    async def digest(self) -> Digest:
        return self.state.digest()


@asynccontextmanager
async def open_replica(name: str, group_members: Mapping[str, str],
                       api_address: str) -> AsyncIterator[tuple[Replica, rpcx.Server]]:
    """Run replica ``name``: its group member (FIFO-total) and its rpcx API server."""
    async with rpcx_broadcast.open_group(name, group_members,
                                         rpcx_broadcast.FIFO_TOTAL) as group:
        replica = Replica(name, group)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(replica.apply_deliveries)
            async with rpcx.open_server(api_address, [replica], grace_period=1.0) as server:
                yield replica, server
            nursery.cancel_scope.cancel()
