"""Atheris target: the IDL compiler and code generator on arbitrary bytes.

    python fuzz/fuzz_idl.py -atheris_runs=100000      # (see fuzz/README.md)

Each input is decoded as UTF-8 (invalid bytes replaced, as a file that ``rpcx check``
rejects would never get this far) and compiled. The property: no exception escapes;
every diagnostic has a valid line:column and renders; when there is none, the generated
module encodes as UTF-8 and compiles. Any failure is a bug: atheris stops and writes the
input to ``crash-*``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from rpcx.codegen import generate
    from rpcx.compiler import compile_source
    from rpcx.compiler.diagnostics import report


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    result = compile_source(text, "fuzz.rpcx")
    lines = text.split("\n")
    for d in result.diagnostics:
        if not (1 <= d.span.line <= len(lines)
                and 1 <= d.span.col <= len(lines[d.span.line - 1]) + 1):
            raise AssertionError(f"bad position {d.span} for {d.message!r}")
    for rendered in report(result.diagnostics):
        if not rendered:
            raise AssertionError("empty rendering")
    if result.ok:
        for file in result.files:
            name, source = generate(file)
            source.encode("utf-8")
            compile(source, name, "exec")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
