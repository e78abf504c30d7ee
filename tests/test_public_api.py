"""The public API is what ``rpcx.__all__`` lists, each name once, sorted, importable, and
shown as ``rpcx.X`` (ARCHITECTURE.md practice 6)."""

from __future__ import annotations

import pytest

import rpcx


def test_all_is_sorted_and_unique() -> None:
    assert rpcx.__all__ == sorted(rpcx.__all__, key=lambda n: (not n.isupper(), n))
    assert len(set(rpcx.__all__)) == len(rpcx.__all__)


@pytest.mark.parametrize("name", rpcx.__all__)
def test_every_exported_name_exists(name: str) -> None:
    assert hasattr(rpcx, name)


def test_classes_and_functions_show_the_public_module() -> None:
    for name in rpcx.__all__:
        obj = getattr(rpcx, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "rpcx", f"rpcx.{name} shows module {obj.__module__!r}"


def test_nothing_public_is_left_unexported() -> None:
    public = {n for n in vars(rpcx) if not n.startswith("_")}
    submodules = {"codec", "compiler", "errors", "schema", "status", "transport", "stubs",
                  "testing", "runtime", "codegen", "protocol", "cli", "gateway", "annotations",
                  "reflection", "text"}
    assert public - set(rpcx.__all__) - submodules == set()


def test_the_exception_tree_is_as_documented() -> None:
    assert issubclass(rpcx.CodecError, ValueError)
    for error in (rpcx.RemoteError, rpcx.DeadlineExceeded, rpcx.Cancelled, rpcx.Unavailable,
                  rpcx.DeclaredError):
        assert issubclass(error, rpcx.RpcError)
    for base in (rpcx.RpcError, rpcx.CodecError, rpcx.IdlError, rpcx.ProtocolError):
        assert issubclass(base, rpcx.RpcxError)
    assert rpcx.DeadlineExceeded().code is rpcx.Status.DEADLINE_EXCEEDED
