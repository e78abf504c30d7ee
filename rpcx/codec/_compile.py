"""Schema → specialised converter functions, generated as Python source once per schema node.

A codec does its work in two steps: a *converter* turns a typed value into plain data
(dicts, lists, str, int, ...) that ``cbor2`` or ``json`` can serialise, or turns the plain
data they parsed back into typed values, checking every value against the schema on the
way. The converters are the hot path, so they are not interpreted from the schema at each
call: like attrs does for ``__init__``, :class:`Compiler` writes one Python function per
struct, union, list and map node, with the checks for primitive fields inlined, and
``exec``s it once. Functions are cached by the identity of their schema node (a reference
to the node is kept, so the identity stays valid). Recursive schemas work because the
generated functions call each other through module-level names resolved at call time.

Errors raise :class:`~rpcx.codec.convert.PathError`. Each converter comes in two variants
generated from the same source: the *fast* one, used first, does not keep track of where it
is; when it fails, the codec runs the *tracking* one on the same value (conversions are
pure, so it fails the same way), in which each struct, list and map level adds its path
segment as the error passes through. The happy path pays nothing for error paths.
"""

from __future__ import annotations

import copy
import decimal
import itertools
import re
import types
from collections.abc import Callable
from typing import Any

import attrs

from rpcx.codec import convert
from rpcx.schema import (
    MISSING,
    EnumSpec,
    FieldSpec,
    Kind,
    StructSpec,
    TypeRef,
    UnionSpec,
    spec_of,
)
from rpcx.text import describe, plain

__all__ = ["Compiler", "Converter"]

Converter = Callable[[Any], Any]

_NAME = re.compile(r"(?<![.\w])(_[A-Za-z]\w*)")
_CONVERTER = re.compile(r"_f[0-9]+")
# Lines that only keep track of the path; left out of the fast (non-tracking) variant.
_TRACKING = re.compile(r" *(?:f = '[^']*'|i = 0|i \+= 1|(?:if f: )?exc\.segs\.append\(.*\))")
_FAST_ADJUSTED = convert.DECIMAL_MAX_EXPONENT - convert.DECIMAL_MAX_DIGITS
_RANGE = "if not -9223372036854775808 <= {s} <= 9223372036854775807: raise _range_error({s})"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _fill_empty_blocks(lines: list[str]) -> list[str]:
    """Add ``pass`` to blocks left empty (a struct with no fields, tracking lines removed)."""
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        if line.endswith(":") and (i + 1 == len(lines)
                                   or _indent(lines[i + 1]) <= _indent(line)):
            out.append(" " * (_indent(line) + 4) + "pass")
    return out


