"""Python literals for strings and bytes in generated code."""

from __future__ import annotations

__all__ = ["pystr"]


_MEMO: dict[str | bytes, str] = {}
"""Literals of short values already made (names, qualified names: each is written several
times per method or field); cleared when it reaches :data:`_MEMO_SIZE` entries."""
_MEMO_SIZE = 4096


def pystr(value: str | bytes) -> str:
    """A Python literal for a string or bytes, double-quoted where that needs no escapes."""
    found = _MEMO.get(value)
    if found is not None:
        return found
    literal = _pystr(value)
    if len(value) <= 64:
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        _MEMO[value] = literal
    return literal


def _pystr(value: str | bytes) -> str:
    if (type(value) is str and value.isascii() and value.isprintable() and "'" not in value
            and '"' not in value and "\\" not in value):
        return f'"{value}"'  # what the general case gives, without repr and slicing
    text = repr(value)
    prefix = "b" if isinstance(value, bytes) else ""
    body = text[len(prefix):]
    if body.startswith("'") and '"' not in body[1:-1]:
        return f'{prefix}"{body[1:-1].replace(chr(92) + chr(39), chr(39))}"'
    return text
