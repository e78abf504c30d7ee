"""Diagnostics: one problem in an ``.rpcx`` file, rendered as IDL.md requires::

    payments.rpcx:12:5: error: unknown type 'Crad'
        1: card: Crad;
                 ^
"""

from __future__ import annotations

import attrs

__all__ = ["Diagnostic", "Span"]


@attrs.frozen
class Span:
    """Where a token starts: file path as given, 1-based line and column (in characters)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@attrs.frozen
class Diagnostic:
    span: Span
    message: str
    """Lower-case, names the offending thing with repr-style quotes."""
    source_line: str = ""
    """The text of the line the span points at, without its newline (for the caret)."""

    def render(self) -> str:
        head = f"{self.span}: error: {self.message}"
        if not self.source_line:
            return head
        # Tabs are kept so the caret lines up in a terminal that expands them alike.
        prefix = "".join(ch if ch == "\t" else " " for ch in self.source_line[: self.span.col - 1])
        return f"{head}\n    {self.source_line}\n    {prefix}^"
