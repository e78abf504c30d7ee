"""Replicated state machines on a broadcast group, with the order declared next to them.

```python
class Counter:                                  # the replicated object
    def __init__(self) -> None:
        self.total = 0

    def apply(self, update: Add) -> int:        # Add: a generated IDL struct {1: amount: int}
        self.total += update.amount
        return self.total

commutative(Add)                                # additions commute: causal order is enough
async with open_replica("a", members, Counter(), Add, order=CAUSAL) as replica:
    total = await replica.update(Add(amount=2))  # applied here; the others apply
                                                 # it on their own delivery
```

Every member applies every delivered update to its own copy of the state machine, in
its delivery order (state machine replication, BROADCAST.md a.8). What ``apply`` must
satisfy depends on the order the group guarantees:

=======================  ==================================================
order                    ``apply`` must be
=======================  ==================================================
total, fifo_total, raft  deterministic
causal                   deterministic, and concurrent updates commute
fifo                     deterministic, and updates of different members commute
reliable                 deterministic, and all updates commute
=======================  ==================================================

Snapshots (``raft`` order): a state machine that also defines ``snapshot() -> bytes``
(its whole state, deterministic) and ``restore(data: bytes) -> None`` (replace the state
with one ``snapshot`` returned) is snapshotted by the group every ``snapshot_every``
updates (default 10,000; an ``open_replica`` option), so the log, memory and disk stay
bounded, a replica restarted from its storage starts from its latest snapshot and
replays only the updates after it, and a replica that is far behind (or new) gets the
leader's snapshot instead of the whole log. Without these two methods the group keeps
the whole log (``snapshot_every=None``; passing a number raises ``TypeError``).

So the order is part of the replicated object's contract: :func:`open_replica` warns
(:class:`ReplicationWarning`) when the order is weaker than total and the update type is
not declared :func:`commutative` (or ``commutative=True`` is not passed). Determinism
includes errors: an ``apply`` that raises must raise at every replica, and must leave
the state as it was; the exception goes back to the caller of :meth:`Replica.update`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar

import attrs
import outcome
import trio

import rpcx
from rpcx.schema import StructSpec, TypeRef, UnionSpec, spec_of, struct_ref, union_ref
from rpcx_broadcast.runtime.group import (
    CAUSAL,
    FIFO,
    FIFO_TOTAL,
    LAMPORT_FIFO_TOTAL,
    RAFT,
    RELIABLE,
    TOTAL,
    Group,
    open_group,
)

__all__ = ["REQUIREMENTS", "Replica", "ReplicationWarning", "SnapshotStateMachine",
           "StateMachine", "commutative", "is_commutative", "open_replica"]

logger = logging.getLogger("rpcx_broadcast.replicated")

U = TypeVar("U")
R = TypeVar("R")
U_contra = TypeVar("U_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")

REQUIREMENTS: Mapping[str, str | None] = {
    TOTAL: None,
    FIFO_TOTAL: None,
    LAMPORT_FIFO_TOTAL: None,
    RAFT: None,
    CAUSAL: "concurrent updates to commute",
    FIFO: "updates of different members to commute",
    RELIABLE: "all updates to commute",
}
"""Order → what it needs of the update function beyond determinism (None: nothing)."""

_MARK = "__rpcx_commutative__"
_EARLY_CAP = 1024


class ReplicationWarning(UserWarning):
    """The declared order is weaker than what the replicated object is known to need."""


class StateMachine(Protocol[U_contra, R_co]):
    """A replicated object: ``apply`` changes it by one update, deterministically."""

    def apply(self, update: U_contra) -> R_co: ...


class SnapshotStateMachine(StateMachine[U_contra, R_co], Protocol[U_contra, R_co]):
    """A replicated object that can be snapshotted (``raft`` order): ``snapshot`` returns
    its whole state, ``restore`` replaces the state with such bytes."""

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


def _can_snapshot(machine: object) -> bool:
    return callable(getattr(machine, "snapshot", None)) \
        and callable(getattr(machine, "restore", None))


class _MachineState:
    """The replicated object as the group's ``Snapshottable``: the count of applied
    deliveries is the replica's."""

    def __init__(self, machine: object) -> None:
        self.machine = machine
        self.count = 0

    def applied(self) -> int:
        return self.count

    def snapshot(self) -> bytes:
        data = self.machine.snapshot()  # type: ignore[attr-defined]
        if not isinstance(data, bytes):
            raise TypeError(f"{type(self.machine).__name__}.snapshot() must return bytes, "
                            f"got {type(data).__name__}")
        return data

    def restore(self, data: bytes | None, delivered: int) -> None:
        if data is None:
            raise ValueError("the group's snapshot holds no state of the replicated object "
                             "(it was taken by a group without one)")
        self.machine.restore(data)  # type: ignore[attr-defined]
        self.count = delivered


