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
  then drains Readies under the contract of ``docs/consensus.md``: **persist** (in a
  worker thread when the storage is not in memory: FileStorage fsyncs, about 4 ms here),
  **then send**, then apply the committed entries, then ``advance``.

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
import logging
import math
import random
import time
from collections.abc import Mapping
from typing import Literal, cast

import attrs
import trio

import rpcx
from rpcx_broadcast._generated import raft_rpcx as idl
from rpcx_broadcast.core.layer import ProtocolViolation
from rpcx_broadcast.core.membership import View
from rpcx_broadcast.core.raft import NotLeader, RaftError, RaftNode, RaftOptions, Role
from rpcx_broadcast.core.raft_messages import Entry, EntryKind, HeartbeatReply, RaftMessage
from rpcx_broadcast.core.storage import MemoryStorage, Storage
from rpcx_broadcast.runtime.node import Delivery, GroupStatistics, Journal, NotAMember
from rpcx_broadcast.runtime.raft_wire import decode_command, encode_command, from_wire, to_wire

__all__ = ["RAFT", "RaftMember"]

logger = logging.getLogger("rpcx_broadcast.raft")

RAFT: Literal["raft"] = "raft"
"""FIFO-total order by consensus (Raft): survives the crash of any minority."""


@attrs.define(eq=False)
class _Request:
    payload: bytes
    done: trio.Event = attrs.Factory(trio.Event)
    seq: int = -1
    abandoned: bool = False
    error: str = ""


@attrs.define(eq=False)
class _Transfer:
    """Hand leadership to the most up-to-date voter (before a graceful leave)."""


_Input = tuple[str, list[idl.RaftMsg]] | _Request | _Transfer


class _Handler(idl.RaftService):
    def __init__(self, member: RaftMember) -> None:
        self._member = member

    async def push(self, sender: str, msgs: list[idl.RaftMsg]) -> None:
        await self._member._inbox_send.send((sender, msgs))


