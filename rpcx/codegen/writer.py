"""An indentation-aware line buffer: the only way codegen emits text."""

from __future__ import annotations

__all__ = ["Writer"]


class _Indent:
    """``with writer.indented():`` without the cost of a generator-based context manager."""

    __slots__ = ("_writer",)

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    def __enter__(self) -> None:
        self._writer._level += 1

    def __exit__(self, *exc: object) -> None:
        self._writer._level -= 1


class Writer:
    def __init__(self, indent: str = "    ") -> None:
        self._lines: list[str] = []
        self._indent = indent
        self._level = 0
        self._indenter = _Indent(self)

    def line(self, text: str = "") -> None:
        line = f"{self._indent * self._level}{text}" if text else ""
        if len(line) > 99 and not line.lstrip().startswith("#"):
            # Only a very long default value can get here; everything else is wrapped.
            line += "  # noqa: E501"
        self._lines.append(line)

    def lines(self, texts: list[str]) -> None:
        prefix = self._indent * self._level
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
        have = 0
        for text in reversed(self._lines):
            if text:
                break
            have += 1
        for _ in range(count - have):
            self._lines.append("")

    def indented(self) -> _Indent:
        return self._indenter

    @property
    def width(self) -> int:
        """Columns left on the current line before the 99-column limit."""
        return 99 - len(self._indent) * self._level

    def text(self) -> str:
        while self._lines and not self._lines[-1]:
            self._lines.pop()
        return "\n".join(self._lines) + "\n"
