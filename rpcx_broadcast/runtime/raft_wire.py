"""The explicit mapping between the Raft core's messages (``core/raft_messages.py``) and
the IDL types of ``idl/raft.rpcx`` (generated into
``rpcx_broadcast._generated.raft_rpcx``), plus the CBOR encoding of the commands that the
``raft`` order puts in log entries.

:func:`to_wire` turns a core message into an IDL ``RaftMsg``; :func:`from_wire` turns one
back into exactly the value that was sent. A ``RaftMsg`` that breaks the core's rules
(negative terms, indexes or snapshot offsets, an unknown entry kind, a configuration naming
a member twice, an empty snapshot chunk that is not the last)
raises ``ProtocolViolation``, never a half-built message.
"""

from __future__ import annotations

import rpcx
from rpcx.schema import struct_ref
from rpcx_broadcast._generated import raft_rpcx as idl
from rpcx_broadcast.core.layer import ProtocolViolation
from rpcx_broadcast.core.raft_messages import (
    Append,
    AppendReply,
    Config,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    RaftMessage,
    Snapshot,
    SnapshotAck,
    TimeoutNow,
    VoteReply,
    VoteRequest,
)

__all__ = ["decode_command", "decode_group_snapshot", "encode_command",
           "encode_group_snapshot", "from_wire", "to_wire"]

_codec = rpcx.CborCodec()
# a group snapshot holds the application's whole state: it never travels as one rpcx
# message (InstallSnapshot sends it in chunks), so the 4 MiB message limit is not its
_snapshot_codec = rpcx.CborCodec(max_message_bytes=1 << 40)
_command_ref = struct_ref(idl.Command)
_snapshot_ref = struct_ref(idl.GroupSnapshot)


def encode_command(command: idl.Command) -> bytes:
    """A log entry's data: the command as CBOR."""
    return _codec.encode(_command_ref, command)


def decode_command(data: bytes) -> idl.Command:
    """The command in a log entry (``rpcx.CodecError`` if it is not one)."""
    command: idl.Command = _codec.decode(_command_ref, data)
    return command


def encode_group_snapshot(state: idl.GroupSnapshot) -> bytes:
    """A raft group's snapshot data (``RaftSnapshot.data``): the order's state as CBOR."""
    return _snapshot_codec.encode(_snapshot_ref, state)


def decode_group_snapshot(data: bytes) -> idl.GroupSnapshot:
    """The order's state in a snapshot (``rpcx.CodecError`` if it is not one)."""
    state: idl.GroupSnapshot = _snapshot_codec.decode(_snapshot_ref, data)
    return state


def _config(config: Config) -> idl.RaftConfig:
    return idl.RaftConfig(voters=list(config.voters), learners=list(config.learners))


def _from_config(config: idl.RaftConfig) -> Config:
    if len(set(config.voters)) != len(config.voters) \
            or len(set(config.learners)) != len(config.learners):
        raise ProtocolViolation(f"configuration names a member twice: {config!r}")
    try:
        return Config(tuple(config.voters), tuple(config.learners))
    except ValueError as error:
        raise ProtocolViolation(str(error)) from None


def _entry(entry: Entry) -> idl.RaftEntry:
    return idl.RaftEntry(term=entry.term, index=entry.index, data=entry.data,
                         kind=int(entry.kind),
                         config=None if entry.config is None else _config(entry.config))


def _from_entry(entry: idl.RaftEntry) -> Entry:
    _non_negative(entry.term, entry.index)
    try:
        kind = EntryKind(entry.kind)
    except ValueError:
        raise ProtocolViolation(f"unknown entry kind {entry.kind}") from None
    if (kind == EntryKind.CONFIG) != (entry.config is not None):
        raise ProtocolViolation("a configuration entry (and only one) carries a config")
    config = None if entry.config is None else _from_config(entry.config)
    return Entry(entry.term, entry.index, entry.data, kind, config)


def _snapshot(snap: Snapshot) -> idl.RaftSnapshot:
    return idl.RaftSnapshot(index=snap.index, term=snap.term, config=_config(snap.config),
                            data=snap.data)


def _non_negative(*values: int) -> None:
    if any(value < 0 for value in values):
        raise ProtocolViolation(f"negative term or index in {values}")


def to_wire(msg: RaftMessage) -> idl.RaftMsg:
    """A core Raft message as the IDL ``RaftMsg`` union."""
    if isinstance(msg, VoteRequest):
        return idl.RaftMsg(vote_request=idl.VoteRequest(
            term=msg.term, last_index=msg.last_index, last_term=msg.last_term, pre=msg.pre,
            transfer=msg.transfer))
    if isinstance(msg, VoteReply):
        return idl.RaftMsg(vote_reply=idl.VoteReply(term=msg.term, granted=msg.granted,
                                                    pre=msg.pre))
    if isinstance(msg, Append):
        return idl.RaftMsg(append=idl.Append(
            term=msg.term, prev_index=msg.prev_index, prev_term=msg.prev_term,
            entries=[_entry(e) for e in msg.entries], commit=msg.commit))
    if isinstance(msg, AppendReply):
        return idl.RaftMsg(append_reply=idl.AppendReply(
            term=msg.term, success=msg.success, index=msg.index, hint_index=msg.hint_index,
            hint_term=msg.hint_term))
    if isinstance(msg, Heartbeat):
        return idl.RaftMsg(heartbeat=idl.Heartbeat(term=msg.term, commit=msg.commit,
                                                   context=msg.context))
    if isinstance(msg, HeartbeatReply):
        return idl.RaftMsg(heartbeat_reply=idl.HeartbeatReply(term=msg.term,
                                                              context=msg.context))
    if isinstance(msg, InstallSnapshot):
        return idl.RaftMsg(install_snapshot=idl.InstallSnapshot(
            term=msg.term, snapshot=_snapshot(msg.snapshot), offset=msg.offset,
            done=msg.done))
    if isinstance(msg, SnapshotAck):
        return idl.RaftMsg(snapshot_ack=idl.SnapshotAck(term=msg.term, index=msg.index,
                                                        offset=msg.offset))
    if isinstance(msg, TimeoutNow):
        return idl.RaftMsg(timeout_now=idl.TimeoutNow(term=msg.term))
    raise TypeError(f"no wire mapping for Raft message {msg!r}")


def from_wire(msg: idl.RaftMsg) -> RaftMessage | list[idl.Proposal] | idl.Removed:
    """The core message a ``RaftMsg`` stands for (proposals and removal notices, which
    are the adapter's, stay IDL values)."""
    which = msg.which
    if which == "proposals":
        assert msg.proposals is not None
        return list(msg.proposals)
    if which == "removed":
        assert msg.removed is not None
        return msg.removed
    if which == "vote_request":
        v = msg.vote_request
        assert v is not None
        _non_negative(v.term, v.last_index, v.last_term)
        return VoteRequest(v.term, v.last_index, v.last_term, v.pre, v.transfer)
    if which == "vote_reply":
        r = msg.vote_reply
        assert r is not None
        _non_negative(r.term)
        return VoteReply(r.term, r.granted, r.pre)
    if which == "append":
        a = msg.append
        assert a is not None
        _non_negative(a.term, a.prev_index, a.prev_term, a.commit)
        entries = tuple(_from_entry(e) for e in a.entries)
        if any(e.index != a.prev_index + 1 + k for k, e in enumerate(entries)):
            raise ProtocolViolation("append entries are not consecutive after prev_index")
        return Append(a.term, a.prev_index, a.prev_term, entries, a.commit)
    if which == "append_reply":
        ar = msg.append_reply
        assert ar is not None
        _non_negative(ar.term, ar.index, ar.hint_index, ar.hint_term)
        return AppendReply(ar.term, ar.success, ar.index, ar.hint_index, ar.hint_term)
    if which == "heartbeat":
        h = msg.heartbeat
        assert h is not None
        _non_negative(h.term, h.commit, h.context)
        return Heartbeat(h.term, h.commit, h.context)
    if which == "heartbeat_reply":
        hr = msg.heartbeat_reply
        assert hr is not None
        _non_negative(hr.term, hr.context)
        return HeartbeatReply(hr.term, hr.context)
    if which == "install_snapshot":
        s = msg.install_snapshot
        assert s is not None
        snap = s.snapshot
        _non_negative(s.term, snap.index, snap.term, s.offset)
        if not s.done and not snap.data:
            raise ProtocolViolation("a snapshot chunk that is not the last carries no data")
        return InstallSnapshot(s.term, Snapshot(snap.index, snap.term,
                                                _from_config(snap.config), snap.data),
                               s.offset, s.done)
    if which == "snapshot_ack":
        sa = msg.snapshot_ack
        assert sa is not None
        _non_negative(sa.term, sa.index, sa.offset)
        return SnapshotAck(sa.term, sa.index, sa.offset)
    t = msg.timeout_now
    assert t is not None
    _non_negative(t.term)
    return TimeoutNow(t.term)