class RaftMember:
    """One member of a ``raft`` group. Use :func:`rpcx_broadcast.open_group` with
    ``order=RAFT``.

    ``members`` maps every member's name to its rpcx address; the first start (empty
    ``storage``) makes them the voters; a restart from ``storage`` takes the configuration
    from there. ``storage`` (default: a fresh ``MemoryStorage``) keeps term, vote and log;
    pass a ``FileStorage`` to survive a crash of the process.
    """

    def __init__(self, me: str, members: Mapping[str, str], *, storage: Storage | None = None,
                 election_timeout: float = 1.0, options: RaftOptions | None = None,
                 transport: rpcx.Transport | None = None, listen: str | None = None,
                 max_pending: int = 256, max_uncommitted: int | None = None,
                 delivery_buffer: int = 1024, send_buffer: int = 4096, max_batch: int = 256,
                 journal: Journal | None = None, rng: random.Random | None = None) -> None:
        if me not in members:
            raise ValueError(f"{me!r} is not one of the members {sorted(members)!r}")
        if not election_timeout > 0 or not math.isfinite(election_timeout):
            raise ValueError(f"election_timeout must be a positive number of seconds, got "
                             f"{election_timeout!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending!r}")
        self.me = me
        self.order: str = RAFT
        self.addresses = dict(members)
        self._listen = listen or members[me]
        self._transport = transport
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self._thread_persist = not isinstance(self.storage, MemoryStorage)
        self.options = options or RaftOptions()
        self.election_timeout = election_timeout
        self.tick_interval = election_timeout / self.options.election_ticks
        recovered = self.storage.load()
        if recovered.snapshot is not None:
            raise ValueError("the raft order does not restore snapshots yet: the storage "
                             f"holds one at index {recovered.snapshot.index}")
        self.node = RaftNode(me, rng or random.Random(), options=self.options,
                             recovered=recovered, voters=tuple(sorted(members)))
        self._max_pending = max_pending
        self._max_uncommitted = max_uncommitted or 4 * max_pending * len(members)
        self._send_buffer = send_buffer
        self._max_batch = max_batch
        self._journal = journal
        # views: committed configurations, in log order
        self.views: list[View] = [View(0, self.node.committed_config.voters)]
        self.start = None
        # the order's replicated state: origin -> (session, next seq)
        self._origins: dict[str, tuple[int, int]] = {}
        self._index = 0
        # this incarnation's session and its window of undelivered broadcasts
        self._session = time.time_ns()
        self._started = False
        self._next_seq = 0
        self._window: dict[int, bytes] = {}
        self._waiting: collections.deque[_Request] = collections.deque()
        self._target: tuple[int, str] | None = None
        self._sent_upto = -1
        self._marker_sent = False
        self._last_progress = 0.0
        # leader side: what this leader proposed in its term, per (origin, session)
        self._filter_term = -1
        self._proposed: dict[tuple[str, int], int] = {}
        self._markers: set[tuple[str, int]] = set()
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
        request = _Request(payload)
        await self._inbox_send.send(request)
        try:
            await request.done.wait()
        except trio.Cancelled:
            request.abandoned = True
            raise
        if request.error:
            raise NotAMember(request.error)
        return request.seq

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
                          "raft.skipped": stats["skipped"]},
            leader=node.leader, term=node.term)

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.server = await nursery.start(self._serve)
            for peer in sorted(self.addresses):
                self._add_peer(peer)
            nursery.start_soon(self._loop)
            task_status.started()

    async def _serve(self, *, task_status: trio.TaskStatus[rpcx.Server]) -> None:
        await rpcx.serve(self._listen, [_Handler(self)], transport=self._transport,
                         grace_period=0.0, task_status=task_status)

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
        up-to-date voter and wait until it has taken over. The member stays a voter of
        the configuration (a restart from its storage rejoins as before)."""
        with trio.move_on_after(timeout):
            while not self.settled():
                await self.wait_progress()
            if self.node.role == Role.LEADER and len(self.node.config.voters) > 1:
                await self._inbox_send.send(_Transfer())
                while self.node.leader == self.me:
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
                               reconnect_backoff=(0.02, 0.5), connect_timeout=2.0)
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
                await client.push(self.me, msgs)
            except rpcx.RpcError as error:
                # down or unreachable: the batch is lost; Raft resends what matters
                self._stats["frames_dropped"] += len(msgs)
                logger.debug("%s: push to %s failed: %s", self.me, peer, error)
                continue
            self._stats["pushes_sent"] += 1

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
                self._ask_confirmation()
            self._admit()
            self._propose()
            await self._drain_ready()
            self._progress.set()
            self._progress = trio.Event()

    def _handle(self, item: _Input) -> None:
        if isinstance(item, _Request):
            self._waiting.append(item)
            return
        if isinstance(item, _Transfer):
            self._transfer()
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
            if isinstance(msg, list):
                for proposal in msg:
                    self._leader_accept(sender, proposal)
            else:
                if (isinstance(msg, HeartbeatReply) and msg.context >= self._confirm[1] > 0
                        and msg.term == self._confirm[2]):
                    self._confirmed.add(sender)
                self.node.step(sender, msg)

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
        if now - self._last_progress >= self.election_timeout:
            self._target = None
            self._last_progress = now
            self._stats["retries"] += 1

    def _leader_accept(self, origin: str, proposal: idl.Proposal) -> None:
        """Leader: append a member's proposal, unless it skips ahead of what this leader
        appended for it in this term (it would be skipped anyway). A repeat (the proposer
        sending again after no progress) is appended again and skipped when applied."""
        node = self.node
        if node.role != Role.LEADER:
            return
        if self._filter_term != node.term:
            self._filter_term = node.term
            self._proposed.clear()
            self._markers.clear()
        if node.log.last_index - node.commit >= self._max_uncommitted:
            self._stats["refused"] += 1
            return
        key = (origin, proposal.session)
        if proposal.start:
            if key in self._markers:
                return
            self._markers.add(key)
        else:
            last = self._proposed.get(key)
            if last is not None and proposal.seq > last + 1:
                return  # a gap (a push was lost): the proposer sends it all again
            # seq <= last: the proposer is sending again from its first undelivered one
            self._proposed[key] = proposal.seq
        command = idl.Command(origin=origin, session=proposal.session, seq=proposal.seq,
                              payload=proposal.payload, start=proposal.start)
        try:
            node.propose(encode_command(command))
        except NotLeader:
            return

    # -- Ready: persist, send, apply, advance -------------------------------------------

    async def _drain_ready(self) -> None:
        node = self.node
        while node.has_ready():
            ready = node.ready()
            if ready.must_sync and self._thread_persist:
                # fsync blocks for milliseconds: keep the event loop (the rpcx server and
                # the senders) running meanwhile. Cancellation waits for it to finish.
                messages = await trio.to_thread.run_sync(ready.persist, self.storage)
            else:
                messages = ready.persist(self.storage)
            for send in messages:
                self._send(send.dest, to_wire(cast(RaftMessage, send.msg)))
            if ready.snapshot is not None:
                raise RuntimeError("the raft order cannot install snapshots yet")
            for entry in ready.committed:
                await self._apply(entry)
            node.advance(ready)

    async def _apply(self, entry: Entry) -> None:
        if entry.kind == EntryKind.CONFIG:
            assert entry.config is not None
            self.views.append(View(len(self.views), entry.config.voters))
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
        if state is None or command.session != state[0] or command.seq != state[1]:
            self._stats["skipped"] += 1
            return
        self._origins[origin] = (state[0], command.seq + 1)
        if self._journal is not None:
            self._journal("deliver", origin, command.seq, command.payload)
        delivery = Delivery(origin, command.seq, command.payload, self._index, RAFT,
                            self.view)
        self._index += 1
        self._deliveries += 1
        if origin == self.me and command.session == self._session:
            self._window.pop(command.seq, None)
            self._own_delivered += 1
            self._last_progress = trio.current_time()
        await self._deliver_send.send(delivery)

