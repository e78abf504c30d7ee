"""Services → the ``<Svc>Client`` stub, the ``<Svc>Service`` base class and method specs."""

from __future__ import annotations

from rpcx.codegen import names
from rpcx.codegen.exprs import Call, Expr, Lit, Tuple, format_expr
from rpcx.codegen.literals import pystr
from rpcx.codegen.render_types import (
    _SPECS_BY_VALUE,
    field_spec,
    fields_flat,
    spec_flat,
    spec_of_type,
)
from rpcx.codegen.writer import Writer
from rpcx.compiler import model
from rpcx.schema import Kind

__all__ = ["method_spec_name", "render_client", "render_server_base", "service_spec_lines"]


def method_spec_name(service: model.ServiceDecl, method: model.Method) -> str:
    return f"_m_{service.name}_{method.name}"


def _doc(w: Writer, doc: str, deprecated: str | None) -> bool:
    text = doc
    if deprecated is not None:
        text = f"{text}\n\nDeprecated: {deprecated}" if text else f"Deprecated: {deprecated}"
    if text:
        w.lines(names.docstring(text, w.width))
    return bool(text)


def _client_signature(method: model.Method, here: str) -> tuple[list[str], list[str]]:
    """The client method's parameters, and the values it passes on for them. List and map
    defaults (other than null) are mutable: the signature takes None to mean them, and the
    call passes the default when it gets None."""
    params: list[str] = ["self"]
    values: list[str] = []
    seen_default = keyword_only = False
    no_default, optional_kind = model.NO_DEFAULT, Kind.OPTIONAL
    list_kind, map_kind = Kind.LIST, Kind.MAP
    for f in method.params:
        t, name, default = f.type, f.name, f.default
        kind = t.kind
        annotation = names.py_type(t, here)
        if default is no_default or isinstance(default, model._NoDefault):
            if kind is optional_kind:
                params.append(f"{name}: {annotation} = None")
                seen_default = True
            else:
                if seen_default and not keyword_only:
                    # A required parameter after a defaulted one can only be keyword-only.
                    params.append("*")
                    keyword_only = True
                params.append(f"{name}: {annotation}")
            values.append(name)
        elif (kind is list_kind or kind is map_kind) and default is not None:
            params.append(f"{name}: {annotation} | None = None")  # a mutable default
            values.append(f"{names.literal(default, t, here)} if {name} is None else {name}")
            seen_default = True
        else:
            params.append(f"{name}: {annotation} = {names.literal(default, t, here)}")
            values.append(name)
            seen_default = True
    if not keyword_only:
        params.append("*")
    params.append("timeout: float | None = None")
    params.append("metadata: _cabc.Mapping[str, str] | None = None")
    return params, values


def _call_lines(head: str, params: list[str], width: int, suffix: str) -> list[str]:
    """``format_expr(Call(head, tuple(params)), width, suffix=suffix)`` for plain-string
    parameters, without building the expression."""
    one = f"{head}({', '.join(params)}){suffix}"
    if len(one) <= width:
        return [one]
    return [f"{head}(", *[f"    {p}," for p in params], f"){suffix}"]


def _invoke_lines(func: str, spec: str, values: list[str], width: int, prefix: str) -> list[str]:
    """``format_expr(Call(f"await {func}", (spec, Tuple(tuple(values)), "timeout=timeout",
    "metadata=metadata")), width, prefix=prefix)``, without building the expression."""
    args = f"({values[0]},)" if len(values) == 1 else f"({', '.join(values)})"
    one = f"{prefix}await {func}({spec}, {args}, timeout=timeout, metadata=metadata)"
    if len(one) <= width:
        return [one]
    if len(args) < width - 4:
        middle = [f"    {args},"]
    else:
        middle = ["    (", *[f"        {v}," for v in values], "    ),"]
    return [f"{prefix}await {func}(", f"    {spec},", *middle, "    timeout=timeout,",
            "    metadata=metadata,", ")"]


def _result_type(method: model.Method, here: str) -> str:
    return "None" if method.result is None else names.py_type(method.result, here)


