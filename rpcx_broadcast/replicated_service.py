"""Replicated services: an ordinary rpcx service, served by 3 (or 5) replicas, called
through its generated client like any other service (docs/replication.md).

```python
async with serve_replicated("a", {"a": "tcp://10.0.0.1:7000", "b": ..., "c": ...},
                            KvStore(), storage=FileStorage("/var/lib/kv")) as replica:
    await trio.sleep_forever()

# a client, anywhere:
async with rpcx.open_channel(["tcp://10.0.0.1:7000", "tcp://10.0.0.2:7000", ...]) as ch:
    store = KvStoreClient(ch)
    await store.put("x", b"1")        # applied exactly once, at every replica
    await store.get("x")              # @readonly: linearizable
```

Each replica runs a member of a ``raft`` group (FIFO-total order by consensus, surviving
the crash of any minority) and serves the service on the member's own address, beside the
group's traffic. What a call does depends on its method:

- **A write** (a method without ``@readonly``) becomes a command of the replicated log:
  the method, its CBOR-encoded arguments, the caller's idempotency key and the proposing
  replica's clock. Every replica runs it, in log order, on its own copy of the service;
  the replica that took the call answers with the outcome its copy produced. The handler
  is a step of a state machine: it must be deterministic and must not wait (no I/O, no
  sleep; a handler that awaits something that suspends is stopped with ``INTERNAL``).
- **Exactly once**: an outcome of a call with an idempotency key (every non-idempotent
  call has one) is kept in a replicated results table, keyed by method and key. A command
  whose key is in the table is not run again: it gets the kept outcome, at whichever
  replica the retry arrived, even after the replica that took the first attempt died. The
  table keeps an outcome for ``dedup_window`` seconds (default 300, measured by the
  proposers' clocks carried in the log) and at most ``max_outcomes`` of them (oldest
  dropped first).
- **A read** (``@readonly``) does not go through the log. The replica first passes a
  linearizable read barrier (Raft's ReadIndex: the leader confirms its leadership with a
  quorum and names its commit index; this replica waits until it has applied it), then
  runs the handler on its own copy. A call that sends the metadata
  ``rpcx-max-staleness: <seconds>`` (:func:`stale_reads`) accepts a state that many
  seconds old: a replica that can vouch for that (``Group.staleness()``) answers from its
  copy at once; one that cannot takes the barrier.
- **Divergence**: every ``digest_every`` calls each replica puts the digest of the outcomes
  it produced into the log; every replica compares them with its own, and a difference is
  logged as an error and counted in :attr:`ReplicatedService.divergences`.

A service with ``snapshot() -> bytes`` and ``restore(data: bytes) -> None`` is
snapshotted every ``snapshot_every`` log entries (the results table goes with it), so the
log stays bounded; without them the whole log is kept.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import cbor2
import trio

import rpcx
from rpcx.runtime.dispatch import (
    Dispatcher,
    Failure,
    Reply,
    Success,
    service_spec,
    unpack_reply,
)
from rpcx.runtime.interceptors import ServerInterceptor
from rpcx.schema import MethodSpec, ServiceSpec, struct_ref, union_ref
from rpcx.status import Status
from rpcx.text import quote
from rpcx_broadcast._generated import replicated_rpcx as idl
from rpcx_broadcast.core.storage import Storage
from rpcx_broadcast.replicated import Replica, open_replica
from rpcx_broadcast.runtime.group import RAFT, Group
from rpcx_broadcast.runtime.node import NotAMember

__all__ = ["MAX_STALENESS", "Divergence", "ReplicatedService", "ReplicatedStatistics",
           "serve_replicated", "stale_reads"]

logger = logging.getLogger("rpcx_broadcast.replicated_service")

MAX_STALENESS: Final = "rpcx-max-staleness"
"""Metadata key of a read that accepts a stale answer: the seconds of staleness it takes."""

_CODEC: Final = rpcx.CborCodec()
_command_ref = union_ref(idl.ServiceCommand)
_state_ref = struct_ref(idl.ServiceState)
_KEEP_CHECKPOINTS: Final = 64
_CALL_FIELDS: Final = frozenset((1, 2, 3, 4))
_SUCCESS_WORDS: Final = b"0:None::"
"""What ``_count`` puts before a success's payload (status, no error name, no message)."""


