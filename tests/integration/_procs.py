"""Helpers for the integration tests: server processes, their logs, raw wire frames.

A server runs as a real child process (``sys.executable``, cwd = repo root,
``PYTHONUNBUFFERED=1``) with stdout and stderr written to files in the test's tmp dir, so
nothing can fill a pipe and block it, and the log is there to read (and to show when a
test fails). Every helper that starts a process kills it on the way out, failure or not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path

import attrs
import trio

from examples.payments.payments_rpcx import Card, Currency, PaymentsClient
from rpcx.protocol.frames import HEADER, PREFACE, Frame, parse_frame, parse_header

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 15.0
"""Seconds a server process may take to print ``listening on`` (imports on a slow CI)."""

CARD = Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123")
SEED_AMOUNT = Decimal("3.99")
SEED_CURRENCY = Currency.GBP


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def payments_server(address: str, *extra: str) -> list[str]:
    return python("-m", "examples.payments.server", address, *extra)


@attrs.define
class Logs:
    stdout: Path
    stderr: Path

    def text(self) -> str:
        return self.stdout.read_text(errors="replace")

    def describe(self) -> str:
        err = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        return f"--- server stdout ---\n{self.text()}--- server stderr ---\n{err}"

    def listening_url(self) -> str | None:
        for line in self.text().splitlines(keepends=True):
            if line.startswith("listening on ") and line.endswith("\n"):
                return line.removeprefix("listening on ").strip()
        return None

    def count(self, needle: str) -> int:
        return self.text().count(needle)


def _logs(directory: Path, name: str) -> Logs:
    return Logs(directory / f"{name}.out", directory / f"{name}.err")


# -- async: a server process owned by one test ---------------------------------------------


@attrs.define
class ServerProcess:
    url: str
    process: trio.Process
    logs: Logs

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def wait_for_log(self, needle: str, *, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``needle`` appears ``count`` times in the server's stdout."""
        if not await poll_until(lambda: self.logs.count(needle) >= count, timeout):
            raise AssertionError(f"{needle!r} not logged {count} time(s) within {timeout} s\n"
                                 + self.logs.describe())


async def poll_until(condition: Callable[[], Awaitable[bool] | bool], timeout: float, *,
                     interval: float = 0.02) -> bool:
    """Check ``condition`` every ``interval`` seconds until it holds (True) or ``timeout``
    passes (False). For state outside this process (a log file, a listening socket),
    which no trio.Event can signal."""
    with trio.move_on_after(timeout):
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return True
            await trio.sleep(interval)
    return False


@asynccontextmanager
async def server_process(argv: Sequence[str], directory: Path,
                         name: str = "server") -> AsyncIterator[ServerProcess]:
    """Start ``argv``, wait for its ``listening on URL`` line, yield; kill it on exit."""
    logs = _logs(directory, name)
    with logs.stdout.open("wb") as out, logs.stderr.open("wb") as err:
        process = await trio.lowlevel.open_process(
            list(argv), cwd=REPO, env=child_env(), stdout=out, stderr=err)
    try:
        with trio.move_on_after(STARTUP_TIMEOUT):
            while (url := logs.listening_url()) is None:
                if process.returncode is not None:
                    raise AssertionError(f"server exited with {process.returncode} before "
                                         f"listening\n{logs.describe()}")
                await trio.sleep(0.02)
        if url is None:
            raise AssertionError(f"server not listening after {STARTUP_TIMEOUT} s\n"
                                 + logs.describe())
        yield ServerProcess(url, process, logs)
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            with trio.move_on_after(10):
                await process.wait()


# -- sync: a server process shared by a module's tests -------------------------------------


@attrs.define
class SharedServer:
    url: str
    process: subprocess.Popen[bytes]
    logs: Logs


@contextmanager
def shared_server_process(argv: Sequence[str], directory: Path,
                          name: str = "server") -> Iterator[SharedServer]:
    """The blocking twin of :func:`server_process`, for module-scoped (sync) fixtures."""
    logs = _logs(directory, name)
    with logs.stdout.open("wb") as out, logs.stderr.open("wb") as err:
        process = subprocess.Popen(list(argv), cwd=REPO, env=child_env(), stdout=out,
                                   stderr=err)
    try:
        give_up = time.monotonic() + STARTUP_TIMEOUT
        while (url := logs.listening_url()) is None:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode} before "
                                     f"listening\n{logs.describe()}")
            if time.monotonic() > give_up:
                raise AssertionError(f"server not listening after {STARTUP_TIMEOUT} s\n"
                                     + logs.describe())
            time.sleep(0.02)
        yield SharedServer(url, process, logs)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


# -- calls -------------------------------------------------------------------------------


async def seed_call(payments: PaymentsClient, *, timeout: float = 5.0) -> str:
    """The notes' call; returns the payment id after checking the result."""
    result = await payments.process_payment(CARD, SEED_AMOUNT, SEED_CURRENCY, timeout=timeout)
    assert result.success is True
    assert result.payment_id is not None and result.payment_id.startswith("pay_")
    return result.payment_id


# -- raw wire ----------------------------------------------------------------------------


class RawPeer:
    """A hand-driven client end of a byte stream: send bytes, read the preface and frames
    the server sends, or see the stream end."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()
        self.eof = False

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""  # a reset is an end of stream here
            if not data:
                self.eof = True
                return False
            self._buffer += data
        return True

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read_preface(self) -> bytes:
        assert await self._fill(len(PREFACE)), "stream ended before the server's preface"
        preface = bytes(self._buffer[:len(PREFACE)])
        del self._buffer[:len(PREFACE)]
        return preface

    async def read_frame(self) -> Frame | None:
        """The next frame, or None at the end of the stream."""
        if not await self._fill(HEADER.size):
            assert not self._buffer, f"stream ended inside a frame header: {self._buffer!r}"
            return None
        header = parse_header(bytes(self._buffer[:HEADER.size]))
        end = HEADER.size + header.body_length
        assert await self._fill(end), "stream ended inside a frame body"
        body = bytes(self._buffer[HEADER.size:end])
        del self._buffer[:end]
        return parse_frame(header, body)

    async def read_until_eof(self) -> bytes:
        """Everything until the server closes the stream."""
        while await self._fill(len(self._buffer) + 1):
            pass
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest
