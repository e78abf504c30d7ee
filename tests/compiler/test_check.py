"""Semantic rules: each asserts the exact line:col and the message."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path

import pytest

from rpcx.compiler import compile_source, model
from rpcx.schema import Kind
from rpcx.status import Status

from .helpers import errors, one_error

PKG = "package p;\n"


def in_struct(body: str) -> str:
    """A file whose line 3 is ``body`` inside ``struct S``; an enum E {A, B} is declared."""
    return PKG + "struct S {\n" + body + "\n}\nenum E {\n  A = 1;\n  B = 2;\n}\n"


DEFAULT_CASES = [
    ('  1: x: int = "x";', 15, 'default "x" does not fit type \'int\''),
    ("  1: x: int = 9223372036854775808;", 15, "out of range for 'int'"),
    ("  1: x: int = -9223372036854775809;", 15, "out of range for 'int'"),
    ("  1: x: int = 1.5;", 15, "not an integer"),
    ("  1: x: string = null;", 18, "'null' default requires an optional type"),
    ("  1: x: E = C;", 13, "'C' is not a member of enum 'p.E'"),
    ("  1: x: E = S.A;", 13, "'S.A' is not a member of enum 'p.E'"),
    ('  1: x: list<int> = [1, "2"];', 25, 'default "2" does not fit type \'int\''),
    ('  1: x: list<int> = {"a": 1};', 21, "does not fit type 'list<int>'"),
    ('  1: x: map<string, int> = {"a": true};', 34, "default true does not fit type 'int'"),
    ('  1: x: map<string, int> = {1: 1};', 29, "default 1 does not fit type 'string'"),
    ('  1: x: map<E, int> = {A: 1, E.A: 2};', 30, "duplicate map key 'E.A'"),
    ('  1: x: timestamp = "2024-01-01";', 21, "bad timestamp '2024-01-01'"),
    ('  1: x: timestamp = "2024-01-01T00:00:00";', 21, "has no timezone"),
    ('  1: x: timestamp = "2024-13-01T00:00:00Z";', 21, "month must be in 1..12"),
    ('  1: x: timestamp = "2024-01-01T00:00:00.1234567Z";', 21, "more precise than micro"),
    ("  1: x: timestamp = 0;", 21, "does not fit type 'timestamp'"),
    ("  1: x: bool = 0;", 16, "default 0 does not fit type 'bool'"),
    ('  1: x: bool = "true";', 16, "does not fit type 'bool'"),
    ("  1: x: float = true;", 17, "does not fit type 'float'"),
    ("  1: x: float = 1e400;", 17, "out of range for 'float'"),
    ("  1: x: float = " + "9" * 400 + ";", 17, "out of range for 'float'"),
    ('  1: x: decimal = "1.2.3";', 19, "not a finite decimal"),
    ('  1: x: decimal = "NaN";', 19, "not a finite decimal"),
    ("  1: x: decimal = true;", 19, "does not fit type 'decimal'"),
    ("  1: x: bytes = 1;", 17, "does not fit type 'bytes'"),
    ("  1: x: string = A;", 18, "default 'A' does not fit type 'string'"),
    ("  1: x: E = 1;", 13, "default 1 does not fit type 'E'"),
    ("  1: x: S? = [];", 14, "type 'S' cannot have a default"),
    ("  1: x: int? = 2s;", 16, "default 2s does not fit type 'int'"),
]


@pytest.mark.parametrize(("body", "col", "message"), DEFAULT_CASES)
def test_default_that_does_not_fit_is_reported_at_the_default(
    body: str, col: int, message: str
) -> None:
    line, got_col, got = one_error(in_struct(body))
    assert (line, got_col) == (3, col)
    assert message in got


def defaults_of(body: str) -> model.Value | model._NoDefault:
    result = compile_source(in_struct(body))
    assert result.ok, result.diagnostics
    struct = result.files[0].decls[0]
    assert isinstance(struct, model.StructDecl)
    return struct.fields[0].default


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  1: x: bool = false;", False),
        ("  1: x: int = -9223372036854775808;", -(2**63)),
        ("  1: x: int = 9223372036854775807;", 2**63 - 1),
        ("  1: x: float = 3;", 3.0),
        ("  1: x: float = -2.5e-1;", -0.25),
        ("  1: x: decimal = 0.10;", decimal.Decimal("0.10")),
        ("  1: x: decimal = -3;", decimal.Decimal("-3")),
        ('  1: x: decimal = "1e-30";', decimal.Decimal("1e-30")),
        ('  1: x: string = "a\\nb";', "a\nb"),
        ('  1: x: bytes = "\u00e9";', "\u00e9".encode()),
        ("  1: x: list<int> = [];", []),
        ("  1: x: list<list<int>> = [[1, 2], []];", [[1, 2], []]),
        ('  1: x: map<int, string> = {1: "a", -2: "b"};', {1: "a", -2: "b"}),
        ("  1: x: map<string, int> = {};", {}),
        ("  1: x: int? = null;", None),
        ("  1: x: list<int?> = [null, 1];", [None, 1]),
        ("  1: x: E = B;", model.EnumValue("p.E", "B", 2)),
        ("  1: x: E = E.A;", model.EnumValue("p.E", "A", 1)),
        ("  1: x: E = p.E.A;", model.EnumValue("p.E", "A", 1)),
        ("  1: x: E? = A;", model.EnumValue("p.E", "A", 1)),
        ("  1: x: int;", model.NO_DEFAULT),
    ],
)
def test_default_is_converted_to_the_field_type(body: str, expected: object) -> None:
    got = defaults_of(body)
    assert got == expected
    assert type(got) is type(expected)


def test_decimal_default_is_exact_from_the_literal_text() -> None:
    assert defaults_of("  1: x: decimal = 0.1;") == decimal.Decimal("0.1")  # not 0.1000000...
    assert str(defaults_of("  1: x: decimal = 1.50;")) == "1.50"


def test_timestamp_default_is_timezone_aware() -> None:
    utc = defaults_of('  1: x: timestamp = "2024-01-31T12:00:00Z";')
    assert utc == datetime.datetime(2024, 1, 31, 12, tzinfo=datetime.UTC)
    shifted = defaults_of('  1: x: timestamp = "2024-01-31T12:00:00.5-05:30";')
    assert isinstance(shifted, datetime.datetime)
    assert shifted.utcoffset() == -datetime.timedelta(hours=5, minutes=30)
    assert shifted.microsecond == 500000


RULE_CASES = [
    # tags
    (in_struct("  0: x: int;"), 3, 3, "tag 0 is out of range (1 to 536870911)"),
    (in_struct("  536870912: x: int;"), 3, 3, "tag 536870912 is out of range"),
    (in_struct("  -5: x: int;"), 3, 3, "tag -5 is out of range"),
    (in_struct("  reserved 4, 7;\n  7: x: int;"), 4, 3, "tag 7 is reserved"),
    (in_struct("  reserved 10 to 20;\n  20: x: int;"), 4, 3, "tag 20 is reserved"),
    (in_struct("  reserved 1 to 20000;"), 3, 12, "is too large"),
    # duplicates: the second occurrence
    (in_struct("  1: x: int;\n  2: x: int;"), 4, 6, "duplicate field name 'x'"),
    (in_struct("  1: x: int;\n  1: y: int;"), 4, 3, "duplicate tag 1 (already used by 'x')"),
    (PKG + "struct A {}\nenum A { X = 1; }", 3, 6, "duplicate declaration 'A'"),
    (PKG + "struct A {}\nservice A {}", 3, 9, "duplicate declaration 'A'"),
    (PKG + "enum E {\n  X = 1;\n  X = 2;\n}", 4, 3, "duplicate enum member 'X'"),
    (PKG + "enum E {\n  X = 1;\n  Y = 1;\n}", 4, 7, "duplicate enum value 1"),
    (PKG + "service S {\n  a();\n  a();\n}", 4, 3, "duplicate method 'a'"),
    (PKG + "service S {\n  a(1: x: int, 2: x: int);\n}", 3, 19, "duplicate parameter name 'x'"),
    (PKG + "service S {\n  a(1: x: int, 1: y: int);\n}", 3, 16, "duplicate tag 1"),
    # enum values
    (PKG + "enum E {\n  X = 2147483648;\n}", 3, 7, "enum value 2147483648 is out of range"),
    (PKG + "enum E {\n  X = -2147483649;\n}", 3, 7, "enum value -2147483649 is out of range"),
    (PKG + "enum E {\n  reserved 3;\n  X = 3;\n}", 4, 7, "enum value 3 is reserved"),
    # unknown types
    (in_struct("  1: x: Crad;"), 3, 9, "unknown type 'Crad'"),
    (in_struct("  1: x: list<map<string, Nope>>;"), 3, 26, "unknown type 'Nope'"),
    (in_struct("  1: x: q.Thing;"), 3, 9, "package 'q' is not imported by this file"),
    (in_struct("  1: x: p.Nope;"), 3, 9, "unknown type 'p.Nope'"),
    (in_struct("  1: x: map;"), 3, 9, "'map' needs type arguments: map<K, V>"),
    # map keys
    (in_struct("  1: x: map<float, int>;"), 3, 13, "bad map key type 'float'"),
    (in_struct("  1: x: map<E?, int>;"), 3, 13, "bad map key type 'E?'"),
    (in_struct("  1: x: map<S, int>;"), 3, 13, "bad map key type 'S'"),
    (in_struct("  1: x: map<bool, int>;"), 3, 13, "bad map key type 'bool'"),
    # annotations
    (PKG + "@idempotent\nstruct A {}", 2, 1, "'@idempotent' applies only to methods"),
    (PKG + "enum E {\n  @deadline(1s) X = 1;\n}", 3, 3, "'@deadline' applies only to methods"),
    (PKG + "@bogus\nstruct A {}", 2, 1, "unknown annotation '@bogus'"),
    (PKG + "service S {\n  @deadline(2) a();\n}", 3, 13, "'@deadline' needs one duration"),
    (PKG + "service S {\n  @deadline(fast) a();\n}", 3, 13, "found 'fast'"),
    (PKG + "service S {\n  @deadline a();\n}", 3, 3, "'@deadline' needs one duration"),
    (PKG + "service S {\n  @deadline(1s, 2s) a();\n}", 3, 17, "only one argument"),
    (PKG + "service S {\n  @idempotent(1) a();\n}", 3, 15, "'@idempotent' takes no arguments"),
    (PKG + "@deprecated(3)\nstruct A {}", 2, 13, "'@deprecated' takes an optional reason"),
    (PKG + "service S {\n  @readonly(1) a() -> int;\n}", 3, 13, "'@readonly' takes no arguments"),
    (PKG + "@readonly\nstruct A {}", 2, 1, "'@readonly' applies only to methods"),
    (PKG + "service S {\n  @readonly oneway a();\n}", 3, 3,
     "'@readonly' is meaningless on oneway method 'a'"),
    (PKG + "service S {\n  @readonly a();\n}", 3, 3,
     "'@readonly' method 'a' returns nothing: a read must return what it read"),
    (PKG + "service S {\n  @idempotent @idempotent a();\n}", 3, 15,
     "duplicate annotation '@idempotent'"),
    (PKG + "enum E {\n  @deadline(1s) X = 1;\n}", 3, 3, "not to an enum member"),
    # @status: only on errors, one name of an rpcx.Status member other than OK and UNKNOWN
    (PKG + "@status(NOT_FOUND)\nstruct A {}", 2, 1,
     "'@status' applies only to errors, not to a struct"),
    (PKG + "@status(NOT_FOUND)\nunion U {\n  1: x: int;\n}", 2, 1,
     "'@status' applies only to errors, not to a union"),
    (PKG + "@status(NOT_FOUND)\nenum E {\n  X = 1;\n}", 2, 1,
     "'@status' applies only to errors, not to an enum"),
    (PKG + "enum E {\n  @status(NOT_FOUND) X = 1;\n}", 3, 3,
     "'@status' applies only to errors, not to an enum member"),
    (PKG + "@status(NOT_FOUND)\nservice S {}", 2, 1,
     "'@status' applies only to errors, not to a service"),
    (PKG + "service S {\n  @status(NOT_FOUND) a();\n}", 3, 3,
     "'@status' applies only to errors, not to a method"),
    (PKG + "service S {\n  a(@status(NOT_FOUND) 1: x: int);\n}", 3, 5,
     "'@status' applies only to errors, not to a parameter"),
    (PKG + "error X {\n  @status(NOT_FOUND) 1: x: int;\n}", 3, 3,
     "'@status' applies only to errors, not to a field"),
    (PKG + "@status\nerror X {}", 2, 1, "'@status' needs one status name such as NOT_FOUND"),
    (PKG + "@status()\nerror X {}", 2, 1, "'@status' needs one status name such as NOT_FOUND"),
    (PKG + "@status(NOT_FOUND, ABORTED)\nerror X {}", 2, 20,
     "'@status' needs one status name such as NOT_FOUND (only one argument)"),
    (PKG + "@status(5)\nerror X {}", 2, 9,
     "'@status' needs one status name such as NOT_FOUND, found 5"),
    (PKG + '@status("NOT_FOUND")\nerror X {}', 2, 9, 'found "NOT_FOUND"'),
    (PKG + "@status(Status.NOT_FOUND)\nerror X {}", 2, 9, "found 'Status.NOT_FOUND'"),
    (PKG + "@status(not_found)\nerror X {}", 2, 9,
     "unknown status 'not_found' (did you mean 'NOT_FOUND'?)"),
    (PKG + "@status(TEAPOT)\nerror X {}", 2, 9,
     "unknown status 'TEAPOT' (valid: CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED,"
     " NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION,"
     " ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS,"
     " UNAUTHENTICATED)"),
    (PKG + "@status(OK)\nerror X {}", 2, 9,
     "'@status(OK)' is not allowed: a declared error cannot report success"),
    (PKG + "@status(UNKNOWN)\nerror X {}", 2, 9, "'@status(UNKNOWN)' is not allowed"),
    (PKG + "@status(NOT_FOUND) @status(ABORTED)\nerror X {}", 2, 20,
     "duplicate annotation '@status'"),
    # oneway
    (PKG + "service S {\n  oneway a() -> int;\n}", 3, 17, "oneway method 'a' cannot have a"),
    (PKG + "error X {}\nservice S {\n  oneway a() throws X;\n}", 4, 14, "cannot declare 'throws'"),
    (PKG + "service S {\n  @idempotent\n  oneway a();\n}", 3, 3,
     "'@idempotent' is meaningless on oneway method 'a'"),
    (PKG + "service S {\n  @deadline(1s) oneway a();\n}", 3, 3, "'@deadline' is meaningless"),
    # throws
    (in_struct("") + "service V {\n  a() throws S;\n}", 10, 14,
     "'throws' needs an error type, but 'S' is a struct"),
    (in_struct("") + "service V {\n  a() throws E;\n}", 10, 14, "'E' is an enum"),
    (in_struct("") + "service V {\n  a() throws Nope;\n}", 10, 14, "unknown type 'Nope'"),
    (PKG + "error X {}\nservice S {\n  a() throws X, X;\n}", 4, 17, "duplicate 'X' in 'throws'"),
    # package
    ("struct A {}\n", 1, 1, "missing 'package' declaration"),
    ("struct A {}\npackage p;", 2, 1, "'package' must be the first declaration"),
    ("@deprecated\npackage p;", 1, 1, "annotations cannot be applied to 'package'"),
    (in_struct("  @deprecated reserved 3;"), 3, 3, "annotations cannot be applied to 'reserved'"),
    (PKG + "enum E {\n  reserved -3 to -1;\n  X = -2;\n}", 4, 7, "enum value -2 is reserved"),
    # recursion
    (PKG + "struct A {\n  1: a: A;\n}", 2, 8, "struct 'A' contains itself through required"),
    (PKG + "error A {\n  1: a: A;\n}", 2, 7, "error 'A' contains"),
    # unions
    (PKG + "union U {\n  1: x: int?;\n}", 3, 9, "union variant 'x' cannot be optional"),
    (PKG + "union U {\n  1: x: int = 1;\n}", 3, 15, "union variant 'x' cannot have a default"),
    (PKG + "union U {\n}", 2, 7, "union 'U' has no variants"),
    (PKG + "enum E {\n}", 2, 6, "enum 'E' has no members"),
]


@pytest.mark.parametrize(("text", "line", "col", "message"), RULE_CASES)
def test_rule_is_reported_at_the_offending_token(
    text: str, line: int, col: int, message: str
) -> None:
    found = errors(text)
    assert any((ln, c) == (line, col) and message in m for ln, c, m in found), found
    assert len(found) == 1, found


def test_recursion_is_broken_by_optional_list_map_and_unions_with_a_way_out() -> None:
    text = PKG + (
        "struct A {\n  1: next: A?;\n  2: kids: list<A>;\n  3: named: map<string, A>;\n}\n"
        "union U {\n  1: s: S;\n  2: leaf: int;\n}\nstruct S {\n  1: u: U;\n}\n"
    )
    assert errors(text) == []


NAME_CASES = [
    ("struct class {}", "'class' is a python keyword"),
    ("struct _X {}", "type name '_X' starts with '_'"),
    ("struct str {}", "type name 'str' would shadow the python builtin"),
    ("struct object {}", "type name 'object' would shadow"),
    ("struct dict {}", "type name 'dict' would shadow"),
    ("struct timestamp {}", "'timestamp' is a type keyword of the IDL"),
    ("service decimal {}", "'decimal' is a type keyword of the IDL"),
    ("struct A {\n1: def: int;\n}", "'def' is a python keyword"),
    ("struct A {\n1: bytes: int;\n}", "field name 'bytes' would shadow"),
    ("struct A {\n1: _x: int;\n}", "field name '_x' starts with '_'"),
    ("error A {\n1: code: int;\n}", "error field name 'code' clashes"),
    ("error A {\n1: rpcx_code: int;\n}", "error field name 'rpcx_code' clashes"),
    ("union A {\n1: which: int;\n}", "union variant name 'which' clashes"),
    ("enum A {\nis_known = 1;\n}", "enum member name 'is_known' clashes"),
    ("enum A {\nUNKNOWN_7 = 1;\n}", "enum member name 'UNKNOWN_7' clashes"),
    ("service A {\na(1: timeout: int);\n}", "parameter name 'timeout' clashes"),
    ("service A {\na(1: self: int);\n}", "parameter name 'self' clashes"),
    ("service A {\na(1: list: int);\n}", "parameter name 'list' would shadow"),
    ("service A {\nreserved();\n}", None),  # IDL keywords are contextual: fine as a method
    ("service A {\nawait();\n}", "'await' is a python keyword"),
    ("service A {}\nstruct AClient {}", "'AClient' clashes with the class generated for service"),
    ("struct AService {}\nservice A {}", "'AService' clashes with the class generated"),
]


@pytest.mark.parametrize(("body", "message"), NAME_CASES)
def test_naming_rules(body: str, message: str | None) -> None:
    found = errors(PKG + body)
    if message is None:
        assert found == []
    else:
        assert [m for _, _, m in found if message in m], found
        assert len(found) == 1, found


def test_soft_keywords_and_error_fields_outside_errors_are_fine() -> None:
    text = PKG + "struct A {\n1: match: int;\n2: case: int;\n3: type: int;\n4: code: int;\n}"
    assert errors(text) == []


def test_all_problems_of_a_file_are_reported_in_one_run() -> None:
    text = PKG + "struct A {\n  0: x: Nope;\n  1: x: int = \"s\";\n}\nservice S {\n  @x a();\n}"
    assert [(line, col) for line, col, _ in errors(text)] == [(3, 3), (3, 9), (4, 6), (4, 15),
                                                             (7, 3)]


def test_the_idl_example_builds_the_expected_model() -> None:
    path = Path(__file__).parent / "cases" / "valid" / "payments.rpcx"
    result = compile_source(path.read_text(encoding="utf-8"), "idl/payments.rpcx")
    assert result.ok and result.roots == ("idl/payments.rpcx",)
    (f,) = result.files
    assert (f.package, f.module, f.imports) == ("payments", "payments_rpcx", ())
    assert len(f.source_sha256) == 64
    names = [d.name for d in f.decls]
    assert names == ["Currency", "Card", "PaymentMethod", "Result", "CardDeclined", "NotFound",
                     "Payments"]
    currency, card, method, _, declined, not_found, service = f.decls
    assert isinstance(currency, model.EnumDecl)
    assert currency.qualified == "payments.Currency"
    assert currency.doc == "Currencies the payments service accepts."
    assert [(m.name, m.value) for m in currency.members] == [("GBP", 1), ("EUR", 2), ("USD", 3)]

    assert isinstance(card, model.StructDecl) and not card.is_error
    assert card.doc == "A payment card, as typed in by the customer."
    string = model.ModelType(Kind.STRING)
    assert [(x.tag, x.name, x.type, x.default) for x in card.fields] == [
        (1, "card_number", string, model.NO_DEFAULT),
        (2, "expiry_date", string, model.NO_DEFAULT),
        (3, "cvc", string, model.NO_DEFAULT),
        (4, "holder", model.ModelType(Kind.OPTIONAL, item=string), model.NO_DEFAULT),
        (5, "tags", model.ModelType(Kind.LIST, item=string), []),
    ]

    assert isinstance(method, model.UnionDecl)
    assert [(v.tag, v.name) for v in method.variants] == [(1, "card"), (2, "voucher_code")]
    assert method.variants[0].type == model.ModelType(
        Kind.STRUCT, ref="payments.Card", module="payments_rpcx")

    assert isinstance(declined, model.StructDecl) and declined.is_error
    assert declined.doc == "The issuer declined the card."
    assert declined.status is None
    assert isinstance(not_found, model.StructDecl) and not_found.is_error
    assert not_found.status == "NOT_FOUND"
    assert card.status is None

    assert isinstance(service, model.ServiceDecl)
    assert service.qualified == "payments.Payments"
    process, get, record = service.methods
    assert process.name == "process_payment"
    assert process.doc == "Charges a card. Not idempotent: a retry must not charge twice."
    assert [(p.tag, p.name, p.type.kind) for p in process.params] == [
        (1, "card", Kind.STRUCT), (2, "amount", Kind.DECIMAL), (3, "currency", Kind.ENUM)]
    assert process.result == model.ModelType(Kind.STRUCT, ref="payments.Result",
                                             module="payments_rpcx")
    assert [t.ref for t in process.throws] == ["payments.CardDeclined"]
    assert process.throws[0].is_error
    assert (process.idempotent, process.deadline, process.oneway) == (False, None, False)
    assert (get.idempotent, get.deadline, get.oneway) == (True, 2.0, False)
    assert [t.ref for t in get.throws] == ["payments.NotFound"]
    assert (record.oneway, record.result, record.throws) == (True, None, ())
    assert record.doc == "Fire and forget: no reply, no error, no retry."


def test_docs_and_deprecations_reach_the_model() -> None:
    text = PKG + (
        "/// Doc of A.\n///\n///   indented\n@deprecated(\"old\")\nstruct A {\n"
        "  /// Field doc.\n  @deprecated 1: x: int;\n}\n"
        "enum E {\n  /// Member doc.\n  @deprecated(\"no\") X = 1;\n}\n"
        "service S {\n  @idempotent\n  /// After the annotation.\n  a();\n}\n"
    )
    result = compile_source(text)
    assert result.ok, result.diagnostics
    a, e, s = result.files[0].decls
    assert isinstance(a, model.StructDecl) and isinstance(e, model.EnumDecl)
    assert isinstance(s, model.ServiceDecl)
    assert (a.doc, a.deprecated) == ("Doc of A.\n\n  indented", "old")
    assert (a.fields[0].doc, a.fields[0].deprecated) == ("Field doc.", "")
    assert (e.members[0].doc, e.members[0].deprecated) == ("Member doc.", "no")
    assert s.methods[0].doc == "After the annotation."
    assert s.methods[0].idempotent


def test_readonly_reaches_the_model_and_implies_idempotent() -> None:
    result = compile_source(PKG + "service S {\n  @readonly a() -> int;\n  b() -> int;\n}\n")
    assert result.ok, result.diagnostics
    (s,) = result.files[0].decls
    assert isinstance(s, model.ServiceDecl)
    a, b = s.methods
    assert (a.readonly, a.idempotent) == (True, True)
    assert (b.readonly, b.idempotent) == (False, False)


@pytest.mark.parametrize("name", [s.name for s in Status if s not in (Status.OK, Status.UNKNOWN)])
def test_every_status_but_ok_and_unknown_is_accepted_on_an_error(name: str) -> None:
    result = compile_source(PKG + f"@deprecated @status({name})\nerror X {{\n  1: x: int;\n}}")
    assert result.ok, result.diagnostics
    (x,) = result.files[0].decls
    assert isinstance(x, model.StructDecl) and x.is_error
    assert (x.status, x.deprecated) == (name, "")


def test_an_error_without_status_has_none_in_the_model() -> None:
    result = compile_source(PKG + "error X {}\nstruct Y {}")
    assert result.ok, result.diagnostics
    assert [getattr(d, "status", "?") for d in result.files[0].decls] == [None, None]


def test_a_bad_status_is_one_diagnostic_and_checking_goes_on() -> None:
    text = PKG + "@status(OK)\nerror X {\n  1: x: Nope;\n}\n@status(NOPE)\nerror Y {}"
    assert [(ln, col) for ln, col, _ in errors(text)] == [(2, 9), (4, 9), (6, 9)]
