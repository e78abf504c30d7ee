"""Small expression trees that format themselves within a line width.

Specs are long nested constructor calls; formatting them through this keeps every line of
generated code under the limit without a formatter pass.
"""

from __future__ import annotations

import attrs

__all__ = ["Call", "Expr", "Tuple", "format_expr"]


@attrs.frozen
class Call:
    func: str
    args: tuple[Expr, ...]


@attrs.frozen
class Tuple:
    items: tuple[Expr, ...]


Expr = str | Call | Tuple


def flat(expr: Expr) -> str:
    if isinstance(expr, str):
        return expr
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
    if isinstance(expr, Call):
        opener, items, closer = f"{prefix}{expr.func}(", expr.args, f"){suffix}"
    else:
        opener, items, closer = f"{prefix}(", expr.items, f"){suffix}"
    lines = [opener]
    for item in items:
        lines.extend("    " + ln for ln in format_expr(item, width - 4, suffix=","))
    lines.append(closer)
    return lines
