"""Fuzz properties shared by the hypothesis tests and the atheris targets in ``fuzz/``.

Each ``check_*`` function takes arbitrary input and raises AssertionError (or lets an
unexpected exception escape) when the property is broken; it returns quietly otherwise.
"""

from __future__ import annotations

import contextlib
import re
from typing import Final

from rpcx.codec.base import Codec, Schema
from rpcx.errors import CodecError, LocalProtocolError, RemoteProtocolError
from rpcx.protocol import PREFACE, Connection, ConnectionState, Role
from rpcx.protocol.budget import ReceiveBudget
from rpcx.protocol.buffer import Oversized, ReceiveBuffer
from rpcx.protocol.frames import MAX_META_LENGTH, ErrorFrame, GoAwayFrame, parse_frame
from rpcx.status import Status
from rpcx.text import MAX_MESSAGE_BYTES

__all__ = ["PYTHON_NOTATION", "capitalised", "check_codec_input", "check_frame_stream",
           "check_peer_text", "python_notation"]

_QUOTED: Final = re.compile(r'"(?:[^"\\]|\\.)*"')
PYTHON_NOTATION: Final = re.compile(
    r"""(?<![\w'"«])b['"«]|bytearray\(|memoryview\(|Traceback|File «|\.py\b"""
    r"""|\\x[0-9a-fA-F]{2}|<class |<[\w.]+ object at 0x|Exceeds the limit"""
    r"""|\b[A-Z]\w*(?:Error|Exception|Warning)\b|int_max_str_digits"""
    r"""|Decimal\(|\bsys\.|\bself\b|\bNone\b"""
)
"""Python's own notation, which must never reach a peer (issue 9, finding 5)."""


def python_notation(text: str) -> str | None:
    """The first piece of Python notation in ``text`` outside quoted peer text (a JSON
    string literal, as ``rpcx.text.quote`` writes it: a peer who sends ``b'x'`` must not
    trip the check), or None."""
    found = PYTHON_NOTATION.search(_QUOTED.sub("«»", text))
    return found.group() if found else None


def capitalised(text: str) -> bool:
    """True if ``text`` starts like a sentence (``Expecting value``) rather than in lower
    case as docs/protocol.md § 4.3 asks; an acronym (``JSON``, ``HTTP``) may start it."""
    return len(text) > 1 and text[0].isupper() and text[1].islower()


def check_peer_text(text: str) -> None:
    """A text sent to a peer: fits its frame, holds no Python notation and starts in lower
    case (docs/protocol.md § 4.3), whoever wrote its words first."""
    assert len(text.encode("utf-8")) <= MAX_MESSAGE_BYTES, f"{len(text)} characters"
    found = python_notation(text)
    assert found is None, f"python notation {found!r} in {text[:200]!r}"
    assert not capitalised(text), f"message starts with a capital: {text[:200]!r}"


def _check_sent(data: bytes) -> None:
    buffer = ReceiveBuffer(2**32)
    buffer.feed(PREFACE + data)
    assert buffer.check_preface()
    while (item := buffer.next_item()) is not None:
        assert not isinstance(item, Oversized)
        assert item.header.meta_length <= MAX_META_LENGTH
        frame = parse_frame(item.header, item.body)  # what we send parses
        if isinstance(frame, ErrorFrame | GoAwayFrame):
            check_peer_text(frame.message)
    assert len(buffer) == 0, "a partial frame was sent"


def check_frame_stream(role: Role, chunks: list[bytes], *, with_preface: bool = True,
                       max_frame_size: int = 1024, budget: int | None = 4096) -> None:
    """Feed ``chunks`` (after our peer's preface, unless ``with_preface`` is false) to a
    connection of ``role`` with small limits, timing out now and then. Only
    RemoteProtocolError may come out; everything sent back parses and is plain."""
    conn = Connection(role, now=0.0, max_frame_size=max_frame_size, frame_timeout=5.0,
                      budget=None if budget is None else ReceiveBudget(budget))
    if role is Role.CLIENT:
        conn.start_call("fuzz.Fuzz/call", b"", now=0.0, timeout=3.0)
        conn.start_call("fuzz.Fuzz/call", b"", now=0.0, idempotency_key=b"k")
    conn.data_to_send()
    now = 0.0
    stream = [PREFACE, *chunks] if with_preface else chunks
    for chunk in stream:
        now += 1.0
        try:
            conn.receive_data(chunk, now)
            conn.handle_timeout(now)
        except RemoteProtocolError as exc:
            check_peer_text(str(exc))
        _check_sent(conn.data_to_send())
        conn.events()
        if conn.state is ConnectionState.CLOSED:
            break
        if role is Role.SERVER:  # answer what was asked, as a handler would
            for call_id in range(1, 8):
                with contextlib.suppress(LocalProtocolError):  # never started, or ended
                    conn.send_error(call_id, Status.INTERNAL, "handler failed")
            _check_sent(conn.data_to_send())


def check_codec_input(codec: Codec, schema: Schema, data: bytes) -> None:
    """Decoding arbitrary bytes gives a value or a CodecError whose text is plain."""
    try:
        codec.decode(schema, data)
    except CodecError as exc:
        check_peer_text(str(exc))

