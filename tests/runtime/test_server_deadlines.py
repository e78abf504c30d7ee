"""The server's side of deadlines, seen on the wire by a raw protocol client: when a
call's deadline passes the server cancels the handler *and* answers ERROR
DEADLINE_EXCEEDED (docs/protocol.md § 7); a call that arrives with no time left
(``timeout_ms`` 0) is not run at all."""

from __future__ import annotations

import trio
import trio.testing

import rpcx
from rpcx.codec import CborCodec
from rpcx.protocol import Connection, ErrorReceived, Event, ResponseReceived, Role
from rpcx.schema import ServiceSpec, StructSpec, spec_of
from rpcx.transport.base import parse_address
from rpcx.transport.memory import default as memory_transport
from tests.runtime.echo_rpcx import EchoService
from tests.runtime.harness import Echo, mem_address


def _params(name: str) -> tuple[str, StructSpec]:
    spec = spec_of(EchoService)
    assert isinstance(spec, ServiceSpec)
    method = next(m for m in spec.methods if m.py_name == name)
    return method.path, method.params


async def _raw_call(address: str, method: str, payload: bytes,
                    timeout: float) -> tuple[Event, float]:
    """One call with a raw protocol client that has *no* timer of its own: whatever
    answer comes, the server sent it. Returns the answer and when it came."""
    stream = await memory_transport.connect(parse_address(address))
    conn = Connection(Role.CLIENT, now=trio.current_time(), keepalive_interval=None)
    started = trio.current_time()
    call_id = conn.start_call(method, payload, now=started, timeout=timeout)
    await stream.send_all(conn.data_to_send())
    try:
        while True:
            conn.receive_data(bytes(await stream.receive_some(65536)), trio.current_time())
            for event in conn.events():
                if isinstance(event, ResponseReceived | ErrorReceived) \
                        and event.call_id == call_id:
                    return event, trio.current_time() - started
    finally:
        await stream.aclose()


async def test_the_server_answers_deadline_exceeded_when_the_deadline_passes(
        autojump_clock: trio.testing.MockClock) -> None:
    echo = Echo()
    path, params = _params("slow")
    payload = CborCodec().encode(params, (30.0, "late"))
    async with rpcx.open_server(address := mem_address(), [echo],
                                transport=memory_transport):
        with trio.fail_after(10):
            answer, elapsed = await _raw_call(address, path, payload, timeout=0.5)
    assert isinstance(answer, ErrorReceived)
    assert answer.status is rpcx.Status.DEADLINE_EXCEEDED
    assert echo.completed == [], "the handler ran for a call whose deadline had passed"
    assert answer.message == "deadline exceeded on the server"
    assert 0.5 <= elapsed < 0.6, elapsed          # at the deadline, not at keepalive time
    assert echo.cancelled == ["late"] and echo.completed == []


class _RecordingEcho(Echo):
    async def echo(self, text: str) -> str:
        self.completed.append(text)
        return text


async def test_a_call_arriving_with_no_time_left_is_not_run(
        autojump_clock: trio.testing.MockClock) -> None:
    echo = _RecordingEcho()
    path, params = _params("echo")
    payload = CborCodec().encode(params, ("hello",))
    async with rpcx.open_server(address := mem_address(), [echo],
                                transport=memory_transport) as server:
        with trio.fail_after(10):
            answer, _ = await _raw_call(address, path, payload, timeout=0.0)
        assert server.statistics().calls == 1
    assert isinstance(answer, ErrorReceived)
    assert answer.status is rpcx.Status.DEADLINE_EXCEEDED
    assert echo.completed == [], "the handler ran for a call whose deadline had passed"
