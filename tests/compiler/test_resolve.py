"""Imports, cycles, qualified names and file ordering, with an in-memory ``read``."""

from __future__ import annotations

from rpcx.compiler import compile_files, model

from .helpers import Reader, compile_dict

COMMON = """package common;
enum Currency {
  GBP = 1;
}
struct Money {
  1: amount: decimal;
  2: currency: Currency = GBP;
}
"""


def where(result_diags: object) -> list[tuple[str, int, int, str]]:
    assert isinstance(result_diags, tuple)
    return [(d.span.file, d.span.line, d.span.col, d.message) for d in result_diags]


def test_imported_names_are_used_qualified_and_files_come_dependencies_first() -> None:
    files = {
        "idl/common.rpcx": COMMON,
        "idl/pay.rpcx": 'package pay;\nimport "common.rpcx";\n'
        "struct P {\n  1: m: common.Money;\n  2: c: common.Currency = common.Currency.GBP;\n}\n",
    }
    result = compile_dict(files, "idl/pay.rpcx")
    assert result.ok, result.diagnostics
    assert result.roots == ("idl/pay.rpcx",)
    assert [f.path for f in result.files] == ["idl/common.rpcx", "idl/pay.rpcx"]
    pay = result.files[1]
    assert pay.imports == (model.Import("idl/common.rpcx", "common", "common_rpcx"),)
    struct = pay.decls[0]
    assert isinstance(struct, model.StructDecl)
    assert struct.fields[0].type.ref == "common.Money"
    assert struct.fields[0].type.module == "common_rpcx"
    assert struct.fields[1].default == model.EnumValue("common.Currency", "GBP", 1)


def test_unqualified_use_of_an_imported_name_suggests_the_qualified_one() -> None:
    files = {"common.rpcx": COMMON,
             "pay.rpcx": 'package pay;\nimport "common.rpcx";\nstruct P {\n  1: m: Money;\n}\n'}
    assert where(compile_dict(files, "pay.rpcx").diagnostics) == [
        ("pay.rpcx", 4, 9, "unknown type 'Money' (did you mean 'common.Money'?)")
    ]


def test_only_directly_imported_packages_are_visible() -> None:
    files = {
        "common.rpcx": COMMON,
        "mid.rpcx": 'package mid;\nimport "common.rpcx";\nstruct M {\n  1: m: common.Money;\n}\n',
        "top.rpcx": 'package top;\nimport "mid.rpcx";\nstruct T {\n  1: m: common.Money;\n'
                    "  2: ok: mid.M;\n}\n",
    }
    assert where(compile_dict(files, "top.rpcx").diagnostics) == [
        ("top.rpcx", 4, 9, "unknown type 'common.Money': package 'common' is not imported by"
                           " this file")
    ]


def test_import_not_found_is_reported_at_the_string() -> None:
    files = {"a.rpcx": 'package a;\n\nimport   "missing.rpcx";\n'}
    assert where(compile_dict(files, "a.rpcx").diagnostics) == [
        ("a.rpcx", 3, 10, "import not found: 'missing.rpcx'")
    ]


def test_unreadable_root_is_reported_at_one_one() -> None:
    result = compile_dict({}, "nope.rpcx")
    assert where(result.diagnostics) == [("nope.rpcx", 1, 1, "cannot read file: 'nope.rpcx'")]
    assert result.files == ()


def test_import_cycle_is_reported_at_the_import_that_closes_it() -> None:
    files = {"a.rpcx": 'package a;\nimport "b.rpcx";\n',
             "b.rpcx": 'package b;\n\n  import "a.rpcx";\n'}
    assert where(compile_dict(files, "a.rpcx").diagnostics) == [
        ("b.rpcx", 3, 3, "import cycle: a.rpcx -> b.rpcx -> a.rpcx")
    ]


def test_self_import_is_a_cycle() -> None:
    files = {"a.rpcx": 'package a;\nimport "./a.rpcx";\n'}
    assert where(compile_dict(files, "a.rpcx").diagnostics) == [
        ("a.rpcx", 2, 1, "import cycle: a.rpcx -> a.rpcx")
    ]


def test_paths_are_relative_to_the_importer_and_a_shared_file_is_compiled_once() -> None:
    files = {
        "svc/common/money.rpcx": COMMON,
        "svc/a/a.rpcx": 'package a;\nimport "../common/money.rpcx";\n',
        "svc/b/b.rpcx": 'package b;\nimport "../common/./money.rpcx";\nimport "../a/a.rpcx";\n',
    }
    read = Reader(files)
    result = compile_files(["svc/b/../b/b.rpcx", "svc/a/a.rpcx"], read)
    assert result.ok, result.diagnostics
    assert result.roots == ("svc/b/b.rpcx", "svc/a/a.rpcx")
    assert [f.path for f in result.files] == ["svc/common/money.rpcx", "svc/a/a.rpcx",
                                              "svc/b/b.rpcx"]
    assert sorted(read.calls) == sorted(set(read.calls))  # each file read once


