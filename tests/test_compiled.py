"""The optional compiled build (``RPCX_MYPYC=1``, ``hatch_build.py``): CI runs the tests on
both builds and sets ``RPCX_EXPECT_COMPILED`` to say which one it means to test, so a
build that silently fell back to pure Python (or left compiled modules behind) fails."""

from __future__ import annotations

import os

import attrs
import pytest

from rpcx._mypyc import COMPILED_MODULES, compiled


def test_the_build_is_the_one_ci_asked_for() -> None:
    expected = os.environ.get("RPCX_EXPECT_COMPILED")
    if expected is None:
        pytest.skip("RPCX_EXPECT_COMPILED is not set (CI sets it to 0 or 1)")
    assert compiled() == {name: expected == "1" for name in COMPILED_MODULES}


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
