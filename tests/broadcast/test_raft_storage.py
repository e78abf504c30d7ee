"""``FileStorage`` against its in-memory twin, torn writes, corruption and compaction.

A crash between write and fsync is simulated by cutting the newest WAL segment at an
arbitrary byte offset past what the last completed ``save`` made durable (and by
scribbling on those bytes): reopening must give back everything durably saved, plus
at most a prefix of the interrupted batch.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from rpcx_broadcast.core.raft_messages import Config, Entry, EntryKind, HardState, Snapshot
from rpcx_broadcast.core.storage import MemoryStorage, Recovered, Storage
from rpcx_broadcast.storage import CorruptStorage, FileStorage
from rpcx_broadcast.testing.raft_sim import run_schedule

CONFIG = Config(("a", "b", "c"), ("d",))


def entries(first: int, count: int, term: int = 1, size: int = 8) -> list[Entry]:
    return [Entry(term, i, bytes([i % 251]) * size) for i in range(first, first + count)]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("wal-*.log"))


def test_a_round_trip_keeps_hard_state_entries_and_configs(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    config_entry = Entry(2, 3, b"", EntryKind.CONFIG, CONFIG)
    storage.save(HardState(2, "b"), [Entry(1, 1, b"x"), Entry(2, 2, b"\x00" * 300),
                                     config_entry])
    storage.close()
    loaded = FileStorage(tmp_path).load()
    assert loaded == Recovered(HardState(2, "b"), None,
                               (Entry(1, 1, b"x"), Entry(2, 2, b"\x00" * 300), config_entry))


def test_overwriting_entries_truncates_the_tail(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.save(HardState(1), entries(1, 10))
    storage.save(HardState(2), [Entry(2, 4, b"new")])
    assert FileStorage(tmp_path).load().entries == (*entries(1, 3), Entry(2, 4, b"new"))


def _random_ops(rng: random.Random, storages: list[Storage], steps: int) -> None:
    """Apply the same random saves and compactions to every storage (the first one is
    the model it reads its position from)."""
    model = storages[0].load()
    snap_index = model.snapshot.index if model.snapshot else 0
    last = snap_index + len(model.entries)
    term = max([model.hard_state.term, 1] + [e.term for e in model.entries[-1:]])
    for _ in range(steps):
        choice = rng.random()
        if choice < 0.6:
            start = rng.randint(snap_index + 1, last + 1)
            term += rng.random() < 0.3
            batch = entries(start, rng.randint(1, 5), term, rng.randint(0, 40))
            hard = HardState(term, rng.choice(("", "a", "b"))) if rng.random() < 0.5 else None
            for storage in storages:
                storage.save(hard, batch)
            last = batch[-1].index
        elif choice < 0.8 and last > snap_index:
            index = rng.randint(snap_index + 1, last)
            loaded = storages[0].load()
            offset = loaded.snapshot.index if loaded.snapshot else 0
            snap = Snapshot(index, loaded.entries[index - offset - 1].term, CONFIG,
                            b"state%d" % index)
            for storage in storages:
                storage.compact(snap)
            snap_index = index
        else:
            index = rng.randint(last, last + 20)
            term += 1
            snap = Snapshot(index, term, CONFIG, b"from leader %d" % index)
            for storage in storages:
                storage.save(HardState(term), [], snap)
            last = snap_index = index


@pytest.mark.parametrize("seed", range(12))
def test_file_storage_behaves_like_memory_storage(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    memory = MemoryStorage()
    file = FileStorage(tmp_path, segment_bytes=rng.choice((200, 1000, 1 << 20)), fsync=False)
    for _ in range(6):
        _random_ops(rng, [memory, file], 25)
        assert file.load() == memory.load()
        file.close()
        file = FileStorage(tmp_path, segment_bytes=file.segment_bytes, fsync=False)
        assert file.load() == memory.load()
        assert file.truncated == 0


def test_a_torn_last_write_is_cut_off_at_every_byte_offset(tmp_path: Path) -> None:
    durable = entries(1, 5)
    interrupted = entries(6, 4, term=2)
    base = tmp_path / "base"
    storage = FileStorage(base)
    storage.save(HardState(1, "a"), durable)
    size_durable = segments(base)[0].stat().st_size
    storage.save(HardState(2, "b"), interrupted)
    storage.close()
    full = segments(base)[0].read_bytes()
    assert len(full) > size_durable
    for cut in range(size_durable, len(full) + 1):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / segments(base)[0].name).write_bytes(full[:cut])
        reopened = FileStorage(directory, fsync=False)
        loaded = reopened.load()
        assert loaded.entries[:5] == tuple(durable), cut
        got = loaded.entries[5:]
        assert got == tuple(interrupted[:len(got)]), cut    # a prefix of the torn batch
        assert loaded.hard_state in (HardState(1, "a"), HardState(2, "b"))
        if got:                                              # entries after the hard state
            assert loaded.hard_state == HardState(2, "b")
        kept = segments(directory)[0].stat().st_size
        assert kept + reopened.truncated == cut and kept >= size_durable, cut
        # the repaired file takes new writes
        reopened.save(None, [Entry(3, 6 + len(got), b"after")])
        assert FileStorage(directory).load().entries[-1] == Entry(3, 6 + len(got), b"after")


@pytest.mark.parametrize("seed", range(40))
def test_scribbled_bytes_after_the_last_fsync_lose_nothing_durable(tmp_path: Path,
                                                                   seed: int) -> None:
    rng = random.Random(seed)
    storage = FileStorage(tmp_path)
    storage.save(HardState(1, "a"), entries(1, 20))
    durable_size = segments(tmp_path)[0].stat().st_size
    storage.save(HardState(2), entries(21, 5, term=2, size=50))
    storage.close()
    path = segments(tmp_path)[0]
    data = bytearray(path.read_bytes())
    cut = rng.randint(durable_size, len(data))
    data = data[:cut]
    for _ in range(rng.randint(1, 8)):                    # garbage where the write tore
        if len(data) > durable_size:
            data[rng.randrange(durable_size, len(data))] ^= 1 << rng.randrange(8)
    data += bytes(rng.randrange(256) for _ in range(rng.choice((0, 3, 40))))
    path.write_bytes(bytes(data))
    loaded = FileStorage(tmp_path).load()
    assert loaded.entries[:20] == tuple(entries(1, 20))
    assert loaded.entries[20:] == tuple(entries(21, 5, term=2, size=50))[:len(loaded.entries)
                                                                         - 20]


def test_damage_in_an_older_segment_is_corruption_not_a_torn_write(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path, segment_bytes=300, fsync=False)
    for k in range(10):
        storage.save(HardState(1), entries(1 + 5 * k, 5))
    storage.close()
    older = segments(tmp_path)[0]
    data = bytearray(older.read_bytes())
    data[len(data) // 2] ^= 0xFF
    older.write_bytes(bytes(data))
    with pytest.raises(CorruptStorage, match="not the newest"):
        FileStorage(tmp_path)


def test_a_damaged_snapshot_file_is_corruption(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.save(HardState(1), entries(1, 5))
    storage.compact(Snapshot(3, 1, CONFIG, b"state"))
    storage.close()
    (snap,) = tmp_path.glob("snap-*.snap")
    snap.write_bytes(snap.read_bytes()[:-1])
    with pytest.raises(CorruptStorage, match="damaged"):
        FileStorage(tmp_path)


def test_a_snapshot_being_written_when_the_process_died_is_ignored(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.save(HardState(1), entries(1, 5))
    storage.close()
    (tmp_path / "snap-00000000000000000004.tmp").write_bytes(b"half a snapsh")
    reopened = FileStorage(tmp_path)
    assert reopened.load().entries == tuple(entries(1, 5))
    assert not list(tmp_path.glob("*.tmp"))


def test_a_crash_between_the_snapshot_file_and_the_reset_record(tmp_path: Path) -> None:
    """The leader's snapshot is on disk but the old log (diverging from it) is still there:
    entries after the snapshot count only if the log agrees with it at its index."""
    diverging = FileStorage(tmp_path / "diverging")
    diverging.save(HardState(3), entries(1, 10, term=1))
    diverging._write_snapshot(Snapshot(5, 2, CONFIG, b"leader's"))  # then the crash
    loaded = FileStorage(tmp_path / "diverging").load()
    assert loaded.snapshot is not None and loaded.snapshot.index == 5
    assert loaded.entries == ()
    agreeing = FileStorage(tmp_path / "agreeing")
    agreeing.save(HardState(3), entries(1, 10, term=1))
    agreeing._write_snapshot(Snapshot(5, 1, CONFIG, b"leader's"))
    assert FileStorage(tmp_path / "agreeing").load().entries == tuple(entries(6, 5))


def test_a_snapshot_from_the_leader_replaces_the_log(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.save(HardState(1), entries(1, 10))
    storage.save(HardState(2), [], Snapshot(7, 2, CONFIG, b"s"))
    storage.save(None, entries(8, 3, term=2))
    loaded = FileStorage(tmp_path).load()
    assert loaded.snapshot == Snapshot(7, 2, CONFIG, b"s")
    assert loaded.entries == tuple(entries(8, 3, term=2))
    assert len(list(tmp_path.glob("snap-*.snap"))) == 1


def test_compaction_keeps_the_disk_bounded(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path, segment_bytes=4096, fsync=False)
    sizes = []
    for k in range(400):
        storage.save(HardState(1), entries(1 + 10 * k, 10, size=20))
        if k % 20 == 19:
            index = 10 * (k + 1) - 5
            storage.compact(Snapshot(index, 1, CONFIG, b"x" * 100))
            sizes.append(sum(p.stat().st_size for p in tmp_path.iterdir()))
    assert max(sizes[5:]) < 3 * 4096 + 20 * 10 * 60
    assert len(segments(tmp_path)) <= 4
    loaded = FileStorage(tmp_path).load()
    assert loaded.snapshot is not None and loaded.snapshot.index == 3995
    assert loaded.entries == tuple(entries(3996, 5, size=20))


def test_one_sync_per_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = FileStorage(tmp_path)
    calls: list[str] = []
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name, None)
        if real is None:
            continue

        def counting(fd: int, _name: str = name, _real: Callable[[int], None] = real) -> None:
            calls.append(_name)
            _real(fd)

        monkeypatch.setattr(os, name, counting)
    storage.save(HardState(5, "a"), entries(1, 100))
    assert calls == (["fdatasync"] if hasattr(os, "fdatasync") else ["fsync"])
    storage.save(None, [])
    storage.save(HardState(6, "b"), entries(101, 3))
    assert len(calls) == 2  # (one file stays open: no reopening, no directory sync)


def test_without_fsync_nothing_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    monkeypatch.setattr(os, "fdatasync", calls.append, raising=False)
    storage = FileStorage(tmp_path, fsync=False)
    storage.save(HardState(1), entries(1, 3))
    storage.compact(Snapshot(2, 1, CONFIG, b""))
    assert calls == []


def test_clusters_on_file_storage_restart_from_their_directories(tmp_path: Path) -> None:
    """Simulated schedules (crashes, torn writes, whole-cluster restarts) with every node on
    a ``FileStorage``, reopened from its directory at each restart."""
    counter = itertools.count()

    def make() -> Storage:
        return FileStorage(tmp_path / str(next(counter)), segment_bytes=2048, fsync=False)

    def reopen(old: Storage) -> Storage:
        assert isinstance(old, FileStorage)
        old.close()
        return FileStorage(old.directory, segment_bytes=2048, fsync=False)

    restarts = 0
    for seed in range(30):
        result = run_schedule(seed, make_storage=make, reopen_storage=reopen)
        assert result.violation is None, f"seed {seed}: {result.violation}"
        restarts += result.crashes
    assert restarts > 20
