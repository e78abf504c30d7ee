from __future__ import annotations

from rpcx.compiler import CompileResult, compile_source
from rpcx.compiler.diagnostics import Diagnostic, Span
from rpcx.errors import IdlError

from .helpers import compile_dict


def test_render_has_location_message_source_line_and_caret() -> None:
    result = compile_source("package p;\nstruct S {\n  1: card: Crad;\n}\n", "payments.rpcx")
    assert [d.render() for d in result.diagnostics] == [
        "payments.rpcx:3:12: error: unknown type 'Crad'\n"
        "      1: card: Crad;\n"
        "               ^"
    ]


def test_caret_keeps_tabs_so_it_lines_up() -> None:
    result = compile_source("package p;\nstruct S {\n\t1: x: Nope;\n}\n", "t.rpcx")
    (d,) = result.diagnostics
    assert (d.span.line, d.span.col) == (3, 8)
    assert d.render().splitlines()[2] == "    \t      ^"


def test_columns_count_characters_not_bytes() -> None:
    line = '  1: a: string = "éü😀"; 2: x: Nope;'
    result = compile_source("package p;\nstruct S {\n" + line + "\n}\n")
    assert [(d.span.line, d.span.col) for d in result.diagnostics] == [(3, line.index("Nope") + 1)]
    assert line.index("Nope") + 1 == 31  # characters; in UTF-8 bytes it would be 36


def test_diagnostics_are_sorted_by_file_line_col_and_files_empty_on_error() -> None:
    files = {"b.rpcx": 'package b;\nimport "a.rpcx";\nstruct B {\n  1: x: Nope;\n  0: y: int;\n}\n',
             "a.rpcx": "package a;\nstruct A {\n  1: x: Nope;\n}\n"}
    result = compile_dict(files, "b.rpcx")
    keys = [(d.span.file, d.span.line, d.span.col) for d in result.diagnostics]
    assert keys == [("a.rpcx", 3, 9), ("b.rpcx", 4, 9), ("b.rpcx", 5, 3)]
    assert not result.ok and result.files == ()


def test_ok_result() -> None:
    result = compile_source("package p;\n", "p.rpcx")
    assert result == CompileResult(result.files, ("p.rpcx",), ())
    assert result.ok and result.files[0].module == "p_rpcx"


def test_compile_source_default_path_works() -> None:
    result = compile_source("package p;\nstruct A {}\n")
    assert result.ok and result.roots == ("<string>",)
    assert result.files[0].module == "string_rpcx"


def test_imports_from_compile_source_are_not_found() -> None:
    result = compile_source('package p;\nimport "x.rpcx";\n', "p.rpcx")
    assert [d.message for d in result.diagnostics] == ["import not found: 'x.rpcx'"]


def test_idl_error_carries_and_renders_the_diagnostics() -> None:
    diag = Diagnostic(Span("f.rpcx", 1, 1), "missing 'package' declaration", "struct A {}")
    err = IdlError([diag])
    assert err.diagnostics == (diag,)
    assert str(err) == "f.rpcx:1:1: error: missing 'package' declaration\n    struct A {}\n    ^"


def test_messages_are_lower_case() -> None:
    result = compile_source("struct class {\n  0: _x: Nope = 1;\n}\n@bogus enum E {}\n", "f.rpcx")
    assert len(result.diagnostics) >= 5
    for d in result.diagnostics:
        assert d.message[0].islower() or d.message[0] in "'@", d.message
