"""Does the IDL compiler of the working tree behave exactly as the one at a git commit?

    python bench/idl_equivalence.py                    # against 1c4dc8f, 3,000 mutants
    python bench/idl_equivalence.py --base HEAD~1 --mutants 500 --seed 7

For each input, both versions (each in its own process, the old one extracted with ``git
archive`` into a temporary directory) record the tokens and lexer diagnostics, the syntax
tree and parser diagnostics, every diagnostic of the compiler (span, message, source line),
the rendered report, the model (its ``repr``) and, when there is no diagnostic, every
generated module. The records must be equal. Inputs: the
``.rpcx`` files of the repository (compiled from disk, so that their imports resolve),
every shape of ``bench/idl_scaling.py`` at a few sizes, and randomly mutated copies of the
corpus (deleted, repeated, swapped and inserted pieces). Prints the first differences and
exits 1 when there is any. A measuring tool for refactoring the compiler, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PIECES = [
    "package p;", "struct", "union", "error", "enum", "service", "oneway", "throws",
    "reserved", "to", "import", '"x.rpcx"', "S", "T", "E", "a", "b", "A", "B", "int",
    "string", "bytes", "float", "decimal", "bool", "timestamp", "list", "map", "{", "}",
    "(", ")", "<", ">", "[", "]", ",", ";", ":", "=", "?", ".", "-", "->", "@", "1", "2",
    "0", "536870912", "9" * 30, "1.5", "1e999", "2s", "250ms", "2h", '"s"', '"\\0"',
    '"\\q"', '"2024-01-31T12:00:00Z"', "true", "null", "@deprecated", "@idempotent",
    "@deadline", "@status", "NOT_FOUND", "/// doc \x00\u2028\"\"\"\\", "// c", "/*", "*/",
    "\n", " ", "\t", "$", "\x00", "\ufeff", "class", "_x", '"', "\\", "\r\n", "///", "////",
    "1:", "a:", "x: int;", "= A", "list<", "map<string,", ">", "9" * 1001, "0x1F", "-9",
]


EDGES = [
    # Declarations named like the words the checker's fast paths look for.
    "package p;\nstruct list { 1: a: int; }\nstruct map {}\nservice int {}\nerror string {}\n"
    "struct S { 1: a: list; 2: b: map; 3: c: int; 4: d: list?; 5: e: S2; 6: f: int?;"
    " 7: g: string; 8: h: p.S2; 9: i: p.list; }\nstruct S2 { 1: x: S2?; }\n",
    "package p;\nservice Svc { m(1: a: Svc) -> Svc throws Svc, E, E?, E; }\nerror E {}\n",
    "package p.q;\nenum E { A = 1; B = 2; }\nstruct S { 1: a: E = A; 2: b: E = E.A;"
    " 3: c: E = p.q.E.B; 4: d: E = C; 5: e: E? = A; 6: f: list<E> = [A, B];"
    " 7: g: map<E, E> = {A: B}; 8: h: E = \"A\"; }\n",
    "package p;\nunion U { 1: a: U; 2: b: V; }\nunion V { 1: u: U; }\nunion W { 1: w: W;"
    " 2: n: int; }\nstruct A { 1: b: B; }\nstruct B { 1: a: A = null; 2: c: C; }\n"
    "struct C { 1: b: B; }\nstruct D { 1: d: D; }\n",
    "package p;\n/// doc\n@deprecated(\"x\")\nstruct S {\n  /// f\n  @deprecated 1: a: int;"
    "\n  /// g\n  2: b: int;\n  -3: c: int;\n  4 : d : int ;\n}\nservice X {\n  /// m\n"
    "  @idempotent @deadline(2s) m(/// p\n 1: a: int = 1, @deprecated 2: b: int) -> int;\n"
    "  oneway o(1: a: list<int> = [1]);\n  oneway(1: a: int);\n}\n",
]


def corpus() -> list[Path]:
    return sorted(p for d in ("idl", "tests", "examples") for p in (ROOT / d).rglob("*.rpcx"))


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 6)):
        n = len(text)
        i = rng.randrange(n + 1)
        j = min(n, i + rng.choice([1, 1, 2, 3, 5, 10, 40]))
        op = rng.randrange(6)
        if op == 0:
            text = text[:i] + text[j:]
        elif op == 1:
            text = text[:i] + text[i:j] * rng.randint(2, 4) + text[i:]
        elif op == 2:
            text = text[:i] + rng.choice(PIECES) + text[i:]
        elif op == 3:
            k = rng.randrange(n + 1)
            a, b = sorted((i, k))
            text = text[:a] + text[b:b + (j - i)] + text[a + (j - i):b] + text[a:a + (j - i)] \
                + text[b + (j - i):]
        elif op == 4:
            text = text[:i] + " ".join(rng.choice(PIECES) for _ in range(rng.randint(2, 8))) \
                + text[j:]
        else:
            text = text[:i] + chr(rng.randrange(32, 127)) + text[i + 1:]
    return text


def inputs(mutants: int, seed: int, sizes: tuple[int, ...] = (300, 3_000, 40_000)
           ) -> list[tuple[str, str, str | None]]:
    """(label, text, path on disk or None) for every input."""
    sys.path.insert(0, str(ROOT / "bench"))
    import idl_scaling  # a sibling script, not a package

    out: list[tuple[str, str, str | None]] = []
    files = corpus()
    for p in files:
        out.append((str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"),
                    str(p.relative_to(ROOT))))
    for k, text in enumerate(EDGES):
        out.append((f"edge case {k}", text, None))
    for name, make in idl_scaling.SHAPES.items():
        for size in sizes:
            out.append((f"{name} @ {size}", make(size), None))
    rng = random.Random(seed)
    texts = [p.read_text(encoding="utf-8") for p in files] + EDGES
    for k in range(mutants):
        base = rng.choice(texts)
        if rng.random() < 0.2:  # mutate a mutant: more junk per file
            base = mutate(base, rng)
        out.append((f"mutant {k}", mutate(base, rng), None))
    return out


WORKER = r"""
import hashlib, json, os, sys
sys.setrecursionlimit(1000)
from rpcx.codegen import generate
from rpcx.compiler import compile_files, compile_source
from rpcx.compiler.diagnostics import report
from rpcx.compiler.lexer import tokenize
from rpcx.compiler.parser import parse

