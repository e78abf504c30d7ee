"""IDL names → Python names, and Python literals for docstrings and defaults.

The compiler rejects identifiers that cannot be used unchanged (Python keywords, leading
underscores, builtins the generated annotations use), so names pass through as they are.
"""

from __future__ import annotations

import datetime
import decimal
import re
import textwrap

from rpcx.codegen.literals import pystr
from rpcx.compiler import model
from rpcx.schema import Kind

__all__ = [
    "client_name", "docstring", "literal", "py_type", "pystr", "service_name", "type_name",
]

IMPORT_PREFIX = "_i_"


def client_name(service: str) -> str:
    return f"{service}Client"


def service_name(service: str) -> str:
    return f"{service}Service"


def import_alias(module: str) -> str:
    return f"{IMPORT_PREFIX}{module}"


def type_name(t: model.ModelType, here: str) -> str:
    """The Python expression naming a declared type, from module ``here``."""
    assert t.ref is not None and t.module is not None
    short = t.ref.rsplit(".", 1)[-1]
    return short if t.module == here else f"{import_alias(t.module)}.{short}"


_PRIMITIVES = {
    Kind.BOOL: "bool",
    Kind.INT: "int",
    Kind.FLOAT: "float",
    Kind.DECIMAL: "_decimal.Decimal",
    Kind.STRING: "str",
    Kind.BYTES: "bytes",
    Kind.TIMESTAMP: "_datetime.datetime",
}


_PRIMITIVE_NAMES = {kind._value_: text for kind, text in _PRIMITIVES.items()}
""":data:`_PRIMITIVES` keyed by the kinds' values: ``Kind`` hashes with a Python-level
``__hash__`` (half a microsecond per lookup), its values are strings with a cached hash."""


def py_type(t: model.ModelType, here: str) -> str:
    """The Python annotation for a type."""
    primitive = _PRIMITIVE_NAMES.get(t.kind._value_)  # see _PRIMITIVE_NAMES
    if primitive is not None:
        return primitive
    if t.kind is Kind.LIST:
        assert t.item is not None
        return f"list[{py_type(t.item, here)}]"
    if t.kind is Kind.MAP:
        assert t.item is not None and t.key is not None
        return f"dict[{py_type(t.key, here)}, {py_type(t.item, here)}]"
    if t.kind is Kind.OPTIONAL:
        assert t.item is not None
        return f"{py_type(t.item, here)} | None"
    return type_name(t, here)


def uses(t: model.ModelType) -> set[str]:
    """Standard-library modules an annotation or spec of ``t`` needs."""
    found: set[str] = set()
    if t.kind is Kind.DECIMAL:
        found.add("decimal")
    if t.kind is Kind.TIMESTAMP:
        found.add("datetime")
    for inner in (t.item, t.key):
        if inner is not None:
            found |= uses(inner)
    return found


def literal(value: model.Value, t: model.ModelType, here: str) -> str:
    """A Python expression for a default value of type ``t``."""
    kind = t.kind
    # The commonest defaults first: what the general cases below give for them.
    if kind is Kind.STRING and type(value) is str:
        return pystr(value)
    if kind is Kind.INT and type(value) is int:
        return repr(value)
    if t.kind is Kind.OPTIONAL:
        assert t.item is not None
        return "None" if value is None else literal(value, t.item, here)
    if isinstance(value, model.EnumValue):
        return f"{type_name(t, here)}.{value.member}"
    if isinstance(value, bool | str | bytes | int):
        if t.kind is Kind.FLOAT and not isinstance(value, bool):
            return repr(float(value))
        if t.kind is Kind.DECIMAL and isinstance(value, int):
            return f"_decimal.Decimal({pystr(str(value))})"
        if isinstance(value, str | bytes):
            return pystr(value)
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return f"_decimal.Decimal({pystr(str(value))})"
    if isinstance(value, datetime.datetime):
        return _datetime_literal(value)
    if isinstance(value, list):
        assert t.item is not None
        return "[" + ", ".join(literal(v, t.item, here) for v in value) + "]"
    if isinstance(value, dict):
        assert t.item is not None and t.key is not None
        key_t, item_t = t.key, t.item
        return "{" + ", ".join(
            f"{literal(k, key_t, here)}: {literal(v, item_t, here)}" for k, v in value.items()
        ) + "}"
    raise AssertionError(f"unexpected default {value!r}")


def _datetime_literal(value: datetime.datetime) -> str:
    # Timestamps travel as UTC, so the default is written in UTC whatever offset the IDL
    # used; trailing zero parts are left out.
    assert value.utcoffset() is not None, "the compiler only produces aware timestamps"
    utc = value.astimezone(datetime.UTC)
    parts = [utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond]
    while len(parts) > 3 and parts[-1] == 0:
        parts.pop()
    return f"_datetime.datetime({', '.join(str(p) for p in parts)}, tzinfo=_datetime.UTC)"


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if ch == "\t":
        return "\\t"
    if ch == "\r":
        return "\\r"
    if ch == "\n":
        return "\\n"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_line(line: str) -> str:
    if line.isprintable():
        return line
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in line)


def escape_text(text: str) -> str:
    """``text`` with a backslash doubled and every character that ``str.isprintable``
    rejects but newline (controls such as NUL, form feed and ``\\r``, surrogates, U+2028,
    bidi overrides and other format characters, unusual spaces) written as a Python escape,
    as ``repr`` would. Inside a non-raw string literal the result means exactly ``text``,
    and it cannot end the literal, hide code from a reader or make the module fail to
    compile or encode."""
    return "\n".join(_escape_line(line) for line in text.replace("\\", "\\\\").split("\n"))


def comment_text(text: str) -> str:
    """``text`` made safe for a ``#`` comment in generated code (one line, printable)."""
    return _escape_line(text)


_ATOM = re.compile(r"\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\U[0-9a-f]{8}|\\.|.", re.DOTALL)


def _continued(line: str, width: int) -> list[str]:
    """A docstring line longer than ``width`` (one long word) cut into pieces that end in
    a backslash, which continues the string literal without adding to its value; never
    inside an escape sequence."""
    if len(line) <= width:
        return [line]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for atom in _ATOM.findall(line):
        if size + len(atom) > width - 1 and current:
            pieces.append("".join(current) + "\\")
            current, size = [], 0
        current.append(atom)
        size += len(atom)
    pieces.append("".join(current))
    return pieces


def docstring(doc: str, width: int) -> list[str]:
    """Lines of a triple-quoted docstring, wrapped to ``width`` columns, safely escaped:
    whatever ``doc`` holds, the lines compile and the docstring's text is ``doc`` (up to
    the whitespace that wrapping changes)."""
    text = escape_text(doc).replace('"""', '\\"\\"\\"').strip()
    paragraphs: list[str] = []
    for raw in text.split("\n"):
        if len(raw) + 6 <= width:
            paragraphs.append(raw.rstrip())
        else:
            for line in textwrap.wrap(raw, width - 6, break_on_hyphens=False,
                                      break_long_words=False) or [""]:
                paragraphs.extend(_continued(line, width - 6))
    if len(paragraphs) == 1 and len(paragraphs[0]) + 6 <= width:
        line = paragraphs[0]
        backslashes = len(line) - 1 - len(line[:-1].rstrip("\\"))
        if line.endswith('"') and backslashes % 2 == 0:
            line = line[:-1] + '\\"'  # else the closing quotes would be four
        return [f'"""{line}"""']
    return ['"""' + paragraphs[0], *paragraphs[1:], '"""']