def test_duplicate_import_is_reported() -> None:
    files = {"common.rpcx": COMMON,
             "a.rpcx": 'package a;\nimport "common.rpcx";\nimport "./common.rpcx";\n'}
    assert where(compile_dict(files, "a.rpcx").diagnostics) == [
        ("a.rpcx", 3, 8, "duplicate import './common.rpcx'")
    ]


def test_an_error_in_an_imported_file_fails_the_whole_compilation() -> None:
    files = {"common.rpcx": "package common;\nstruct X {\n  1: x: Nope;\n}\n",
             "a.rpcx": 'package a;\nimport "common.rpcx";\n'}
    result = compile_dict(files, "a.rpcx")
    assert where(result.diagnostics) == [("common.rpcx", 3, 9, "unknown type 'Nope'")]
    assert result.files == ()


def test_file_stem_must_be_a_python_identifier() -> None:
    result = compile_dict({"my-api.rpcx": "package p;\n"}, "my-api.rpcx")
    assert [(d.span.line, d.span.col) for d in result.diagnostics] == [(1, 1)]
    assert "'my-api.rpcx' does not give a python module name" in result.diagnostics[0].message
    assert compile_dict({"class.rpcx": "package p;\n"}, "class.rpcx").diagnostics


def test_two_files_with_the_same_module_name_clash() -> None:
    files = {"x/m.rpcx": "package x;\n", "y/m.rpcx": "package y;\n"}
    assert where(compile_dict(files, "x/m.rpcx", "y/m.rpcx").diagnostics) == [
        ("y/m.rpcx", 1, 1, "module name 'm_rpcx' of 'y/m.rpcx' clashes with 'x/m.rpcx'"
                           " (rename one of the files)")
    ]


def test_two_files_of_one_package_may_not_declare_the_same_name() -> None:
    files = {"a.rpcx": "package p;\nstruct Same {}\n",
             "b.rpcx": 'package p;\nimport "a.rpcx";\n\nenum Same {\n  X = 1;\n}\n'}
    assert where(compile_dict(files, "b.rpcx").diagnostics) == [
        ("b.rpcx", 4, 6, "'Same' is already declared in package 'p' by 'a.rpcx'")
    ]


def test_same_package_import_is_still_used_qualified() -> None:
    files = {"a.rpcx": "package p;\nstruct A {}\n",
             "b.rpcx": 'package p;\nimport "a.rpcx";\nstruct B {\n  1: a: p.A;\n}\n'}
    assert compile_dict(files, "b.rpcx").ok


def test_throws_an_imported_error() -> None:
    files = {"e.rpcx": "package errs;\nerror Oops {\n  1: why: string;\n}\n",
             "s.rpcx": 'package s;\nimport "e.rpcx";\nservice S {\n  a() throws errs.Oops;\n}\n'}
    result = compile_dict(files, "s.rpcx")
    assert result.ok, result.diagnostics
    service = result.files[1].decls[0]
    assert isinstance(service, model.ServiceDecl)
    assert service.methods[0].throws[0].module == "e_rpcx"
    assert service.methods[0].throws[0].is_error


def test_a_missing_file_imported_twice_is_reported_at_each_import() -> None:
    files = {"a.rpcx": 'package a;\nimport "gone.rpcx";\nimport "b.rpcx";\n',
             "b.rpcx": 'package b;\nimport "gone.rpcx";\n'}
    assert where(compile_dict(files, "a.rpcx").diagnostics) == [
        ("a.rpcx", 2, 8, "import not found: 'gone.rpcx'"),
        ("b.rpcx", 2, 8, "import not found: 'gone.rpcx'"),
    ]


def test_imported_enum_default_may_name_the_member_bare() -> None:
    files = {"common.rpcx": COMMON,
             "a.rpcx": 'package a;\nimport "common.rpcx";\n'
                       "struct A {\n  1: c: common.Currency = GBP;\n"
                       "  2: d: common.Currency = EUR;\n}\n"}
    assert where(compile_dict(files, "a.rpcx").diagnostics) == [
        ("a.rpcx", 5, 27, "'EUR' is not a member of enum 'common.Currency'")
    ]
