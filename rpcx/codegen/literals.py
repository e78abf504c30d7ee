"""Python literals for strings and bytes in generated code."""

from __future__ import annotations

__all__ = ["pystr"]


def pystr(value: str | bytes) -> str:
    """A Python literal for a string or bytes, double-quoted where that needs no escapes."""
    if (type(value) is str and value.isascii() and value.isprintable() and "'" not in value
            and '"' not in value and "\\" not in value):
        return f'"{value}"'  # what the general case gives, without repr and slicing
    text = repr(value)
    prefix = "b" if isinstance(value, bytes) else ""
    body = text[len(prefix):]
    if body.startswith("'") and '"' not in body[1:-1]:
        return f'{prefix}"{body[1:-1].replace(chr(92) + chr(39), chr(39))}"'
    return text
