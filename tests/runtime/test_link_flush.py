"""How ``Link.flush`` shares writes: one sender at a time, in queue order; others leave
their frames to it and go on, unless the backlog is past the high-water mark or they ask
to wait."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import trio
import trio.testing

from rpcx.protocol import Connection, Role
from rpcx.runtime.link import WRITE_HIGH_WATER, Link


class _RecordingStream(trio.abc.Stream):
    """Records writes; while ``blocked`` every write waits for ``release``."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.blocked = False
        self._released = trio.Event()

    def release(self) -> None:
        self.blocked = False
        self._released.set()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.blocked:
            await self._released.wait()
        else:
            await trio.lowlevel.checkpoint()
        self.writes.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def _link() -> tuple[Link, _RecordingStream]:
    stream = _RecordingStream()
    conn = Connection(Role.CLIENT, now=0.0)
    return Link(stream, conn, lambda event: None), stream


def _call(link: Link, payload: bytes) -> None:
    link.conn.start_call("echo.Echo/echo", payload, now=trio.current_time())


async def test_a_flush_behind_a_busy_sender_returns_and_its_frame_follows() -> None:
    link, stream = _link()
    stream.blocked = True
    _call(link, b"first")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.flush)           # becomes the sender and blocks writing
        await trio.testing.wait_all_tasks_blocked()
        _call(link, b"second")
        with trio.fail_after(1):
            await link.flush()                   # returns at once: the sender takes it
        assert link.conn.has_data_to_send()
        assert len(stream.writes) == 0
        stream.release()
    assert len(stream.writes) == 2
    assert b"first" in stream.writes[0] and b"second" in stream.writes[1]
    assert not link.conn.has_data_to_send()


async def test_flush_waits_for_the_sender_past_the_high_water_mark() -> None:
    link, stream = _link()
    stream.blocked = True
    _call(link, b"first")
    big = b"x" * (WRITE_HIGH_WATER + 1)
    waited = trio.Event()

    async def flush_big() -> None:
        _call(link, big)
        await link.flush()
        waited.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.flush)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(flush_big)
        await trio.testing.wait_all_tasks_blocked()
        assert not waited.is_set(), "a flush past the high-water mark must wait"
        stream.release()
    assert waited.is_set()
    assert b"".join(stream.writes).endswith(big)


async def test_flush_with_wait_returns_only_once_written() -> None:
    link, stream = _link()
    stream.blocked = True
    _call(link, b"first")
    done = trio.Event()

    async def flush_and_wait() -> None:
        _call(link, b"second")
        await link.flush(wait=True)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.flush)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(flush_and_wait)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        stream.release()
    assert done.is_set()
    assert b"second" in b"".join(stream.writes)


async def test_the_reader_stops_running_jobs_while_answers_wait_past_high_water() -> None:
    # A read full of requests whose answers are large, to a peer that does not read:
    # the reader writes (and blocks) once the queue passes the high-water mark, instead
    # of running every job and holding all the answers in memory.
    link, stream = _link()
    stream.blocked = True
    ran: list[int] = []
    chunk = b"x" * (WRITE_HIGH_WATER // 2 + 1)

    def job(k: int) -> Callable[[], Coroutine[Any, Any, None]]:
        async def run() -> None:
            ran.append(k)
            _call(link, chunk)
        return run

    for k in range(10):
        link.queue_work(job(k))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link._run_work)
        await trio.testing.wait_all_tasks_blocked()
        assert ran == [0, 1], "ran past the high-water mark while the peer did not read"
        assert link.conn.bytes_to_send() == 0  # taken by the blocked write
        stream.release()
    assert ran == list(range(10))
    assert sum(map(len, stream.writes)) > 10 * len(chunk)
