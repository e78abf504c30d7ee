"""Regressions from fuzzing the compiler with hostile input (issue 9): each of these raised,
produced unbounded output or took quadratic time before."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpcx.cli import main
from rpcx.compiler import compile_source
from rpcx.compiler.diagnostics import MAX_PER_FILE, Diagnostic, Span, report
from rpcx.compiler.model import StructDecl

from .helpers import errors

NINES = "9" * 5000


@pytest.mark.parametrize(("body", "col", "what"), [
    (f"  1: a: int = {NINES};", 15, "integer"),
    (f"  {NINES}: a: int;", 3, "integer"),
    (f"  reserved 1 to {NINES};", 17, "integer"),
    (f"  1: a: float = 1.{NINES};", 17, "number"),
    (f"  1: a: decimal = {NINES}e5;", 19, "number"),
])
def test_number_literal_of_5000_digits_is_a_diagnostic_not_a_value_error(
    body: str, col: int, what: str
) -> None:
    found = errors(f"package p;\nstruct S {{\n{body}\n}}\n")
    length = len(body.split()[-1].rstrip(";")) if what == "number" or "=" in body else 5000
    assert found == [(3, col, f"{what} literal too long ({length} characters, at most 1000)")]


def test_huge_enum_value_and_duration_are_diagnostics() -> None:
    text = (f"package p;\nenum E {{ A = {NINES}; }}\n"
            f"service S {{ @deadline({NINES}s) m(); }}\n")
    assert errors(text) == [
        (2, 6, "enum 'E' has no members"),  # the member with the bad value is skipped
        (2, 14, "integer literal too long (5000 characters, at most 1000)"),
        (3, 23, "number literal too long (5001 characters, at most 1000)"),
    ]


def test_duration_too_large_for_a_float_is_a_diagnostic_not_overflow_error() -> None:
    text = f"package p;\nservice S {{\n  @deadline({'9' * 400}s) m();\n}}\n"
    found = errors(text)
    assert found[0] == (3, 13, f"duration {'9' * 400}s is out of range")


def test_longest_number_literal_still_converts_and_is_quoted_in_messages() -> None:
    digits = "9" * 1000
    ((line, col, message),) = errors(f"package p;\nstruct S {{\n  {digits}: a: int;\n}}\n")
    assert (line, col) == (3, 3)
    assert message == f"tag {digits} is out of range (1 to 536870911)"


def test_deep_nesting_of_every_kind_is_a_diagnostic_not_recursion_error() -> None:
    deep = 20_000
    cases = {
        "map": "  1: a: " + "map<string, " * deep + "int" + ">" * deep + ";",
        "list": "  1: a: " + "list<" * deep + "int" + ">" * deep + ";",
        "brackets": "  1: a: list<int> = " + "[" * deep + "]" * deep + ";",
        "braces": "  1: a: map<string, int> = " + "{" * deep + "}" * deep + ";",
    }
    for name, body in cases.items():
        found = errors(f"package p;\nstruct S {{\n{body}\n}}\n")
        assert found and all(line == 3 for line, _, _ in found), name
        assert any("nested too deeply" in m for _, _, m in found), (name, found)


def test_a_loop_of_thousands_of_required_structs_is_reported_without_recursion() -> None:
    # The old check searched the loop recursively (RecursionError past ~1000 structs).
    n = 3000
    text = "package p;\n" + "".join(
        f"struct S{i} {{ 1: a: S{(i + 1) % n}; }}\n" for i in range(n))
    found = errors(text)
    assert len(found) == n
    assert found[0] == (2, 8, "struct 'S0' contains itself through required fields and can"
                              " never be built (make a field optional, a list or a map)")


def test_a_long_chain_of_required_structs_is_fine() -> None:
    n = 3000
    text = "package p;\n" + "".join(
        f"struct S{i} {{ 1: a: S{i + 1}; }}\n" for i in range(n)) + f"struct S{n} {{}}\n"
    assert compile_source(text, "t.rpcx").ok


def test_reserved_values_are_kept_as_ranges() -> None:
    text = ("package p;\nstruct S {\n  reserved 1 to 9999, 10000 to 19998, 5;\n"
            "  reserved 30000 to 30001;\n  1: a: int;\n}\n")
    assert errors(text) == [(5, 3, "tag 1 is reserved")]
    ok = compile_source(text.replace("1: a", "20000: a"), "t.rpcx")
    (decl,) = ok.files[0].decls
    assert isinstance(decl, StructDecl)
    assert decl.reserved == ((1, 19998), (30000, 30001))


def test_a_run_of_junk_is_one_error() -> None:
    assert errors("package p;\n;;;;;;;;\n}}}}\n@@@@;\nstruct A {}\n") == [
        (2, 1, "expected a declaration (enum, struct, union, error or service), found ';'")
    ]
    assert errors("package p;\nstruct S { ;;;; 1: a: int; }\n") == [
        (2, 12, "expected a field tag (an integer), found ';'")
    ]
    assert errors("package p;\nstruct S { 1: a: int; } $$$€€ ;\n") == [
        (2, 25, "unexpected characters '$$$€€'"),
        (2, 31, "expected a declaration (enum, struct, union, error or service), found ';'"),
    ]


def test_nested_block_comment_openers_are_one_comment_each() -> None:
    # '/*/*/' is a whole comment; the '*' after it is the only bad character each time.
    found = errors("package p;\n" + "/*" * 10)
    assert found == [(2, 6, "unexpected character '*'"), (2, 12, "unexpected character '*'"),
                     (2, 18, "unexpected character '*'"), (2, 19, "unterminated block comment")]


def test_lone_surrogate_in_source_text_is_a_diagnostic() -> None:
    # Only compile_source or a custom read() can pass one (files are decoded as UTF-8);
    # a bytes default holding it used to raise UnicodeEncodeError.
    assert errors('package p;\nstruct S { 1: a: bytes = "\ud800"; }\n') == [
        (2, 27, "not valid unicode: a lone surrogate")
    ]


def test_long_source_line_is_shown_as_a_window_around_the_column() -> None:
    line = "x" * 300 + "$" + "y" * 300
    d = Diagnostic(Span("t.rpcx", 1, 301), "unexpected character '$'", line)
    head, shown, caret = d.render().split("\n")
    assert head == "t.rpcx:1:301: error: unexpected character '$'"
    assert shown == "    ..." + "x" * 60 + "$" + "y" * 59 + "..."
    assert caret == "    " + " " * 63 + "^"


def test_window_at_both_ends_of_a_long_line() -> None:
    line = "$" + "y" * 300
    start = Diagnostic(Span("t.rpcx", 1, 1), "m", line).render().split("\n")
    assert start[1:] == ["    $" + "y" * 119 + "...", "    ^"]
    end = Diagnostic(Span("t.rpcx", 1, 301), "m", line).render().split("\n")
    assert end[1:] == ["    ..." + "y" * 120, "    " + " " * 122 + "^"]


def test_control_characters_in_echoed_source_and_messages_are_not_sent_to_the_terminal(
) -> None:
    d = Diagnostic(Span("t.rpcx", 1, 6), "bad '\x1b[2J'", "\x1b[2J\t$")
    assert d.render() == "t.rpcx:1:6: error: bad '?[2J'\n    ?[2J\t$\n        \t^"


def test_long_message_is_shortened_in_the_middle() -> None:
    d = Diagnostic(Span("t.rpcx", 1, 1), "unknown type '" + "A" * 10_000 + "'")
    assert len(d.render()) < 400 and " ... " in d.render()


def test_report_caps_diagnostics_per_file() -> None:
    diags = [Diagnostic(Span(f, 1, i + 1), "m") for f in ("a", "b") for i in range(60)]
    diags.append(Diagnostic(Span("c", 1, 1), "m"))
    lines = list(report(diags))
    assert len(lines) == 2 * (MAX_PER_FILE + 1) + 1
    assert lines[MAX_PER_FILE] == "a: 10 more problems not shown"
    assert lines[-2] == "b: 10 more problems not shown" and lines[-1] == "c:1:1: error: m"
    assert list(report(diags[:2], per_file=1)) == ["a:1:1: error: m",
                                                    "a: 1 more problem not shown"]


def test_check_on_a_20kb_one_line_file_prints_a_bounded_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "junk.rpcx"
    path.write_text("package p; struct S { " + "1: a: X; " * 2300 + "}\n", encoding="utf-8")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(err) < 30_000
    assert max(len(line) for line in lines) < 200
    total = 3 * 2300 - 2  # unknown type each time; duplicate name and tag but the first
    assert lines[-2] == f"{path}: {total - MAX_PER_FILE} more problems not shown"
    assert lines[-1] == f"{total} errors in 1 file"
