"""The trio adapter of the Raft core, and the ``raft`` order built on it (``open_group``).

A :class:`RaftMember` owns, inside one nursery:

- an rpcx server for the ``rpcx_broadcast_raft.Raft`` service (``idl/raft.rpcx``): its
  oneway ``push`` handler queues ``(sender, messages)`` for the loop (and waits while the
  loop's inbox is full: backpressure reaches the sender's TCP connection);
- one sender task per peer, draining that peer's bounded queue into batched oneway
  ``push`` calls on an rpcx ``Channel`` (a full queue drops the message: Raft resends);
- **the loop**, the only code that touches the ``RaftNode``. Each turn it takes every
  queued input (peer messages → ``node.step``; proposals forwarded by followers →
  ``node.propose`` when leading; local broadcasts), ticks the node when the tick is due,
  then drains Readies under the contract of ``docs/consensus.md``: send what may go
  first (a leader's Appends), **persist** (in a worker thread when the storage is not in
  memory: FileStorage syncs), **then send** the rest, then apply the committed entries,
  then ``advance``.

Timing comes from one budget, ``election_timeout`` (seconds, default 1.0): the tick is
``election_timeout / election_ticks`` (100 ms with the default 10 ticks), a heartbeat goes
out every tick, and a follower that hears no leader for a random ``[1, 2) x
election_timeout`` campaigns. After a leader crash the first follower times out 1-2 s
after the last heartbeat (about 1.33 s expected with 3 members, 1.2 s with 5), so the
next delivery follows about 1.2-2.1 s after the crash (``bench/RESULTS.md`` has figures).

**The order** (``RAFT = "raft"``: FIFO-total by consensus). Each log entry carries a
``Command(origin, session, seq, payload)``. Every member applies the committed log with
the same deterministic rule: per origin it keeps ``(session, next)`` and delivers an entry
only if it belongs to the origin's current session and ``seq == next``; anything else (a
proposal retried across a leader change and appended twice, a gap after a lost push, an
older incarnation's late entry) is skipped at every member alike. So each member's
broadcasts are delivered once, in their order, at the same log position everywhere.

A member starts a *session* each time it opens (``time.time_ns()``, or one past the
current one if that is not newer): its first proposal is the session's opening marker,
and it admits broadcasts only once the marker is applied, numbering them from the
origin's ``next`` at that point. A member restarted from its storage therefore continues
its predecessor's numbering, and entries of the old incarnation that commit later are
skipped instead of colliding with new ones.

Flow control: at most ``max_pending`` of this member's broadcasts are admitted but not yet
delivered here; ``broadcast()`` waits beyond that (and while there is no leader, and before
the session has started). Pending broadcasts are sent to the leader (or proposed, when
this member leads), and sent again when the leader or term changes or when nothing of
them was delivered for one election timeout. The leader refuses proposals while more than
``max_uncommitted`` entries are uncommitted.
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar, cast

import attrs
import trio

import rpcx
from rpcx_broadcast._generated import raft_rpcx as idl
from rpcx_broadcast.core.actions import Send
from rpcx_broadcast.core.layer import ProtocolViolation
from rpcx_broadcast.core.membership import View
from rpcx_broadcast.core.raft import (
    ConfigChangeRefused,
    NotLeader,
    RaftError,
    RaftNode,
    RaftOptions,
    ReadIndexUnavailable,
    Role,
)
from rpcx_broadcast.core.raft_messages import (
    ConfigChange,
    ConfigOp,
    Entry,
    EntryKind,
    HeartbeatReply,
    InstallSnapshot,
    RaftMessage,
    Snapshot,
)
from rpcx_broadcast.core.storage import MemoryStorage, Storage
from rpcx_broadcast.runtime.node import (
    BroadcastRequest,
    Delivery,
    GroupStatistics,
    JoinError,
    Journal,
    NotAMember,
    submit,
)
from rpcx_broadcast.runtime.raft_wire import (
    decode_command,
    decode_group_snapshot,
    encode_command,
    encode_group_snapshot,
    from_wire,
    to_wire,
)

__all__ = ["RAFT", "RaftMember", "Snapshottable"]

logger = logging.getLogger("rpcx_broadcast.raft")

RAFT: Literal["raft"] = "raft"
"""FIFO-total order by consensus (Raft): survives the crash of any minority."""


@attrs.define(eq=False)
class _Transfer:
    """Hand leadership to the most up-to-date voter (before a graceful leave)."""


@attrs.define(eq=False)
class _Run:
    """Leader: one member's consecutive broadcasts ``first``, ``first + 1``, ... taken in
    one loop turn, and their size in bytes: one log entry."""

    first: int
    payloads: list[bytes]
    size: int


@attrs.define(eq=False)
class _JoinRequest:
    name: str
    address: str
    done: trio.Event = attrs.Factory(trio.Event)
    reply: idl.JoinReply | None = None


@attrs.define(eq=False)
class _ReadRequest:
    """A ReadIndex asked of this member (the loop answers it when leading)."""

    done: trio.Event = attrs.Factory(trio.Event)
    index: int | None = None
    error: str = ""


_Input = (tuple[str, list[idl.RaftMsg]] | BroadcastRequest | _Transfer | _JoinRequest
          | _ReadRequest)


class Snapshottable(Protocol):
    """The application's side of the raft order's snapshots (``open_group(state=...)``;
    ``open_replica`` makes one from a state machine with ``snapshot``/``restore``).

    The member takes a snapshot every ``snapshot_every`` log entries: it waits until
    ``applied()`` equals the number of messages it has delivered, then stores
    ``snapshot()`` with its own state and drops the log before that point. ``restore`` is
    called with a snapshot's data (``None``: a snapshot taken without an application
    state) and the number of deliveries it includes: at start-up from the storage, and
    when the member catches up from the leader's snapshot instead of the log (the
    deliveries the snapshot covers are then not delivered here)."""

    def applied(self) -> int:
        """How many deliveries (``Delivery.index`` 0 ... n-1) the state includes."""
        ...

    def snapshot(self) -> bytes:
        """The state after ``applied()`` deliveries."""
        ...

    def restore(self, data: bytes | None, delivered: int) -> None:
        """Replace the state with ``data``, the state after ``delivered`` deliveries."""
        ...


_T = TypeVar("_T")


async def _send_when_full(channel: trio.MemorySendChannel[_T], item: _T) -> None:
    """Queue ``item``, reaching a scheduling point only if the channel is full (then
    waiting for room, as ``send`` does): items queued one after another in one turn stay
    in that turn."""
    try:
        channel.send_nowait(item)
    except trio.WouldBlock:
        await channel.send(item)


SECRET_METADATA = "rpcx-group-secret"
"""Metadata key under which members send the group's ``secret`` with their calls."""