def _encode_call(path: str, args: bytes, key: bytes | None, when: float) -> bytes:
    """``ServiceCommand(call=ServiceCall(path, args, key, when))`` in CBOR, written straight
    (a map of field numbers, ``key`` left out when absent: what the codec reads back as
    that command) instead of through the generated classes: it runs for every write."""
    call: dict[int, str | bytes | float] = {1: path, 2: args, 4: when}
    if key is not None:
        call[3] = key
    return cbor2.dumps({1: call})


def _decode_call(data: bytes) -> tuple[str, bytes, bytes | None, float] | None:
    """A call command's ``(method, args, key, time)`` read straight from its CBOR, for
    the common case: ``None`` for anything else (a digest, or bytes this does not
    recognise), which then goes through the codec as before. It accepts only what the
    codec reads as the same call, so every replica decides the same way."""
    try:
        raw = cbor2.loads(data)
    except Exception:  # any failure: let the codec decide (and explain)
        return None
    if type(raw) is not dict or len(raw) != 1:
        return None
    call = raw.get(1)
    if type(call) is not dict or not call.keys() <= _CALL_FIELDS:
        return None
    method, args, key, when = call.get(1), call.get(2, b""), call.get(3), call.get(4, 0.0)
    if (type(method) is not str or type(args) is not bytes or type(when) is not float
            or (key is not None and type(key) is not bytes)):
        return None
    return method, args, key, when


def stale_reads(seconds: float) -> dict[str, str]:
    """Metadata for a ``@readonly`` call that accepts an answer up to ``seconds`` old:
    ``await store.get("x", metadata=stale_reads(0.5))``. Any replica that has heard from
    the leader within that time answers from its own copy, without a round trip."""
    if not seconds >= 0 or not math.isfinite(seconds):
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    return {MAX_STALENESS: repr(float(seconds))}


@attrs.frozen
class Divergence:
    """Replica ``replica`` reported a digest of its first ``calls`` outcomes that differs
    from this replica's: one of the two ran a handler that is not deterministic."""

    replica: str
    calls: int


@attrs.frozen
class ReplicatedStatistics:
    calls_applied: int
    """Commands of calls this replica has applied (everyone's)."""
    replayed: int
    """Commands answered from the results table instead of running (retries)."""
    outcomes_kept: int
    reads: int
    """``@readonly`` calls this replica served after a read barrier."""
    stale_reads: int
    """``@readonly`` calls it served from its copy under ``rpcx-max-staleness``."""
    divergences: int


def _run_now(coro: Coroutine[Any, Any, Reply], path: str) -> Reply:
    """Run a dispatch to completion without an event loop: a replicated handler is a
    state-machine step and must not wait."""
    try:
        coro.send(None)
    except StopIteration as stop:
        reply: Reply = stop.value
        return reply
    coro.close()
    logger.error("handler for %s waited for something (I/O, a sleep): a replicated "
                 "handler must run without waiting; answered INTERNAL", path)
    return Failure(Status.INTERNAL, f"internal error in {path}: the handler waited")


def _outcome_of(reply: Reply) -> idl.CallOutcome:
    if isinstance(reply, Success):
        return idl.CallOutcome(status=0, payload=reply.payload)
    details = cbor2.dumps(dict(reply.details)) if reply.details else None
    return idl.CallOutcome(status=int(reply.status), payload=reply.error_payload or b"",
                           error_name=reply.error_name, message=reply.message,
                           details=details)


def _reply_of(outcome: idl.CallOutcome) -> Reply:
    if outcome.status == 0:
        return Success(outcome.payload)
    details: dict[str, Any] = {}
    if outcome.details:
        try:
            loaded = cbor2.loads(outcome.details)
        except (cbor2.CBORDecodeError, ValueError):
            loaded = None
        details = loaded if isinstance(loaded, dict) else {}
    return Failure(Status(outcome.status), outcome.message, details,
                   error_name=outcome.error_name,
                   error_payload=outcome.payload if outcome.error_name else None)


