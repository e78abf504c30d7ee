"""``FileStorage``: a Raft node's durable state in a directory (blocking file I/O).

The core never calls this; ``Ready.persist(storage)`` does, in the adapter (run it in a
worker thread from trio). Every ``save`` / ``compact`` returns only once what it wrote is
durable: ``fdatasync`` of the file (``fsync`` where there is no ``fdatasync``), which
writes the data and the file size that reading it back needs, and ``fsync`` of the
directory after a file is created or renamed. The newest segment stays open between
saves.

Layout (docs/consensus.md, "Storage format")::

    <dir>/wal-<seq:016d>.log     write-ahead log segments, replayed in order
    <dir>/snap-<index:020d>.snap the latest snapshot (one record)
    <dir>/*.tmp                  a snapshot being written (removed at open)

A record is ``length:u32 | crc32(body):u32 | body`` (big-endian) with ``body = type:u8 |
payload``. Types: 1 hard state (``term:u64 | vote utf-8``), 2 entry (``term:u64 | index:u64
| kind:u8 | len:u32 | data | config``), 3 reset (``index:u64 | term:u64``: the log now starts
after it, written after installing a snapshot from the leader), 4 snapshot (``index:u64 |
term:u64 | config | data``, only in snapshot files). A config is ``count:u16`` names for the
voters then for the learners, each ``len:u16 | utf-8``.

Replay: the hard state is the last hard-state record; entries append, overwriting from
their index on (so a truncation needs no rewrite); a reset empties the log. A torn write
can only hit the tail of the newest segment: the first record there that is short or fails
its checksum is cut off (``truncated`` says how many bytes), with everything after it.
A bad record in an older segment, or a bad snapshot file, is corruption and raises
``CorruptStorage``. Every segment starts with the current hard state, so segments whose
entries are all covered by the snapshot can be deleted (log compaction on disk).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import attrs

from rpcx_broadcast.core.raft_messages import Config, Entry, EntryKind, HardState, Snapshot
from rpcx_broadcast.core.storage import MemoryStorage, Recovered, Storage

__all__ = ["CorruptStorage", "FileStorage", "MemoryStorage", "Recovered", "Storage"]

_HARD, _ENTRY, _RESET, _SNAP = 1, 2, 3, 4
_HEADER = struct.Struct(">II")
_MAX_RECORD = 1 << 31


class CorruptStorage(RuntimeError):
    """The storage directory holds damage that a torn write cannot explain."""


def _encode_config(config: Config) -> bytes:
    out = bytearray()
    for names in (config.voters, config.learners):
        out += struct.pack(">H", len(names))
        for name in names:
            raw = name.encode()
            out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


def _decode_config(buf: bytes, pos: int) -> tuple[Config, int]:
    groups: list[tuple[str, ...]] = []
    for _ in range(2):
        (count,) = struct.unpack_from(">H", buf, pos)
        pos += 2
        names = []
        for _ in range(count):
            (size,) = struct.unpack_from(">H", buf, pos)
            pos += 2
            names.append(buf[pos:pos + size].decode())
            pos += size
        groups.append(tuple(names))
    return Config(groups[0], groups[1]), pos


def _record(kind: int, payload: bytes) -> bytes:
    body = bytes([kind]) + payload
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def _hard_record(hard: HardState) -> bytes:
    return _record(_HARD, struct.pack(">Q", hard.term) + hard.vote.encode())


def _entry_record(entry: Entry) -> bytes:
    config = _encode_config(entry.config) if entry.config is not None else b""
    return _record(_ENTRY, struct.pack(">QQBI", entry.term, entry.index, entry.kind,
                                       len(entry.data)) + entry.data + config)


def _snapshot_record(snap: Snapshot) -> bytes:
    return _record(_SNAP, struct.pack(">QQ", snap.index, snap.term)
                   + _encode_config(snap.config) + snap.data)


def _parse(kind: int, payload: bytes) -> HardState | Entry | tuple[int, int] | Snapshot:
    if kind == _HARD:
        (term,) = struct.unpack_from(">Q", payload)
        return HardState(term, payload[8:].decode())
    if kind == _ENTRY:
        term, index, entry_kind, size = struct.unpack_from(">QQBI", payload)
        data = payload[21:21 + size]
        config = None
        if len(payload) > 21 + size:
            config, _ = _decode_config(payload, 21 + size)
        return Entry(term, index, data, EntryKind(entry_kind), config)
    if kind == _RESET:
        index, term = struct.unpack_from(">QQ", payload)
        return (index, term)
    if kind == _SNAP:
        index, term = struct.unpack_from(">QQ", payload)
        config, pos = _decode_config(payload, 16)
        return Snapshot(index, term, config, payload[pos:])
    raise ValueError(f"unknown record type {kind}")


def _read_records(data: bytes) -> tuple[list[HardState | Entry | tuple[int, int] | Snapshot],
                                        int]:
    """Parse records from ``data``; returns them and the offset of the first bad byte
    (``len(data)`` if every record is whole and its checksum right)."""
    out: list[HardState | Entry | tuple[int, int] | Snapshot] = []
    pos = 0
    while pos < len(data):
        if pos + _HEADER.size > len(data):
            break
        length, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        if length == 0 or length > _MAX_RECORD or start + length > len(data):
            break
        body = data[start:start + length]
        if zlib.crc32(body) != crc:
            break
        try:
            out.append(_parse(body[0], body[1:]))
        except (ValueError, struct.error, UnicodeDecodeError):
            break
        pos = start + length
    return out, pos


@attrs.define(eq=False)
class _Segment:
    seq: int
    path: Path
    max_index: int = 0


class FileStorage:
    """A ``Storage`` in ``directory`` (created if missing). ``segment_bytes``: roll over to a
    new WAL segment past this size. ``fsync=False`` skips fsync: only for tests, it gives up
    durability against power loss (not against a process crash)."""

    _fd = -1  # (also for __del__ after a failed __init__)

    def __init__(self, directory: str | os.PathLike[str], *, segment_bytes: int = 8 << 20,
                 fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._fsync = fsync
        self.truncated = 0
        """Bytes cut off the newest segment's tail at open (a torn last write)."""
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink()
        self._segments: list[_Segment] = []
        self._fd = -1
        """The newest segment, open for appending (from the first save on)."""
        recovered = self._scan(repair=True)
        self._hard = recovered.hard_state
        self._snapshot_index = recovered.snapshot.index if recovered.snapshot else 0
        if not self._segments:
            self._roll()
        self._size = self._segments[-1].path.stat().st_size

    # -- Storage ------------------------------------------------------------------------

    def load(self) -> Recovered:
        return self._scan(repair=False)

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None = None) -> None:
        segment = self._segments[-1]
        out = bytearray()
        if snapshot is not None:
            self._write_snapshot(snapshot)
            out += _record(_RESET, struct.pack(">QQ", snapshot.index, snapshot.term))
            segment.max_index = max(segment.max_index, snapshot.index)
        if hard_state is not None:
            out += _hard_record(hard_state)
            self._hard = hard_state
        for entry in entries:
            out += _entry_record(entry)
        if entries:
            segment.max_index = max(segment.max_index, entries[-1].index)
        if out:
            if self._fd < 0:
                self._fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            view = memoryview(out)
            while view:
                view = view[os.write(self._fd, view):]
            self._sync(self._fd)
            self._size += len(out)
        if snapshot is not None:
            self._drop_older_snapshots(snapshot.index)
        if self._size >= self.segment_bytes:
            self._roll()

    def compact(self, snapshot: Snapshot) -> None:
        if snapshot.index <= self._snapshot_index:
            return
        self._write_snapshot(snapshot)
        self._drop_older_snapshots(snapshot.index)
        # drop the oldest segments whose entries the snapshot covers (never the newest)
        while len(self._segments) > 1 and self._segments[0].max_index <= snapshot.index:
            self._segments.pop(0).path.unlink()
            self._sync_dir()

    def close(self) -> None:
        """Close the newest segment's file (a later save opens it again)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _sync(self, fd: int) -> None:
        if self._fsync:
            if hasattr(os, "fdatasync"):
                os.fdatasync(fd)  # the data and the size that reading it needs
            else:  # (macOS)
                os.fsync(fd)

    def _sync_dir(self) -> None:
        if not self._fsync:
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _roll(self) -> None:
        """Start a new segment that begins with the current hard state."""
        seq = self._segments[-1].seq + 1 if self._segments else 0
        self.close()
        path = self.directory / f"wal-{seq:016d}.log"
        with open(path, "wb") as f:
            f.write(_hard_record(self._hard))
            f.flush()
            self._sync(f.fileno())
        self._sync_dir()
        self._segments.append(_Segment(seq, path))
        self._size = path.stat().st_size

    def _write_snapshot(self, snap: Snapshot) -> None:
        final = self.directory / f"snap-{snap.index:020d}.snap"
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(_snapshot_record(snap))
            f.flush()
            self._sync(f.fileno())
        os.replace(tmp, final)
        self._sync_dir()
        self._snapshot_index = max(self._snapshot_index, snap.index)

    def _drop_older_snapshots(self, index: int) -> None:
        for path in self.directory.glob("snap-*.snap"):
            if int(path.stem[5:]) < index:
                path.unlink()

    def _load_snapshot(self) -> Snapshot | None:
        paths = sorted(self.directory.glob("snap-*.snap"))
        if not paths:
            return None
        data = paths[-1].read_bytes()
        records, end = _read_records(data)
        if end != len(data) or len(records) != 1 or not isinstance(records[0], Snapshot):
            raise CorruptStorage(f"{paths[-1]} is damaged")
        return records[0]

    def _scan(self, *, repair: bool) -> Recovered:
        snapshot = self._load_snapshot()
        paths = sorted(self.directory.glob("wal-*.log"))
        hard = HardState()
        base: int | None = None
        entries: list[Entry] = []
        segments: list[_Segment] = []
        for number, path in enumerate(paths):
            data = path.read_bytes()
            records, end = _read_records(data)
            if end != len(data):
                if number != len(paths) - 1:
                    raise CorruptStorage(f"{path} is damaged at byte {end} and is not the "
                                         "newest segment")
                if repair:
                    self.truncated = len(data) - end
                    with open(path, "r+b") as f:
                        f.truncate(end)
                        f.flush()
                        self._sync(f.fileno())
            segment = _Segment(int(path.stem[4:]), path)
            for record in records:
                if isinstance(record, HardState):
                    hard = record
                elif isinstance(record, Entry):
                    if base is None:
                        base = record.index - 1
                    position = record.index - base - 1
                    segment.max_index = max(segment.max_index, record.index)
                    if position < 0:
                        continue
                    if position > len(entries):
                        raise CorruptStorage(f"{path}: entry {record.index} after "
                                             f"{base + len(entries)}")
                    del entries[position:]
                    entries.append(record)
                elif isinstance(record, tuple):
                    base, entries = record[0], []
                    segment.max_index = max(segment.max_index, record[0])
            segments.append(segment)
        if repair:
            self._segments = segments
        kept: list[Entry] = entries
        if snapshot is not None and entries:
            assert base is not None
            first, last = base + 1, base + len(entries)
            if last < snapshot.index:
                kept = []
            elif first <= snapshot.index:
                # entries past the snapshot count only if the log agrees with it there
                # (a crash between writing the snapshot and the reset record leaves the
                # old, diverging log behind)
                at = entries[snapshot.index - first]
                kept = entries[snapshot.index - first + 1:] if at.term == snapshot.term \
                    else []
            elif first > snapshot.index + 1:
                raise CorruptStorage(f"log starts at {first}, snapshot ends at "
                                     f"{snapshot.index}")
        return Recovered(hard, snapshot, tuple(kept))
