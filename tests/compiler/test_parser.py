"""The parser: tree shapes, error recovery, and properties over random input."""

from __future__ import annotations

import keyword

from hypothesis import given
from hypothesis import strategies as st

from rpcx.compiler import compile_source, model
from rpcx.compiler import syntax as syn
from rpcx.compiler.diagnostics import Span
from rpcx.compiler.parser import parse
from rpcx.schema import Kind


def test_tree_of_a_small_file() -> None:
    tree, diags = parse(
        'package a.b;\nimport "x.rpcx";\n@deprecated("r")\nstruct S {\n'
        "  reserved 2, 5 to 9;\n  1: m: map<string, list<int?>>? = {};\n}\n"
    )
    assert diags == []
    assert tree.package is not None and tree.package.text == "a.b"
    assert [i.path for i in tree.imports] == ["x.rpcx"]
    (s,) = tree.decls
    assert isinstance(s, syn.StructDecl)
    assert (s.keyword, s.name.text) == ("struct", "S")
    assert [(r.low, r.high) for r in s.reserved] == [(2, 2), (5, 9)]
    assert s.annotations[0].name.text == "deprecated"
    (f,) = s.fields
    assert f.type.text == "map<string, list<int?>>?"
    assert isinstance(f.default, syn.MapValue)


def test_method_shape() -> None:
    tree, diags = parse("package p;\nservice S {\n  @idempotent\n"
                        "  m(1: a: int, 2: b: string = \"x\",) -> int? throws p.E, F;\n"
                        "  oneway o();\n}\n")
    assert diags == []
    svc = tree.decls[0]
    assert isinstance(svc, syn.ServiceDecl)
    m, o = svc.methods
    assert [p.name.text for p in m.params] == ["a", "b"]
    assert m.result is not None and m.result.text == "int?"
    assert [t.text for t in m.throws] == ["p.E", "F"]
    assert not m.oneway and o.oneway and o.result is None


def test_spans_of_fields_methods_and_their_parts() -> None:
    # Every node's span is where its first token starts (the parser's fast paths for
    # one-word types, plain tags and methods must not mix them up).
    tree, diags = parse("package p;\nstruct S {\n  1: a: int;\n  @deprecated 2: bb: p.T? = 1;\n"
                        "  -3: c: list<int>;\n}\nservice V {\n  /// d\n  m(4: x: S?) -> S;\n"
                        "  @idempotent oneway n() throws E;\n}\n")
    assert [d.message for d in diags] == []
    s, v = tree.decls
    assert isinstance(s, syn.StructDecl) and isinstance(v, syn.ServiceDecl)
    at = [(f.span.line, f.span.col, f.tag_span.col, f.name.span.col, f.type.span.col)
          for f in s.fields]
    assert at == [(3, 3, 3, 6, 9), (4, 3, 15, 18, 22), (5, 3, 3, 7, 10)]
    m, n = v.methods
    assert (m.span.line, m.span.col, m.name.span.col, m.doc) == (9, 3, 3, "d")
    (x,) = m.params
    assert (x.span.col, x.tag_span.col, x.name.span.col, x.type.span.col) == (5, 5, 8, 11)
    assert x.type.optional and x.type.text == "S?"
    assert (n.span.col, n.name.span.col, n.oneway_span, n.throws_span) == (
        3, 22, Span("<string>", 10, 15), Span("<string>", 10, 26))


def messages(text: str) -> list[tuple[int, int, str]]:
    _, diags = parse(text)
    return [(d.span.line, d.span.col, d.message) for d in diags]


def test_syntax_errors_say_what_was_expected_and_every_one_is_reported() -> None:
    text = ("package p;\nstruct A {\n  1: a: int\n}\nstruct B {\n  1: b: ;\n  2 c: int;\n}\n"
            "enum E {\n  X 1;\n}\n")
    assert messages(text) == [
        (4, 1, "expected ';' after field, found '}'"),
        (6, 9, "expected a type, found ';'"),
        (7, 5, "expected ':' after field tag, found 'c'"),
        (10, 5, "expected '=' after enum member name, found '1'"),
    ]


def test_recovery_keeps_later_declarations() -> None:
    tree, diags = parse("package p;\nstruct A { 1 }\nstruct B {\n  1: b: int;\n}\n")
    assert len(diags) == 1
    assert [d.name.text for d in tree.decls] == ["A", "B"]