class _Handler(idl.RaftService):
    def __init__(self, member: RaftMember) -> None:
        self._member = member
        self._secret = member._secret.encode() if member._secret is not None else None

    def _check(self) -> None:
        """With a group secret, only callers that send it may speak for a member: anyone
        else who can reach the address could forge votes and log entries."""
        if self._secret is None:
            return
        given = rpcx.incoming_metadata().get(SECRET_METADATA, "").encode()
        if not hmac.compare_digest(given, self._secret):
            raise rpcx.RpcError(rpcx.Status.PERMISSION_DENIED,
                                "this is a member's method: the group's secret is missing "
                                f"or wrong (metadata {SECRET_METADATA})")

    async def push(self, sender: str, msgs: list[idl.RaftMsg]) -> None:
        self._check()
        await self._queue((sender, msgs))

    async def deliver(self, sender: str, msgs: list[idl.RaftMsg]) -> None:
        self._check()
        await self._queue((sender, msgs))

    async def _queue(self, item: _Input) -> None:
        # Without waiting while the inbox has room: a handler that never waits is
        # answered by the connection's reader itself, with the other answers of the same
        # read, instead of in a task of its own. A full inbox makes the caller wait
        # (backpressure: one deliver in flight per peer).
        await _send_when_full(self._member._inbox_send, item)

    async def join(self, name: str, address: str) -> idl.JoinReply:
        self._check()
        request = _JoinRequest(name, address)
        await self._member._inbox_send.send(request)
        await request.done.wait()
        assert request.reply is not None
        return request.reply

    async def read_index(self) -> int:
        self._check()
        return await self._member._leader_read_index()


