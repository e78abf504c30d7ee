"""The ``rpcx`` command: check IDL files, generate Python and OpenAPI from them, and
explore and call a running server through its reflection service.

Exit codes: 0 success; 1 the files have errors (or generated files are stale with
``--check``), or the call failed; 2 the command line was wrong.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import types
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from rpcx.codec.json_codec import JsonCodec
from rpcx.codegen import generate
from rpcx.compiler import CompileResult, compile_files, paused_gc
from rpcx.compiler.diagnostics import report
from rpcx.errors import CodecError, DeclaredError, RpcError
from rpcx.schema import MethodSpec, ServiceSpec, StructSpec, spec_of, struct_ref
from rpcx.status import Status

__all__ = ["main"]

_DESCRIPTION = """\
rpcx turns service definitions (.rpcx files) into typed Python.

  rpcx check idl/payments.rpcx           report every problem in the files, or nothing
  rpcx gen idl/payments.rpcx -o app/     write app/payments_rpcx.py
  rpcx gen idl/*.rpcx -o app/ --check    fail if the files in app/ are out of date (for CI)
  rpcx openapi idl/payments.rpcx         print the OpenAPI 3.1 document of the HTTP face

  rpcx describe tcp://127.0.0.1:7000     list a running server's services and methods
  rpcx call tcp://127.0.0.1:7000 payments.Payments/get_payment '{"payment_id": "pay_1"}'

The IDL is described in docs/idl.md, the HTTP face, reflection and these commands in
docs/http.md.
"""


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _compile(paths: Sequence[str]) -> CompileResult | None:
    result = compile_files(paths, _read)
    if result.ok:
        return result
    for text in report(result.diagnostics):
        print(text, file=sys.stderr)
    files = len({d.span.file for d in result.diagnostics})
    count = len(result.diagnostics)
    print(f"{count} error{'s' if count != 1 else ''} in {files} file{'s' if files != 1 else ''}",
          file=sys.stderr)
    return None


def _cmd_check(args: argparse.Namespace) -> int:
    with paused_gc():  # see _cmd_gen
        return _check(args)


def _check(args: argparse.Namespace) -> int:
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
    # The cycle collector stays paused from reading to writing: the model, the diagnostics
    # and the generated text are millions of small objects without cycles, all freed by
    # reference counting when _gen returns (before the collector is resumed), so scanning
    # them again and again would only cost time (up to a quarter of a run).
    with paused_gc():
        return _gen(args)


def _gen(args: argparse.Namespace) -> int:
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


# -- openapi -------------------------------------------------------------------------------


def _load_services(result: CompileResult) -> list[ServiceSpec]:
    """The runtime specs of the services in the files asked for: the generated modules are
    executed in a private package, so the specs are exactly those a server would serve."""
    package = f"_rpcx_openapi_{uuid.uuid4().hex}"
    pkg = types.ModuleType(package)
    pkg.__path__ = []
    sys.modules[package] = pkg
    specs: list[ServiceSpec] = []
    try:
        for file in result.files:  # dependencies first
            name, source = generate(file)
            module = types.ModuleType(f"{package}.{name}")
            module.__package__ = package
            sys.modules[module.__name__] = module
            setattr(pkg, name, module)
            exec(compile(source, f"<generated from {file.path}>", "exec"), module.__dict__)
            if file.path in result.roots:
                for value in vars(module).values():
                    spec = getattr(value, "__rpcx_spec__", None)
                    if (isinstance(value, type) and isinstance(spec, ServiceSpec)
                            and value.__name__.endswith("Service") and spec not in specs):
                        specs.append(spec)
    finally:
        for key in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
            del sys.modules[key]
    return specs


def _cmd_openapi(args: argparse.Namespace) -> int:
    from rpcx.gateway.openapi import openapi_document

    result = _compile(args.files)
    if result is None:
        return 1
    document = openapi_document(_load_services(result), title=args.title,
                                version=args.version, server_url=args.server)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        _write_atomically(Path(args.output), text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


# -- describe and call ------------------------------------------------------------------


class _Usage(Exception):
    """A command-line mistake found after parsing: exit 2."""


def _metadata(items: Sequence[str]) -> dict[str, str]:
    metadata = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _Usage(f"--metadata takes KEY=VALUE, got {item!r}")
        metadata[key.strip().lower()] = value
    return metadata


async def _reflect(channel: Any, services: list[str], timeout: float) -> list[ServiceSpec]:
    from rpcx.reflection import REFLECTION_SERVICE, ReflectionClient, specs_from_description

    try:
        desc = await ReflectionClient(channel).describe(services, timeout=timeout)
    except RpcError as exc:
        if exc.code is Status.UNIMPLEMENTED:
            raise RpcError(exc.code, f"the server does not serve {REFLECTION_SERVICE} "
                           "(it was started with reflection=False)") from None
        raise
    return specs_from_description(desc)


def _signature(method: MethodSpec) -> str:
    params = []
    for field in method.params.fields:
        text = f"{field.name}: {field.type.describe()}"
        if not field.required:
            text += " = " + JsonCodec().encode(field.type, field.default).decode()
        params.append(text)
    if method.client_stream is not None:  # (the handler gets it last)
        params.append(f"{method.client_stream.name}: stream "
                      f"{method.client_stream.type.describe()}")
    head = ("oneway " if method.oneway else "") + f"{method.name}({', '.join(params)})"
    if method.result is not None:
        head += f" -> {'stream ' if method.server_stream else ''}{method.result.describe()}"
    if method.throws:
        head += " throws " + ", ".join(str(spec_of(cls).name) for cls in method.throws)
    marks = (["@readonly"] if method.readonly else ["@idempotent"] if method.idempotent
             else []) + (
        [f"@deadline({method.deadline:g}s)"] if method.deadline is not None else [])
    return " ".join([*marks, head])


def _describe_types(services: Sequence[ServiceSpec]) -> list[str]:
    from rpcx.reflection import describe_services

    desc = describe_services(services)
    lines = []
    for e in desc.enums:
        members = "; ".join(f"{m.name} = {m.value}" for m in e.members)
        lines.append(f"  enum {e.name} {{ {members}; }}")
    for s in desc.structs:
        fields = "".join(
            f" {f.tag}: {f.name}: {_type_name(f.type)}"
            + (f" = {f.default_json}" if f.default_json is not None else "") + ";"
            for f in s.fields)
        status = (f"@status({s.status}) " if s.is_error and s.status is not None
                  and s.status != Status.FAILED_PRECONDITION.name else "")
        lines.append(f"  {status}{'error' if s.is_error else 'struct'} {s.name} {{{fields} }}")
    for u in desc.unions:
        variants = "".join(f" {v.tag}: {v.name}: {_type_name(v.type)};" for v in u.variants)
        lines.append(f"  union {u.name} {{{variants} }}")
    return lines


def _type_name(desc: Any) -> str:
    kind = desc.kind.name
    if kind == "LIST":
        return f"list<{_type_name(desc.item)}>"
    if kind == "MAP":
        return f"map<{_type_name(desc.key)}, {_type_name(desc.item)}>"
    if kind == "OPTIONAL":
        return f"{_type_name(desc.item)}?"
    return str(desc.name) if desc.name is not None else str(kind.lower())


def _print_failure(exc: RpcError) -> None:
    print(f"{exc.code.name}: {exc.message}", file=sys.stderr)
    if isinstance(exc, DeclaredError):
        spec = spec_of(type(exc))
        assert isinstance(spec, StructSpec)
        fields = json.loads(JsonCodec().encode(struct_ref(type(exc)), exc))
        print(json.dumps({"error": spec.name, "fields": fields}, ensure_ascii=False),
              file=sys.stderr)
    elif exc.details:
        print(json.dumps({"details": dict(exc.details)}, ensure_ascii=False, default=str),
              file=sys.stderr)


async def _describe(args: argparse.Namespace) -> int:
    from rpcx.runtime.channel import open_channel
    from rpcx.runtime.retry import RetryPolicy

    async with open_channel(args.address, metadata=_metadata(args.metadata),
                            retry=RetryPolicy(max_attempts=2)) as channel:
        specs = await _reflect(channel, args.services, args.timeout)
    if not specs:
        raise _Usage(f"the server serves none of {', '.join(args.services)}")
    for spec in specs:
        print(f"service {spec.name}" + (f"  // {spec.doc.splitlines()[0]}" if spec.doc else ""))
        for method in spec.methods:
            print(f"  {_signature(method)}")
            if method.doc and args.docs:
                for line in method.doc.splitlines():
                    print(f"      /// {line}")
    types_lines = _describe_types(specs)
    if types_lines:
        print("types")
        print("\n".join(types_lines))
    return 0


async def _call(args: argparse.Namespace) -> int:
    from rpcx.runtime.channel import open_channel

    service, sep, name = args.method.rpartition("/")
    if not sep or not service or not name:
        raise _Usage(f"METHOD must be PACKAGE.SERVICE/METHOD, got {args.method!r}")
    text = sys.stdin.read() if args.args == "-" else args.args
    metadata = _metadata(args.metadata)
    async with open_channel(args.address, metadata=metadata) as channel:
        specs = await _reflect(channel, [service], 10.0 if args.timeout is None
                               else args.timeout)
        if not specs:
            raise _Usage(f"the server does not serve {service!r} (see `rpcx describe "
                         f"{args.address}`)")
        method = specs[0].method(name)
        if method is None:
            known = ", ".join(m.name for m in specs[0].methods)
            raise _Usage(f"{service} has no method {name!r} (it has: {known})")
        codec = JsonCodec()
        try:
            call_args = codec.decode(method.params, text.encode("utf-8"))
        except CodecError as exc:
            raise _Usage(f"bad arguments for {method.path}: {exc}") from None
        if method.oneway:
            await channel.call_oneway(method, call_args, timeout=args.timeout)
            print("sent (one-way: no reply)", file=sys.stderr)
            return 0
        if method.streaming is not None:
            if method.client_stream is not None and args.args == "-":
                raise _Usage(f"{method.path} reads its stream from stdin: give ARGS on "
                             "the command line")
            return await _call_stream(channel, method, call_args, args.timeout)
        result = await channel.call(method, call_args, timeout=args.timeout)
    if method.result is None:
        print("null")
    else:
        print(codec.encode(method.result, result).decode("utf-8"))
    return 0


async def _call_stream(channel: Any, method: MethodSpec, call_args: tuple[Any, ...],
                       timeout: float | None) -> int:
    """A streaming call: the client's items are read from stdin, one JSON value per line
    (until EOF); the server's items are printed one JSON value per line as they come."""
    import trio

    from rpcx.runtime.streams import END

    codec = JsonCodec()
    core = channel.open_stream(method, call_args, timeout=timeout)

    async def send() -> None:
        item_spec = method.client_stream
        assert item_spec is not None
        number = 0
        async for line in _stdin_lines():
            number += 1
            if not line.strip():
                continue
            try:
                item = codec.decode(item_spec.type, line.encode("utf-8"))
            except CodecError as exc:
                raise _Usage(f"stdin line {number}: bad {item_spec.name} item: "
                             f"{exc}") from None
            await core.send(item)
        await core.end()

    async def receive() -> None:
        assert method.result is not None
        while True:
            item = await core.receive()
            if item is END:
                return
            print(codec.encode(method.result, item).decode("utf-8"), flush=True)

    try:
        await core.start()
        if method.client_stream is None:
            await receive()
        elif not method.server_stream:
            await send()
            result = await core.finish()
            print("null" if method.result is None
                  else codec.encode(method.result, result).decode("utf-8"))
        else:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send)
                    await receive()
            except BaseExceptionGroup as group:
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
    finally:
        await core.aclose()
    return 0


async def _stdin_lines() -> Any:
    import trio

    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        if not line:
            return
        yield line


def _run_remote(args: argparse.Namespace) -> int:
    try:
        code: int = trio.run(args.remote, args)
        return code
    except _Usage as exc:
        print(f"rpcx {args.command}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a malformed address
        print(f"rpcx {args.command}: {exc}", file=sys.stderr)
        return 2
    except RpcError as exc:
        _print_failure(exc)
        return 1
    except KeyboardInterrupt:
        return 130


def _timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return seconds


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

    openapi = sub.add_parser(
        "openapi", help="print the OpenAPI 3.1 document of the HTTP face of .rpcx services",
        description="Print the OpenAPI 3.1 document for calling the services in FILE... "
                    "over HTTP/JSON (the same document a server serves at /openapi.json).")
    openapi.add_argument("files", nargs="+", metavar="FILE", help=".rpcx files")
    openapi.add_argument("-o", "--output", metavar="PATH", help="write to PATH, not stdout")
    openapi.add_argument("--title", default="rpcx services", help="the document's title")
    openapi.add_argument("--version", default="1", help="the API version (info.version)")
    openapi.add_argument("--server", metavar="URL",
                         help="the server URL to list, e.g. http://127.0.0.1:8080")
    openapi.set_defaults(func=_cmd_openapi)

    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("address", metavar="ADDRESS",
                        help="the server's native address: tcp://HOST:PORT or unix:///PATH")
    remote.add_argument("--metadata", "-m", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="call metadata, e.g. -m 'authorization=Bearer s3cret' "
                             "(may be repeated)")
    describe = sub.add_parser(
        "describe", parents=[remote],
        help="list a running server's services, methods and types",
        description="Ask a running server (through its reflection service) what it serves "
                    "and print each method's typed signature and every type it uses.")
    describe.add_argument("services", nargs="*", metavar="SERVICE",
                          help="only these services (qualified: payments.Payments)")
    describe.add_argument("--docs", action="store_true", help="also print method docs")
    describe.add_argument("--timeout", type=_timeout, default=10.0, metavar="SECONDS",
                          help="give up after SECONDS (default 10)")
    describe.set_defaults(func=_run_remote, remote=_describe)

    call = sub.add_parser(
        "call", parents=[remote], help="call a method of a running server with JSON",
        description="Call METHOD on the server at ADDRESS with arguments given as a JSON "
                    "object keyed by parameter name (the JSON mapping of "
                    "docs/marshalling.md), and print the result as JSON. No stubs are "
                    "needed: the method's types come from the server's reflection service. "
                    "On failure, prints STATUS: message (and a declared error's fields) to "
                    "stderr and exits 1. A server stream is printed one JSON value per line "
                    "as it arrives (until it ends, its deadline, or Ctrl-C); a client "
                    "stream's items are read from stdin, one JSON value per line.",
        epilog="example: rpcx call tcp://127.0.0.1:7000 payments.Payments/process_payment "
               "'{\"card\": {\"card_number\": \"4111 1111 1111 1111\", \"expiry_date\": "
               "\"10/2030\", \"cvc\": \"123\"}, \"amount\": \"3.99\", \"currency\": \"GBP\"}'")
    call.add_argument("method", metavar="METHOD",
                      help="PACKAGE.SERVICE/METHOD, e.g. payments.Payments/get_payment")
    call.add_argument("args", nargs="?", default="{}", metavar="ARGS",
                      help="the arguments as a JSON object (default {}; - reads stdin)")
    call.add_argument("--timeout", type=_timeout, default=None, metavar="SECONDS",
                      help="the call's deadline (default: the method's @deadline, if any)")
    call.set_defaults(func=_run_remote, remote=_call)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
