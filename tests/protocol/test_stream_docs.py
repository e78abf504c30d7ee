"""docs/protocol.md § 18 cannot drift: its streaming hex examples are a real exchange
between two sans-I/O connections, rendered here.

Run ``python tests/protocol/test_stream_docs.py`` to print the section's examples.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import cbor2

from examples.payments.payments_rpcx import Currency, PaymentEvent, PaymentsClient
from rpcx.codec import get_codec
from rpcx.protocol import Connection, Role
from rpcx.protocol.events import (
    EndReceived,
    MessagesReceived,
    RequestReceived,
    ResponseReceived,
)
from rpcx.protocol.frames import HEADER, parse_header
from rpcx.protocol.streams import INITIAL_WINDOW, StreamFrameType
from rpcx.schema import ServiceSpec, spec_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
NAMES = {0x01: "REQUEST", 0x02: "RESPONSE", 0x03: "ERROR", 0x04: "CANCEL",
         **{int(t): t.name for t in StreamFrameType}}


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data) if data else "(none)"


def _frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        header = parse_header(data)
        end = HEADER.size + header.body_length
        out.append(data[:end])
        data = data[end:]
    return out


def exchange() -> list[tuple[str, str, bytes]]:
    """(direction, what, frame) of a server-streaming ``watch`` call, then a client
    stream's END, driven through two connections."""
    codec = get_codec("cbor")
    spec = spec_of(PaymentsClient)
    assert isinstance(spec, ServiceSpec)
    watch = spec.method("watch")
    assert watch is not None and watch.result is not None
    client = Connection(Role.CLIENT, now=0, keepalive_interval=None)
    server = Connection(Role.SERVER, now=0, keepalive_interval=None)
    server.receive_data(client.data_to_send(), 0)
    client.receive_data(server.data_to_send(), 0)
    out: list[tuple[str, str, bytes]] = []

    def sent(direction: str, what: str, source: Connection, target: Connection) -> None:
        data = source.data_to_send()
        target.receive_data(data, 0)
        for frame in _frames(data):
            out.append((direction, what, frame))

    call = client.start_call(watch.path, codec.encode(watch.params, (1,)), now=0,
                             timeout=30.0)
    sent("client → server", "REQUEST: call 1 starts `payments.Payments/watch(from_seq=1)`, "
         "30 s left", client, server)
    assert [type(e) for e in server.events()] == [RequestReceived]
    event = PaymentEvent(seq=1, kind="charged", amount=Decimal("3.99"), currency=Currency.GBP,
                         payment_id="pay_000001")
    server.send_message(call, codec.encode(watch.result, event))
    sent("server → client", "MESSAGE: the first item of call 1", server, client)
    (received,) = client.events()
    assert isinstance(received, MessagesReceived)
    assert client.consume(call, INITIAL_WINDOW // 2)  # as if half the window was used
    sent("client → server", f"WINDOW: call 1 grants {INITIAL_WINDOW // 2} more bytes",
         client, server)
    assert server.events() == []  # credit was not used up: nothing to wake
    server.send_response(call, b"")
    sent("server → client", "RESPONSE: the stream of call 1 ended successfully (empty "
         "payload)", server, client)
    assert client.events() == [ResponseReceived(call_id=call, payload=b"")]
    second = client.start_call("payments.Payments/upload", cbor2.dumps({}), now=0)
    server.receive_data(client.data_to_send(), 0)
    client.send_message(second, cbor2.dumps({1: "a line"}))
    sent("client → server", "MESSAGE: call 2 (client streaming) sends one item", client,
         server)
    client.end_stream(second)
    sent("client → server", "END: call 2 sends no more items (half-close)", client, server)
    assert [type(e) for e in server.events()] == [RequestReceived, MessagesReceived,
                                                  EndReceived]
    return out


def render_examples() -> str:
    lines: list[str] = []
    for direction, what, frame in exchange():
        header = parse_header(frame)
        body = frame[HEADER.size:]
        meta, payload = body[:header.meta_length], body[header.meta_length:]
        lines.append(f"**{what}** ({direction})\n")
        lines.append("```text")
        lines.append(f"header   {_hex(frame[:HEADER.size])}")
        lines.append(f"         length={header.body_length} type=0x{header.frame_type:02x} "
                     f"({NAMES[header.frame_type]}) flags=0x{header.flags:02x} "
                     f"meta_length={header.meta_length} call_id={header.call_id}")
        if meta:
            lines.append(f"meta     {_hex(meta)}")
            lines.append(f"         = {cbor2.loads(meta)!r}")
        lines.append(f"payload  {_hex(payload)}")
        if header.frame_type == StreamFrameType.WINDOW:
            lines.append(f"         = increment {int.from_bytes(payload, 'big')} (u32 BE)")
        elif payload:
            lines.append(f"         = {cbor2.loads(payload)!r} (opaque to the protocol)")
        lines.append("```\n")
    return "\n".join(lines)


def test_doc_streaming_examples_match_a_real_exchange() -> None:
    assert render_examples() in DOC.read_text()


if __name__ == "__main__":
    print(render_examples())
