"""Streaming through reflection: `rpcx describe` shows the streams, `rpcx call` prints a
server stream one JSON value per line and reads a client stream from stdin."""

from __future__ import annotations

import json
import sys

import trio

import rpcx
from examples.payments.service import Payments
from rpcx.reflection import describe_services, specs_from_description
from rpcx.runtime.dispatch import Dispatcher
from tests.streams.service import Streams


async def rpcx_cli(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    done = await trio.run_process([sys.executable, "-m", "rpcx", *args], stdin=stdin,
                                  capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_reflection_round_trips_the_stream_shape() -> None:
    services = Dispatcher([Streams(), Payments()]).services
    rebuilt = {m.path: m for s in specs_from_description(describe_services(services))
               for m in s.methods}
    for service in services:
        for method in service.methods:
            again = rebuilt[method.path]
            assert again.streaming == method.streaming, method.path
            assert again.server_stream == method.server_stream
            if method.client_stream is not None:
                assert again.client_stream is not None
                assert (again.client_stream.tag, again.client_stream.name) == (
                    method.client_stream.tag, method.client_stream.name)
                assert again.client_stream.type.describe() == \
                    method.client_stream.type.describe()


async def test_describe_and_call_streams() -> None:
    async with rpcx.open_server("tcp://127.0.0.1:0", [Streams(), Payments()]) as server:
        address = server.addresses[0]
        code, out, err = await rpcx_cli("describe", address)
        assert code == 0, err
        assert ('count(start: int, count: int, fail_after: int = -1, text: string = "") '
                "-> stream streamtest.Tick throws streamtest.Boom") in out
        assert "sum(label: string, ticks: stream streamtest.Tick) -> streamtest.Tick" in out
        assert ("double(ticks: stream streamtest.Tick) -> stream streamtest.Tick throws "
                "streamtest.Boom") in out
        assert "@readonly watch(from_seq: int = 1) -> stream payments.PaymentEvent" in out

        code, out, err = await rpcx_cli("call", address, "streamtest.Streams/count",
                                        '{"start": 1, "count": 3}')
        assert code == 0, err
        assert [json.loads(line) for line in out.splitlines()] == [
            {"n": 1, "text": ""}, {"n": 2, "text": ""}, {"n": 3, "text": ""}]

        code, out, err = await rpcx_cli("call", address, "streamtest.Streams/count",
                                        '{"start": 1, "count": 3, "fail_after": 2}')
        assert code == 1
        assert [json.loads(line)["n"] for line in out.splitlines()] == [1, 2]
        assert err.startswith("FAILED_PRECONDITION: streamtest.Boom")
        assert '"fields": {"after": 2}' in err

        code, out, err = await rpcx_cli("call", address, "streamtest.Streams/sum",
                                        '{"label": "total"}',
                                        stdin=b'{"n": 2}\n{"n": 5}\n\n{"n": 7}\n')
        assert code == 0, err
        assert json.loads(out) == {"n": 14, "text": "total"}

        code, out, err = await rpcx_cli("call", address, "streamtest.Streams/double", "{}",
                                        stdin=b'{"n": 2, "text": "a"}\n{"n": 3}\n')
        assert code == 0, err
        assert [json.loads(line) for line in out.splitlines()] == [
            {"n": 4, "text": "a"}, {"n": 6, "text": ""}]

        code, _, err = await rpcx_cli("call", address, "streamtest.Streams/sum",
                                      '{"label": "x"}', stdin=b'{"n": "two"}\n')
        assert code == 2
        assert "stdin line 1: bad ticks item" in err

        code, out, err = await rpcx_cli("call", address, "payments.Payments/watch", "{}",
                                        "--timeout", "1")
        assert code == 1  # no events: the watch waits until its deadline
        assert out == ""
        assert err.startswith("DEADLINE_EXCEEDED")
