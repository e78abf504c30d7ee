"""docs/protocol.md cannot drift: its hex examples, call table, diagrams, status table.

Run ``python tests/protocol/test_docs.py`` to print the generated sections for pasting.
"""

from __future__ import annotations

from pathlib import Path

import cbor2

from rpcx.protocol.call import Role, render_mermaid, render_table
from rpcx.protocol.frames import (
    HEADER,
    PREFACE,
    CancelFrame,
    ErrorFrame,
    Frame,
    GoAwayFrame,
    PingFrame,
    PongFrame,
    RequestFrame,
    ResponseFrame,
    encode_frame,
    parse_frame,
    parse_header,
)
from rpcx.status import Status

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

EXAMPLES: list[tuple[str, Frame]] = [
    ("REQUEST: call 1 of `echo.Echo/say`, 1.5 s left, one metadata entry",
     RequestFrame(call_id=1, method="echo.Echo/say", payload=cbor2.dumps({1: "hi"}),
                  timeout_ms=1500, metadata={"trace-id": "abc"})),
    ("REQUEST: one-way call 2 with an idempotency key, no deadline",
     RequestFrame(call_id=2, method="log.Log/write", payload=cbor2.dumps({1: "x"}),
                  idempotency_key=bytes.fromhex("0102030405060708"), oneway=True)),
    ("RESPONSE to call 1 (the result is the string \"hi\")",
     ResponseFrame(call_id=1, payload=cbor2.dumps("hi"))),
    ("ERROR for call 3: NOT_FOUND with a message and details",
     ErrorFrame(call_id=3, status=Status.NOT_FOUND, message="no such user",
                details={"user": "bob"})),
    ("ERROR for call 4: the declared error `payments.InsufficientFunds` with field 1 = 250",
     ErrorFrame(call_id=4, status=Status.FAILED_PRECONDITION, message="insufficient funds",
                error_name="payments.InsufficientFunds", error_payload=cbor2.dumps({1: 250}))),
    ("CANCEL of call 5", CancelFrame(call_id=5)),
    ("PING 1", PingFrame(ping_id=1)),
    ("PONG 1", PongFrame(ping_id=1)),
    ("GOAWAY (graceful): calls up to 7 will complete",
     GoAwayFrame(last_call_id=7)),
    ("GOAWAY (error): a protocol violation",
     GoAwayFrame(last_call_id=0, status=Status.INTERNAL, message="protocol error")),
]


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data) if data else "(none)"


def render_examples() -> str:
    out = [f"Preface (both sides, first): `{_hex(PREFACE)}`\n"]
    for title, frame in EXAMPLES:
        data = encode_frame(frame)
        header = parse_header(data)
        meta = data[HEADER.size:HEADER.size + header.meta_length]
        payload = data[HEADER.size + header.meta_length:]
        decoded_meta = cbor2.loads(meta) if meta else {}
        is_call_payload = isinstance(frame, (RequestFrame, ResponseFrame, ErrorFrame))
        out.append(f"**{title}**\n")
        out.append("```text")
        out.append(f"header   {_hex(data[:HEADER.size])}")
        out.append(f"         length={header.body_length} type=0x{header.frame_type:02x} "
                   f"flags=0x{header.flags:02x} meta_length={header.meta_length} "
                   f"call_id={header.call_id}")
        out.append(f"meta     {_hex(meta)}")
        out.append(f"         = {decoded_meta!r}")
        out.append(f"payload  {_hex(payload)}")
        if is_call_payload and payload:
            out.append(f"         = {cbor2.loads(payload)!r} (opaque to the protocol)")
        elif isinstance(frame, (PingFrame, PongFrame)):
            out.append(f"         = ping_id {frame.ping_id} (u64 BE)")
        out.append("```\n")
    return "\n".join(out)


def test_examples_decode_back_to_their_frames() -> None:
    for _, frame in EXAMPLES:
        data = encode_frame(frame)
        parsed = parse_frame(parse_header(data), data[HEADER.size:])
        assert parsed == frame


def test_doc_hex_examples_match_the_encoder() -> None:
    assert render_examples() in DOC.read_text()


def test_doc_call_table_and_diagrams_match_call_py() -> None:
    doc = DOC.read_text()
    assert render_table() in doc
    for role in Role:
        assert f"```mermaid\n{render_mermaid(role)}```" in doc


def test_doc_lists_every_status_code() -> None:
    doc = DOC.read_text()
    for status in Status:
        assert f"| {int(status)} | `{status.name}` |" in doc


if __name__ == "__main__":
    print(render_examples())
    print(render_table())
    for r in Role:
        print(f"```mermaid\n{render_mermaid(r)}```\n")