class RaftMember:
    """One member of a ``raft`` group. Use :func:`rpcx_broadcast.open_group` with
    ``order=RAFT``.

    ``members`` maps every member's name to its rpcx address; the first start (empty
    ``storage``) makes them the voters; a restart from ``storage`` takes the configuration
    from there. ``storage`` (default: a fresh ``MemoryStorage``) keeps term, vote and log;
    pass a ``FileStorage`` to survive a crash of the process.
    """

    def __init__(self, me: str, members: Mapping[str, str] | None, *,
                 join: str | None = None, storage: Storage | None = None,
                 election_timeout: float = 1.0, options: RaftOptions | None = None,
                 transport: rpcx.Transport | None = None, listen: str | None = None,
                 max_pending: int = 256, max_uncommitted: int | None = None,
                 delivery_buffer: int = 1024, send_buffer: int = 4096, max_batch: int = 256,
                 journal: Journal | None = None, rng: random.Random | None = None,
                 snapshot_every: int | None = 10_000, snapshot_bytes: int = 64 << 20,
                 state: Snapshottable | None = None, remove_on_leave: bool = False,
                 remove_after: float | None = None, join_timeout: float = 10.0,
                 services: Sequence[object] = (),
                 server_options: Mapping[str, Any] | None = None,
                 secret: str | None = None) -> None:
        if (members is None) == (join is None):
            raise ValueError("pass either members (an initial member) or join= (a contact "
                             "address of a running group), not both")
        if members is not None and me not in members:
            raise ValueError(f"{me!r} is not one of the members {sorted(members)!r}")
        if join is not None and listen is None:
            raise ValueError("a joiner needs listen= (its own address, told to the others)")
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError(f"snapshot_every must be >= 1 (or None), got {snapshot_every!r}")
        if snapshot_bytes < 1:
            raise ValueError(f"snapshot_bytes must be >= 1, got {snapshot_bytes!r}")
        if remove_after is not None and not remove_after > 0:
            raise ValueError(f"remove_after must be a positive number of seconds (or None), "
                             f"got {remove_after!r}")
        if not election_timeout > 0 or not math.isfinite(election_timeout):
            raise ValueError(f"election_timeout must be a positive number of seconds, got "
                             f"{election_timeout!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending!r}")
        self.me = me
        self.order: str = RAFT
        self.addresses = dict(members or {})
        # the replicated address book (initial members, then joiners' address entries)
        self._book = dict(self.addresses)
        self._listen = listen or self.addresses[me]
        self._contact = join
        self._join_timeout = join_timeout
        self._joined_at = -math.inf
        self._transport = transport
        self._state = state
        self._snapshot_every = snapshot_every
        self._snapshot_bytes = snapshot_bytes
        self._bytes_since_snapshot = 0
        self._remove_on_leave = remove_on_leave
        self._remove_after = remove_after
        self._leaving = False
        self._removed = False
        self._was_member = members is not None
        self._told: set[str] = set()
        # leader side: joiners waiting for their configuration entry, leave requests
        self._joins: dict[str, str] = {}
        self._leaves: set[str] = set()
        self._lead_since = (-1, 0.0)
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self._thread_persist = not isinstance(self.storage, MemoryStorage)
        self.options = options or RaftOptions()
        self.election_timeout = election_timeout
        self.tick_interval = election_timeout / self.options.election_ticks
        # pending broadcasts none of which was delivered for this long are sent again
        self._retry_after = election_timeout
        recovered = self.storage.load()
        self._rng = rng or random.Random()
        self.node = RaftNode(me, self._rng, options=self.options,
                             recovered=recovered, voters=tuple(sorted(members or ())))
        self._max_pending = max_pending
        self._max_uncommitted = max_uncommitted or 4 * max_pending * max(len(self._book), 3)
        self._send_buffer = send_buffer
        self._max_batch = max_batch
        self._journal = journal
        # views: committed configurations, in log order (view 0: the first members; a
        # joiner learns them from the member that admits it)
        self._first_view: tuple[str, ...] = tuple(sorted(members or ()))
        self.views: list[View] = [View(0, self._first_view)]
        self.start = None
        # the order's replicated state: origin -> (session, next seq)
        self._origins: dict[str, tuple[int, int]] = {}
        self._index = 0
        self.snapshots_taken = 0
        self.snapshots_installed = 0
        # this incarnation's session and its window of undelivered broadcasts
        self._session = time.time_ns()
        self._started = False
        self._next_seq = 0
        self._window: dict[int, bytes] = {}
        self._waiting: collections.deque[BroadcastRequest] = collections.deque()
        self._target: tuple[int, str] | None = None
        self._sent_upto = -1
        self._marker_sent = False
        self._last_progress = 0.0
        # leader side: what this leader proposed in its term, per (origin, session)
        self._filter_term = -1
        self._proposed: dict[tuple[str, int], int] = {}
        self._markers: set[tuple[str, int]] = set()
        self._held: dict[tuple[str, int], dict[int, idl.Proposal]] = {}
        # leader: runs of consecutive broadcasts per (origin, session) accepted in this
        # loop turn, proposed as one log entry each at its end (``_propose_runs``)
        self._runs: dict[tuple[str, int], _Run] = {}
        self._max_run = 1024
        self._max_run_bytes = 256 << 10
        # leader: (log index, first ReadIndex request, term) and who confirmed it
        self._confirm: tuple[int, int, int] = (-1, 0, -1)
        self._confirmed: set[str] = set()
        self._heard: dict[str, float] = {}
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[_Input](64)
        self._deliver_send, self.deliveries = trio.open_memory_channel[Delivery](
            delivery_buffer)
        self._outboxes: dict[str, trio.MemorySendChannel[idl.RaftMsg]] = {}
        self._nursery: trio.Nursery | None = None
        self._progress = trio.Event()
        self._broadcasts = 0
        self._deliveries = 0
        self._own_delivered = 0
        self._stats = collections.Counter[str]()
        self.server: rpcx.Server | None = None
        self._services = tuple(services)
        self._secret = secret
        self._metadata = {SECRET_METADATA: secret} if secret is not None else None
        self._server_options = dict(server_options or {})
        # ReadIndex: requests the core has not answered yet, and ones waiting for an
        # entry of this leader's term to commit (ReadIndexUnavailable)
        self._reads: dict[int, _ReadRequest] = {}
        self._parked_reads: list[_ReadRequest] = []
        self._channels: dict[str, rpcx.Channel] = {}
        self._leader_link: tuple[str, bool] = ("", False)
        if recovered.snapshot is not None:
            self._restore(recovered.snapshot)

    # -- what Group uses -----------------------------------------------------------------

    @property
    def members(self) -> tuple[str, ...]:
        return self.views[-1].members

    @property
    def view(self) -> int:
        return self.views[-1].id

    @property
    def coordinator(self) -> str | None:
        """The leader this member knows of (``None`` while there is none)."""
        return self.node.leader or None

    async def broadcast(self, payload: bytes) -> int:
        """Wait for room in the window (and for this member's session to start); return
        the broadcast's seq. Delivery follows once the leader has committed it."""
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        if self._removed:
            raise NotAMember(f"{self.me} was removed from the group")
        return await submit(self._inbox_send, payload)

    async def wait_progress(self) -> None:
        await self._progress.wait()

    def settled(self) -> bool:
        """Nothing of this member's is in flight: its broadcasts are all delivered here
        (none waiting or pending) and so is everything it knows committed; and someone
        is responsible for the rest. At the leader: every other member holds the whole
        log and has confirmed it knows the commit index. Elsewhere: a leader is known.
        Members not heard from for two election timeouts (crashed, or gone) are not
        waited for, and with all of them silent a member is settled on its own."""
        node = self.node
        if (self._window or any(not r.abandoned for r in self._waiting)
                or not self._started or node.applied != node.commit):
            return False
        others = self._live_others()
        if not others:
            return True
        if node.role == Role.LEADER:
            return self._followers_caught_up(others)
        return node.leader != ""

    # -- reads ---------------------------------------------------------------------------

    async def read_barrier(self) -> int:
        """A linearizable read barrier (Raft's ReadIndex): returns a delivery count ``n``
        such that an application that has applied ``n`` deliveries reflects every
        broadcast delivered anywhere before this call started. The leader confirms its
        leadership with a quorum (one heartbeat round) and names its commit index; a
        follower asks the leader for it (``Raft.read_index``); either then waits until it
        has applied that index here. Waits through elections; bounded by the caller's
        deadline (cancel it to give up). Raises :class:`NotAMember` once removed."""
        while True:
            if self._removed:
                raise NotAMember(f"{self.me} was removed from the group")
            leader = self.node.leader
            channel = self._channels.get(leader)
            if not leader or (leader != self.me and channel is None):
                await self.wait_progress()  # no leader known yet: an election is on
                continue
            try:
                if leader == self.me:
                    index = await self._leader_read_index()
                else:
                    assert channel is not None
                    index = await idl.RaftClient(channel).read_index(
                        timeout=2 * self.election_timeout)
            except rpcx.RpcError as error:
                logger.debug("%s: read index from %s failed: %s", self.me, leader, error)
                await self.wait_progress()  # leadership moved or the leader is gone
                continue
            while self.node.applied < index:
                await self.wait_progress()
            return self._index

    def staleness(self) -> float:
        """Seconds by which this member's state may lag the group's, for reads that
        accept staleness: at a follower that has applied everything it knows committed,
        the time since it last heard from the leader (the leader's commit index travels
        in every heartbeat); at the leader, the time since a quorum last answered it.
        ``inf`` without a leader, or while catching up."""
        node = self.node
        now = trio.current_time()
        voters = node.config.voters
        if node.role == Role.LEADER:
            heard = sorted((self._heard.get(m, -math.inf) for m in voters if m != self.me),
                           reverse=True)
            need = node.config.quorum - (1 if self.me in voters else 0)
            if need <= 0:
                return 0.0  # a quorum of one: itself
            return now - heard[need - 1] if need <= len(heard) else math.inf
        if not node.leader or node.applied < node.commit:
            return math.inf
        return now - self._heard.get(node.leader, -math.inf)

    async def _leader_read_index(self) -> int:
        """ReadIndex at this member, which must lead: the commit index once a quorum has
        confirmed the leadership. ``rpcx.Unavailable`` if it does not lead."""
        request = _ReadRequest()
        await self._inbox_send.send(request)
        await request.done.wait()
        if request.index is None:
            leader = self.node.leader
            details = {"leader": self.addresses[leader]} if leader in self.addresses else {}
            raise rpcx.Unavailable(request.error, details)
        return request.index

    def _start_read(self, read: _ReadRequest) -> None:
        node = self.node
        try:
            request = node.read_index()
        except ReadIndexUnavailable:
            self._parked_reads.append(read)  # once an entry of this term commits
        except RaftError as error:
            read.error = f"{self.me} cannot serve a read index: {error}"
            read.done.set()
        else:
            self._reads[request] = read

    def _watch_leader(self) -> None:
        """Every tick: a connection to the leader that was up and is now lost (its process
        died: the kernel reset it) is told to the core (``leader_unreachable``), which then
        campaigns within a few ticks instead of a whole election timeout."""
        leader = self.node.leader
        channel = self._channels.get(leader) if leader and leader != self.me else None
        connected = channel is not None and channel.statistics().connected
        if self._leader_link == (leader, True) and not connected:
            self._stats["leader_lost"] += 1
            self.node.leader_unreachable()
        self._leader_link = (leader, connected)

    def _check_reads(self) -> None:
        """Every tick: reads a leader cannot answer any more fail (retry elsewhere);
        parked ones are tried again."""
        if self.node.role != Role.LEADER:
            for read in [*self._reads.values(), *self._parked_reads]:
                read.error = f"{self.me} is no longer the leader"
                read.done.set()
            self._reads.clear()
            self._parked_reads.clear()
            return
        parked, self._parked_reads = self._parked_reads, []
        for read in parked:
            self._start_read(read)

    def _live_others(self) -> set[str]:
        alive = trio.current_time() - 2 * self.election_timeout
        return {m for m in self.node.config.members
                if m != self.me and self._heard.get(m, -math.inf) >= alive}

    def statistics(self) -> GroupStatistics:
        stats = self._stats
        node = self.node
        return GroupStatistics(
            broadcasts=self._broadcasts, deliveries=self._deliveries,
            own_deliveries=self._own_delivered, frames_sent=stats["frames_sent"],
            pushes_sent=stats["pushes_sent"], frames_dropped=stats["frames_dropped"],
            frames_received=stats["frames_received"], bytes_sent=0, payload_bytes_sent=0,
            pending_broadcasts=sum(not r.abandoned for r in self._waiting),
            members=self.members, view=self.view, suspected=(),
            buffer_sizes={"raft.window": len(self._window),
                          "raft.uncommitted": node.log.last_index - node.commit,
                          "raft.log": len(node.log),
                          "raft.snapshot_index": node.log.snapshot_index,
                          "raft.snapshots_taken": self.snapshots_taken,
                          "raft.snapshots_installed": self.snapshots_installed,
                          "raft.snapshot_chunks_sent": stats["chunks_sent"],
                          "raft.snapshot_chunks_received": stats["chunks_received"],
                          "raft.snapshot_receiving": (node.receiving or (0, 0))[1],
                          "raft.skipped": stats["skipped"],
                          "raft.retries": stats["retries"],
                          "raft.refused": stats["refused"],
                          "raft.held": stats["held"]},
            leader=node.leader, term=node.term)

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.server = await nursery.start(self._serve)
            if self._contact is not None:
                await self._join()
            for peer in sorted(self.addresses):
                self._add_peer(peer)
            nursery.start_soon(self._loop)
            task_status.started()

    async def _join(self) -> None:
        """Ask the contact (then the leader it names) to admit this member, until one
        accepts or ``join_timeout`` passes (``JoinError``)."""
        assert self._contact is not None
        address = self._contact
        last = "nobody answered"
        with trio.move_on_after(self._join_timeout):
            while True:
                reply = await self._ask_to_join(address)
                if reply is not None and reply.accepted:
                    return
                if reply is not None:
                    last = reply.reason or f"not the leader (leader: {reply.leader or '?'})"
                    leader = reply.addresses.get(reply.leader, "")
                    address = leader if leader and leader != address else self._contact
                await trio.sleep(min(0.1, self.election_timeout / 4))
        raise JoinError(f"{self.me}: not admitted to the raft group at {self._contact} "
                        f"within {self._join_timeout} s: {last}")

    async def _ask_to_join(self, address: str) -> idl.JoinReply | None:
        """One join request; the reply's addresses become known peers."""
        self._joined_at = trio.current_time()
        try:
            async with rpcx.open_channel(address, transport=self._transport,
                                         retry=rpcx.NO_RETRY, metadata=self._metadata,
                                         connect_timeout=1.0) as channel:
                reply = await idl.RaftClient(channel).join(
                    self.me, self._listen, timeout=max(1.0, self.election_timeout))
        except rpcx.RpcError as error:
            logger.debug("%s: join request to %s failed: %s", self.me, address, error)
            return None
        for name, peer in reply.addresses.items():
            if name != self.me:
                self.addresses.setdefault(name, peer)
                self._book.setdefault(name, peer)
                if self._nursery is not None:
                    self._add_peer(name)
        if reply.accepted and self.views[0].id == 0 and not self.views[0].members:
            self._first_view = tuple(reply.first_view)
            self.views[0] = View(0, self._first_view)
        return reply

    async def _rejoin(self) -> None:
        if self._contact is not None:
            await self._ask_to_join(self._contact)

    async def _serve(self, *, task_status: trio.TaskStatus[rpcx.Server]) -> None:
        options = {"grace_period": 0.0, **self._server_options}
        await rpcx.serve(self._listen, [_Handler(self), *self._services],
                         transport=self._transport, task_status=task_status, **options)

    async def stop(self) -> None:
        server = self.server
        if server is not None:
            server.shutdown()
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await server.wait_stopped()

    async def leave(self, timeout: float) -> None:
        """Graceful leave (within ``timeout`` seconds): wait until this member's own
        broadcasts are delivered and, if it leads, every live member holds the whole log
        and knows it is committed (``settled``); then hand leadership to the most
        up-to-date voter and wait until it has taken over. Without ``remove_on_leave``
        the member stays a voter of the configuration (a restart from its storage rejoins
        as before); with it, the member then asks the leader to remove it and waits until
        it knows its removal committed (the last voter cannot leave: it just stops)."""
        with trio.move_on_after(timeout):
            while not self.settled() and not self._removed:
                await self.wait_progress()
            if self.node.role == Role.LEADER and len(self.node.config.voters) > 1:
                await self._inbox_send.send(_Transfer())
                while self.node.leader == self.me:
                    await self.wait_progress()
            if self._remove_on_leave and self.node.config.members != (self.me,):
                self._leaving = True
                while not self._removed:
                    await self.wait_progress()

    def _followers_caught_up(self, others: set[str]) -> bool:
        """Leader: each of ``others`` holds the whole log and has answered a heartbeat
        that told it the commit index (a ReadIndex round started once all matched)."""
        node = self.node
        last = node.log.last_index
        if node.commit != last or node.applied != last:
            return False
        return self._confirm[0] == last and others <= self._confirmed

    def _ask_confirmation(self) -> None:
        """Leader, every tick: once every live member holds the whole committed log, start
        a heartbeat round (``read_index``) whose replies confirm they know the commit."""
        node = self.node
        last = node.log.last_index
        if node.role != Role.LEADER or node.commit != last:
            return
        others = self._live_others()
        if not others or not all((p := node.progress(m)) is not None and p.match == last
                                 for m in others):
            return
        if self._confirm[0] != last or self._confirm[2] != node.term:
            self._confirmed = set()
        elif others <= self._confirmed:
            return
        try:
            request = node.read_index()
        except RaftError:
            return
        if self._confirm[0] != last or self._confirm[2] != node.term:
            self._confirm = (last, request, node.term)

    def _add_peer(self, peer: str) -> None:
        if peer == self.me or peer in self._outboxes:
            return
        assert self._nursery is not None
        send, receive = trio.open_memory_channel[idl.RaftMsg](self._send_buffer)
        self._outboxes[peer] = send
        channel = rpcx.Channel(self.addresses[peer], self._nursery,
                               transport=self._transport, retry=rpcx.NO_RETRY,
                               reconnect_backoff=(0.02, 0.5), connect_timeout=2.0,
                               seed=self._rng.randrange(1 << 32), metadata=self._metadata)
        self._channels[peer] = channel
        self._nursery.start_soon(self._sender, peer, channel, receive)

    async def _sender(self, peer: str, channel: rpcx.Channel,
                      queue: trio.MemoryReceiveChannel[idl.RaftMsg]) -> None:
        client = idl.RaftClient(channel)
        async for first in queue:
            msgs = [first]
            while len(msgs) < self._max_batch:
                try:
                    msgs.append(queue.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            try:
                # answered once queued at the peer: one call in flight, so pushes keep
                # their order and a busy peer slows this sender (its queue then drops)
                await client.deliver(self.me, msgs, timeout=max(1.0, self.election_timeout))
            except rpcx.RpcError as error:
                # down or unreachable: the batch is lost; Raft resends what matters
                self._stats["frames_dropped"] += len(msgs)
                logger.debug("%s: push to %s failed: %s", self.me, peer, error)
                continue
            self._stats["pushes_sent"] += 1
        await channel.aclose()  # the peer was given a new address (_replace_peer)

    def _send(self, dest: str, msg: idl.RaftMsg) -> None:
        outbox = self._outboxes.get(dest)
        if outbox is None:
            return
        try:
            outbox.send_nowait(msg)
        except trio.WouldBlock:
            self._stats["frames_dropped"] += 1
            return
        self._stats["frames_sent"] += 1

    # -- the loop ------------------------------------------------------------------------

    async def _loop(self) -> None:
        next_tick = trio.current_time() + self.tick_interval
        self._last_progress = trio.current_time()
        while True:
            item: _Input | None = None
            with trio.move_on_at(next_tick):
                item = await self._inbox_recv.receive()
            taken = 0
            while item is not None:
                self._handle(item)
                taken += 1
                item = None
                if taken < self._max_batch:
                    with contextlib.suppress(trio.WouldBlock):
                        item = self._inbox_recv.receive_nowait()
            now = trio.current_time()
            if now >= next_tick:
                self.node.tick()
                next_tick += self.tick_interval
                if next_tick <= now:  # the loop was held up: drop the missed ticks
                    next_tick = now + self.tick_interval
                self._check_retry(now)
                self._check_reads()
                self._watch_leader()
                self._ask_confirmation()
                self._drive_membership(now)
                self._told.clear()
                leader = self.node.leader
                if self._leaving and not self._removed and leader and leader != self.me:
                    self._send(leader, idl.RaftMsg(proposals=[
                        idl.Proposal(session=self._session, seq=0, leave=True)]))
                if (self._contact is not None and self.me not in self.node.config.members
                        and not self._removed
                        and now - self._joined_at >= 2 * self.election_timeout):
                    # not in the configuration yet: the leader may have changed meanwhile
                    self._joined_at = now
                    assert self._nursery is not None
                    self._nursery.start_soon(self._rejoin)
            self._admit()
            self._propose()
            self._propose_runs()
            await self._drain_ready()
            self._progress.set()
            self._progress = trio.Event()

    def _handle(self, item: _Input) -> None:
        if isinstance(item, BroadcastRequest):
            self._waiting.append(item)
            return
        if isinstance(item, _Transfer):
            self._transfer()
            return
        if isinstance(item, _JoinRequest):
            item.reply = self._on_join(item.name, item.address)
            item.done.set()
            return
        if isinstance(item, _ReadRequest):
            self._start_read(item)
            return
        sender, msgs = item
        if sender not in self.addresses or sender == self.me:
            self._stats["frames_ignored"] += len(msgs)
            return
        self._heard[sender] = trio.current_time()
        for wire in msgs:
            try:
                msg = from_wire(wire)
            except ProtocolViolation as error:
                logger.warning("%s: dropped a bad message from %s: %s", self.me, sender,
                               error)
                continue
            self._stats["frames_received"] += 1
            self._tell_if_removed(sender)
            if isinstance(msg, idl.Removed):
                self._on_removed(msg)
            elif isinstance(msg, list):
                for proposal in msg:
                    if proposal.leave:
                        if self.node.role == Role.LEADER:
                            self._leaves.add(sender)
                        continue
                    self._leader_accept(sender, proposal)
            else:
                if isinstance(msg, InstallSnapshot):
                    self._stats["chunks_received"] += 1
                if (isinstance(msg, HeartbeatReply) and msg.context >= self._confirm[1] > 0
                        and msg.term == self._confirm[2]):
                    self._confirmed.add(sender)
                self.node.step(sender, msg)

    # -- membership ----------------------------------------------------------------------

    def _on_join(self, name: str, address: str) -> idl.JoinReply:
        """A join request: the leader records the joiner's address (an entry of the log,
        so every member learns it) and adds it as a learner once that entry commits
        (``_drive_membership``); anyone else names the leader."""
        node = self.node
        book = dict(self.addresses)
        book[self.me] = self._listen
        if node.role != Role.LEADER:
            return idl.JoinReply(accepted=False, leader=node.leader, addresses=book,
                                 reason=f"{self.me} is not the leader")
        if not name or name == self.me:
            return idl.JoinReply(accepted=False, leader=self.me, addresses=book,
                                 reason=f"the name {name!r} is taken")
        if name in node.config.members:
            if self.addresses.get(name) != address:
                self.addresses[name] = address
                self._replace_peer(name)
            return idl.JoinReply(accepted=True, leader=self.me, addresses=book,
                                 first_view=list(self._first_view))
        self.addresses[name] = address
        self._add_peer(name)
        self._joins[name] = address
        if self._book.get(name) != address:
            command = idl.Command(origin=name, session=0, seq=0, address=address)
            try:
                node.propose(encode_command(command))
            except NotLeader as error:
                return idl.JoinReply(accepted=False, leader=error.leader, addresses=book,
                                     reason=str(error))
        return idl.JoinReply(accepted=True, leader=self.me, addresses=book,
                             first_view=list(self._first_view))

    def _drive_membership(self, now: float) -> None:
        """Leader, every tick: at most one configuration change in flight. In this order:
        remove a member that asked to leave; remove a voter not heard from for
        ``remove_after`` seconds (if set); promote a learner that holds the committed log;
        add a joiner (whose address entry has committed) as a learner."""
        node = self.node
        if node.role != Role.LEADER:
            self._joins.clear()
            self._leaves.clear()
            return
        if self._lead_since[0] != node.term:
            self._lead_since = (node.term, now)
        config = node.config
        self._leaves &= set(config.members)
        for name in [n for n in self._joins if n in config.members]:
            del self._joins[name]
        change: ConfigChange | None = None
        leaving = sorted(n for n in self._leaves if n != self.me)
        if leaving:
            change = ConfigChange(ConfigOp.REMOVE, leaving[0])
        elif self._remove_after is not None:
            # silent for remove_after seconds, counted from when this leader took over
            dead = sorted(v for v in config.voters if v != self.me
                          and now - max(self._heard.get(v, -math.inf), self._lead_since[1])
                          >= self._remove_after)
            if dead:
                change = ConfigChange(ConfigOp.REMOVE, dead[0])
        if change is None:
            for learner in config.learners:
                progress = node.progress(learner)
                if progress is not None and progress.match >= node.commit:
                    change = ConfigChange(ConfigOp.PROMOTE, learner)
                    break
        if change is None:
            for name, address in sorted(self._joins.items()):
                if self._book.get(name) == address:
                    change = ConfigChange(ConfigOp.ADD_LEARNER, name)
                    break
        if change is None:
            return
        try:
            node.propose_config(change)
        except (ConfigChangeRefused, NotLeader):
            return  # one change at a time: the next tick tries again
        self._stats["config_changes"] += 1

    def _tell_if_removed(self, sender: str) -> None:
        """Leader: a member that the committed configuration leaves out still talks to
        the group (it was removed while cut off, so it missed its removal): tell it, at
        most once per tick."""
        node = self.node
        if (node.role != Role.LEADER or sender in node.config.members
                or sender in node.committed_config.members or sender in self._joins
                or sender in self._told):
            return
        self._told.add(sender)
        self._send(sender, idl.RaftMsg(removed=idl.Removed(
            term=node.term, view=self.view, members=list(self.members))))

    def _on_removed(self, msg: idl.Removed) -> None:
        if msg.term < self.node.term or self.me in msg.members or not self._was_member:
            return
        if msg.view > self.view:
            self.views.append(View(msg.view, tuple(msg.members)))
        self._check_removed(tuple(msg.members))

    def _replace_peer(self, peer: str) -> None:
        """``peer`` is now at another address: a new sender for it."""
        outbox = self._outboxes.pop(peer, None)
        if outbox is not None:
            outbox.close()
        if self._nursery is not None:
            self._add_peer(peer)

    def _transfer(self) -> None:
        node = self.node
        if node.role != Role.LEADER:
            return
        best = max((m for m in node.config.voters if m != self.me),
                   key=lambda m: (p.match if (p := node.progress(m)) else -1, m),
                   default=None)
        if best is not None:
            node.transfer_leadership(best)

    # -- proposals -----------------------------------------------------------------------

    def _admit(self) -> None:
        """Give waiting broadcasts their seq while the window has room."""
        while self._waiting and self._started and len(self._window) < self._max_pending:
            request = self._waiting.popleft()
            if request.abandoned:
                continue
            request.seq = self._next_seq
            self._next_seq += 1
            self._window[request.seq] = request.payload
            self._broadcasts += 1
            if self._journal is not None:
                self._journal("broadcast", self.me, request.seq, request.payload)
            request.done.set()

    def _propose(self) -> None:
        """Send what the current leader has not had yet (or propose it, when leading)."""
        node = self.node
        if not node.leader:
            return
        target = (node.term, node.leader)
        if target != self._target:
            self._target, self._sent_upto, self._marker_sent = target, -1, False
        batch: list[idl.Proposal] = []
        if not self._started and not self._marker_sent:
            batch.append(idl.Proposal(session=self._session, seq=0, start=True))
            self._marker_sent = True
        for seq, payload in self._window.items():
            if seq > self._sent_upto:
                batch.append(idl.Proposal(session=self._session, seq=seq, payload=payload))
                self._sent_upto = seq
        if not batch:
            return
        if node.leader == self.me:
            for proposal in batch:
                self._leader_accept(self.me, proposal)
        else:
            for at in range(0, len(batch), self._max_batch):
                self._send(node.leader, idl.RaftMsg(proposals=batch[at:at + self._max_batch]))

    def _check_retry(self, now: float) -> None:
        """Nothing of ours delivered for an election timeout: send it all again."""
        if self._started and not self._window:
            self._last_progress = now
            return
        if now - self._last_progress >= self._retry_after:
            self._target = None
            self._last_progress = now
            self._stats["retries"] += 1

    def _leader_accept(self, origin: str, proposal: idl.Proposal) -> None:
        """Leader: append a member's proposal in its seq order. One that skips ahead of
        what this leader appended for it in this term (pushes can be handled out of
        order) is held until the gap fills (at most ``max_pending`` per proposer; beyond
        that, or if the gap never fills, the proposer's retry sends it all again). A
        repeat (the proposer sending again after no progress) is appended again and
        skipped when applied."""
        node = self.node
        if node.role != Role.LEADER:
            return
        if self._filter_term != node.term:
            self._filter_term = node.term
            self._proposed.clear()
            self._markers.clear()
            self._held.clear()
            self._runs.clear()
        if node.log.last_index - node.commit >= self._max_uncommitted:
            self._stats["refused"] += 1
            return
        key = (origin, proposal.session)
        if proposal.start:
            if key in self._markers:
                return
            self._markers.add(key)
            command = idl.Command(origin=origin, session=proposal.session, seq=proposal.seq,
                                  start=True)
            try:
                node.propose(encode_command(command))
            except NotLeader:
                return
        else:
            last = self._proposed.get(key)
            if last is not None and proposal.seq > last + 1:
                held = self._held.setdefault(key, {})
                if len(held) < self._max_pending:
                    held[proposal.seq] = proposal
                    self._stats["held"] += 1
                return
            # seq <= last: the proposer is sending again from its first undelivered one
            self._proposed[key] = proposal.seq
            run = self._runs.get(key)
            size = len(proposal.payload)
            if (run is not None and run.first + len(run.payloads) == proposal.seq
                    and len(run.payloads) < self._max_run
                    and run.size + size <= self._max_run_bytes):
                run.payloads.append(proposal.payload)
                run.size += size
            else:
                if run is not None:
                    self._propose_run(key, run)
                self._runs[key] = _Run(proposal.seq, [proposal.payload], size)
        waiting = self._held.get(key)
        if waiting:
            following = waiting.pop(proposal.seq + 1, None)
            for seq in [q for q in waiting if q <= proposal.seq]:
                del waiting[seq]
            if following is not None:
                self._leader_accept(origin, following)

    def _propose_runs(self) -> None:
        """Leader, at the end of a loop turn: each run of consecutive broadcasts accepted
        in it becomes one log entry (one encoding, one record, one append slot for many
        broadcasts: what carries the order's throughput)."""
        runs, self._runs = self._runs, {}
        for key, run in runs.items():
            self._propose_run(key, run)

    def _propose_run(self, key: tuple[str, int], run: _Run) -> None:
        (origin, session), first, payloads = key, run.first, run.payloads
        if len(payloads) == 1:
            command = idl.Command(origin=origin, session=session, seq=first,
                                  payload=payloads[0])
        else:
            command = idl.Command(origin=origin, session=session, seq=first,
                                  payloads=payloads)
        try:
            self.node.propose(encode_command(command))
        except NotLeader:
            return  # (the proposers send again to the next leader)

    # -- Ready: persist, send, apply, advance -------------------------------------------

    async def _drain_ready(self) -> None:
        node = self.node
        while node.has_ready():
            ready = node.ready()
            # a leader's Appends leave now: the followers write the entries while this
            # member writes them too (it counts itself in the quorum once written)
            self._send_all(ready.send_first())
            # entries a quorum holds may be applied while this member still writes: the
            # callers they answer get their replies one write sooner (a snapshot from the
            # leader comes first, though: it is installed once written)
            early = ready.snapshot is None
            if early:
                for entry in ready.committed:
                    await self._apply(entry)
            if ready.must_sync and self._thread_persist:
                # fsync blocks for milliseconds: keep the event loop (the rpcx server and
                # the senders) running meanwhile. Cancellation waits for it to finish.
                messages = await trio.to_thread.run_sync(ready.persist, self.storage)
            else:
                messages = ready.persist(self.storage)
            self._send_all(messages)
            for state in ready.read_states:
                read = self._reads.pop(state.request, None)
                if read is not None:
                    read.index = state.index
                    read.done.set()
            if ready.snapshot is not None:
                # from the leader: this member was behind its compacted log
                await self._app_caught_up()
                self._restore(ready.snapshot)
                self.snapshots_installed += 1
            if not early:
                for entry in ready.committed:
                    await self._apply(entry)
            node.advance(ready)
            await self._maybe_snapshot()

    def _send_all(self, messages: Sequence[Send]) -> None:
        for send in messages:
            msg = cast(RaftMessage, send.msg)
            if isinstance(msg, InstallSnapshot):
                self._stats["chunks_sent"] += 1
            self._send(send.dest, to_wire(msg))

    # -- snapshots -----------------------------------------------------------------------

    async def _app_caught_up(self) -> None:
        """Wait until the application's state includes every delivery made so far."""
        state = self._state
        if state is None:
            return
        # (the application's progress has no event to wait on: it applies deliveries from
        # the channel; this wait is short, as each one is applied right away)
        while state.applied() < self._index:  # noqa: ASYNC110
            await trio.sleep(0.001)

    async def _maybe_snapshot(self) -> None:
        """Every ``snapshot_every`` applied entries (or ``snapshot_bytes`` of them), keep
        the order's state (and the application's) as the snapshot and drop the log."""
        node = self.node
        if self._snapshot_every is None:
            return
        since = node.applied - node.log.snapshot_index
        if since < self._snapshot_every and self._bytes_since_snapshot < self._snapshot_bytes:
            return
        if since <= 0:
            return
        await self._app_caught_up()
        app = self._state.snapshot() if self._state is not None else None
        node.compact(node.applied, encode_group_snapshot(self._snapshot_state(app)))
        self._bytes_since_snapshot = 0
        self.snapshots_taken += 1

    def _snapshot_state(self, app: bytes | None) -> idl.GroupSnapshot:
        return idl.GroupSnapshot(
            origins=[idl.OriginState(origin=o, session=session, next=next_seq)
                     for o, (session, next_seq) in sorted(self._origins.items())],
            delivered=self._index, view=self.view, addresses=dict(self._book), app=app)

    def _restore(self, snap: Snapshot) -> None:
        """Take the order's state from ``snap`` (the storage's at start-up, or the
        leader's): dedup state, delivery count, view, addresses; then the application's."""
        try:
            state = decode_group_snapshot(snap.data)
        except rpcx.CodecError as error:
            raise ValueError(f"the snapshot at index {snap.index} is not a raft group's "
                             f"snapshot: {error}") from None
        self._origins = {o.origin: (o.session, o.next) for o in state.origins}
        self._index = state.delivered
        if self._journal is not None:
            self._journal("restore", "", state.delivered, b"")
        for name, address in state.addresses.items():
            self._book[name] = address
            if name != self.me:
                self.addresses.setdefault(name, address)
                if self._nursery is not None:
                    self._add_peer(name)
        view = View(state.view, snap.config.members)
        if view.id > self.view or not self.views[-1].members:
            self.views.append(view)
        self._bytes_since_snapshot = 0
        self._own_session_update()
        self._check_removed(snap.config.members)
        if self._state is not None:
            self._state.restore(state.app, state.delivered)

    def _own_session_update(self) -> None:
        """After a snapshot: if this member's session started inside it, start it here;
        its broadcasts that the snapshot delivered leave the window."""
        mine = self._origins.get(self.me)
        if mine is None:
            return
        session, next_seq = mine
        if session == self._session:
            if not self._started:
                self._started = True
                self._next_seq = next_seq
                self._last_progress = trio.current_time() if self._nursery else 0.0
            for seq in [q for q in self._window if q < next_seq]:
                del self._window[seq]
                self._own_delivered += 1
        elif session > self._session and not self._started:
            self._session = session + 1
            self._marker_sent = False

    def _check_removed(self, members: tuple[str, ...]) -> None:
        """A committed configuration without this member: it was removed (or left)."""
        if self.me in members:
            self._was_member = True
            return
        if not self._was_member or self._removed:
            return  # (a joiner not admitted yet)
        self._removed = True
        for request in self._waiting:
            request.error = f"{self.me} was removed from the group"
            request.done.set()
        self._waiting.clear()

    async def _apply(self, entry: Entry) -> None:
        self._bytes_since_snapshot += len(entry.data)
        if entry.kind == EntryKind.CONFIG:
            assert entry.config is not None
            members = entry.config.members
            self.views.append(View(self.view + 1, members))
            self._check_removed(members)
            return
        if entry.kind == EntryKind.NOOP:
            return
        try:
            command = decode_command(entry.data)
        except rpcx.CodecError as error:  # the same at every member: skipped everywhere
            logger.error("%s: log entry %d is not a command: %s", self.me, entry.index,
                         error)
            self._stats["skipped"] += 1
            return
        origin = command.origin
        if command.address:  # a joiner's address: every member can reach it from now on
            self._book[origin] = command.address
            if origin != self.me and origin not in self.addresses:
                self.addresses[origin] = command.address
                self._add_peer(origin)
            return
        state = self._origins.get(origin)
        if command.start:
            accepted = state is None or command.session > state[0]
            if accepted:
                self._origins[origin] = (command.session, state[1] if state else 0)
            if origin == self.me and command.session == self._session and not self._started:
                if accepted:
                    self._started = True
                    self._next_seq = self._origins[origin][1]
                    self._last_progress = trio.current_time()
                else:  # an older incarnation's session is newer (clock went back)
                    assert state is not None
                    self._session = state[0] + 1
                    self._marker_sent = False
            return
        if command.payloads:
            # a run: what it holds from the origin's next seq on, if it does not start
            # past it (the same rule as for one broadcast, at every member alike)
            if state is None or command.session != state[0] or command.seq > state[1]:
                self._stats["skipped"] += len(command.payloads)
                return
            skip = state[1] - command.seq
            self._stats["skipped"] += min(skip, len(command.payloads))
            for offset in range(skip, len(command.payloads)):
                await self._deliver(origin, command.session, command.seq + offset,
                                    command.payloads[offset])
            return
        if state is None or command.session != state[0] or command.seq != state[1]:
            self._stats["skipped"] += 1
            return
        await self._deliver(origin, command.session, command.seq, command.payload)

    async def _deliver(self, origin: str, session: int, seq: int, payload: bytes) -> None:
        """Deliver ``origin``'s broadcast ``seq`` (the next of its session)."""
        self._origins[origin] = (session, seq + 1)
        if self._journal is not None:
            self._journal("deliver", origin, seq, payload)
        delivery = Delivery(origin, seq, payload, self._index, RAFT, self.view)
        self._index += 1
        self._deliveries += 1
        if origin == self.me and session == self._session:
            self._window.pop(seq, None)
            self._own_delivered += 1
            self._last_progress = trio.current_time()
        # no scheduling point per delivery while the channel has room: the entries of one
        # commit are delivered in one turn, and the callers they answer are woken together
        await _send_when_full(self._deliver_send, delivery)

