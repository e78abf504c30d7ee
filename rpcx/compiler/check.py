"""Semantic checks of one parsed file, and building its :mod:`rpcx.compiler.model`.

Each rule records a diagnostic and checking goes on, so one run reports every problem.
The model is built alongside; the caller throws it away when there was any diagnostic.
"""

from __future__ import annotations

import bisect
import datetime
import decimal
import difflib
import keyword
import math
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from rpcx.compiler import model
from rpcx.compiler import syntax as syn
from rpcx.compiler.diagnostics import Span
from rpcx.compiler.resolve import DeclInfo, Scope, Unit
from rpcx.schema import Kind
from rpcx.status import Status

__all__ = ["check_unit"]

MIN_TAG, MAX_TAG = 1, 2**29 - 1
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
ENUM_MIN, ENUM_MAX = -(2**31), 2**31 - 1
MAX_RESERVED_RANGE = 10_000

PRIMITIVES = {
    "bool": Kind.BOOL,
    "int": Kind.INT,
    "float": Kind.FLOAT,
    "decimal": Kind.DECIMAL,
    "string": Kind.STRING,
    "bytes": Kind.BYTES,
    "timestamp": Kind.TIMESTAMP,
}
IDL_TYPE_WORDS = frozenset({*PRIMITIVES, "list", "map"})
TYPE_BUILTINS = frozenset({"bool", "int", "float", "str", "bytes", "list", "dict", "object"})
FIELD_BUILTINS = frozenset({"bool", "int", "float", "str", "bytes", "list", "dict"})
ERROR_FIELD_RESERVED = frozenset(
    {"code", "message", "details", "args", "with_traceback", "add_note", "rpcx_code"}
)
VARIANT_RESERVED = frozenset({"which", "value"})
MEMBER_RESERVED = frozenset({"name", "value", "is_known"})
PARAM_RESERVED = frozenset({"self", "timeout", "metadata", "options"})
DECL_KINDS = frozenset({"enum", "struct", "union", "error", "service"})
ANNOTATIONS = ("idempotent", "readonly", "deadline", "deprecated", "status")
ERROR_STATUSES = tuple(s.name for s in Status if s not in (Status.OK, Status.UNKNOWN))
"""What ``@status`` accepts: every :class:`rpcx.Status` name except OK (a failure cannot
report success) and UNKNOWN (the code for errors nobody classified)."""

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)


def _q(text: str) -> str:
    return repr(text)


def _a(noun: str) -> str:
    """``noun`` with its indefinite article."""
    return ("an " if noun[0] in "aeio" else "a ") + noun


class _Annotated(NamedTuple):
    """What the annotations on one item say."""

    idempotent: bool = False
    deadline: float | None = None
    deprecated: str | None = None
    status: str | None = None
    readonly: bool = False
    """The ``rpcx.Status`` name from ``@status`` (errors only)."""


