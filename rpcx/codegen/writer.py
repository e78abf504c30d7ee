"""An indentation-aware line buffer: the only way codegen emits text."""

from __future__ import annotations

__all__ = ["Writer"]


class Writer:
    def __init__(self, indent: str = "    ") -> None:
        self._lines: list[str] = []
        self._indent = indent
        self._level = 0
        self._prefix = ""
        """``indent * level``, kept up to date by ``__enter__``/``__exit__``."""

    def line(self, text: str = "") -> None:
        line = self._prefix + text if text else ""
        if len(line) > 99 and not line.lstrip().startswith("#"):
            # Only a very long default value can get here; everything else is wrapped.
            line += "  # noqa: E501"
        self._lines.append(line)

    def lines(self, texts: list[str]) -> None:
        prefix = self._prefix
        # The common case at C speed: no line too long, so no line needs the comment.
        indented = [prefix + text if text else "" for text in texts] if prefix else texts
        if max(map(len, indented), default=0) <= 99:
            self._lines.extend(indented)
            return
        append = self._lines.append
        for text in texts:
            if not text:
                append("")
                continue
            line = prefix + text
            if len(line) > 99 and not line.lstrip().startswith("#"):
                line += "  # noqa: E501"  # as line() does
            append(line)

    def blank(self, count: int = 1) -> None:
        """Ensure ``count`` blank lines end the buffer (never more)."""
        lines = self._lines
        if lines and lines[-1]:  # the common case: no blank line yet
            lines.extend([""] * count)
            return
        have = 0
        for text in reversed(self._lines):
            if text:
                break
            have += 1
        for _ in range(count - have):
            self._lines.append("")

    def indented(self) -> Writer:
        """``with writer.indented():`` indents what is written inside the block by one level.
        The writer is its own context manager: no generator per block, and no helper
        object pointing back at the writer (a reference cycle would keep every line
        alive until the cycle collector ran)."""
        return self

    def __enter__(self) -> None:
        self._level += 1
        self._prefix = self._indent * self._level

    def __exit__(self, *exc: object) -> None:
        self._level -= 1
        self._prefix = self._indent * self._level

    @property
    def width(self) -> int:
        """Columns left on the current line before the 99-column limit."""
        return 99 - len(self._prefix)

    def text(self) -> str:
        while self._lines and not self._lines[-1]:
            self._lines.pop()
        return "\n".join(self._lines) + "\n"
