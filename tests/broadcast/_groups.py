"""Helpers shared by the runtime tests: run a group, journal it, build a History."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import trio

import rpcx
import rpcx_broadcast
from rpcx_broadcast import Event, History

_names = itertools.count()


def mem_members(n: int) -> dict[str, str]:
    """Fresh ``mem://`` addresses (unique per call, so tests never collide)."""
    run = next(_names)
    return {f"n{i}": f"mem://bcast-{run}-n{i}" for i in range(n)}


class Journals:
    """Per-member event logs in stack order, fed by ``open_group(journal=...)``."""

    def __init__(self) -> None:
        self.logs: dict[str, list[Event]] = {}

    def for_member(self, me: str) -> Callable[[str, str, int, bytes], None]:
        log = self.logs.setdefault(me, [])

        def journal(kind: str, origin: str, seq: int, payload: bytes) -> None:
            log.append(Event(kind, origin, seq, payload, trio.current_time()))
        return journal

    def history(self, crashed: set[str] | frozenset[str] = frozenset()) -> History:
        return History.build(self.logs, crashed)

    def delivered(self, me: str) -> int:
        return sum(1 for e in self.logs.get(me, ()) if e.kind == "deliver")


async def run_group(members: Mapping[str, str], order: str, per_member: int, *,
                    transports: Mapping[str, rpcx.Transport] | None = None,
                    deadline: float = 120.0) -> Journals:
    """Every member broadcasts ``per_member`` messages concurrently and reads deliveries
    until it has everyone's; returns the journals."""
    journals = Journals()
    total = per_member * len(members)

    async def member(me: str) -> None:
        transport = transports[me] if transports else None
        async with rpcx_broadcast.open_group(me, members, order, transport=transport,
                                             journal=journals.for_member(me)) as group:
            async def reader() -> None:
                count = 0
                async for _ in group.deliveries:
                    count += 1
                    if count == total:
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                for k in range(per_member):
                    await group.broadcast(f"{me}/{k}".encode())
            await group.wait_stable()

    with trio.fail_after(deadline):
        async with trio.open_nursery() as nursery:
            for me in members:
                nursery.start_soon(member, me)
    return journals