def _slot_setters(cls: type[Any], names: list[str]) -> list[Callable[[Any, Any], None]] | None:
    """For a struct class whose attrs ``__init__`` only stores each field in its slot (a
    slotted attrs class, its own fields exactly ``names``, each with ``init``, no
    validator, no converter, and no ``__attrs_pre_init__`` / ``__attrs_post_init__``):
    the slots' setters in the order of ``names``, so a decoder can build an instance with
    ``object.__new__`` and these (half the cost). None for any other class: it is built by
    calling it, as before."""
    if issubclass(cls, BaseException) or not attrs.has(cls):
        return None
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    if code is None or not code.co_filename.startswith("<attrs generated"):
        return None
    if any(hasattr(cls, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__")):
        return None
    fields = attrs.fields(cls)
    if sorted(a.name for a in fields) != sorted(names) or any(
            not a.init or a.validator is not None or a.converter is not None
            or a.alias != a.name for a in fields):
        return None
    slots = set(cls.__dict__.get("__slots__", ())) - {"__weakref__"}
    if slots != set(names):
        return None
    try:
        object.__new__(cls)  # refused for a class built on dict, set... (not object)
    except TypeError:
        return None
    setters = []
    for name in names:
        slot = cls.__dict__.get(name)
        if not isinstance(slot, types.MemberDescriptorType):
            return None
        setters.append(slot.__set__)
    return setters


class Compiler:
    """Generates and caches the converters of one codec in one direction.

    ``json`` selects the JSON mapping (keys are field names, JSON scalar conventions)
    instead of CBOR (keys are field tags); ``encode`` selects typed → plain.
    """

    def __init__(self, *, json: bool, encode: bool, max_collection_len: int,
                 track_paths: bool = True) -> None:
        self._json = json
        self._encode = encode
        self._track = track_paths
        self._max_len = max_collection_len
        self._ns: dict[str, Any] = {
            "_PathError": convert.PathError,
            "_type_error": convert.type_error,
            "_range_error": convert.range_error,
            "_fail": convert.fail,
            "_key_seg": convert.key_seg,
            "_describe": describe,
            "_plain": plain,
            "_cv": convert,
            "_Decimal": decimal.Decimal,
            "_MISSING": MISSING,
            "_deepcopy": copy.deepcopy,
        }
        self._fns: dict[int, tuple[object, str]] = {}
        self._queue: list[tuple[str, Callable[[str], list[str]]]] = []
        self._counter = itertools.count()

    # ---- public ------------------------------------------------------------------

    def compile(self, schema: TypeRef | StructSpec) -> Converter:
        """The converter for a top-level schema (cached)."""
        name = self._fn_for(schema)
        while self._queue:
            fname, make = self._queue.pop()
            source = self._bind_constants(make(fname))
            exec(compile(source, f"<rpcx converter {fname}>", "exec"), self._ns)
        fn: Converter = self._ns[name]
        return fn

    def _bind_constants(self, lines: list[str]) -> str:
        """Pass the helpers and constants a function uses as keyword defaults.

        Locals are faster than globals; converter functions (``_fN``) stay global so
        that recursive and not-yet-generated ones resolve at call time.
        """
        if not self._track:
            lines = [line for line in lines if _TRACKING.fullmatch(line) is None]
        lines = _fill_empty_blocks(lines)
        body = "\n".join(lines[1:])
        used = sorted({name for name in _NAME.findall(body)
                       if name in self._ns and _CONVERTER.fullmatch(name) is None})
        head = lines[0]
        if used:
            assert head.endswith("):"), head
            head = head[:-2] + ", *, " + ", ".join(f"{n}={n}" for n in used) + "):"
        return head + "\n" + body + "\n"

    # ---- naming ------------------------------------------------------------------

    def _tmp(self, prefix: str = "t") -> str:
        return f"{prefix}{next(self._counter)}"

    def _const(self, value: object, prefix: str = "_k") -> str:
        name = self._tmp(prefix)
        self._ns[name] = value
        return name

    def _fn_for(self, node: TypeRef | StructSpec | UnionSpec) -> str:
        """The name of the converter function of a node, queueing its generation."""
        target: TypeRef | StructSpec | UnionSpec = node
        if isinstance(node, TypeRef) and node.kind in (Kind.STRUCT, Kind.UNION):
            assert node.cls is not None
            spec = spec_of(node.cls)
            assert isinstance(spec, StructSpec | UnionSpec)
            target = spec
        entry = self._fns.get(id(target))
        if entry is not None:
            return entry[1]
        name = self._tmp("_f")
        self._fns[id(target)] = (target, name)
        if isinstance(target, StructSpec):
            spec_s = target
            self._queue.append((name, lambda fname: self._struct_fn(fname, spec_s)))
        elif isinstance(target, UnionSpec):
            spec_u = target
            self._queue.append((name, lambda fname: self._union_fn(fname, spec_u)))
        elif target.kind is Kind.LIST:
            ref_l = target
            self._queue.append((name, lambda fname: self._list_fn(fname, ref_l)))
        elif target.kind is Kind.MAP:
            ref_m = target
            self._queue.append((name, lambda fname: self._map_fn(fname, ref_m)))
        else:
            ref_p = target
            self._queue.append((name, lambda fname: self._plain_fn(fname, ref_p)))
        return name

    # ---- statements for one value -----------------------------------------------

    def _emit(self, t: TypeRef, s: str, d: str, ind: str) -> list[str]:
        """Lines converting the value in variable ``s`` into variable ``d``."""
        k = t.kind
        if k is Kind.OPTIONAL:
            assert t.item is not None
            inner = self._emit(t.item, s, d, ind + "    ")
            return [f"{ind}if {s} is None:", f"{ind}    {d} = None", f"{ind}else:", *inner]
        if k in (Kind.LIST, Kind.MAP, Kind.STRUCT, Kind.UNION):
            return [f"{ind}{d} = {self._fn_for(t)}({s})"]
        if k is Kind.ENUM:
            body = self._enum_lines(t, s, d)
        else:
            body = self._scalar_lines(k, repr(t.describe()), s, d)
        return [ind + line for line in body]

    def _scalar_lines(self, k: Kind, e: str, s: str, d: str) -> list[str]:
        """Inline checks for a primitive value; ``e`` is the expected type as a literal."""
        enc, js = self._encode, self._json
        check = f"if {s}.__class__ is not {{py}}: raise _type_error({e}, {s})"
        if k is Kind.BOOL:
            return [check.format(py="bool"), f"{d} = {s}"]
        if k is Kind.STRING:
            if enc:
                return [f"if {s}.__class__ is not str: {s} = _cv.as_str({s}, {e})", f"{d} = {s}"]
            if js:
                return [check.format(py="str"),
                        f"if not {s}.isascii(): _cv.check_text({s})", f"{d} = {s}"]
            return [check.format(py="str"), f"{d} = {s}"]
        if k is Kind.BYTES:
            if enc:
                lines = [f"if {s}.__class__ is not bytes: {s} = _cv.as_bytes({s}, {e})"]
                return [*lines, f"{d} = _cv.bytes_to_json({s})" if js else f"{d} = {s}"]
            if js:
                return [f"{d} = _cv.bytes_from_json({s}, {e})"]
            return [check.format(py="bytes"), f"{d} = {s}"]
        if k is Kind.INT:
            if enc:
                return [f"if {s}.__class__ is not int: {s} = _cv.as_int({s}, {e})",
                        _RANGE.format(s=s), f"{d} = {s}"]
            if js:
                return [f"{d} = _cv.int_from_json({s}, {e})"]
            return [check.format(py="int"), _RANGE.format(s=s), f"{d} = {s}"]
        if k is Kind.FLOAT:
            if enc:
                lines = [f"if {s}.__class__ is not float: {s} = _cv.as_float({s}, {e})"]
                return [*lines, f"{d} = _cv.float_to_json({s})" if js else f"{d} = {s}"]
            if js:
                return [f"{d} = _cv.float_from_json({s}, {e})"]
            return [check.format(py="float"), f"{d} = {s}"]
        if k is Kind.DECIMAL:
            if enc:
                # Fast exact acceptance without the slow ``as_tuple()``: every coefficient
                # digit appears in ``str(d)``, so a short string has few digits, and with
                # ``adjusted()`` bounded the exponent is bounded too. Anything else takes
                # the precise (slow) check, which raises or accepts.
                lines = [
                    f"{d} = str({s})",
                    f"if ({s}.__class__ is not _Decimal or not {s}.is_finite() or "
                    f"len({d}) > {convert.DECIMAL_MAX_DIGITS} or "
                    f"not -{_FAST_ADJUSTED} <= {s}.adjusted() <= {_FAST_ADJUSTED}):",
                    f"    {s} = _cv.check_decimal({s})",
                    f"    {d} = str({s})",
                ]
                return lines if js else [*lines, f"{d} = {s}"]
            if js:
                return [f"{d} = _cv.decimal_from_json({s}, {e})"]
            # CBOR: the tag-4 decoder already built and checked the Decimal.
            return [check.format(py="_Decimal"), f"{d} = {s}"]
        assert k is Kind.TIMESTAMP, k
        if enc:
            fn = "timestamp_to_text" if js else "timestamp_to_us"
            return [f"{d} = _cv.{fn}({s})"]
        if js:
            return [check.format(py="str"), f"{d} = _cv.timestamp_from_text({s})"]
        return [check.format(py="int"), f"{d} = _cv.us_to_timestamp({s})"]

    def _enum_tables(self, t: TypeRef) -> tuple[str, str, str, str]:
        assert t.cls is not None
        spec = spec_of(t.cls)
        assert isinstance(spec, EnumSpec)
        cls = spec.cls
        by_value = {m.value: m for m in cls}
        by_name = {m.name: m for m in cls}
        names = {m.value: m.name for m in cls}
        return (self._const(cls, "_E"), self._const(by_value, "_ev"),
                self._const(by_name, "_en"), self._const(names, "_enm"))

    def _enum_lines(self, t: TypeRef, s: str, d: str) -> list[str]:
        cls, by_value, by_name, names = self._enum_tables(t)
        e = repr(t.describe())
        if self._encode:
            lines = [f"if {s}.__class__ is not {cls} and not isinstance({s}, {cls}): "
                     f"raise _type_error({e}, {s})",
                     f"{d} = {s}._value_",
                     _RANGE.format(s=d)]
            if self._json:
                lines.append(f"{d} = {names}.get({d}, {d})")
            return lines
        if self._json:
            return [f"{d} = _cv.enum_from_json({cls}, {by_name}, {by_value}, {s}, {e})"]
        return [f"if {s}.__class__ is not int: raise _type_error({e}, {s})",
                f"{d} = {by_value}.get({s})",
                f"if {d} is None: {d} = _cv.enum_unknown({cls}, {s})"]

    def _key_lines(self, t: TypeRef, s: str, d: str) -> list[str]:
        """Checks and conversion of a map key (string, int or enum)."""
        e = repr(f"{t.describe()} map key")
        k = t.kind
        if not self._json or k is Kind.STRING:
            if k is Kind.ENUM:
                return self._enum_lines(t, s, d)
            return self._scalar_lines(k, e, s, d)
        if k is Kind.INT:
            if self._encode:
                return [*self._scalar_lines(k, e, s, d), f"{d} = str({d})"]
            return [f"{d} = _cv.int_key_from_json({s})"]
        assert k is Kind.ENUM, k
        if self._encode:
            return [*self._enum_lines(t, s, d), f"{d} = str({d})"]
        cls, by_value, by_name, _names = self._enum_tables(t)
        return [f"{d} = _cv.enum_key_from_json({cls}, {by_name}, {by_value}, {s}, {e})"]

    # ---- functions ---------------------------------------------------------------

    def _plain_fn(self, fname: str, t: TypeRef) -> list[str]:
        return [f"def {fname}(v):", *self._emit(t, "v", "r", "    "), "    return r"]

    def _len_check(self, what: str) -> str:
        return (f"    if len(v) > {self._max_len}: _fail(f'{what} of {{len(v)}} entries exceeds "
                f"max_collection_len ({self._max_len})')")

    def _list_fn(self, fname: str, t: TypeRef) -> list[str]:
        assert t.item is not None
        e = repr(t.describe())
        if self._encode:
            head = [f"    if v.__class__ is not list and not isinstance(v, (list, tuple)): "
                    f"raise _type_error({e}, v)"]
        else:
            head = [f"    if v.__class__ is not list: raise _type_error({e}, v)"]
        return [
            f"def {fname}(v):",
            *head,
            self._len_check("list"),
            "    out = []",
            "    append = out.append",
            "    i = 0",
            "    try:",
            "        for x in v:",
            *self._emit(t.item, "x", "y", "            "),
            "            append(y)",
            "            i += 1",
            "    except _PathError as exc:",
            "        exc.segs.append(f'[{i}]')",
            "        raise",
            "    return out",
        ]

    def _map_fn(self, fname: str, t: TypeRef) -> list[str]:
        assert t.item is not None and t.key is not None
        e = repr(t.describe())
        return [
            f"def {fname}(v):",
            f"    if v.__class__ is not dict and not isinstance(v, dict): "
            f"raise _type_error({e}, v)",
            self._len_check("map"),
            "    out = {}",
            "    k = None",
            "    try:",
            "        for k, x in v.items():",
            *[" " * 12 + line for line in self._key_lines(t.key, "k", "kk")],
            *self._emit(t.item, "x", "y", "            "),
            *self._dup_key_check(t.key),
            "            out[kk] = y",
            "    except _PathError as exc:",
            "        exc.segs.append(_key_seg(k))",
            "        raise",
            "    return out",
        ]

    def _dup_key_check(self, key: TypeRef) -> list[str]:
        """JSON int and enum keys have several spellings ("1", "-0", "GBP" and its number):
        two spellings of one key are an error, not an entry silently dropped."""
        if not self._json or self._encode or key.kind not in (Kind.INT, Kind.ENUM):
            return []
        return ["            if kk in out: _fail('duplicate map key ' + _key_seg(kk)[1:-1] "
                "+ ' (written twice)')"]

    @staticmethod
    def _msg(text: str) -> str:
        """A message fragment as a Python literal (names may contain quotes)."""
        return repr(text)

    def _wire_key(self, f: FieldSpec) -> str:
        return repr(f.name) if self._json else repr(f.tag)

    def _struct_fn(self, fname: str, spec: StructSpec) -> list[str]:
        if self._encode:
            return self._struct_enc(fname, spec)
        return self._struct_dec(fname, spec)

    def _struct_enc(self, fname: str, spec: StructSpec) -> list[str]:
        lines = [f"def {fname}(obj):"]
        n = len(spec.fields)
        if spec.cls is None:
            lines += [
                "    if obj.__class__ is not tuple and not isinstance(obj, (tuple, list)):",
                f"        raise _type_error('parameters of {spec.name}', obj)",
                f"    if len(obj) != {n}:",
                f"        _fail(f'expected {n} parameters, got {{len(obj)}}')",
            ]
        else:
            cls = self._const(spec.cls, "_C")
            lines.append(f"    if obj.__class__ is not {cls} and not isinstance(obj, {cls}): "
                         f"raise _type_error({spec.name!r}, obj)")
        omittable = [f.type.kind is Kind.OPTIONAL or isinstance(f.default, list | dict)
                     for f in spec.fields]
        display = not any(omittable)  # build the dict in one go at the end
        if not display:
            lines.append("    out = {}")
        lines += ["    f = ''", "    try:"]
        results: list[str] = []
        for i, field in enumerate(spec.fields):
            get = f"obj[{i}]" if spec.cls is None else f"obj.{field.py_name}"
            key = self._wire_key(field)
            lines.append(f"        f = {'.' + field.name!r}")
            lines.append(f"        v = {get}")
            if field.type.kind is Kind.OPTIONAL:
                assert field.type.item is not None
                lines.append("        if v is not None:")
                lines += self._emit(field.type.item, "v", "r", " " * 12)
                lines.append(f"            out[{key}] = r")
                if field.default is not None:
                    # Absent would decode as the default, so None must be sent as null.
                    lines.append(f"        else: out[{key}] = None")
            elif isinstance(field.default, list | dict) and not field.default:
                # An empty list or map whose default is empty is left out.
                py = "list" if isinstance(field.default, list) else "dict"
                lines.append(f"        if v.__class__ is not {py} or v:")
                lines += self._emit(field.type, "v", "r", " " * 12)
                lines.append(f"            out[{key}] = r")
            elif display:
                lines += self._emit(field.type, "v", f"r{i}", " " * 8)
                results.append(f"{key}: r{i}")
            else:
                lines += self._emit(field.type, "v", "r", " " * 8)
                lines.append(f"        out[{key}] = r")
        lines += [
            "    except _PathError as exc:",
            "        exc.segs.append(f)",
            "        raise",
            f"    return {{{', '.join(results)}}}" if display else "    return out",
        ]
        return lines

    def _default_expr(self, field: FieldSpec) -> str:
        default = field.default
        if default is None or type(default) in (bool, int, str, bytes):
            # Exact types only: an enum member is an int whose repr is not Python source.
            return repr(default)
        if isinstance(default, list | dict) and not default:
            return "[]" if isinstance(default, list) else "{}"
        if isinstance(default, list | dict):
            return f"_deepcopy({self._const(default)})"
        return self._const(default)

    def _struct_dec(self, fname: str, spec: StructSpec) -> list[str]:
        e = repr(spec.name if spec.cls is not None else f"parameters of {spec.name}")
        lines = [
            f"def {fname}(m):",
            f"    if m.__class__ is not dict: raise _type_error({e}, m)",
            "    f = ''",
            "    try:",
        ]
        args = []
        for i, field in enumerate(spec.fields):
            a = f"a{i}"
            args.append(a)
            key = self._wire_key(field)
            # ``get`` without a default is the fast path; None means absent or null.
            lines.append(f"        v = m.get({key})")
            lines.append(f"        if v is None and {key} not in m:")
            if field.required:
                lines.append("            f = ''")  # the error is the struct's, not a field's
                lines.append(f"            _fail({'missing required field ' + repr(field.name)!r})")
            else:
                lines.append(f"            {a} = {self._default_expr(field)}")
            lines.append("        else:")
            lines.append(f"            f = {'.' + field.name!r}")
            lines += self._emit(field.type, "v", a, " " * 12)
        lines += [
            "    except _PathError as exc:",
            "        if f: exc.segs.append(f)",
            "        raise",
        ]
        if spec.cls is None:
            lines.append(f"    return ({''.join(a + ', ' for a in args)})")
            return lines
        cls = self._const(spec.cls, "_C")
        setters = _slot_setters(spec.cls, [f.py_name for f in spec.fields])
        if setters is not None:
            # What the class's attrs __init__ would do, without the call's keywords and
            # its object.__setattr__ per field (a plain slotted struct: no validators,
            # converters or hooks to run; see _slot_setters).
            new = self._const(object.__new__, "_new")
            lines.append(f"    o = {new}({cls})")
            for setter, a in zip(setters, args, strict=True):
                lines.append(f"    {self._const(setter, '_set')}(o, {a})")
            lines.append("    return o")
            return lines
        kwargs = ", ".join(f"{f.py_name}={a}" for f, a in zip(spec.fields, args, strict=True))
        lines += [
            "    try:",
            f"        return {cls}({kwargs})",
            "    except Exception as exc:",
            f"        raise _PathError({f'invalid {spec.name}: '!r} + _plain(str(exc))) from exc",
        ]
        return lines

    def _union_fn(self, fname: str, spec: UnionSpec) -> list[str]:
        cls = self._const(spec.cls, "_C")
        uname = spec.name
        if self._encode:
            lines = [
                f"def {fname}(obj):",
                f"    if obj.__class__ is not {cls} and not isinstance(obj, {cls}): "
                f"raise _type_error({uname!r}, obj)",
                "    out = None",
                "    n = 0",
                "    f = ''",
                "    try:",
            ]
            for field in spec.variants:
                lines += [
                    f"        v = obj.{field.py_name}",
                    "        if v is not None:",
                    f"            f = {'.' + field.name!r}",
                    "            n += 1",
                    *self._emit(field.type, "v", "r", " " * 12),
                    f"            out = {{{self._wire_key(field)}: r}}",
                ]
            lines += [
                "    except _PathError as exc:",
                "        exc.segs.append(f)",
                "        raise",
                "    if n != 1:",
                f"        _fail({self._msg(f'union {uname!r} must have exactly one variant ')}"
                " + 'set, got ' + str(n))",
                "    return out",
            ]
            return lines
        lines = [
            f"def {fname}(m):",
            f"    if m.__class__ is not dict: raise _type_error({uname!r}, m)",
            "    if len(m) != 1:",
            f"        _fail({self._msg(f'union {uname!r} needs exactly one variant, got ')}"
            " + str(len(m)) + ' entries')",
            "    for k, v in m.items(): pass",
            "    f = ''",
            "    try:",
        ]
        for i, field in enumerate(spec.variants):
            cond = "if" if i == 0 else "elif"
            lines += [
                f"        {cond} k == {self._wire_key(field)} and k.__class__ is "
                f"{'str' if self._json else 'int'}:",
                f"            f = {'.' + field.name!r}",
                *self._emit(field.type, "v", "r", " " * 12),
                "            if r is None:",
                f"                _fail({f'variant {field.name} of union {uname!r} is null'!r})",
                "            try:",
                f"                return {cls}({field.py_name}=r)",
                "            except Exception as exc:",
                f"                raise _PathError({f'invalid {uname}: '!r} + _plain(str(exc)))"
                " from exc",
            ]
        what = "name" if self._json else "tag"
        lines += [
            "    except _PathError as exc:",
            "        if f: exc.segs.append(f)",
            "        raise",
            f"    _fail({self._msg(f'unknown variant {what} ')} + _describe(k)"
            f" + {self._msg(f' of union {uname!r}')})",
        ]
        return lines

