"""The in-memory Raft log: a compacted prefix (the snapshot) plus the entries after it.

Indices are 1-based; index 0 (term 0) stands before every log. ``snapshot_index`` entries
have been compacted away: their terms are unknown except that of ``snapshot_index``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .raft_messages import Entry

__all__ = ["RaftLog"]


class RaftLog:
    """Entries ``snapshot_index + 1 .. last_index``, contiguous."""

    __slots__ = ("_entries", "snapshot_index", "snapshot_term")

    def __init__(self, snapshot_index: int = 0, snapshot_term: int = 0,
                 entries: Sequence[Entry] = ()) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self._entries: list[Entry] = []
        for expected, entry in enumerate(entries, snapshot_index + 1):
            if entry.index != expected:
                raise ValueError(f"log entries are not contiguous: {entry.index} where "
                                 f"{expected} was expected")
            self._entries.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def first_index(self) -> int:
        return self.snapshot_index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot_term

    def term(self, index: int) -> int | None:
        """The term of entry ``index``; ``None`` if compacted away or past the end."""
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        return self._entries[index - self.snapshot_index - 1].term

    def matches(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def entry(self, index: int) -> Entry:
        if not self.snapshot_index < index <= self.last_index:
            raise IndexError(f"entry {index} is not in the log "
                             f"({self.first_index}..{self.last_index})")
        return self._entries[index - self.snapshot_index - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries ``lo`` up to, not including, ``hi`` (clamped to what the log holds)."""
        base = self.snapshot_index + 1
        return self._entries[max(lo, base) - base:max(hi, base) - base]

    def up_to_date(self, last_index: int, last_term: int) -> bool:
        """Whether a log ending at (``last_index``, ``last_term``) is at least as up to date
        as this one (Raft §5.4.1)."""
        return (last_term, last_index) >= (self.last_term, self.last_index)

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """Position in ``entries`` of the first one this log does not already hold."""
        for position, entry in enumerate(entries):
            if self.term(entry.index) != entry.term:
                return position
        return len(entries)

    def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries``, first dropping every entry from ``entries[0].index`` on."""
        if not entries:
            return
        start = entries[0].index
        if start <= self.snapshot_index or start > self.last_index + 1:
            raise ValueError(f"cannot append at {start}: log is {self.first_index}.."
                             f"{self.last_index}")
        del self._entries[start - self.snapshot_index - 1:]
        self._entries.extend(entries)

    def compact(self, index: int) -> None:
        """Forget entries up to ``index`` (which must be in the log)."""
        term = self.term(index)
        if term is None:
            raise ValueError(f"cannot compact to {index}: log is {self.snapshot_index}.."
                             f"{self.last_index}")
        del self._entries[:index - self.snapshot_index]
        self.snapshot_index, self.snapshot_term = index, term

    def reset(self, index: int, term: int) -> None:
        """Drop every entry: the log now starts after (``index``, ``term``)."""
        self._entries.clear()
        self.snapshot_index, self.snapshot_term = index, term

    def conflict_hint(self, index: int, term: int) -> tuple[int, int]:
        """The last entry at or before ``index`` whose term is at most ``term``, as
        ``(index, term)`` (the snapshot's if every kept entry is newer; ``(index, 0)`` if
        ``index`` is compacted away)."""
        i = min(index, self.last_index)
        if i < self.snapshot_index:
            return i, 0
        while i > self.snapshot_index:
            t = self._entries[i - self.snapshot_index - 1].term
            if t <= term:
                return i, t
            i -= 1
        return self.snapshot_index, self.snapshot_term
