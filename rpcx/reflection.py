"""Server reflection: a built-in service that describes what a server serves.

The service is ``rpcx.reflection.Reflection`` (``idl/reflection.rpcx``). ``describe``
returns every service with its methods and every named type they use, as plain data
(:class:`ServerDesc`), so a tool can call any method without generated stubs:
:func:`specs_from_description` rebuilds runtime :class:`~rpcx.schema.ServiceSpec` objects
(with dynamic classes for structs, errors, unions and enums) that the codecs and
:class:`~rpcx.Channel` accept like generated ones.

:class:`rpcx.Server` and the HTTP gateway include it unless given ``reflection=False``.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
from collections.abc import Iterable
from typing import Any, cast

import attrs

from rpcx._generated.reflection_rpcx import (
    EnumDesc,
    EnumMember,
    FieldDesc,
    MethodDesc,
    ReflectionClient,
    ReflectionService,
    ServerDesc,
    ServiceDesc,
    StructDesc,
    TypeDesc,
    TypeKind,
    UnionDesc,
)
from rpcx.codec.json_codec import JsonCodec
from rpcx.errors import DeclaredError
from rpcx.schema import (
    MISSING,
    EnumSpec,
    FieldSpec,
    Kind,
    MethodSpec,
    OpenEnum,
    ServiceSpec,
    StructSpec,
    TypeRef,
    UnionSpec,
    spec_of,
)
from rpcx.status import Status
from rpcx.stubs import attach, check_one_variant

__all__ = [
    "REFLECTION_SERVICE",
    "Reflection",
    "ReflectionClient",
    "ServerDesc",
    "describe_services",
    "specs_from_description",
    "with_reflection",
]

REFLECTION_SERVICE = "rpcx.reflection.Reflection"

_JSON = JsonCodec()


# -- spec → description ------------------------------------------------------------------


class _Describer:
    def __init__(self) -> None:
        self.enums: dict[str, EnumDesc] = {}
        self.structs: dict[str, StructDesc | None] = {}
        self.unions: dict[str, UnionDesc | None] = {}

    def type_of(self, ref: TypeRef) -> TypeDesc:
        kind = TypeKind[ref.kind.name]
        if ref.kind in (Kind.LIST, Kind.OPTIONAL):
            assert ref.item is not None
            return TypeDesc(kind=kind, item=self.type_of(ref.item))
        if ref.kind is Kind.MAP:
            assert ref.item is not None and ref.key is not None
            return TypeDesc(kind=kind, item=self.type_of(ref.item), key=self.type_of(ref.key))
        if ref.cls is None:
            return TypeDesc(kind=kind)
        return TypeDesc(kind=kind, name=self.named(ref.cls))

    def named(self, cls: type[Any]) -> str:
        spec = spec_of(cls)
        if isinstance(spec, EnumSpec):
            if spec.name not in self.enums:
                self.enums[spec.name] = EnumDesc(
                    name=spec.name, doc=spec.doc,
                    members=[EnumMember(name=m.name, value=int(m)) for m in spec.cls])
        elif isinstance(spec, UnionSpec):
            if spec.name not in self.unions:
                self.unions[spec.name] = None  # breaks cycles
                self.unions[spec.name] = UnionDesc(
                    name=spec.name, doc=spec.doc, variants=self.fields(spec.variants))
        elif isinstance(spec, StructSpec):
            if spec.name not in self.structs:
                self.structs[spec.name] = None
                code: Status | None = getattr(cls, "rpcx_code", None)
                self.structs[spec.name] = StructDesc(
                    name=spec.name, doc=spec.doc, is_error=spec.is_error,
                    fields=self.fields(spec.fields),
                    status=code.name if spec.is_error and code is not None else None)
        else:  # pragma: no cover - a service is never a field type
            raise TypeError(f"{spec.name} is not a type")
        return spec.name

    def fields(self, fields: Iterable[FieldSpec]) -> list[FieldDesc]:
        out = []
        for field in fields:
            default = (None if field.default is MISSING
                       else _JSON.encode(field.type, field.default).decode("utf-8"))
            out.append(FieldDesc(tag=field.tag, name=field.name, type=self.type_of(field.type),
                                 default_json=default, doc=field.doc))
        return out

    def method(self, method: MethodSpec) -> MethodDesc:
        return MethodDesc(
            name=method.name, params=self.fields(method.params.fields),
            result=None if method.result is None else self.type_of(method.result),
            throws=[self.named(cls) for cls in method.throws], oneway=method.oneway,
            idempotent=method.idempotent, deadline=method.deadline,
            deprecated=method.deprecated, doc=method.doc, readonly=method.readonly,
            client_stream=None if method.client_stream is None
            else self.fields([method.client_stream])[0],
            server_stream=method.server_stream)


def describe_services(services: Iterable[ServiceSpec]) -> ServerDesc:
    """The reflection description of ``services`` and every named type they use."""
    describer = _Describer()
    descs = [ServiceDesc(name=s.name, doc=s.doc,
                         methods=[describer.method(m) for m in s.methods]) for s in services]
    return ServerDesc(
        services=descs, enums=list(describer.enums.values()),
        structs=[d for d in describer.structs.values() if d is not None],
        unions=[d for d in describer.unions.values() if d is not None])


class Reflection(ReflectionService):
    """The reflection service over the services that ``specs`` returns (called on each
    request, so it always reflects what is registered, itself included)."""

    def __init__(self, services: Iterable[ServiceSpec] | None = None) -> None:
        self._services: list[ServiceSpec] = list(services or ())

    def add(self, spec: ServiceSpec) -> None:
        self._services.append(spec)

    async def list_services(self) -> list[str]:
        return [s.name for s in self._services]

    async def describe(self, services: list[str]) -> ServerDesc:
        wanted = set(services)
        return describe_services(s for s in self._services if not wanted or s.name in wanted)


def with_reflection(impls: Iterable[object]) -> list[object]:
    """``impls`` plus a :class:`Reflection` service that describes them and itself."""
    impls = list(impls)
    reflection = Reflection()
    for impl in [*impls, reflection]:
        for klass in type(impl).__mro__:
            spec = klass.__dict__.get("__rpcx_spec__")
            if isinstance(spec, ServiceSpec):
                reflection.add(spec)
                break
    return [*impls, reflection]


# -- description → specs -----------------------------------------------------------------


class _Builder:
    """Rebuilds classes and specs from a description. Named types are created first (so
    that recursive types resolve), then their specs are attached."""

    def __init__(self, desc: ServerDesc) -> None:
        self.classes: dict[str, type[Any]] = {}
        self.kinds: dict[str, Kind] = {}
        for e in desc.enums:
            members = {m.name: m.value for m in e.members}
            make_enum: Any = OpenEnum
            enum_cls = cast(type[OpenEnum], make_enum(_short(e.name), members))
            attach(enum_cls, EnumSpec(e.name, enum_cls, e.doc))
            self.classes[e.name] = enum_cls
            self.kinds[e.name] = Kind.ENUM
        for s in desc.structs:
            self.kinds[s.name] = Kind.STRUCT
            self.classes[s.name] = self._make_struct(s)
        for u in desc.unions:
            self.kinds[u.name] = Kind.UNION
            self.classes[u.name] = attrs.make_class(
                _short(u.name), {_attr(v.name): attrs.field(default=None) for v in u.variants},
                frozen=True, kw_only=True)
            self.classes[u.name].__attrs_post_init__ = check_one_variant
        for s in desc.structs:
            attach(self.classes[s.name], StructSpec(
                s.name, self.classes[s.name], self.fields(s.fields), is_error=s.is_error,
                doc=s.doc))
        for u in desc.unions:
            attach(self.classes[u.name], UnionSpec(u.name, self.classes[u.name],
                                                   self.fields(u.variants), doc=u.doc))

    def _make_struct(self, s: StructDesc) -> type[Any]:
        # Fields have no Python defaults: the codec passes every field when decoding.
        fields = {_attr(f.name): attrs.field() for f in s.fields}
        if not s.is_error:
            return attrs.make_class(_short(s.name), fields, frozen=True, kw_only=True)
        cls = attrs.make_class(_short(s.name), fields, bases=(DeclaredError,), kw_only=True,
                               auto_exc=True, eq=False)
        if s.status is not None and s.status in Status.__members__:
            type.__setattr__(cls, "rpcx_code", Status[s.status])
        return cls

    def type(self, desc: TypeDesc) -> TypeRef:
        kind = Kind[desc.kind.name] if desc.kind.is_known else None
        if kind is None:
            raise ValueError(f"unknown type kind {int(desc.kind)} in the description")
        item = None if desc.item is None else self.type(desc.item)
        key = None if desc.key is None else self.type(desc.key)
        if kind in (Kind.ENUM, Kind.STRUCT, Kind.UNION):
            if desc.name not in self.classes:
                raise ValueError(f"the description does not define type {desc.name!r}")
            return TypeRef(kind, cls=self.classes[desc.name])
        return TypeRef(kind, item=item, key=key)

    def fields(self, fields: Iterable[FieldDesc]) -> tuple[FieldSpec, ...]:
        out = []
        for f in fields:
            ref = self.type(f.type)
            default = (MISSING if f.default_json is None
                       else _from_json(ref, json.loads(f.default_json)))
            out.append(FieldSpec(f.tag, f.name, ref, default, py_name=_attr(f.name),
                                 doc=f.doc))
        return tuple(out)

    def service(self, desc: ServiceDesc) -> ServiceSpec:
        methods = []
        for m in desc.methods:
            methods.append(MethodSpec(
                name=m.name, service=desc.name,
                params=StructSpec(f"{desc.name}.{m.name}", None, self.fields(m.params)),
                result=None if m.result is None else self.type(m.result),
                throws=tuple(self.classes[name] for name in m.throws
                             if name in self.classes),
                oneway=m.oneway, idempotent=m.idempotent, deadline=m.deadline,
                deprecated=m.deprecated, doc=m.doc, readonly=m.readonly,
                client_stream=None if m.client_stream is None
                else self.fields([m.client_stream])[0],
                server_stream=m.server_stream, py_name=_attr(m.name)))
        return ServiceSpec(desc.name, tuple(methods), desc.doc)


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _attr(name: str) -> str:
    """The Python attribute for an IDL name (the compiler already rejects the rest)."""
    return name


def _from_json(ref: TypeRef, value: Any) -> Any:
    """A default value from its JSON mapping. Defaults are only primitives, lists, maps,
    enums and null (docs/idl.md), so no struct class is needed yet."""
    kind = ref.kind
    if value is None:
        return None
    if kind is Kind.OPTIONAL:
        assert ref.item is not None
        return _from_json(ref.item, value)
    if kind is Kind.LIST:
        assert ref.item is not None
        return [_from_json(ref.item, v) for v in value]
    if kind is Kind.MAP:
        assert ref.item is not None and ref.key is not None
        return {_from_json(ref.key, k if ref.key.kind is not Kind.INT else int(k)):
                _from_json(ref.item, v) for k, v in value.items()}
    if kind is Kind.ENUM:
        assert ref.cls is not None
        return ref.cls[value] if isinstance(value, str) else ref.cls(value)
    if kind is Kind.DECIMAL:
        return decimal.Decimal(str(value))
    if kind is Kind.FLOAT:
        return float(value)
    if kind is Kind.INT:
        return int(value)
    if kind is Kind.BYTES:
        return base64.b64decode(value)
    if kind is Kind.TIMESTAMP:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def specs_from_description(desc: ServerDesc) -> list[ServiceSpec]:
    """Runtime specs for every service in ``desc``, usable with any codec and channel."""
    builder = _Builder(desc)
    return [builder.service(s) for s in desc.services]
