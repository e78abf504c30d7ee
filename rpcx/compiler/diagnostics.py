"""Diagnostics: one problem in an ``.rpcx`` file, rendered as IDL.md requires::

    payments.rpcx:12:5: error: unknown type 'Crad'
        1: card: Crad;
                 ^

Rendering is bounded whatever the input: a source line longer than
:data:`MAX_SOURCE_WIDTH` characters is shown as a window around the column, a message
longer than :data:`MAX_MESSAGE_LENGTH` is shortened in the middle, and :func:`report`
shows at most :data:`MAX_PER_FILE` diagnostics per file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

__all__ = ["MAX_MESSAGE_LENGTH", "MAX_PER_FILE", "MAX_SOURCE_WIDTH", "Diagnostic", "Span",
           "report"]

MAX_SOURCE_WIDTH = 120
"""Longest source line echoed whole under a diagnostic; longer ones are cut to a window of
this many characters around the column, marked with ``...`` where cut."""
MAX_MESSAGE_LENGTH = 300
"""Longest message shown whole (a message quotes names and values from the source)."""
MAX_PER_FILE = 50
"""Diagnostics shown per file by :func:`report`; the rest are counted."""


class Span(NamedTuple):
    """Where a token starts: file path as given, 1-based line and column (in characters).

    A tuple, so that the hundreds of thousands a big input makes stay cheap to build
    (``tuple.__new__(Span, (file, line, col))`` is the fastest way), and so that spans sort
    by file, then line, then column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def _printable(text: str) -> str:
    """Control and other invisible characters as ``?`` (one column each, as in the
    source), so that echoing a hostile file cannot drive the terminal; tabs are kept."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in text)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[: limit - tail - 5]} ... {text[-tail:]}"


class Diagnostic(NamedTuple):
    """One problem. A tuple, so that an input with a problem every few characters does not
    spend its time building diagnostics."""

    span: Span
    message: str
    """Lower-case, names the offending thing with repr-style quotes."""
    source_line: str = ""
    """The text of the line the span points at, without its newline (for the caret)."""

    def render(self) -> str:
        head = f"{self.span}: error: {_printable(_clip(self.message, MAX_MESSAGE_LENGTH))}"
        if not self.source_line:
            return head
        line, col = self.source_line, max(self.span.col - 1, 0)
        before, after = "", ""
        if len(line) > MAX_SOURCE_WIDTH:
            start = max(0, min(col - MAX_SOURCE_WIDTH // 2, len(line) - MAX_SOURCE_WIDTH))
            end = start + MAX_SOURCE_WIDTH
            before = "..." if start > 0 else ""
            after = "..." if end < len(line) else ""
            line, col = line[start:end], col - start
        shown = _printable(line)
        # Tabs are kept so the caret lines up in a terminal that expands them alike.
        prefix = "".join(ch if ch == "\t" else " " for ch in before + shown[:col])
        return f"{head}\n    {before}{shown}{after}\n    {prefix}^"


def report(diagnostics: Iterable[Diagnostic], per_file: int = MAX_PER_FILE) -> Iterator[str]:
    """The rendered diagnostics (sorted by file, as the compiler returns them), at most
    ``per_file`` of them for each file, each file's last shown one followed by
    ``FILE: N more problems not shown`` when some were held back."""
    current, shown, hidden = None, 0, 0
    for d in diagnostics:
        if d.span.file != current:
            if hidden:
                yield f"{current}: {hidden} more problem{'s' if hidden != 1 else ''} not shown"
            current, shown, hidden = d.span.file, 0, 0
        if shown < per_file:
            shown += 1
            yield d.render()
        else:
            hidden += 1
    if hidden:
        yield f"{current}: {hidden} more problem{'s' if hidden != 1 else ''} not shown"