class _ServiceMachine:
    """The replicated state machine: the user's service plus the results table and the
    outcome digest. ``apply`` is called in log order at every replica."""

    def __init__(self, me: str, service: object, dispatcher: Dispatcher, *,
                 window: float, max_outcomes: int, digest_every: int) -> None:
        self.me = me
        self.service = service
        self._dispatcher = dispatcher
        self._window = window
        self._max_outcomes = max_outcomes
        self._digest_every = digest_every
        self.outcomes: OrderedDict[tuple[str, bytes], idl.KeptOutcome] = OrderedDict()
        self.newest = 0.0
        self.calls = 0
        self.digest = b""
        self.replayed = 0
        self.checkpoints: OrderedDict[int, bytes] = OrderedDict()
        self.divergences: list[Divergence] = []
        self.to_announce: list[idl.OutcomeDigest] = []
        self.announce = trio.Event()

    def apply(self, data: bytes) -> idl.CallOutcome | None:
        fast = _decode_call(data)
        if fast is not None:
            method, args, key, when = fast
        else:
            try:
                command = _CODEC.decode(_command_ref, data)
            except rpcx.CodecError as error:  # the same at every replica
                logger.error("%s: a log entry is not a service command: %s", self.me,
                             error)
                return None
            if command.digest is not None:
                self._compare(command.digest)
                return None
            call = command.call
            assert call is not None
            method, args, key, when = call.method, call.args, call.key, call.time
        if when > self.newest:
            self.newest = when
        entry = (method, key) if key is not None else None
        if entry is not None:
            kept = self.outcomes.get(entry)
            if kept is not None:
                self.replayed += 1
                return kept.outcome
        outcome = _outcome_of(_run_now(
            self._dispatcher.dispatch(method, args, _CODEC, idempotency_key=key), method))
        self._count(outcome)
        if entry is not None:
            self.outcomes[entry] = idl.KeptOutcome(method=method, key=entry[1], time=when,
                                                   outcome=outcome)
        self._expire()
        return outcome

    def _count(self, outcome: idl.CallOutcome) -> None:
        # A CRC chain over what the caller sees: detects an accidental divergence (a
        # handler that is not deterministic), at C speed on every call; not a defence
        # against a replica that lies.
        crc = int.from_bytes(self.digest or b"\0\0\0\0", "big")
        if outcome.status == 0 and outcome.error_name is None and not outcome.message:
            words = _SUCCESS_WORDS  # (the same bytes as below, without formatting them)
        else:
            words = f"{outcome.status}:{outcome.error_name}:{outcome.message}:".encode()
        crc = zlib.crc32(outcome.payload, zlib.crc32(words, crc))
        self.digest = crc.to_bytes(4, "big")
        self.calls += 1
        if self.calls % self._digest_every == 0:
            self.checkpoints[self.calls] = self.digest
            while len(self.checkpoints) > _KEEP_CHECKPOINTS:
                self.checkpoints.popitem(last=False)
            self.to_announce.append(idl.OutcomeDigest(replica=self.me, count=self.calls,
                                                      digest=self.digest))
            self.announce.set()

    def _expire(self) -> None:
        outcomes, oldest = self.outcomes, self.newest - self._window
        while outcomes:
            first = next(iter(outcomes.values()))
            if first.time >= oldest and len(outcomes) <= self._max_outcomes:
                break
            outcomes.popitem(last=False)

    def _compare(self, digest: idl.OutcomeDigest) -> None:
        mine = self.checkpoints.get(digest.count)
        if mine is None or mine == digest.digest or digest.replica == self.me:
            return
        divergence = Divergence(digest.replica, digest.count)
        self.divergences.append(divergence)
        logger.error("%s: replica %s produced different outcomes than this replica in its "
                     "first %d calls: a handler of the replicated service is not "
                     "deterministic (or a replica's state was changed outside the log)",
                     self.me, digest.replica, digest.count)

    # -- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> bytes:
        service = self.service.snapshot()  # type: ignore[attr-defined]
        if not isinstance(service, bytes):
            raise TypeError(f"{type(self.service).__name__}.snapshot() must return bytes, "
                            f"got {type(service).__name__}")
        return _CODEC.encode(_state_ref, idl.ServiceState(
            service=service, outcomes=list(self.outcomes.values()), calls=self.calls,
            digest=self.digest, newest=self.newest))

    def restore(self, data: bytes) -> None:
        state = _CODEC.decode(_state_ref, data)
        self.service.restore(state.service)  # type: ignore[attr-defined]
        self.outcomes = OrderedDict(((k.method, k.key), k) for k in state.outcomes)
        self.calls, self.digest, self.newest = state.calls, state.digest, state.newest
        self.checkpoints.clear()


