"""`stream T` in the IDL: the model it gives and every misuse at its exact line:col."""

from __future__ import annotations

import pytest

from rpcx.compiler import compile_source, model
from rpcx.schema import Kind

from .helpers import errors

SOURCE = """package p;
struct Item { 1: n: int; }
error Oops { 1: why: string; }
service S {
  watch(1: start: int = 1) -> stream Item throws Oops;
  upload(1: batch: string, 2: items: stream Item, 3: note: string = "") -> Item;
  chat(1: items: stream Item?) -> stream list<Item>;
  plain(1: x: int) -> int;
}
"""


def methods() -> dict[str, model.Method]:
    result = compile_source(SOURCE, "s.rpcx")
    assert not result.diagnostics, result.diagnostics
    (service,) = [d for d in result.files[0].decls if isinstance(d, model.ServiceDecl)]
    return {m.name: m for m in service.methods}


def test_the_model_carries_the_stream_shape() -> None:
    found = methods()
    watch, upload, chat, plain = (found[n] for n in ("watch", "upload", "chat", "plain"))
    assert (watch.streaming, upload.streaming, chat.streaming, plain.streaming) == (
        "server", "client", "bidi", None)
    assert watch.server_stream and watch.result is not None and watch.result.ref == "p.Item"
    assert watch.client_stream is None and [f.name for f in watch.params] == ["start"]
    assert upload.client_stream is not None
    assert (upload.client_stream.tag, upload.client_stream.name) == (2, "items")
    assert upload.client_stream.type.ref == "p.Item"
    assert [f.name for f in upload.params] == ["batch", "note"]  # not the stream
    assert not upload.server_stream and upload.result is not None
    assert chat.client_stream is not None
    assert chat.client_stream.type.kind is Kind.OPTIONAL
    assert chat.result is not None and chat.result.kind is Kind.LIST


def test_a_type_named_stream_is_still_a_type() -> None:
    result = compile_source("package p;\nstruct stream { 1: x: int; }\n"
                            "struct S { 1: s: stream; 2: t: stream?; }\n"
                            "service V { m(1: s: stream) -> stream; }\n", "t.rpcx")
    assert not result.diagnostics, result.diagnostics


def service(body: str) -> str:
    return "package p;\nstruct Item { 1: n: int; }\nservice S {\n" + body + "\n}\n"


STREAM_CASES = [
    # (method line, where the diagnostic points: the text there, its message)
    ("  m(1: a: stream Item, 2: b: stream Item) -> int;", "stream Item)",
     "method 'm' has a second stream parameter 'b': at most one parameter streams"),
    ("  m(1: a: stream Item = null) -> int;", "null", "stream parameter 'a' cannot have a default"),
    ("  oneway m(1: a: stream Item);", "stream", "oneway method 'm' cannot stream"),
    ("  oneway m() -> stream Item;", "stream", "oneway method 'm' cannot have a result"),
    ("  m() -> list<stream Item>;", "stream",
     "'stream Item': a stream is only the result of a method or the type of one of its"
     " parameters"),
    ("  m(1: a: stream stream Item);", "stream Item", "'stream Item': a stream is only"),
    ("  m(1: a: map<string, stream Item>);", "stream", "'stream Item': a stream is only"),
]


@pytest.mark.parametrize(("body", "at", "message"), STREAM_CASES)
def test_a_misplaced_stream_is_reported_where_it_is(body: str, at: str, message: str) -> None:
    col = body.rindex(at) + 1 if at == "stream Item" else body.index(at) + 1
    found = errors(service(body))
    assert any((line, column) == (4, col) and message in text
               for line, column, text in found), (col, found)


def test_a_stream_in_a_struct_field_is_reported_at_the_keyword() -> None:
    found = errors("package p;\nstruct S {\n  1: xs: stream int;\n}\n")
    assert found == [
        (3, 10, "'stream int': a stream is only the result of a method or the type of one"
                " of its parameters")]