def render_client(w: Writer, service: model.ServiceDecl, here: str) -> None:
    w.line(f"class {names.client_name(service.name)}:")
    with w.indented():
        doc = f"Client stub for {service.qualified}: each method calls the remote service."
        if service.doc:
            doc = f"{doc}\n\n{service.doc}"
        _doc(w, doc, service.deprecated)
        w.blank()
        w.line('__slots__ = ("_channel",)')
        w.blank()
        w.line("def __init__(self, channel: _rt.Invoker) -> None:")
        with w.indented():
            w.line("self._channel = channel")
        for method in service.methods:
            w.blank()
            if method.streaming is not None:
                _render_stream_client(w, service, method, here)
                continue
            result = _result_type(method, here)
            params, values = _client_signature(method, here)
            w.lines(_call_lines(f"async def {method.name}", params, w.width, f" -> {result}:"))
            with w.indented():
                if method.doc or method.deprecated is not None:
                    _doc(w, method.doc, method.deprecated)
                func = "self._channel.call_oneway" if method.oneway else "self._channel.call"
                spec = method_spec_name(service, method)
                if method.result is None:
                    w.lines(_invoke_lines(func, spec, values, w.width, ""))
                else:
                    w.lines(_invoke_lines(func, spec, values, w.width, "result = "))
                    w.line(f"return _typing.cast(\"{result}\", result)")
    w.blank(2)


def _stream_types(method: model.Method, here: str) -> tuple[str, str]:
    """The client's typed stream class and the server handler's return annotation."""
    result = _result_type(method, here)
    if method.client_stream is None:
        return f"_rt.ServerStream[{result}]", f"_cabc.AsyncIterator[{result}]"
    item = names.py_type(method.client_stream.type, here)
    if method.server_stream:
        return f"_rt.BidiStream[{item}, {result}]", f"_cabc.AsyncIterator[{result}]"
    return f"_rt.ClientStream[{item}, {result}]", result


def _render_stream_client(w: Writer, service: model.ServiceDecl, method: model.Method,
                          here: str) -> None:
    """A streaming method: a plain ``def`` returning the typed stream object, used as
    ``async with client.method(...) as stream``."""
    cls, _ = _stream_types(method, here)
    params, values = _client_signature(method, here)
    w.lines(_call_lines(f"def {method.name}", params, w.width, f" -> {cls}:"))
    with w.indented():
        if method.doc or method.deprecated is not None:
            _doc(w, method.doc, method.deprecated)
        args = f"({values[0]},)" if len(values) == 1 else f"({', '.join(values)})"
        head = cls.split("[", 1)[0]
        w.lines(_call_lines(f"return {head}", [
            "self._channel", method_spec_name(service, method), args, "timeout", "metadata",
        ], w.width, ""))


def render_server_base(w: Writer, service: model.ServiceDecl, here: str) -> None:
    w.line(f"class {names.service_name(service.name)}(_abc.ABC):")
    with w.indented():
        doc = (f"Base class for servers of {service.qualified}: implement every method.\n\n"
               "Handlers receive every argument with IDL defaults already applied, so these "
               "signatures have no defaults.")
        if service.doc:
            doc = f"{doc}\n\n{service.doc}"
        _doc(w, doc, service.deprecated)
        for method in service.methods:
            w.blank()
            params = ["self"]
            params += [f"{f.name}: {names.py_type(f.type, here)}" for f in method.params]
            w.line("@_abc.abstractmethod")
            if method.streaming is not None:
                # The stream parameter comes last; a server stream is an async generator.
                if method.client_stream is not None:
                    item = names.py_type(method.client_stream.type, here)
                    params.append(f"{method.client_stream.name}: _cabc.AsyncIterator[{item}]")
                _, returns = _stream_types(method, here)
                head = "def" if method.server_stream else "async def"
                w.lines(_call_lines(f"{head} {method.name}", params, w.width,
                                    f" -> {returns}:"))
                with w.indented():
                    if not _doc(w, method.doc, method.deprecated):
                        w.line("...")
                continue
            w.lines(_call_lines(f"async def {method.name}", params, w.width,
                                f" -> {_result_type(method, here)}:"))
            with w.indented():
                if not _doc(w, method.doc, method.deprecated):
                    w.line("...")
    w.blank(2)