def test_missing_closing_brace_before_a_new_declaration() -> None:
    tree, diags = parse("package p;\nstruct A {\n  1: a: int;\nstruct B {\n}\n")
    assert [(d.span.line, d.span.col, d.message) for d in diags] == [
        (4, 1, "expected '}', found 'struct'")
    ]
    assert [d.name.text for d in tree.decls] == ["A", "B"]


def test_garbage_at_top_level() -> None:
    assert messages("package p;\n42;\n") == [
        (2, 1, "expected a declaration (enum, struct, union, error or service), found '42'")
    ]


def test_end_of_file_is_named() -> None:
    assert messages("package p;\nstruct A {\n  1: a:") == [
        (3, 8, "expected a type, found end of file"),
        (3, 8, "expected '}', found end of file"),
    ]


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    text = "package p;\nstruct A {\n  1: a: " + "list<" * 500 + "int" + ">" * 500 + ";\n}\n"
    assert any("nested too deeply" in m for _, _, m in messages(text))
    value = "package p;\nstruct A {\n  1: a: int = " + "[" * 500 + ";\n}\n"
    assert any("nested too deeply" in m for _, _, m in messages(value))


# -- properties ---------------------------------------------------------------------------

TOKENS = ["package", "import", "struct", "union", "error", "enum", "service", "oneway",
          "throws", "reserved", "to", "list", "map", "int", "string", "A", "x", "p", "true",
          "null", "1", "-", "2s", "1.5", '"s"', ";", ":", ",", ".", "=", "(", ")", "{", "}",
          "<", ">", "[", "]", "?", "@", "->", "@idempotent", "@deadline", "/// doc\n", "\n"]


@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    result = compile_source(text, "f.rpcx")
    assert result.ok or result.files == ()


@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_random_token_soup_never_raises(tokens: list[str]) -> None:
    text = " ".join(tokens)
    result = compile_source("package p;\n" + text, "f.rpcx")
    for d in result.diagnostics:
        assert d.span.line >= 1 and d.span.col >= 1
        assert d.render().startswith(f"f.rpcx:{d.span.line}:{d.span.col}: error: ")


PRIMS = {"bool": Kind.BOOL, "int": Kind.INT, "float": Kind.FLOAT, "decimal": Kind.DECIMAL,
         "string": Kind.STRING, "bytes": Kind.BYTES, "timestamp": Kind.TIMESTAMP}
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n not in {"bool", "int", "float", "str", "bytes",
                                                     "list", "dict"})


@st.composite
def structs(draw: st.DrawFn) -> list[tuple[int, str, str, bool]]:
    names = draw(st.lists(NAMES, min_size=1, max_size=8, unique=True))
    tags = draw(st.lists(st.integers(1, 2**29 - 1), min_size=len(names),
                         max_size=len(names), unique=True))
    return [(tag, name, draw(st.sampled_from(sorted(PRIMS))), draw(st.booleans()))
            for tag, name in zip(tags, names, strict=True)]


@given(structs())
def test_round_trip_of_generated_structs(fields: list[tuple[int, str, str, bool]]) -> None:
    body = "".join(f"  {tag}: {name}: {t}{'?' if opt else ''};\n" for tag, name, t, opt in fields)
    result = compile_source(f"package gen;\nstruct S {{\n{body}}}\n", "gen.rpcx")
    assert result.ok, result.diagnostics
    struct = result.files[0].decls[0]
    assert isinstance(struct, model.StructDecl)
    expected = []
    for tag, name, t, opt in fields:
        mtype = model.ModelType(PRIMS[t])
        expected.append((tag, name, model.ModelType(Kind.OPTIONAL, item=mtype) if opt else mtype))
    assert [(f.tag, f.name, f.type) for f in struct.fields] == expected


@given(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))
def test_round_trip_of_int_and_string_defaults(number: int, text: str) -> None:
    escaped = "".join(f"\\U{ord(c):08x}" for c in text)
    src = (f'package p;\nstruct S {{\n  1: n: int = {number};\n  2: s: string = "{escaped}";\n'
           f'  3: b: bytes = "{escaped}";\n}}\n')
    result = compile_source(src, "p.rpcx")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert not result.ok  # surrogates cannot be in a UTF-8 source
        return
    assert result.ok, result.diagnostics
    struct = result.files[0].decls[0]
    assert isinstance(struct, model.StructDecl)
    assert [f.default for f in struct.fields] == [number, text, text.encode()]