class ReplicatedService:
    """This replica of a replicated service. Made by :func:`serve_replicated`."""

    def __init__(self, spec: ServiceSpec, service: object, machine: _ServiceMachine,
                 front: object) -> None:
        self.spec = spec
        self.service = service
        """The local copy. Read it freely; change it only through calls."""
        self.front = front
        """The service as this replica serves it (writes through the log, reads after
        a barrier): pass it to :func:`rpcx.serve_http` for an HTTP face."""
        self._machine = machine
        self._replica: Replica[bytes, idl.CallOutcome | None] | None = None
        self._ready = trio.Event()
        self._reads = 0
        self._stale_reads = 0

    @property
    def group(self) -> Group:
        assert self._replica is not None, "not running"
        return self._replica.group

    @property
    def is_leader(self) -> bool:
        return self._replica is not None and self.group.coordinator == self.group.me

    @property
    def divergences(self) -> list[Divergence]:
        """Replicas whose outcome digests differed from this replica's."""
        return list(self._machine.divergences)

    def statistics(self) -> ReplicatedStatistics:
        machine = self._machine
        return ReplicatedStatistics(
            calls_applied=machine.calls, replayed=machine.replayed,
            outcomes_kept=len(machine.outcomes), reads=self._reads,
            stale_reads=self._stale_reads, divergences=len(machine.divergences))

    def status(self) -> idl.ReplicaStatus:
        """What the ``Replication`` service answers for this replica."""
        machine, group = self._machine, self.group
        staleness = group.staleness()
        return idl.ReplicaStatus(
            name=group.me, leader=group.coordinator or "", members=list(group.members),
            applied=self._replica.applied if self._replica is not None else 0,
            calls=machine.calls, replayed=machine.replayed,
            divergent=sorted({d.replica for d in machine.divergences}),
            staleness=staleness if math.isfinite(staleness) else None)

    async def wait_applied(self, count: int) -> None:
        """Until this replica has applied ``count`` deliveries of the group's order."""
        await (await self._started()).wait_applied(count)

    async def _started(self) -> Replica[bytes, idl.CallOutcome | None]:
        """The group's replica, once it runs (a call may arrive while it starts)."""
        await self._ready.wait()
        assert self._replica is not None
        return self._replica

    async def _write(self, method: MethodSpec, args: tuple[Any, ...]) -> Any:
        replica = await self._started()
        key = rpcx.current_idempotency_key() if not method.idempotent else None
        command = _encode_call(method.path, _CODEC.encode(method.params, args), key,
                               time.time())
        try:
            outcome = await replica.update(command)
        except NotAMember as error:
            raise rpcx.Unavailable(str(error)) from None
        if outcome is None:
            raise rpcx.RpcError(Status.INTERNAL, f"internal error in {method.path}")
        return unpack_reply(method, _reply_of(outcome), _CODEC)

    async def _read(self, method: MethodSpec, handler: Any, args: tuple[Any, ...]) -> Any:
        replica = await self._started()
        allowed = rpcx.incoming_metadata().get(MAX_STALENESS)
        bound = _seconds(allowed) if allowed is not None else None
        if bound is not None and replica.group.staleness() <= bound:
            self._stale_reads += 1
        else:
            try:
                count = await replica.group.read_barrier()
            except NotAMember as error:
                raise rpcx.Unavailable(str(error)) from None
            await replica.wait_applied(count)
            self._reads += 1
        return await handler(*args)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0 or not math.isfinite(value):
        raise rpcx.RpcError(Status.INVALID_ARGUMENT,
                            f"metadata {MAX_STALENESS} must be a number of seconds >= 0, "
                            f"got {quote(text, 40)}")
    return value


def _front(spec: ServiceSpec, service: object, replicated: list[ReplicatedService]) -> object:
    """An object the rpcx server dispatches to: each method goes through the log (writes)
    or the read barrier (``@readonly``) of the replica in ``replicated``."""
    front = type(f"Replicated{type(service).__name__}", (), {"__rpcx_spec__": spec})()

    for method in spec.methods:
        if method.oneway:
            raise TypeError(f"{method.path} is oneway: a replicated service answers every "
                            f"call with its outcome, so it cannot have oneway methods")
        if method.readonly:
            local = getattr(service, method.py_name)

            async def read(*args: Any, _m: MethodSpec = method, _h: Any = local) -> Any:
                return await replicated[0]._read(_m, _h, args)

            setattr(front, method.py_name, read)
        else:
            async def write(*args: Any, _m: MethodSpec = method) -> Any:
                return await replicated[0]._write(_m, args)

            setattr(front, method.py_name, write)
    return front