class _Checker:
    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.scope = Scope(unit)
        self.package = unit.package
        self.error = unit.diag  # type: ignore[method-assign]
        self.by_qualified: dict[str, DeclInfo] | None = None
        """Visible declarations by qualified name (built on first use)."""
        self.enum_members: dict[int, dict[str, int]] = {}
        self.clean_names: dict[str, set[str]] = {}
        """Per role, the names check_name has already passed."""
        self.named: dict[tuple[str, ...], model.ModelType] = {}
        """Types named by a declaration, by the names as written, once resolved without
        error (model types are immutable, so one object serves every field)."""
        self.named_word: dict[str, model.ModelType] = {}
        """:attr:`named` for the one-word names (``Card``), keyed by the word."""
        self.enum_values: dict[tuple[str, str], model.EnumValue] = {}
        """Defaults naming an enum member by its bare name: by (enum, member)."""
        self.wrapped: dict[tuple[str, int], model.ModelType] = {}
        """``T?`` and ``list<T>`` by kind value and ``id`` of ``T`` (the entry keeps ``T``
        alive, so the ``id`` cannot be reused)."""
        """Member values of enum declarations by ``id`` of their node (built on use)."""

    def error(self, span: Span, message: str) -> None:
        self.unit.diag(span, message)

    # -- names -----------------------------------------------------------------------------

    def check_name(self, name: syn.Name, role: str) -> None:
        """Naming rules; ``role`` is type, service, field, error field, variant, parameter,
        member or method. A name that passed for a role is not checked again for it."""
        text = name.text
        clean = self.clean_names.get(role)
        if clean is None:
            clean = self.clean_names[role] = set()
        elif text in clean:
            return
        if not self.name_rules(text, name.span, role):
            clean.add(text)

    def name_rules(self, text: str, span: Span, role: str) -> bool:
        """The rules of :meth:`check_name`; True when one was broken (and reported)."""
        if keyword.iskeyword(text):
            self.error(span, f"{text!r} is a python keyword and cannot be used as a name")
            return True
        if text.startswith("_"):
            self.error(span, f"{role} name {text!r} starts with '_', which is reserved for"
                       " generated code")
            return True
        if role in ("type", "service"):
            if text in IDL_TYPE_WORDS:
                self.error(span, f"{text!r} is a type keyword of the IDL and cannot name a"
                           f" declaration")
                return True
            if text in TYPE_BUILTINS:
                self.error(span, f"{role} name {text!r} would shadow the python builtin")
                return True
            return False
        if role in ("field", "error field", "variant", "parameter") and text in FIELD_BUILTINS:
            self.error(span, f"{role} name {text!r} would shadow the python builtin used in"
                       " generated annotations")
        elif role == "error field" and text in ERROR_FIELD_RESERVED:
            self.error(span, f"error field name {text!r} clashes with an attribute of the"
                       " generated exception")
        elif role == "variant" and text in VARIANT_RESERVED:
            self.error(span, f"union variant name {text!r} clashes with an attribute of the"
                       " generated union class")
        elif role == "member" and text in MEMBER_RESERVED:
            self.error(span, f"enum member name {text!r} clashes with an attribute of the"
                       " generated enum")
        elif role == "member" and re.fullmatch(r"UNKNOWN_-?\d+", text):
            self.error(span, f"enum member name {text!r} clashes with the names given to"
                       " unknown enum values")
        elif role == "parameter" and text in PARAM_RESERVED:
            self.error(span, f"parameter name {text!r} clashes with a per-call option or"
                       " 'self' in the generated client")
        else:
            return False
        return True

    # -- annotations -----------------------------------------------------------------------

    def annotations(self, anns: Sequence[syn.Annotation], target: str) -> _Annotated:
        """Check annotations on ``target`` (``method``, ``field``, ``enum member``, or for a
        declaration its keyword: ``struct``, ``error``, ``enum``, ...)."""
        if not anns:
            return _NOT_ANNOTATED
        idempotent, deadline, deprecated, status = False, None, None, None
        readonly = False
        seen: set[str] = set()
        for ann in anns:
            name = ann.name.text
            label = f"@{name}"
            if name not in ANNOTATIONS:
                self.error(ann.span, f"unknown annotation {label!r} (known: @idempotent,"
                           " @readonly, @deadline, @deprecated, @status)")
                continue
            if name in seen:
                self.error(ann.span, f"duplicate annotation {label!r}")
                continue
            seen.add(name)
            if name in ("idempotent", "readonly", "deadline") and target != "method":
                noun = "declaration" if target in DECL_KINDS else target
                self.error(ann.span, f"{label!r} applies only to methods, not to {_a(noun)}")
                continue
            if name == "status" and target != "error":
                self.error(ann.span, f"'@status' applies only to errors, not to {_a(target)}")
                continue
            if name in ("idempotent", "readonly"):
                if ann.has_parens:
                    where = ann.args[0].span if ann.args else ann.span
                    self.error(where, f"{label!r} takes no arguments")
                elif name == "idempotent":
                    idempotent = True
                else:
                    readonly = True
            elif name == "deadline":
                arg = ann.args[0] if len(ann.args) == 1 else None
                if not isinstance(arg, syn.DurationValue):
                    where = ann.args[0].span if ann.args else ann.span
                    found = f", found {_value_text(ann.args[0])}" if ann.args else ""
                    if len(ann.args) > 1:
                        where, found = ann.args[1].span, " (only one argument)"
                    self.error(where, "'@deadline' needs one duration such as 250ms, 2s or 1m"
                               + found)
                elif arg.seconds <= 0:
                    self.error(arg.span, "'@deadline' must be a positive duration")
                else:
                    deadline = arg.seconds
            elif name == "status":
                status = self.status(ann)
            else:
                arg = ann.args[0] if len(ann.args) == 1 else None
                if not ann.args:
                    deprecated = ""
                elif isinstance(arg, syn.Literal) and arg.kind == "string":
                    assert isinstance(arg.value, str)
                    deprecated = arg.value
                else:
                    where = ann.args[1].span if len(ann.args) > 1 else ann.args[0].span
                    self.error(where, "'@deprecated' takes an optional reason string, found "
                               + _value_text(ann.args[0] if arg is not None else ann.args[1]))
        return _Annotated(idempotent, deadline, deprecated, status, readonly)

    def status(self, ann: syn.Annotation) -> str | None:
        """The status name of ``@status(NAME)``, or None after reporting what is wrong."""
        need = "'@status' needs one status name such as NOT_FOUND"
        if not ann.args:
            self.error(ann.span, need)
            return None
        if len(ann.args) > 1:
            self.error(ann.args[1].span, need + " (only one argument)")
            return None
        arg = ann.args[0]
        if not isinstance(arg, syn.NameValue) or len(arg.parts) != 1:
            self.error(arg.span, f"{need}, found {_value_text(arg)}")
            return None
        text = arg.text
        if text in ERROR_STATUSES:
            return text
        if text in ("OK", "UNKNOWN"):
            why = ("a declared error cannot report success" if text == "OK"
                   else "UNKNOWN is for errors nobody classified; pick a specific status")
            self.error(arg.span, f"'@status({text})' is not allowed: {why}")
            return None
        close = difflib.get_close_matches(text.upper(), ERROR_STATUSES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "valid: " + ", ".join(ERROR_STATUSES)
        self.error(arg.span, f"unknown status {text!r} ({hint})")
        return None

    # -- types -----------------------------------------------------------------------------

    def resolve_type(self, node: syn.TypeNode) -> model.ModelType | None:
        inner = self.resolve_base(node)
        if inner is None or not node.optional:
            return inner
        return self.wrap(Kind.OPTIONAL, inner)

    def wrap(self, kind: Kind, item: model.ModelType) -> model.ModelType:
        key = (kind._value_, id(item))  # (Kind's own hash is Python code; its value's is not)
        found = self.wrapped.get(key)
        if found is None:
            found = self.wrapped[key] = model.ModelType(kind, item=item)
        return found

    def resolve_base(self, node: syn.TypeNode) -> model.ModelType | None:
        name = node.name
        head = name[0].text
        if len(name) == 1 and not node.args:
            known = _PRIMITIVE_TYPES.get(head) or self.named_word.get(head)
            if known is not None:
                return known
            if head not in PRIMITIVES and head != "list" and head != "map":
                # What the end of this method does for such a name, without the checks
                # that cannot apply to it.
                info = self.scope.own.get(head)  # what lookup() finds first
                if info is None:
                    message = self.scope.lookup((head,))
                    assert isinstance(message, str)
                    self.error(node.span, message)
                    return None
                mtype = self.type_of(info, node)
                if mtype is not None:
                    self.named_word[head] = mtype
                return mtype
        if len(name) == 1 and node.args and head == "stream":
            self.error(node.span, f"{node.text!r}: a stream is only the result of a method"
                       " or the type of one of its parameters")
            return None
        if len(name) == 1 and node.args:
            item = self.resolve_type(node.args[-1])
            if head == "list":
                return None if item is None else self.wrap(Kind.LIST, item)
            key = self.resolve_type(node.args[0])
            if key is not None and key.kind not in (Kind.STRING, Kind.INT, Kind.ENUM):
                self.error(node.args[0].span, f"bad map key type {node.args[0].text!r}: map"
                           " keys must be string, int or an enum (not optional)")
                return None
            if key is None or item is None:
                return None
            return model.ModelType(Kind.MAP, item=item, key=key)
        if len(node.name) == 1 and head in PRIMITIVES:
            return model.ModelType(PRIMITIVES[head])
        if len(node.name) == 1 and head in ("list", "map"):
            shape = "list<T>" if head == "list" else "map<K, V>"
            self.error(node.span, f"{head!r} needs type arguments: {shape}")
            return None
        parts: tuple[str, ...] = tuple([n.text for n in name])
        cached = self.named.get(parts)
        if cached is not None:
            return cached
        found = self.scope.lookup(parts)
        if isinstance(found, str):
            self.error(node.span, found)
            return None
        mtype = self.type_of(found, node)
        if mtype is not None:
            self.named[parts] = mtype
        return mtype

    def type_of(self, info: DeclInfo, node: syn.TypeNode) -> model.ModelType | None:
        if info.kind == "service":
            self.error(node.span, f"{info.qualified!r} is a service, not a type")
            return None
        kind = _REF_KINDS.get(info.kind, Kind.STRUCT)
        return model.ModelType(kind, None, None, info.qualified, info.module,
                               info.kind == "error")

    def info_of(self, mtype: model.ModelType) -> DeclInfo | None:
        """The declaration a named type refers to (only own or directly imported ones)."""
        if mtype.ref is None:
            return None
        if self.by_qualified is None:
            self.by_qualified = {}
            for _, decls in reversed(self.scope.imported):
                self.by_qualified.update((i.qualified, i) for i in decls.values())
            self.by_qualified.update((i.qualified, i) for i in self.scope.own.values())
        return self.by_qualified.get(mtype.ref)

    # -- default values --------------------------------------------------------------------

    def value(self, v: syn.Value, t: model.ModelType, tnode: syn.TypeNode) -> model.Value:
        """Convert a default to ``t``; on mismatch record a diagnostic, raise _Bad."""
        if t.kind is Kind.OPTIONAL:
            if isinstance(v, syn.Literal) and v.kind == "null":
                return None
            assert t.item is not None
            return self.value(v, t.item, tnode)
        if isinstance(v, syn.Literal) and v.kind == "null":
            raise self.bad(v, f"'null' default requires an optional type ({tnode.text}?),"
                           f" not {tnode.text!r}")
        kind = t.kind
        if kind is Kind.ENUM and type(v) is syn.NameValue:  # (the branch below, first)
            return self.enum_value(v, t)
        if kind is Kind.BOOL and isinstance(v, syn.Literal) and v.kind == "bool":
            return bool(v.value)
        if kind is Kind.INT and isinstance(v, syn.Literal) and v.kind == "int":
            assert isinstance(v.value, int)
            if not INT_MIN <= v.value <= INT_MAX:
                raise self.bad(v, f"default {v.text} is out of range for 'int' (signed 64-bit)")
            return v.value
        if kind is Kind.INT and isinstance(v, syn.Literal) and v.kind == "float":
            raise self.bad(v, f"default {v.text} is not an integer, but the type is 'int'")
        if kind is Kind.FLOAT and isinstance(v, syn.Literal) and v.kind in ("int", "float"):
            assert isinstance(v.value, int | float)
            try:
                number = float(v.value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise self.bad(v, f"default {v.text} is out of range for 'float'")
            return number
        if kind is Kind.DECIMAL and isinstance(v, syn.Literal) and v.kind in (
            "int", "float", "string"
        ):
            source = v.value if v.kind == "string" else v.text
            assert isinstance(source, str)
            try:
                exact = decimal.Decimal(source.strip() if v.kind == "string" else source)
            except decimal.InvalidOperation:
                exact = decimal.Decimal("NaN")
            if not exact.is_finite():
                raise self.bad(v, f"default {v.text} is not a finite decimal number")
            return exact
        if kind is Kind.STRING and isinstance(v, syn.Literal) and v.kind == "string":
            assert isinstance(v.value, str)
            return v.value
        if kind is Kind.BYTES and isinstance(v, syn.Literal) and v.kind == "string":
            assert isinstance(v.value, str)
            try:
                return v.value.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate, only possible via compile_source
                raise self.bad(v, f"default {_value_text(v)} is not valid unicode") from None
        if kind is Kind.TIMESTAMP and isinstance(v, syn.Literal) and v.kind == "string":
            assert isinstance(v.value, str)
            return self.timestamp(v, v.value)
        if kind is Kind.ENUM and isinstance(v, syn.NameValue):
            return self.enum_value(v, t)
        if kind is Kind.LIST and isinstance(v, syn.ListValue):
            assert t.item is not None
            item_node = tnode.args[0] if tnode.args else tnode
            return [self.value(item, t.item, item_node) for item in v.items]
        if kind is Kind.MAP and isinstance(v, syn.MapValue):
            assert t.item is not None and t.key is not None
            key_node, item_node = (tnode.args[0], tnode.args[1]) if len(tnode.args) == 2 else (
                tnode, tnode)
            out: dict[model.Value, model.Value] = {}
            for key, item in v.entries:
                k = self.value(key, t.key, key_node)
                if k in out:
                    raise self.bad(key, f"duplicate map key {_value_text(key)}")
                out[k] = self.value(item, t.item, item_node)
            return out
        base = _base_text(tnode)  # only the messages below need it
        if kind in (Kind.STRUCT, Kind.UNION):
            raise self.bad(v, f"a field of type {base!r} cannot have a default (only 'null'"
                           " when it is optional)")
        raise self.bad(v, f"default {_value_text(v)} does not fit type {base!r}")

    def bad(self, v: syn.Value, message: str) -> _Bad:
        self.error(v.span, message)
        return _Bad()

    def timestamp(self, v: syn.Literal, text: str) -> datetime.datetime:
        m = _RFC3339.fullmatch(text)
        if m is None:
            raise self.bad(v, f"bad timestamp {text!r}: expected RFC 3339 such as"
                           " '2024-01-31T12:00:00Z'")
        year, month, day, hour, minute, second, frac, z, sign, oh, om = m.groups()
        if z is None and sign is None:
            raise self.bad(v, f"timestamp {text!r} has no timezone (add 'Z' or an offset"
                           " such as '+01:00')")
        if frac is not None and len(frac) > 6:
            raise self.bad(v, f"timestamp {text!r} is more precise than microseconds")
        try:
            offset = datetime.timedelta(hours=int(oh), minutes=int(om)) if sign else None
            if offset is not None and sign == "-":
                offset = -offset
            tz = datetime.UTC if offset is None else datetime.timezone(offset)
            return datetime.datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second),
                int((frac or "0").ljust(6, "0")), tzinfo=tz,
            )
        except ValueError as exc:
            raise self.bad(v, f"bad timestamp {text!r}: {exc}") from None

    def enum_value(self, v: syn.NameValue, t: model.ModelType) -> model.EnumValue:
        assert t.ref is not None
        if len(v.parts) == 1:
            key = (t.ref, v.parts[0].text)
            found = self.enum_values.get(key)
            if found is None:
                found = self.enum_values[key] = self.enum_value_of(v, t)
            return found  # (EnumValue is immutable: one object serves every default)
        return self.enum_value_of(v, t)

    def enum_value_of(self, v: syn.NameValue, t: model.ModelType) -> model.EnumValue:
        assert t.ref is not None
        info = self.info_of(t)
        parts = [p.text for p in v.parts]
        if info is None or not isinstance(info.node, syn.EnumDecl):
            raise self.bad(v, f"cannot check enum default {v.text!r}")
        members = self.enum_members.get(id(info.node))
        if members is None:
            members = {}
            for m in info.node.members:
                members[m.name.text] = m.value
            self.enum_members[id(info.node)] = members
        member = parts[-1]
        ok = member in members
        if ok and len(parts) > 1:
            found = self.scope.lookup(parts[:-1])
            ok = isinstance(found, DeclInfo) and found.qualified == t.ref
        if not ok:
            raise self.bad(v, f"{v.text!r} is not a member of enum {t.ref!r}")
        return model.EnumValue(t.ref, member, members[member])

    # -- fields ----------------------------------------------------------------------------

    def fields(
        self, fields: Iterable[syn.Field], reserved: Sequence[syn.ReservedRange], role: str
    ) -> tuple[tuple[model.Field, ...], tuple[tuple[int, int], ...]]:
        """Fields of a struct/union/error, or parameters (``role``)."""
        reserved_tags = self.reserved(reserved, MIN_TAG, MAX_TAG, "tag") if reserved \
            else _NO_RANGES
        names: set[str] = set()
        tags: dict[int, str] = {}
        out: list[model.Field] = []
        what = "variant" if role == "variant" else ("parameter" if role == "parameter"
                                                     else "field")
        error, check_name, resolve_type = self.error, self.check_name, self.resolve_type
        no_ranges = reserved_tags is _NO_RANGES
        clean = self.clean_names.get(role)
        primitive, named_word, own_get = _PRIMITIVE_TYPES.get, self.named_word, self.scope.own.get
        new_field = model.Field
        for f in fields:
            tag, tag_span, name, type_node, value, annotations, doc, _ = f
            text = name[0]
            if clean is None or text not in clean:  # check_name's own shortcut, inline
                check_name(name, role)
                clean = self.clean_names[role]
            if text in names:
                error(name.span, f"duplicate {what} name {text!r}")
            names.add(text)
            if not MIN_TAG <= tag <= MAX_TAG:
                error(tag_span, f"tag {tag} is out of range ({MIN_TAG} to {MAX_TAG})")
            elif tag in tags:
                error(tag_span, f"duplicate tag {tag} (already used by {tags[tag]!r})")
            elif not no_ranges and tag in reserved_tags:
                error(tag_span, f"tag {tag} is reserved")
            if tag not in tags:
                tags[tag] = text
            deprecated = self.annotations(annotations, what).deprecated if annotations \
                else None
            type_name, type_args, optional, _ = type_node
            if not type_args and len(type_name) == 1:
                # resolve_type() for a one-word name already resolved: two lookups.
                word = type_name[0][0]
                mtype = primitive(word) or named_word.get(word)
                if mtype is None:
                    info = own_get(word)
                    if (info is not None and info.kind != "service" and word != "list"
                            and word != "map"):
                        # resolve_base() for a declaration of this file, the first time
                        mtype = self.type_of(info, type_node)
                        if mtype is not None:
                            named_word[word] = mtype
                    else:
                        mtype = self.resolve_base(type_node)
                if optional and mtype is not None:
                    mtype = self.wrap(Kind.OPTIONAL, mtype)
            else:
                mtype = resolve_type(type_node)
            if role == "variant" and optional:
                self.error(type_node.span, f"union variant {text!r} cannot be optional:"
                           " exactly one variant is set")
            default: model.Value | model._NoDefault = model.NO_DEFAULT
            if value is not None:
                if role == "variant":
                    self.error(value.span, f"union variant {text!r} cannot have a default")
                elif mtype is not None:
                    try:  # (contextlib.suppress costs an object and two calls per default)
                        default = self.value(value, mtype, type_node)
                    except _Bad:
                        default = model.NO_DEFAULT
            if mtype is not None:
                out.append(new_field(tag, text, mtype, default, doc, deprecated, name.span))
        return tuple(out), (() if no_ranges else reserved_tags.merged())

    def reserved(
        self, ranges: Sequence[syn.ReservedRange], low: int, high: int, what: str
    ) -> _Ranges:
        if not ranges:
            return _NO_RANGES
        out = _Ranges()
        for r in ranges:
            if r.low > r.high:
                self.error(r.span, f"reserved range {r.low} to {r.high} is empty")
            elif not (low <= r.low and r.high <= high):
                self.error(r.span, f"reserved {what} {r.low if r.low < low else r.high} is out"
                           f" of range ({low} to {high})")
            elif r.high - r.low >= MAX_RESERVED_RANGE:
                self.error(r.span, f"reserved range {r.low} to {r.high} is too large (at"
                           f" most {MAX_RESERVED_RANGE} values)")
            else:
                out.add(r.low, r.high)
        return out

    # -- declarations ----------------------------------------------------------------------

    def qualified(self, name: str) -> str:
        return f"{self.package}.{name}" if self.package else name

    def decl(self, node: syn.Decl) -> model.Decl:
        # type() instead of isinstance chains: syntax nodes are never subclassed.
        node_type = type(node)
        name_node = node.name
        name = name_node.text
        role = "service" if node_type is syn.ServiceDecl else "type"
        clean = self.clean_names.get(role)
        if clean is None or name not in clean:  # check_name's own shortcut, inline
            self.check_name(name_node, role)
        if node.annotations:
            kind = ("enum" if node_type is syn.EnumDecl else "service"
                    if node_type is syn.ServiceDecl else node.keyword)  # type: ignore[union-attr]
            annotated = self.annotations(node.annotations, kind)
        else:
            annotated = _NOT_ANNOTATED
        deprecated = annotated.deprecated
        qualified = f"{self.package}.{name}" if self.package else name  # self.qualified()
        if isinstance(node, syn.EnumDecl):
            return self.enum(node, deprecated)
        if isinstance(node, syn.ServiceDecl):
            methods = self.methods(node)
            return model.ServiceDecl(name, qualified, methods, node.doc, deprecated,
                                     name_node.span)
        keyword = node.keyword
        if keyword == "union":
            variants, reserved = self.fields(node.fields, node.reserved, "variant")
            if not node.fields:
                self.error(name_node.span, f"union {name!r} has no variants")
            return model.UnionDecl(name, qualified, variants, reserved, node.doc, deprecated,
                                   name_node.span)
        is_error = keyword == "error"
        if node.fields or node.reserved:
            fields, reserved = self.fields(node.fields, node.reserved,
                                           "error field" if is_error else "field")
        else:
            fields, reserved = (), ()  # what fields() gives for an empty body
        return model.StructDecl(name, qualified, fields, reserved, is_error, node.doc,
                                deprecated, name_node.span, annotated.status)

    def enum(self, node: syn.EnumDecl, deprecated: str | None) -> model.EnumDecl:
        reserved = self.reserved(node.reserved, ENUM_MIN, ENUM_MAX, "value")
        names: set[str] = set()
        values: dict[int, str] = {}
        members: list[model.EnumMember] = []
        for m in node.members:
            self.check_name(m.name, "member")
            if m.name.text in names:
                self.error(m.name.span, f"duplicate enum member {m.name.text!r}")
            names.add(m.name.text)
            if not ENUM_MIN <= m.value <= ENUM_MAX:
                self.error(m.value_span, f"enum value {m.value} is out of range (signed"
                           " 32-bit)")
            elif m.value in values:
                self.error(m.value_span, f"duplicate enum value {m.value} (already used by"
                           f" {values[m.value]!r})")
            elif m.value in reserved:
                self.error(m.value_span, f"enum value {m.value} is reserved")
            values.setdefault(m.value, m.name.text)
            member_deprecated = self.annotations(m.annotations, "enum member").deprecated
            members.append(model.EnumMember(m.name.text, m.value, m.doc, m.name.span,
                                            member_deprecated))
        if not node.members:
            self.error(node.name.span, f"enum {node.name.text!r} has no members")
        return model.EnumDecl(node.name.text, self.qualified(node.name.text), tuple(members),
                              node.doc, deprecated, node.name.span)

    def methods(self, node: syn.ServiceDecl) -> tuple[model.Method, ...]:
        names: set[str] = set()
        out: list[model.Method] = []
        clean = self.clean_names.get("method")
        for m in node.methods:
            text = m.name.text
            if clean is None or text not in clean:  # check_name's own shortcut, inline
                self.check_name(m.name, "method")
                clean = self.clean_names["method"]
            if text in names:
                self.error(m.name.span, f"duplicate method {text!r}")
            names.add(text)
            idempotent, deadline, deprecated, _, readonly = (
                self.annotations(m.annotations, "method") if m.annotations else _NOT_ANNOTATED)
            if m.oneway:
                for ann in m.annotations:
                    if ann.name.text in ("idempotent", "readonly", "deadline"):
                        self.error(ann.span, f"'@{ann.name.text}' is meaningless on oneway"
                                   f" method {m.name.text!r}")
                idempotent, deadline, readonly = False, None, False
                if m.result is not None:
                    self.error(m.result.span, f"oneway method {m.name.text!r} cannot have a"
                               " result")
                if m.throws_span is not None:
                    self.error(m.throws_span, f"oneway method {m.name.text!r} cannot declare"
                               " 'throws'")
            elif readonly and m.result is None:
                for ann in m.annotations:
                    if ann.name.text == "readonly":
                        self.error(ann.span, f"'@readonly' method {m.name.text!r} returns"
                                   " nothing: a read must return what it read")
                readonly = False
            # A read changes nothing, so repeating it is safe: @readonly implies @idempotent.
            idempotent = idempotent or readonly
            stream_name, m_params, m_result = self.streams(m) if m.params or m.result \
                else (None, m.params, m.result)
            params, _ = self.fields(m_params, (), "parameter") if m_params else ((), ())
            client_stream = None
            if stream_name is not None:
                for field in params:
                    if field.name == stream_name:
                        client_stream = field
                params = tuple(f for f in params if f is not client_stream)
            result = None
            if m_result is not None:
                result_name = m_result.name
                result = (_PRIMITIVE_TYPES.get(result_name[0].text)  # resolve_type(), shortcut
                          if len(result_name) == 1 and not m_result.args
                          and not m_result.optional else None) or self.resolve_type(m_result)
            throws = self.throws(m) if m.throws else ()
            out.append(model.Method(text, params, None if m.oneway else result,
                                    throws, m.oneway, idempotent, deadline, deprecated, m.doc,
                                    m.name.span, readonly, client_stream,
                                    m_result is not m.result and not m.oneway))
        return tuple(out)

    def streams(self, m: syn.Method) -> tuple[str | None, tuple[syn.Field, ...],
                                              syn.TypeNode | None]:
        """Take ``stream`` off the method's parameters and result: the name of its stream
        parameter (if any), the parameters with that one's type replaced by the item type,
        and the result (the item type for ``-> stream T``). Reports misplaced streams."""
        params = m.params
        stream_name = None
        if any(_is_stream(p.type) for p in params):
            out: list[syn.Field] = []
            for p in params:
                if not _is_stream(p.type):
                    out.append(p)
                    continue
                if m.oneway:
                    self.error(p.type.span, f"oneway method {m.name.text!r} cannot stream")
                elif stream_name is not None:
                    self.error(p.type.span, f"method {m.name.text!r} has a second stream"
                               f" parameter {p.name.text!r}: at most one parameter streams")
                else:
                    stream_name = p.name.text
                if p.default is not None:
                    self.error(p.default.span, f"stream parameter {p.name.text!r} cannot"
                               " have a default")
                out.append(p._replace(type=p.type.args[0], default=None))
            params = tuple(out)
        result = m.result
        if result is not None and _is_stream(result):
            result = result.args[0]
        return stream_name, params, result

    def throws(self, m: syn.Method) -> tuple[model.ModelType, ...]:
        out: list[model.ModelType] = []
        for node in m.throws:
            mtype = self.resolve_type(node)
            if mtype is None:
                continue
            if node.optional or node.args or not mtype.is_error:
                what = {Kind.STRUCT: "a struct", Kind.ENUM: "an enum", Kind.UNION: "a union"}
                kind = "an optional type" if node.optional else what.get(mtype.kind, "a "
                                                                           + mtype.kind.value)
                self.error(node.span, f"'throws' needs an error type, but {node.text!r} is"
                           f" {kind}")
            elif mtype in out:
                self.error(node.span, f"duplicate {node.text!r} in 'throws'")
            else:
                out.append(mtype)
        return tuple(out)

    # -- whole-file rules ------------------------------------------------------------------

    def file_rules(self, decls: list[tuple[syn.Decl, model.Decl]]) -> None:
        seen: dict[str, syn.Decl] = {}
        for node, _ in decls:
            name = node.name.text
            if name in seen:
                self.error(node.name.span, f"duplicate declaration {name!r}")
            else:
                seen[name] = node
        services = [n for n, _ in decls if isinstance(n, syn.ServiceDecl)]
        for svc in services:
            for suffix in ("Client", "Service"):
                generated = svc.name.text + suffix
                other = seen.get(generated)
                if other is None or other is svc:
                    continue
                span = max(other.name.span, svc.name.span, key=lambda s: (s.line, s.col))
                self.error(span, f"{generated!r} clashes with the class generated for service"
                           f" {svc.name.text!r}")
        self.recursion([m for _, m in decls])

    def recursion(self, decls: list[model.Decl]) -> None:
        """Reject a struct or union that can only be built from itself (required fields).

        Linear in the number of fields, with no recursion: a worklist finds what can be
        built, and strongly connected components find what lies on a loop."""
        own = {d.qualified: d for d in decls
               if isinstance(d, (model.StructDecl, model.UnionDecl))}
        edges: dict[str, list[str]] = {}
        """Declaration -> the declarations it needs (every variant of a union; required
        fields without a default of a struct), with repeats."""
        buildable: set[str] = set()
        queue: list[str] = []
        missing: dict[str, int] = {}
        struct_kind, union_kind, no_default = Kind.STRUCT, Kind.UNION, model.NO_DEFAULT
        for q, d in own.items():
            is_union = isinstance(d, model.UnionDecl)
            fields = d.variants if isinstance(d, model.UnionDecl) else d.fields
            refs: list[str] = []
            plain = False
            for f in fields:
                if not is_union and f.default is not no_default:
                    continue
                t = f.type
                ref_kind = t.kind
                if (ref_kind is struct_kind or ref_kind is union_kind) and t.ref in own:
                    refs.append(t.ref)
                else:
                    plain = True
            edges[q] = refs
            missing[q] = len(refs)
            if (plain or not fields) if is_union else not refs:
                buildable.add(q)
                queue.append(q)
        if len(buildable) == len(own):
            return  # (every declaration needs none of the others: nothing to propagate)
        needed_by: dict[str, list[str]] = {}
        for q, refs in edges.items():
            for r in refs:
                users = needed_by.get(r)
                if users is None:
                    needed_by[r] = [q]
                else:
                    users.append(q)
        no_users: list[str] = []
        while queue:
            r = queue.pop()
            for q in needed_by.get(r, no_users):
                if q in buildable:
                    continue
                missing[q] -= 1
                if isinstance(own[q], model.UnionDecl) or missing[q] == 0:
                    buildable.add(q)
                    queue.append(q)
        if len(buildable) == len(own):
            return  # nothing to report (only what cannot be built and lies on a loop is)
        on_loop = _on_cycles(edges)
        for q, d in own.items():
            if q in buildable or d.span is None or q not in on_loop:
                continue
            if isinstance(d, model.UnionDecl):
                self.error(d.span, f"union {d.name!r} contains itself through every"
                           " variant and can never be built (add a variant that does"
                           " not lead back to it)")
            else:
                kind = "error" if d.is_error else "struct"
                self.error(d.span, f"{kind} {d.name!r} contains itself through required"
                           " fields and can never be built (make a field optional, a"
                           " list or a map)")