def _method_spec_fast(service: model.ServiceDecl, method: model.Method, here: str,
                      width: int, service_name: str | None = None) -> list[str] | None:
    """The lines of :func:`method_spec_lines` built from strings, or None when some part
    would have to be split further than the parameter tuple's own line. ``service_name``
    is ``pystr(service.qualified)`` when the caller has it."""
    qualified = service.qualified
    fields_text = fields_flat(method.params, here, width)
    if fields_text is None:
        return None  # longer than the line: no case below can use it
    if service_name is None:
        service_name = pystr(qualified)
    name = pystr(method.name)
    if name == f'"{method.name}"' and service_name == f'"{qualified}"':
        params_name = f'"{qualified}.{method.name}"'  # both plain: so is the joined name
    else:
        params_name = pystr(f"{qualified}.{method.name}")
    params = f"_rt.StructSpec({params_name}, None, {fields_text})"
    result_type = method.result
    result = "None" if result_type is None else spec_flat(result_type, here)
    atomic = result_type is None or result_type.kind._value_ in _SPECS_BY_VALUE
    tail: list[str] = []
    if method.throws:
        tail.append("throws=" + "(" + ", ".join(names.type_name(t, here) for t in method.throws)
                    + ("," if len(method.throws) == 1 else "") + ")")
    if method.oneway:
        tail.append("oneway=True")
    if method.idempotent:
        tail.append("idempotent=True")
    if method.readonly:
        tail.append("readonly=True")
    if method.client_stream is not None:
        return None  # a FieldSpec: the general path formats it
    if method.server_stream:
        tail.append("server_stream=True")
    if method.deadline is not None:
        tail.append(f"deadline={method.deadline!r}")
    if method.deprecated is not None:
        tail.append(f"deprecated={pystr(method.deprecated)}")
    doc = f"doc={pystr(method.doc)}" if method.doc else ""
    head = f"{method_spec_name(service, method)} = _rt.MethodSpec("
    one = f"{head}{name}, {service_name}, {params}, {result}{''.join(', ' + t for t in tail)}"
    one += f", {doc})" if doc else ")"
    if len(one) <= width:
        return [one]
    inner = width - 4
    lines = [head, f"    {name},", f"    {service_name},"]
    if len(params) < inner:
        lines.append(f"    {params},")
    elif len(fields_text) < inner - 4:
        lines += ["    _rt.StructSpec(", f"        {params_name},", "        None,",
                  f"        {fields_text},", "    ),"]
    else:
        return None
    if not atomic and len(result) >= inner:
        return None
    lines.append(f"    {result},")
    lines += [f"    {t}," for t in tail]
    if doc:
        if len(doc) >= inner:
            return None
        lines.append(f"    {doc},")
    lines.append(")")
    return lines


def method_spec_lines(service: model.ServiceDecl, method: model.Method, here: str,
                      width: int, service_name: str | None = None) -> list[str]:
    fast = _method_spec_fast(service, method, here, width, service_name)
    if fast is not None:
        return fast
    params = Call("_rt.StructSpec", (
        names.pystr(f"{service.qualified}.{method.name}"), "None",
        Tuple(tuple(field_spec(f, here) for f in method.params))))
    result = "None" if method.result is None else spec_of_type(method.result, here)
    args: list[Expr] = [names.pystr(method.name), names.pystr(service.qualified), params, result]
    if method.throws:
        args.append("throws=" + "(" + ", ".join(names.type_name(t, here) for t in method.throws)
                    + ("," if len(method.throws) == 1 else "") + ")")
    if method.oneway:
        args.append("oneway=True")
    if method.idempotent:
        args.append("idempotent=True")
    if method.readonly:
        args.append("readonly=True")
    if method.client_stream is not None:
        stream_spec = field_spec(method.client_stream, here)
        assert isinstance(stream_spec, Call)
        args.append(Call(f"client_stream={stream_spec.func}", stream_spec.args))
    if method.server_stream:
        args.append("server_stream=True")
    if method.deadline is not None:
        args.append(f"deadline={method.deadline!r}")
    if method.deprecated is not None:
        args.append(f"deprecated={names.pystr(method.deprecated)}")
    if method.doc:
        args.append(Lit(method.doc, "doc="))
    return format_expr(Call("_rt.MethodSpec", tuple(args)), width,
                       prefix=f"{method_spec_name(service, method)} = ")


def service_spec_lines(service: model.ServiceDecl, here: str, width: int) -> list[str]:
    lines: list[str] = []
    service_name = pystr(service.qualified)
    for method in service.methods:
        lines.extend(method_spec_lines(service, method, here, width, service_name))
    methods = Tuple(tuple(method_spec_name(service, m) for m in service.methods))
    doc: list[Expr] = [Lit(service.doc, "doc=")] if service.doc else []
    spec = Call("_rt.ServiceSpec", (names.pystr(service.qualified), methods, *doc))
    spec_name = f"_s_{service.name}"
    lines.extend(format_expr(spec, width, prefix=f"{spec_name} = "))
    lines.append(f"_rt.attach({names.client_name(service.name)}, {spec_name})")
    lines.append(f"_rt.attach({names.service_name(service.name)}, {spec_name})")
    return lines
