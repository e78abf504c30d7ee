"""Fuzzing the compiler (issue 9), kept in the suite with a bounded number of examples:
whatever the text, ``rpcx check`` / ``rpcx gen`` report diagnostics with valid positions
and exit 1, or succeed with generated code that compiles. Never an exception.

Timing is not asserted here; ``bench/idl_scaling.py`` measures how time scales. The same
property runs unbounded under atheris: ``python fuzz/fuzz_idl.py`` (fuzz/README.md).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcx.cli import main
from rpcx.codegen import generate
from rpcx.compiler import compile_source
from rpcx.compiler.diagnostics import report

# Pieces of IDL, so that generated text gets past the lexer often and into the parser,
# the checker and code generation.
PIECES = [
    "package p;", "struct", "union", "error", "enum", "service", "oneway", "throws",
    "reserved", "to", "import", '"x.rpcx"', "S", "T", "E", "a", "b", "A", "B", "int",
    "string", "bytes", "float", "decimal", "bool", "timestamp", "list", "map", "{", "}",
    "(", ")", "<", ">", "[", "]", ",", ";", ":", "=", "?", ".", "-", "->", "@", "1", "2",
    "0", "536870912", "9" * 30, "1.5", "1e999", "2s", "250ms", "2h", '"s"', '"\\0"',
    '"\\q"', '"2024-01-31T12:00:00Z"', "true", "null", "@deprecated", "@idempotent",
    "@deadline", "@status", "NOT_FOUND", "/// doc \x00\u2028\"\"\"\\", "// c", "/*", "*/",
    "\n", " ", "\t", "$", "\x00", "\ufeff", "class", "_x",
]

TEMPLATE = (
    "package p;\n/// Doc {0}\nenum E {{ A = 1; B = 2; }}\nstruct S {{\n  1: a: {1} = {2};\n"
    "  2: b: list<S>?;\n}}\nunion U {{ 1: s: S; 2: n: int; }}\nerror Oops {{ 1: why: string; }}\n"
    "service Svc {{\n  {3}\n  m(1: a: int) -> S throws Oops;\n}}\n"
)

pieces = st.lists(st.sampled_from(PIECES), max_size=40).map(" ".join)
texts = st.one_of(
    st.text(max_size=200),
    pieces,
    st.builds(TEMPLATE.format, st.text(max_size=30),
              st.sampled_from(["int", "string", "float", "E", "list<int>", "map<string, E>",
                               "bytes", "decimal", "timestamp", "S?"]),
              st.one_of(pieces, st.sampled_from(['"x"', "1", "A", "[1, 2]", '{"k": A}',
                                                 "null", "1.5", '"\\u2028\\0"'])),
              pieces),
)


def _check_result(text: str) -> None:
    result = compile_source(text, "fuzz.rpcx")
    lines = text.split("\n")
    for d in result.diagnostics:
        assert 1 <= d.span.line <= len(lines), d
        assert 1 <= d.span.col <= len(lines[d.span.line - 1]) + 1, d
    for rendered in report(result.diagnostics):
        assert rendered
    if result.ok:
        for file in result.files:
            name, source = generate(file)
            source.encode("utf-8")
            compile(source, name, "exec")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_compiler_never_raises_and_generated_code_compiles(text: str) -> None:
    _check_result(text)


@settings(max_examples=40, deadline=None)
@given(st.one_of(pieces, st.binary(max_size=100).map(lambda b: b.decode("latin-1"))))
def test_cli_check_and_gen_exit_0_or_1_without_traceback(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.rpcx"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        for argv in (["check", str(path)], ["gen", str(path), "-o", str(Path(tmp) / "out")]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
            assert code in (0, 1)
            assert "Traceback" not in err.getvalue()
            assert (code == 1) == bool(err.getvalue())
