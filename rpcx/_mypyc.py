"""What the modules that mypyc may compile need from it, without depending on it.

``pip install -e .`` is pure Python and needs neither mypy nor mypy_extensions; the
compiled build (``RPCX_MYPYC=1``, see ``hatch_build.py``) compiles a few byte-level modules
with mypyc. Classes in those modules that must stay ordinary Python classes (attrs
classes: mypyc would make them native and break attrs) are marked
``@mypyc_attr(native_class=False)``; mypyc reads the mark when it compiles, and at run
time it does nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["COMPILED_MODULES", "compiled", "mypyc_attr"]

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr as mypyc_attr
else:

    def mypyc_attr(*_args: Any, **_kwargs: Any) -> Any:
        """No-op at run time (mypyc acts on the mark when compiling)."""
        return lambda cls: cls


COMPILED_MODULES: tuple[str, ...] = (
    "rpcx.protocol._wire",
    "rpcx.protocol.buffer",
    "rpcx.protocol.call",
    "rpcx.protocol.connection",
    "rpcx.codec._cbor",
    "rpcx.codec._typed",
    "rpcx.runtime.dispatch",
    "rpcx.runtime.link",
    "rpcx.runtime.options",
    "rpcx.runtime.unary",
)
"""The modules the compiled build compiles (one list, read by ``hatch_build.py``)."""


def compiled() -> dict[str, bool]:
    """For each module of :data:`COMPILED_MODULES`: was it imported from a compiled
    extension (``True``) or from its ``.py`` source (``False``)? Imports them."""
    import importlib

    result = {}
    for name in COMPILED_MODULES:
        module = importlib.import_module(name)
        result[name] = not str(getattr(module, "__file__", "")).endswith(".py")
    return result