def commutative(cls: type[T]) -> type[T]:
    """Declare that updates of type ``cls`` commute: applying any two in either order
    leaves the same state (so causal, FIFO or reliable order is enough for them). For a
    generated IDL class, call it once: ``commutative(Increment)``."""
    setattr(cls, _MARK, True)
    return cls


def is_commutative(cls: type[Any]) -> bool:
    return bool(getattr(cls, _MARK, False))


def _codec_for(update_type: type[Any]) -> tuple[Callable[[Any], bytes],
                                                 Callable[[bytes], Any]]:
    if update_type is bytes:
        return bytes, bytes
    try:
        spec = spec_of(update_type)
    except TypeError:
        spec = None
    ref: TypeRef
    if isinstance(spec, StructSpec):
        ref = struct_ref(update_type)
    elif isinstance(spec, UnionSpec):
        ref = union_ref(update_type)
    else:
        raise TypeError(f"update_type must be bytes or a generated rpcx struct or union, "
                        f"got {update_type!r}")
    codec = rpcx.CborCodec()
    return (lambda value: codec.encode(ref, value)), (lambda data: codec.decode(ref, data))


@attrs.define(eq=False)
class _Waiter:
    done: trio.Event = attrs.Factory(trio.Event)
    result: outcome.Outcome[Any] | None = None


class Replica(Generic[U, R]):
    """This member's copy of a replicated object. Made by :func:`open_replica`."""

    def __init__(self, group: Group, machine: StateMachine[U, R],
                 encode: Callable[[U], bytes], decode: Callable[[bytes], U],
                 state: _MachineState | None = None) -> None:
        self.group = group
        self.machine = machine
        """The local copy. Read it freely; change it only through :meth:`update`."""
        self._state = state or _MachineState(machine)
        self._encode = encode
        self._decode = decode
        self._waiters: dict[int, _Waiter] = {}
        self._early: dict[int, outcome.Outcome[Any]] = {}
        self._progress = trio.Event()

    async def update(self, update: U) -> R:
        """Broadcast ``update``; return what ``apply`` returned once this replica applied
        it (or raise what ``apply`` raised). Other replicas apply it on their own
        delivery, so a read at another replica may not see it yet."""
        payload = self._encode(update)
        seq = await self.group.broadcast(payload)
        result = self._early.pop(seq, None)
        if result is None:
            waiter = self._waiters[seq] = _Waiter()
            try:
                await waiter.done.wait()
            finally:
                self._waiters.pop(seq, None)
            result = waiter.result
            assert result is not None
        value: R = result.unwrap()
        return value

    @property
    def applied(self) -> int:
        """How many updates (everyone's) this replica has applied (a restored snapshot
        counts the updates it includes)."""
        return self._state.count

    async def wait_applied(self, count: int) -> None:
        """Wait until this replica has applied at least ``count`` updates."""
        while self.applied < count:
            await self._progress.wait()

    async def _apply_deliveries(self) -> None:
        me = self.group.me
        deliveries = self.group.deliveries
        while True:
            # What is queued is applied in one turn (no scheduling point per delivery),
            # so the callers answered by one commit are woken together.
            try:
                delivery = deliveries.receive_nowait()
            except trio.WouldBlock:
                try:
                    delivery = await deliveries.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return
            try:
                update = self._decode(delivery.payload)
            except rpcx.CodecError as exc:
                # The same bytes fail the same way at every replica (same schema).
                logger.error("%s: update %s:%d does not decode: %s", me, delivery.origin,
                             delivery.seq, exc)
                result: outcome.Outcome[Any] = outcome.Error(exc)
            else:
                result = outcome.capture(self.machine.apply, update)
            self._state.count += 1
            if delivery.origin == me:
                waiter = self._waiters.get(delivery.seq)
                if waiter is not None:
                    waiter.result = result
                    waiter.done.set()
                else:
                    # Delivered before ``update`` got its seq back (self-delivery is
                    # immediate under FIFO and causal order): keep it for a moment.
                    self._early[delivery.seq] = result
                    while len(self._early) > _EARLY_CAP:
                        del self._early[next(iter(self._early))]
            self._progress.set()
            self._progress = trio.Event()


