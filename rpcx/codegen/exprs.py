"""Small expression trees that format themselves within a line width.

Specs are long nested constructor calls; formatting them through this keeps every line of
generated code under the limit without a formatter pass.
"""

from __future__ import annotations

from rpcx.codegen.literals import pystr

__all__ = ["Call", "Expr", "Lit", "Tuple", "format_expr"]


class Call:
    """``func(args...)``; its one-line text (``flat``) is built once, when it is made
    (children are made first), so formatting a deep tree never re-renders a subtree."""

    __slots__ = ("args", "flat", "func")

    def __init__(self, func: str, args: tuple[Expr, ...]) -> None:
        self.func = func
        self.args = args
        self.flat = f"{func}({', '.join(_flats(args))})"


class Tuple:
    __slots__ = ("flat", "items")

    def __init__(self, items: tuple[Expr, ...]) -> None:
        self.items = items
        parts = _flats(items)
        self.flat = f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


class Lit:
    """A string literal (``prefix`` is e.g. ``doc=``) that splits into implicitly
    concatenated pieces inside parentheses when it does not fit."""

    __slots__ = ("flat", "prefix", "value")

    def __init__(self, value: str, prefix: str = "") -> None:
        self.value = value
        self.prefix = prefix
        self.flat = f"{prefix}{pystr(value)}"


Expr = str | Call | Tuple | Lit


def _flats(items: tuple[Expr, ...]) -> list[str]:
    return [i if isinstance(i, str) else i.flat for i in items]

def _chunks(text: str, width: int) -> list[str]:
    words = text.split(" ")
    chunks: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and len(pystr(candidate + " ")) > width:
            chunks.append(current + " ")
            current = word
        else:
            current = candidate
    chunks.append(current)
    return chunks


def flat(expr: Expr) -> str:
    return expr if isinstance(expr, str) else expr.flat


def format_expr(expr: Expr, width: int, prefix: str = "", suffix: str = "") -> list[str]:
    """Lines for ``prefix + expr + suffix``, each at most ``width`` columns (4-space indents)."""
    if isinstance(expr, str):
        return [f"{prefix}{expr}{suffix}"]
    one = f"{prefix}{expr.flat}{suffix}"
    if len(one) <= width:
        return [one]
    if isinstance(expr, Lit):
        pieces = _chunks(expr.value, width - 4)
        return [f"{prefix}{expr.prefix}(", *(f"    {pystr(p)}" for p in pieces), f"){suffix}"]
    if isinstance(expr, Call):
        opener, items, closer = f"{prefix}{expr.func}(", expr.args, f"){suffix}"
    else:
        opener, items, closer = f"{prefix}(", expr.items, f"){suffix}"
    lines = [opener]
    inner = width - 4
    for item in items:
        # format_expr(item, inner, suffix=",") indented, with its one-line cases inline
        if isinstance(item, str):
            lines.append(f"    {item},")
        elif len(item.flat) < inner:
            lines.append(f"    {item.flat},")
        else:
            lines.extend(["    " + ln for ln in format_expr(item, inner, suffix=",")])
    lines.append(closer)
    return lines
