"""How the IDL compiler scales on hostile input: seconds per MB for each shape and size.

    python bench/idl_scaling.py                  # default sizes 0.125, 0.25, 0.5, 1 MB
    python bench/idl_scaling.py --sizes 0.1 0.2  # other sizes (MB)
    python bench/idl_scaling.py --only deep      # shapes whose name contains 'deep'

Each input is written to a temporary file and run through ``rpcx gen`` (check, render the
diagnostics, generate when there are none), as a user would run it, with stderr captured
(its size is reported). Times are CPU seconds of this process (``time.process_time()``) per
MB, which the other jobs on a shared machine disturb much less than wall-clock time; the
wall-clock figure of the biggest size is printed after them. Linear time shows as flat s/MB
cells; the requirement is at most 1 s/MB on the reference machine. A shape whose run takes
longer than ``--give-up`` seconds (wall) is not tried at bigger sizes. Nothing here is
asserted: this is a measuring tool, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# The rpcx of this checkout, not whichever one is installed (``python bench/idl_scaling.py``
# puts bench/ first on sys.path, and an editable install may point at another worktree).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpcx.cli import main as rpcx_main

HEAD = "package p;\n"


def _repeat(unit: str, size: int, head: str = HEAD, tail: str = "") -> str:
    return head + unit * max(1, (size - len(head) - len(tail)) // len(unit)) + tail


def _numbered(template: str, size: int, head: str = HEAD, tail: str = "") -> str:
    """``template.format(i=i, j=i + 1)`` for i = 0, 1, ... until ``size`` characters."""
    parts, total, i = [head], len(head) + len(tail), 0
    while total < size:
        part = template.format(i=i, j=i + 1)
        parts.append(part)
        total += len(part)
        i += 1
    parts.append(tail.format(i=i, j=i + 1) if "{i}" in tail else tail)
    return "".join(parts)


def _nested(opener: str, middle: str, closer: str, size: int, head: str, tail: str) -> str:
    n = max(1, (size - len(head) - len(tail) - len(middle)) // (len(opener) + len(closer)))
    return head + opener * n + middle + closer * n + tail


def _random_tokens(size: int) -> str:
    rng = random.Random(9)
    vocab = ["struct", "S", "{", "}", "1", ":", "a", "int", ";", "<", ">", "list", "map", ",",
             "=", "[", "]", "@", "(", ")", '"x"', "///d\n", "service", "->", "throws", "?",
             "enum", "-", "reserved", "to", "\n", "/*", "*/", "$", "9" * 30, "0x"]
    out, total = [HEAD], len(HEAD)
    while total < size:
        tok = rng.choice(vocab)
        out.append(tok + " ")
        total += len(tok) + 1
    return "".join(out)


SHAPES: dict[str, Callable[[int], str]] = {
    # valid input
    "valid: many structs with docs": lambda n: _numbered(
        "/// Struct number {i}, documented.\nstruct S{i} {{\n  /// a field\n"
        "  1: a: string = \"x\";\n  2: b: list<int>?;\n  3: c: map<string, S{i}>;\n}}\n", n),
    "valid: one struct, many fields": lambda n: _numbered(
        "  {j}: f{i}: list<string>?;\n", n, HEAD + "struct S {\n", "}\n"),
    "valid: chained structs": lambda n: _numbered(
        "struct S{i} {{ 1: a: S{j}; }}\n", n, tail="struct S{i} {{}}\n"),
    "valid: long identifier": lambda n: HEAD + "struct " + "A" * n + " {}\n",
    "valid: huge string default": lambda n: (
        HEAD + 'struct S { 1: a: string = "' + "x" * n + '"; }\n'),
    "valid: huge doc line": lambda n: HEAD + "/// " + "word " * (n // 5) + "\nstruct S {}\n",
    "valid: many enum defaults": lambda n: _numbered(
        "struct S{i} {{ 1: a: E = A; }}\n", n, HEAD + "enum E { A = 1; }\n"),
    "valid: many methods": lambda n: _numbered(
        "  m{i}(1: a: int, 2: b: string = \"\") -> int;\n", n, HEAD + "service Svc {\n", "}\n"),
    # deep nesting
    "deep: list<list<...>>": lambda n: _nested(
        "list<", "int", ">", n, HEAD + "struct S { 1: a: ", "; }\n"),
    "deep: map<string, map<...>>": lambda n: _nested(
        "map<string, ", "int", ">", n, HEAD + "struct S { 1: a: ", "; }\n"),
    "deep: [[[...]]] default": lambda n: _nested(
        "[", "1", "]", n, HEAD + "struct S { 1: a: list<int> = ", "; }\n"),
    "deep: {{{...}}}": lambda n: _nested("{", "", "}", n, HEAD + "struct S ", "\n"),
    "deep: (((...))) annotation": lambda n: _nested("(", "1", ")", n, HEAD + "@deprecated", ""),
    "deep: /*/*/* comments": lambda n: _repeat("/*", n),
    "deep: unclosed generics": lambda n: _repeat("list<", n, HEAD + "struct S { 1: a: "),
    # many errors
    "errors: unknown types, one per line": lambda n: _numbered(
        "  {j}: f{i}: Nope{i};\n", n, HEAD + "struct S {\n", "}\n"),
    "errors: unknown types, one line": lambda n: _numbered(
        "{j}: f{i}: Nope{i}; ", n, HEAD + "struct S { ", "}\n"),
    "errors: cyclic structs": lambda n: _numbered(
        "struct S{i} {{ 1: a: S{j}; }}\n", n, tail="struct S{i} {{ 1: a: S0; }}\n"),
    "errors: duplicate tags": lambda n: _repeat("1: a: int; ", n, HEAD + "struct S { ", "}"),
    "errors: huge integers": lambda n: _repeat(
        "1: a: int = " + "9" * 5000 + ";\n", n, HEAD + "struct S {\n", "}\n"),
    "errors: one huge integer": lambda n: HEAD + "struct S { 1: a: int = " + "9" * n + "; }\n",
    "errors: huge durations": lambda n: _repeat(
        "@deadline(" + "9" * 400 + "s) m(); ", n, HEAD + "service X { ", "}"),
    "errors: reserved ranges": lambda n: _numbered(
        "  reserved {i}0001 to {j}0000;\n", n, HEAD + "struct S {\n", "}\n"),
    "errors: many imports": lambda n: _numbered('import "m{i}.rpcx";\n', n),
    "errors: unterminated strings": lambda n: _repeat('"\n', n),
    "junk: $$$": lambda n: _repeat("$", n),
    "junk: ;;; top level": lambda n: _repeat(";", n),
    "junk: ;;; in a body": lambda n: _repeat(";", n, HEAD + "struct S {", "}"),
    "junk: @@@": lambda n: _repeat("@", n),
    "junk: @a(@a(": lambda n: _repeat("@a(", n),
    "junk: }}}": lambda n: _repeat("}", n),
    "junk: struct struct": lambda n: _repeat("struct ", n),
    "junk: random tokens": _random_tokens,
    "junk: random printable, one line": lambda n: HEAD + "".join(
        random.Random(3).choice("abc019 ;:{}<>[]()@\"/*=,.-?") for _ in range(n)),
}


def run_once(text: str, workdir: Path) -> tuple[float, float, int, int]:
    """CPU seconds, wall seconds, exit code and stderr bytes of ``rpcx gen`` on ``text``."""
    src = workdir / "input.rpcx"
    src.write_text(text, encoding="utf-8")
    err, out = io.StringIO(), io.StringIO()
    start, cpu_start = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = rpcx_main(["gen", str(src), "-o", str(workdir / "out")])
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - start
    return cpu, wall, code, len(err.getvalue().encode("utf-8", "replace"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.125, 0.25, 0.5, 1.0])
    ap.add_argument("--only", default="", help="run the shapes whose name contains this")
    ap.add_argument("--give-up", type=float, default=20.0, metavar="SECONDS")
    args = ap.parse_args()
    sys.setrecursionlimit(1000)  # the default: deep input must not need more
    print(f"rpcx from {Path(sys.modules['rpcx'].__file__ or '?').parent}")
    print(f"{'shape (CPU s/MB)':40s} " + " ".join(f"{s:>8.3g}MB" for s in args.sizes)
          + "   wall s/MB  exit  stderr")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in SHAPES.items():
            if args.only not in name:
                continue
            cells, code, err_bytes, wall_per_mb = [], 0, 0, 0.0
            for size in args.sizes:
                if cells and cells[-1] == "gave up":
                    cells.append("-")
                    continue
                text = make(int(size * 1_000_000))
                try:
                    seconds, wall, code, err_bytes = run_once(text, Path(tmp))
                except BaseException as exc:  # a crash is a finding, not a reason to stop
                    cells.append(type(exc).__name__[:10])
                    continue
                megabytes = len(text.encode("utf-8")) / 1e6
                per_mb, wall_per_mb = seconds / megabytes, wall / megabytes
                worst = max(worst, per_mb)
                cells.append(f"{per_mb:8.3f}" if wall < args.give_up else "gave up")
            print(f"{name:40s} " + " ".join(f"{c:>10s}" for c in cells)
                  + f"   {wall_per_mb:9.3f}  {code:4d}  {err_bytes}", flush=True)
    print(f"worst: {worst:.3f} CPU s/MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
