"""One replica: a deterministic key-value state machine replicated by FIFO-total order
broadcast (``rpcx_broadcast.open_replica``), and the ``kvstore.KvStore`` rpcx service that
clients call.

A write (``put``/``delete``) is not applied where it arrives: the replica broadcasts a
``Command`` (an IDL union, sent as CBOR) and every replica applies commands only in
delivery order, so all apply the same commands in the same order and end in the same
state (BROADCAST.md a.8). The order is declared with the replicated object: FIFO-total,
because puts to one key do not commute. The caller's reply waits until this replica has
applied its own command (which, under total order, waits for its place in the order).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import rpcx
import rpcx_broadcast
from examples.kvstore.kvstore_rpcx import (
    Command,
    Delete,
    Digest,
    KvStoreService,
    NotFound,
    Put,
)


class StateMachine:
    """The replicated state: applied in delivery order, deterministically."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.applied = 0

    def apply(self, command: Command) -> tuple[int, bool]:
        """Apply one command; return its position in the order and (for a delete) whether
        the key was there. Both are the same at every replica."""
        index = self.applied
        self.applied += 1
        if command.put is not None:
            self.data[command.put.key] = command.put.value
            return index, True
        assert command.delete is not None
        return index, self.data.pop(command.delete.key, None) is not None

    def snapshot(self) -> bytes:
        """The whole state, for the group's snapshots (``raft`` order): the log before it
        is then dropped, and a replica that is far behind or new starts from it."""
        return json.dumps({"applied": self.applied, "data": sorted(self.data.items())},
                          separators=(",", ":")).encode()

    def restore(self, data: bytes) -> None:
        """Replace the state with one :meth:`snapshot` returned."""
        state = json.loads(data)
        self.applied = int(state["applied"])
        self.data = {str(k): str(v) for k, v in state["data"]}

    def digest(self) -> Digest:
        text = json.dumps(sorted(self.data.items())).encode()
        return Digest(applied=self.applied, sha256=hashlib.sha256(text).hexdigest()[:16])


class Replica(KvStoreService):
    def __init__(self, name: str,
                 replica: rpcx_broadcast.Replica[Command, tuple[int, bool]],
                 state: StateMachine) -> None:
        self.name = name
        self.replica = replica
        self.state = state

    async def put(self, key: str, value: str) -> int:
        index, _ = await self.replica.update(Command(put=Put(key=key, value=value)))
        return index

    async def delete(self, key: str) -> bool:
        _, existed = await self.replica.update(Command(delete=Delete(key=key)))
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
    state = StateMachine()
    async with rpcx_broadcast.open_replica(name, group_members, state, Command,
                                           rpcx_broadcast.FIFO_TOTAL) as replicated:
        replica = Replica(name, replicated, state)
        async with rpcx.open_server(api_address, [replica], grace_period=1.0) as server:
            yield replica, server
