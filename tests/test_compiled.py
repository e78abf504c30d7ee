"""The optional compiled build (``RPCX_MYPYC=1``, ``hatch_build.py``): CI runs the tests on
both builds and sets ``RPCX_EXPECT_COMPILED`` to say which one it means to test, so a
build that silently fell back to pure Python (or left compiled modules behind, or did not
build a C extension of ``rpcx._mypyc.C_MODULES``) fails."""

from __future__ import annotations

import os

import attrs
import pytest

from rpcx._mypyc import C_MODULES, COMPILED_MODULES, compiled


def test_the_build_is_the_one_ci_asked_for() -> None:
    expected = os.environ.get("RPCX_EXPECT_COMPILED")
    if expected is None:
        pytest.skip("RPCX_EXPECT_COMPILED is not set (CI sets it to 0 or 1)")
    # (the C extensions of C_MODULES too: built and importable in the compiled build only)
    assert compiled() == {name: expected == "1" for name in COMPILED_MODULES + C_MODULES}


def test_attrs_classes_in_compiled_modules_stay_attrs_classes() -> None:
    from rpcx.protocol.buffer import Oversized
    from rpcx.protocol.frames import FrameHeader

    assert attrs.has(Oversized)
    header = FrameHeader(1, 2, 0, 0, 7)
    # (mypy types the class by its mypyc_attr decorator here, hence the ignores)
    notice = Oversized(header)  # type: ignore[call-arg]
    assert notice == Oversized(header)  # type: ignore[call-arg]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        notice.header = header  # type: ignore[attr-defined]


def test_the_runtime_s_reply_classes_stay_attrs_classes() -> None:
    from rpcx.runtime.dispatch import Failure, Route, Success
    from rpcx.status import Status

    for cls in (Failure, Route, Success):
        assert attrs.has(cls)
    failure = Failure(Status.INTERNAL, "oops")
    assert failure == Failure(Status.INTERNAL, "oops", {})
    assert attrs.evolve(failure, local=True).local
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        failure.message = "changed"  # type: ignore[misc]


def test_a_connection_subclass_s_override_is_what_a_compiled_link_calls() -> None:
    """``Connection`` allows interpreted subclasses (tests inject bugs through one, see
    tests/runtime/test_connection_isolation.py): a compiled ``Link`` must reach the
    subclass's method, not the compiled one."""
    import trio
    import trio.testing

    from rpcx.protocol import Connection, Role
    from rpcx.runtime.link import Link

    seen: list[bytes] = []

    class Recording(Connection):
        def receive_data(self, data: bytes, now: float) -> None:
            seen.append(data)
            super().receive_data(data, now)

    async def main() -> None:
        left, right = trio.testing.memory_stream_pair()
        link = Link(left, Recording(Role.CLIENT, now=trio.current_time()), lambda _: None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.run)
            await right.send_all(b"not a preface")
            with trio.fail_after(5):
                await link.closed.wait()  # (the bytes end the connection: a bad preface)
    trio.run(main)
    assert seen and seen[0].startswith(b"not a preface")
