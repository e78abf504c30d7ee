"""The ``rpcx`` command: check IDL files and generate Python from them.

Exit codes: 0 success, 1 the files have errors (or generated files are stale with
``--check``), 2 the command line was wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rpcx.codegen import generate
from rpcx.compiler import CompileResult, compile_files

__all__ = ["main"]

_DESCRIPTION = """\
rpcx turns service definitions (.rpcx files) into typed Python.

  rpcx check idl/payments.rpcx           report every problem in the files, or nothing
  rpcx gen idl/payments.rpcx -o app/     write app/payments_rpcx.py
  rpcx gen idl/*.rpcx -o app/ --check    fail if the files in app/ are out of date (for CI)

The IDL is described in docs/idl.md.
"""


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _compile(paths: Sequence[str]) -> CompileResult | None:
    result = compile_files(paths, _read)
    if result.ok:
        return result
    for diagnostic in result.diagnostics:
        print(diagnostic.render(), file=sys.stderr)
    files = len({d.span.file for d in result.diagnostics})
    count = len(result.diagnostics)
    print(f"{count} error{'s' if count != 1 else ''} in {files} file{'s' if files != 1 else ''}",
          file=sys.stderr)
    return None


def _cmd_check(args: argparse.Namespace) -> int:
    result = _compile(args.files)
    if result is None:
        return 1
    print(f"ok: {len(result.files)} file{'s' if len(result.files) != 1 else ''} checked")
    return 0


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _cmd_gen(args: argparse.Namespace) -> int:
    result = _compile(args.files)
    if result is None:
        return 1  # nothing is written when any input has an error
    out = Path(args.output)
    outputs = {out / f"{module}.py": source for module, source in map(generate, result.files)}
    if args.check:
        stale = []
        for path, source in outputs.items():
            try:
                current = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                current = None
            if current != source:
                stale.append(f"{path}: {'missing' if current is None else 'out of date'}")
        for line in stale:
            print(line, file=sys.stderr)
        if stale:
            print("run `rpcx gen` without --check to update", file=sys.stderr)
            return 1
        print(f"ok: {len(outputs)} generated file{'s' if len(outputs) != 1 else ''} up to date")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for path, source in outputs.items():
        _write_atomically(path, source)
        print(f"wrote {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpcx", description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="check .rpcx files and report every problem",
                           description="Check .rpcx files; exit 0 if all are valid, 1 if not.")
    check.add_argument("files", nargs="+", metavar="FILE", help=".rpcx files to check")
    check.set_defaults(func=_cmd_check)
    gen = sub.add_parser(
        "gen", help="generate Python modules from .rpcx files",
        description="Generate one Python module per .rpcx file (payments.rpcx → "
                    "payments_rpcx.py), imported files included. Nothing is written if any "
                    "file has an error.")
    gen.add_argument("files", nargs="+", metavar="FILE", help=".rpcx files to compile")
    gen.add_argument("-o", "--output", required=True, metavar="DIR",
                     help="directory to write the modules to (created if missing)")
    gen.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 if a module in DIR is missing or differs")
    gen.set_defaults(func=_cmd_gen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
