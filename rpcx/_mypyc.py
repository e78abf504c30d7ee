"""What the modules that mypyc may compile need from it, without depending on it.

``pip install -e .`` is pure Python and needs neither mypy nor mypy_extensions; the
compiled build (``RPCX_MYPYC=1``, see ``hatch_build.py``) compiles the modules of every
call's path with mypyc: the byte-level ones and the runtime's hot path. Classes in those
modules that must stay ordinary Python classes (attrs classes: mypyc would make them
native and break attrs) are marked ``@mypyc_attr(native_class=False)``; a class that
interpreted code subclasses is marked ``@mypyc_attr(allow_interpreted_subclasses=True)``
(``Connection``: compiled callers then reach a subclass's overrides). mypyc reads the
marks when it compiles, and at run time they do nothing.

What stays interpreted, and why: modules with ``except*`` or async generators
(``@asynccontextmanager``) that mypyc does not compile, and the places tests or users
patch or subclass (``Channel`` and ``Server`` construct their ``Connection`` in
interpreted code, so a test can hand them a subclass; ``SocketStream.send_nowait`` is
patched by a test; ``rpcx.protocol.streams``, whose ``StreamsMixin`` declares the
connection's attributes it uses under ``TYPE_CHECKING``, which a native class cannot). A
compiled function calls another compiled one natively, past any monkeypatched module or
class attribute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["COMPILED_MODULES", "C_MODULES", "compiled", "mypyc_attr"]

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
    "rpcx.runtime.streams",
)
"""The modules the compiled build compiles (one list, read by ``hatch_build.py``)."""


C_MODULES: tuple[str, ...] = (
    "rpcx.codec._ctyped",
)
"""Hand-written C extensions the compiled build also builds, each from the ``.c`` file at
its module's path (``rpcx/codec/_ctyped.c``; read by ``hatch_build.py``). They have no
Python source: the pure build does not have them, and the code that uses one imports it
when it can and does without it otherwise."""


def compiled() -> dict[str, bool]:
    """For each module of :data:`COMPILED_MODULES`: was it imported from a compiled
    extension (``True``) or from its ``.py`` source (``False``)? And for each of
    :data:`C_MODULES`: can it be imported (``True``: it was built) or not (``False``)?
    Imports them."""
    import importlib

    result = {}
    for name in COMPILED_MODULES:
        module = importlib.import_module(name)
        result[name] = not str(getattr(module, "__file__", "")).endswith(".py")
    for name in C_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            result[name] = False
        else:
            result[name] = True
    return result