def _on_cycles(edges: dict[str, list[str]]) -> set[str]:
    """The nodes that can reach themselves (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[str] = set()
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, k = work.pop()
            if k == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            succ = edges[node]
            if k > 0:
                low[node] = min(low[node], low[succ[k - 1]])
            while k < len(succ):
                nxt = succ[k]
                if nxt not in index:
                    work.append((node, k + 1))
                    work.append((nxt, 0))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                k += 1
            else:
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in succ:
                        out.update(component)
    return out


class _Ranges:
    """Reserved values as inclusive ranges: membership costs O(log n), not one set entry
    per reserved value (``reserved 1 to 9999`` is 20 characters)."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.starts: list[int] | None = None
        self.ends: list[int] = []

    def add(self, low: int, high: int) -> None:
        self.ranges.append((low, high))
        self.starts = None

    def merged(self) -> tuple[tuple[int, int], ...]:
        out: list[tuple[int, int]] = []
        for low, high in sorted(self.ranges):
            if out and low <= out[-1][1] + 1:
                out[-1] = (out[-1][0], max(out[-1][1], high))
            else:
                out.append((low, high))
        return tuple(out)

    def __contains__(self, value: int) -> bool:
        if not self.ranges:
            return False
        if self.starts is None:
            merged = self.merged()
            self.starts = [low for low, _ in merged]
            self.ends = [high for _, high in merged]
        k = bisect.bisect_right(self.starts, value) - 1
        return k >= 0 and value <= self.ends[k]


