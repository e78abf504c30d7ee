"""Helpers shared by the compiler tests."""

from __future__ import annotations

from collections.abc import Mapping

from rpcx.compiler import CompileResult, compile_files, compile_source


def errors(text: str, path: str = "t.rpcx") -> list[tuple[int, int, str]]:
    """(line, col, message) of every diagnostic for one in-memory file."""
    result = compile_source(text, path)
    return [(d.span.line, d.span.col, d.message) for d in result.diagnostics]


class Reader:
    """A ``read`` function over an in-memory dict that records what it was asked for."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = dict(files)
        self.calls: list[str] = []

    def __call__(self, path: str) -> str:
        self.calls.append(path)
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(path) from None


def compile_dict(files: Mapping[str, str], *roots: str) -> CompileResult:
    return compile_files(list(roots), Reader(files))


def one_error(text: str) -> tuple[int, int, str]:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