@asynccontextmanager
async def open_replica(me: str, members: Mapping[str, str], machine: StateMachine[U, R],
                       update_type: type[U], order: str = FIFO_TOTAL, *,
                       commutative: bool | None = None,
                       **group_options: Any) -> AsyncIterator[Replica[U, R]]:
    """Join the group ``members`` as ``me`` (see :func:`rpcx_broadcast.open_group`; extra
    keyword arguments go to it) and replicate ``machine`` with updates of
    ``update_type`` (``bytes``, or a generated rpcx struct or union, sent as CBOR).

With ``order=RAFT`` (pass ``storage=FileStorage(directory)`` to survive a crash) the
replica keeps working while any minority of members is down, leader included; an
``update`` started during a failover waits and completes through the new leader. A
replica restarted from its storage rebuilds ``machine``: start it from the same initial
state as at the first start; it is restored from the latest snapshot (if ``machine`` has
``snapshot``/``restore``, see the module's docs) and every later update is applied again,
in order. ``snapshot_every`` (updates between snapshots, default 10,000) goes to the
group; ``join=`` and ``listen=`` add a replica to a running group (it starts from the
leader's snapshot or log).

    ``commutative`` declares whether updates commute; ``None`` reads the
    :func:`commutative` mark of ``update_type``. Warns :class:`ReplicationWarning` if
    ``order`` needs commuting updates and they are not declared so.
    """
    if order not in REQUIREMENTS:
        raise ValueError(f"unknown order {order!r}; known: {sorted(REQUIREMENTS)}")
    needs = REQUIREMENTS[order]
    declared = is_commutative(update_type) if commutative is None else commutative
    if needs is not None and not declared:
        warnings.warn(
            f"order {order!r} needs {needs}, but {update_type.__name__} is not declared "
            f"commutative: replicas may diverge. Use a total order (fifo_total), or "
            f"declare it with rpcx_broadcast.commutative({update_type.__name__}) or "
            f"commutative=True once it is true.", ReplicationWarning, stacklevel=3)
    encode, decode = _codec_for(update_type)
    state = _MachineState(machine)
    if order == RAFT:
        if _can_snapshot(machine):
            group_options["state"] = state
        elif group_options.get("snapshot_every") is not None:
            raise TypeError(f"snapshot_every needs a state machine with snapshot() and "
                            f"restore(); {type(machine).__name__} has not both")
        else:
            group_options["snapshot_every"] = None
    async with open_group(me, members, order, **group_options) as group:
        replica: Replica[U, R] = Replica(group, machine, encode, decode, state)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(replica._apply_deliveries)
            try:
                yield replica
            finally:
                nursery.cancel_scope.cancel()
