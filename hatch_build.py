"""The optional compiled build: a few byte-level modules compiled with mypyc.

Off unless ``RPCX_MYPYC=1`` is set; without it every build is pure Python, and
``pip install -e .`` needs only Python and pip. With it:

- ``RPCX_MYPYC=1 pip install .`` builds a wheel holding the compiled modules beside their
  ``.py`` sources (the extension is what Python imports);
- ``RPCX_MYPYC=1 pip install -e .`` compiles them in place, into the source tree: the
  ``.so`` files then shadow the ``.py`` files they came from, so after editing one of those
  modules rebuild, or go back to pure Python with ``python hatch_build.py --clean``;
- ``python hatch_build.py --inplace`` / ``--clean`` do the same two things without pip
  (CI uses them; they need mypy and setuptools installed).

The modules are listed once, in ``rpcx._mypyc.COMPILED_MODULES``; the same builds also
build the hand-written C extensions of ``rpcx._mypyc.C_MODULES`` (``rpcx.codec._ctyped``,
from ``rpcx/codec/_ctyped.c``), which have no pure Python counterpart: the pure build does
without them. ``python -c "import rpcx._mypyc as m; print(m.compiled())"`` says which are
compiled.
Results are byte for byte the same on both builds (CI runs the tests on both).
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script, without hatchling
    BuildHookInterface = object

ROOT = Path(__file__).resolve().parent
SWITCH = "RPCX_MYPYC"


def enabled() -> bool:
    return os.environ.get(SWITCH, "") not in ("", "0")


def _listed(name: str) -> list[str]:
    """The tuple ``name`` of rpcx/_mypyc.py, read without importing rpcx."""
    tree = ast.parse((ROOT / "rpcx" / "_mypyc.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id == name and node.value is not None):
            value = ast.literal_eval(node.value)
            return list(value)
    raise RuntimeError(f"{name} not found in rpcx/_mypyc.py")


def modules() -> list[str]:
    """``COMPILED_MODULES``: the modules compiled with mypyc."""
    return _listed("COMPILED_MODULES")


def c_modules() -> list[str]:
    """``C_MODULES``: the hand-written C extensions, each built from the ``.c`` file at
    its module's path."""
    return _listed("C_MODULES")


def _c_sources() -> list[tuple[str, str]]:
    """Each C extension's module name and ``.c`` source (relative to the root)."""
    sources = []
    for name in c_modules():
        source = Path(*name.split(".")).with_suffix(".c")
        if not (ROOT / source).is_file():
            raise RuntimeError(f"{source}, the source of {name} (C_MODULES), is missing")
        sources.append((name, source.as_posix()))
    return sources


def _suffix() -> str:
    return str(sysconfig.get_config_var("EXT_SUFFIX"))


def compile_into(out_dir: Path) -> list[Path]:
    """Compile the modules with mypyc, and build the C extensions; the extensions land
    under ``out_dir`` at their package paths (plus mypyc's shared runtime library at the
    top). Returns them."""
    from mypyc.build import mypycify
    from setuptools import Distribution, Extension  # type: ignore[import-untyped]

    sources = [str(Path(*name.split(".")).with_suffix(".py")) for name in modules()]
    c_sources = _c_sources()
    flags = [] if sys.platform == "win32" else ["-O2"]  # (MSVC optimises by default)
    cwd = os.getcwd()
    os.chdir(ROOT)  # mypy reads pyproject.toml's [tool.mypy] and finds rpcx from here
    try:
        with tempfile.TemporaryDirectory(prefix="rpcx-mypyc-") as work:
            extensions = mypycify(sources, opt_level="3", target_dir=work)
            extensions += [Extension(name, [source], extra_compile_args=flags)
                           for name, source in c_sources]
            dist = Distribution({"name": "rpcx-compiled", "ext_modules": extensions})
            command: Any = dist.get_command_obj("build_ext")
            command.build_lib = str(out_dir)
            command.build_temp = work
            dist.run_command("build_ext")
    finally:
        os.chdir(cwd)
    return sorted(p for p in out_dir.rglob(f"*{_suffix()}"))


def build_inplace() -> list[Path]:
    """Compile into the source tree (what an editable install with the switch does)."""
    clean()
    with tempfile.TemporaryDirectory(prefix="rpcx-mypyc-out-") as out:
        built = compile_into(Path(out))
        placed = []
        for path in built:
            target = ROOT / path.relative_to(out)
            shutil.copy2(path, target)
            placed.append(target)
    return placed


def clean() -> list[Path]:
    """Remove compiled modules from the source tree: back to pure Python."""
    removed = []
    suffix = _suffix()
    candidates = [ROOT / Path(*name.split(".")).with_name(
        name.rsplit(".", 1)[1] + suffix) for name in modules() + c_modules()]
    candidates += list(ROOT.glob(f"*__mypyc{suffix}"))
    for path in candidates:
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


class MypycBuildHook(BuildHookInterface):  # type: ignore[misc]
    """hatchling's custom build hook (``[tool.hatch.build.targets.wheel.hooks.custom]``)."""

    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        return ["mypy>=1.15", "setuptools>=68"] if enabled() else []

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not enabled():
            return
        if version == "editable":
            for path in build_inplace():
                print(f"rpcx: compiled {path.relative_to(ROOT)}", file=sys.stderr)
            return
        out = Path(self.directory) / "mypyc-lib"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for path in compile_into(out):
            build_data["force_include"][str(path)] = str(path.relative_to(out))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True


def main(argv: list[str]) -> int:
    if argv == ["--inplace"]:
        for path in build_inplace():
            print(f"compiled {path.relative_to(ROOT)}")
        return 0
    if argv == ["--clean"]:
        for path in clean():
            print(f"removed {path.relative_to(ROOT)}")
        return 0
    print("usage: python hatch_build.py --inplace | --clean", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