_NO_RANGES = _Ranges()
"""What a body without ``reserved`` lines has (never added to)."""
_NOT_ANNOTATED = _Annotated()
_PRIMITIVE_TYPES = {word: model.ModelType(kind) for word, kind in PRIMITIVES.items()}
_REF_KINDS = {"enum": Kind.ENUM, "union": Kind.UNION}


class _Bad(Exception):
    """A default did not fit; the diagnostic is already recorded."""


def _is_stream(node: syn.TypeNode) -> bool:
    return len(node.name) == 1 and node.name[0].text == "stream" and len(node.args) == 1


def _base_text(node: syn.TypeNode) -> str:
    text = node.text
    return text[:-1] if node.optional else text


def _value_text(v: syn.Value) -> str:
    if isinstance(v, syn.Literal | syn.DurationValue):
        return v.text if len(v.text) <= 40 else v.text[:37] + "..."
    if isinstance(v, syn.NameValue):
        return repr(v.text)
    return "a list" if isinstance(v, syn.ListValue) else "a map"


def check_unit(unit: Unit) -> model.File:
    """Check ``unit`` (diagnostics go to ``unit.diagnostics``) and build its model."""
    checker = _Checker(unit)
    decls = [(node, checker.decl(node)) for node in unit.tree.decls]
    checker.file_rules(decls)
    imports = tuple(model.Import(dep.path, dep.package, dep.module) for _, dep in unit.imports)
    return model.File(unit.path, unit.package, unit.module, imports,
                      tuple(d for _, d in decls), unit.sha256)
