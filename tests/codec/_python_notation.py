"""What Python notation in a message sent to a peer looks like, for the hostile-input tests.

Peer text that a message quotes is a JSON string literal (``rpcx.codec.convert.quote``); it
is left out before looking, so that a peer who sends ``b'x'`` does not trip the check.
"""

from __future__ import annotations

import re

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_PYTHON = re.compile(
    r"""\bb'|\bb"|\bb«|bytearray\(|memoryview\(|Traceback|File «|\.py\b|\\x[0-9a-fA-F]{2}"""
    r"""|<[\w.]+ object at 0x|\b[A-Z]\w*(?:Error|Exception|Warning)\b|int_max_str_digits"""
    r"""|Decimal\(|\bsys\.|\bself\b|\bNone\b"""
)


def python_notation(text: str) -> str | None:
    """The first piece of Python notation in ``text`` outside quoted peer text, or None."""
    found = _PYTHON.search(_QUOTED.sub("«»", text))
    return found.group() if found else None