def record(label, text, path):
    digests = {}
    def diag(d):
        # The source line by digest, once per line object: a hostile one-line file has
        # thousands of diagnostics sharing one huge line (their repr would not fit in memory).
        line = d[2]
        key = digests.get(id(line))
        if key is None:
            key = digests[id(line)] = (len(line), hashlib.sha256(
                line.encode("utf-8", "surrogatepass")).hexdigest())
        return (tuple(d[0]), d[1], key)
    out = []
    tokens, lex_diags = tokenize(text, "m.rpcx")
    out.append(repr([tuple(t) for t in tokens]))
    out.append(repr([diag(d) for d in lex_diags]))
    tree, parse_diags = parse(text, "m.rpcx")
    out.append(repr(tree))
    out.append(repr([diag(d) for d in parse_diags]))
    if path is None:
        result = compile_source(text, "m.rpcx")
    else:
        def read(p):
            with open(p, encoding="utf-8") as f:
                return f.read()
        result = compile_files([path], read)
    out.append(repr([diag(d) for d in result.diagnostics]))
    out.append("\n".join(report(result.diagnostics)))
    out.append(repr(result.files))
    for file in result.files:
        out.append("\n".join(generate(file)))
    return out

import rpcx
print(json.dumps(["rpcx from", [rpcx.__file__], []]))
items = json.load(sys.stdin)
for label, text, path in items:
    try:
        parts = record(label, text, path)
    except BaseException as exc:  # a crash is a difference too
        parts = ["CRASH " + type(exc).__name__ + ": " + str(exc)[:200]]
    print(json.dumps([label, [hashlib.sha256(p.encode("utf-8", "surrogatepass")).hexdigest()
                              for p in parts], parts if os.environ.get("EQ_FULL") else []]))
"""


def run(tree: Path, items: list[tuple[str, str, str | None]], full: bool) -> list[list[object]]:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    if full:
        env["EQ_FULL"] = "1"
    # -P: the working directory (the repository, for the corpus paths) must not come
    # before PYTHONPATH on sys.path, or both runs would import the working tree's rpcx.
    proc = subprocess.run([sys.executable, "-P", "-c", WORKER], input=json.dumps(items),
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"worker failed in {tree}:\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="1c4dc8f", help="git commit to compare with")
    ap.add_argument("--mutants", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shape-sizes", type=int, nargs="+", default=[300, 3_000, 40_000],
                    metavar="CHARS", help="sizes of the bench shapes (default 300 3000 40000)")
    args = ap.parse_args()
    items = inputs(args.mutants, args.seed, tuple(args.shape_sizes))
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.base, "rpcx"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        old = run(Path(tmp), items, full=False)
    new = run(ROOT, items, full=False)
    print(f"old: {old[0][1][0]}\nnew: {new[0][1][0]}")
    old, new = old[1:], new[1:]
    bad = [k for k, (a, b) in enumerate(zip(old, new, strict=True)) if a[1] != b[1]]
    print(f"{len(items)} inputs ({len(corpus())} corpus files, {args.mutants} mutants,"
          f" seed {args.seed}) against {args.base}: {len(bad)} different")
    for k in bad[:5]:
        label, text, _ = items[k]
        old_parts, new_parts = old[k][1], new[k][1]
        assert isinstance(old_parts, list) and isinstance(new_parts, list)
        which = [n for n, (x, y) in enumerate(zip(old_parts, new_parts, strict=False))
                 if x != y]
        print(f"--- {label}: parts {which} differ; text {text[:300]!r}")
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        Path(tempfile.gettempdir(), f"idl_diff_{digest}.rpcx").write_text(
            text, encoding="utf-8", errors="surrogatepass")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
