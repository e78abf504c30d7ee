"""Small expression trees that format themselves within a line width.

Specs are long nested constructor calls; formatting them through this keeps every line of
generated code under the limit without a formatter pass.
"""

from __future__ import annotations

import attrs

from rpcx.codegen.literals import pystr

__all__ = ["Call", "Expr", "Lit", "Tuple", "format_expr"]


@attrs.frozen
class Call:
    func: str
    args: tuple[Expr, ...]


@attrs.frozen
class Tuple:
    items: tuple[Expr, ...]


@attrs.frozen
class Lit:
    """A string literal (``prefix`` is e.g. ``doc=``) that splits into implicitly
    concatenated pieces inside parentheses when it does not fit."""

    value: str
    prefix: str = ""


Expr = str | Call | Tuple | Lit


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
    if isinstance(expr, str):
        return expr
    if isinstance(expr, Lit):
        return f"{expr.prefix}{pystr(expr.value)}"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(flat(a) for a in expr.args)})"
    if len(expr.items) == 1:
        return f"({flat(expr.items[0])},)"
    return f"({', '.join(flat(i) for i in expr.items)})"


def format_expr(expr: Expr, width: int, prefix: str = "", suffix: str = "") -> list[str]:
    """Lines for ``prefix + expr + suffix``, each at most ``width`` columns (4-space indents)."""
    one = f"{prefix}{flat(expr)}{suffix}"
    if len(one) <= width or isinstance(expr, str):
        return [one]
    if isinstance(expr, Lit):
        pieces = _chunks(expr.value, width - 4)
        return [f"{prefix}{expr.prefix}(", *(f"    {pystr(p)}" for p in pieces), f"){suffix}"]
    if isinstance(expr, Call):
        opener, items, closer = f"{prefix}{expr.func}(", expr.args, f"){suffix}"
    else:
        opener, items, closer = f"{prefix}(", expr.items, f"){suffix}"
    lines = [opener]
    for item in items:
        lines.extend("    " + ln for ln in format_expr(item, width - 4, suffix=","))
    lines.append(closer)
    return lines
