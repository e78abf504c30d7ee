from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rpcx.compiler.lexer import Tok, tokenize


def kinds_texts(text: str) -> list[tuple[Tok, str]]:
    tokens, diags = tokenize(text)
    assert not diags, diags
    return [(t.kind, t.text) for t in tokens]


def test_positions_are_one_based_line_and_column() -> None:
    tokens, _ = tokenize("package a;\n  struct B {\n\t1: x: int;\n}")
    where = [(t.text, t.span.line, t.span.col) for t in tokens]
    assert where[:4] == [("package", 1, 1), ("a", 1, 9), (";", 1, 10), ("struct", 2, 3)]
    assert ("1", 3, 2) in where
    assert where[-1] == ("", 4, 2)  # EOF just after the last character


def test_punctuation_arrow_and_minus() -> None:
    assert kinds_texts("-> - -1 ?") == [
        (Tok.PUNCT, "->"), (Tok.PUNCT, "-"), (Tok.PUNCT, "-"), (Tok.INT, "1"),
        (Tok.PUNCT, "?"), (Tok.EOF, ""),
    ]


def test_numbers() -> None:
    tokens, diags = tokenize("42 1.5 1e3 2.5E-2 0")
    assert not diags
    assert [(t.kind, t.value) for t in tokens[:-1]] == [
        (Tok.INT, 42), (Tok.FLOAT, 1.5), (Tok.FLOAT, 1000.0), (Tok.FLOAT, 0.025), (Tok.INT, 0)
    ]


def test_durations_are_single_tokens_in_seconds() -> None:
    tokens, diags = tokenize("250ms 2s 1m")
    assert not diags
    assert [(t.kind, t.text, t.value) for t in tokens[:-1]] == [
        (Tok.DURATION, "250ms", 0.25), (Tok.DURATION, "2s", 2.0), (Tok.DURATION, "1m", 60.0)
    ]


def test_number_with_junk_suffix_is_an_error() -> None:
    _, diags = tokenize("x = 2h;\ny = 1.5s;")
    assert [(d.span.line, d.span.col, d.message) for d in diags] == [
        (1, 5, "invalid number '2h'"), (2, 5, "invalid number '1.5s'")
    ]


def test_string_escapes() -> None:
    tokens, diags = tokenize(r'"a\"b\\c\n\t\x41\u00e9\U0001F600\0\'"')
    assert not diags
    assert tokens[0].value == "a\"b\\c\n\t" + "A\u00e9\U0001f600\0'"


def test_bad_escapes_point_at_the_backslash() -> None:
    _, diags = tokenize('"ab\\q" "\\x4" "\\ud800"')
    assert [(d.span.col, d.message) for d in diags] == [
        (4, "invalid escape '\\q' in string"),
        (9, "invalid escape '\\x4' in string"),
        (15, "invalid escape '\\ud800' in string"),
    ]


def test_unterminated_string_is_reported_at_its_quote() -> None:
    tokens, diags = tokenize('a = "open\nb')
    assert [(d.span.line, d.span.col, d.message) for d in diags] == [
        (1, 5, "unterminated string")
    ]
    assert [t.text for t in tokens] == ["a", "=", '"open', "b", ""]


def test_comments_are_skipped_and_unterminated_block_is_an_error() -> None:
    assert kinds_texts("a // x\n/* y\n z */ b") == [
        (Tok.IDENT, "a"), (Tok.IDENT, "b"), (Tok.EOF, "")
    ]
    _, diags = tokenize("a\n  /* never")
    assert [(d.span.line, d.span.col, d.message) for d in diags] == [
        (2, 3, "unterminated block comment")
    ]


def test_doc_comments_attach_to_the_next_token() -> None:
    tokens, _ = tokenize("///  two spaces\n/// second\n//// not a doc\n// plain\nstruct X")
    assert tokens[0].text == "struct"
    assert tokens[0].doc == " two spaces\nsecond"
    assert tokens[1].doc == ""


def test_unexpected_character() -> None:
    tokens, diags = tokenize("a $ b")
    assert [(d.span.col, d.message) for d in diags] == [(3, "unexpected character '$'")]
    assert [t.text for t in tokens] == ["a", "b", ""]


@given(st.text())
def test_lexer_never_crashes_and_always_ends_with_eof(text: str) -> None:
    tokens, diags = tokenize(text)
    assert tokens[-1].kind is Tok.EOF
    for d in diags:
        assert d.span.line >= 1 and d.span.col >= 1