class _Replication(idl.ReplicationService):
    def __init__(self, replicated: ReplicatedService) -> None:
        self.replicated = replicated

    async def status(self) -> idl.ReplicaStatus:
        await self.replicated._started()
        return self.replicated.status()


@asynccontextmanager
async def serve_replicated(me: str, members: Mapping[str, str], service: object, *,
                           storage: Storage | None = None, election_timeout: float = 1.0,
                           dedup_window: float = 300.0, max_outcomes: int = 100_000,
                           digest_every: int = 1000, snapshot_every: int | None = 10_000,
                           interceptors: Sequence[ServerInterceptor] = (),
                           server_options: Mapping[str, Any] | None = None,
                           **group_options: Any) -> AsyncIterator[ReplicatedService]:
    """Serve ``service`` (an implementation of a generated service base class) as replica
    ``me`` of ``members`` (name → rpcx address; the service is served on ``members[me]``,
    beside the replicas' own traffic). Clients call it through the generated client on
    :func:`rpcx.open_channel` given every replica's address.

    ``storage`` (``rpcx_broadcast.FileStorage(directory)`` to survive a crash; default in
    memory), ``election_timeout`` (seconds; failover takes about 1.2-2 of it),
    ``dedup_window`` (seconds an outcome of a keyed call is kept), ``max_outcomes``
    (outcomes kept at most), ``digest_every`` (calls between outcome digests),
    ``snapshot_every`` (log entries between snapshots, if the service has ``snapshot`` and
    ``restore``), ``interceptors`` and ``server_options`` (for the replica's rpcx server);
    every replica also serves the ``Replication`` service (``status()``: which replica
    leads, how far this one has got; :class:`rpcx_broadcast.ReplicationClient`); other
    keyword arguments go to :func:`rpcx_broadcast.open_group` (``join=``,
    ``listen=``, ``raft_options=``, ``transport=``, ...).
    """
    if not dedup_window > 0:
        raise ValueError(f"dedup_window must be positive, got {dedup_window!r}")
    if max_outcomes < 1 or digest_every < 1:
        raise ValueError("max_outcomes and digest_every must be at least 1")
    spec = service_spec(service)
    dispatcher = Dispatcher([service])
    machine = _ServiceMachine(me, service, dispatcher, window=dedup_window,
                              max_outcomes=max_outcomes, digest_every=digest_every)
    holder: list[ReplicatedService] = []
    front = _front(spec, service, holder)
    replicated = ReplicatedService(spec, service, machine, front)
    holder.append(replicated)
    can_snapshot = callable(getattr(service, "snapshot", None)) \
        and callable(getattr(service, "restore", None))
    # The replicated results table de-duplicates by key at every replica; the server's
    # own cache would only hold a second copy of every reply.
    options = {"deduplicate": False, **(server_options or {})}
    if interceptors:
        options["interceptors"] = interceptors
    async with open_replica(me, members, machine, bytes, RAFT, storage=storage,
                            election_timeout=election_timeout,
                            snapshot_every=snapshot_every if can_snapshot else None,
                            services=[front, _Replication(replicated)],
                            server_options=options,
                            **group_options) as replica:
        replicated._replica = replica
        replicated._ready.set()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_announce_digests, replica, machine)
            try:
                yield replicated
            finally:
                nursery.cancel_scope.cancel()


async def _announce_digests(replica: Replica[bytes, idl.CallOutcome | None],
                            machine: _ServiceMachine) -> None:
    """Put this replica's outcome digests into the log (not from ``apply``: a broadcast
    there would wait for the very deliveries it holds up)."""
    while True:
        await machine.announce.wait()
        machine.announce = trio.Event()
        pending, machine.to_announce = machine.to_announce, []
        for digest in pending[-4:]:
            command = idl.ServiceCommand(digest=digest)
            try:
                await replica.update(_CODEC.encode(_command_ref, command))
            except NotAMember:
                return
