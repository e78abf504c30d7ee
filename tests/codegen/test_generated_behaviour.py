"""Generated classes behave as IDL.md says, end to end through a real codec and dispatch
(rpcx.testing.LocalChannel): typed calls, defaults, unions, declared errors, schemas."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

import rpcx.schema
from rpcx.codec import get_codec
from rpcx.errors import DeclaredError, RemoteError
from rpcx.status import Status
from rpcx.testing import LocalChannel
from tests.codegen.helpers import CASES, generate_all, imported_package


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    directory = tmp_path_factory.mktemp("behaviour")
    with imported_package(generate_all(CASES / "everything.rpcx"), directory,
                          "gen_behaviour") as modules:
        yield modules["everything_rpcx"]


def _everything(m: ModuleType, **overrides: Any) -> Any:
    common = m._i_common_rpcx
    fields: dict[str, Any] = {"money": common.Money(amount=decimal.Decimal("1.50")), "ids": {}}
    fields.update(overrides)
    return m.Everything(**fields)


def test_defaults_from_the_idl_are_applied(sink: ModuleType) -> None:
    e = _everything(sink)
    assert e.flag is True and e.count == -42 and e.ratio == 1.5
    assert e.price == decimal.Decimal("3.99") and e.label == 'it\'s "quoted"'
    assert e.blob == b"raw"
    assert e.at == datetime.datetime(2024, 2, 29, 11, 30, tzinfo=datetime.UTC)
    assert e.names == ["a", "b"] and e.scores == {"x": 1} and e.by_colour == {}
    assert e.colour is sink.Colour.GREEN and e.maybe is None and e.nothing is None
    assert e.money.currency == "GBP"
    # Mutable defaults are fresh per instance.
    assert _everything(sink).names is not e.names


def test_structs_are_frozen_slotted_and_keyword_only(sink: ModuleType) -> None:
    e = _everything(sink)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        e.count = 1
    assert not hasattr(e, "__dict__")
    with pytest.raises(TypeError):
        sink.Empty(1)


def test_a_union_has_exactly_one_variant(sink: ModuleType) -> None:
    choice = sink.Choice(number=7)
    assert (choice.which, choice.value) == ("number", 7)
    with pytest.raises(ValueError, match="exactly one of text, number, money must be set"):
        sink.Choice()
    with pytest.raises(ValueError, match="got text, number"):
        sink.Choice(text="a", number=1)


def test_enums_are_open_int_enums(sink: ModuleType) -> None:
    assert sink.Colour.BLUE == -3 and isinstance(sink.Colour.RED, int)
    unknown = sink.Colour(99)
    assert unknown.name == "UNKNOWN_99" and unknown == 99 and not unknown.is_known
    assert list(sink.Colour) == [sink.Colour.RED, sink.Colour.GREEN, sink.Colour.BLUE]


def test_docs_become_docstrings(sink: ModuleType) -> None:
    assert "The colour of grass" not in (sink.Colour.__doc__ or "")
    assert (sink.Colour.__doc__ or "").startswith("Colours, with a doc comment")
    assert sink.SinkClient.put.__doc__ == "Takes everything."
    assert "Deprecated: no longer needed" in (sink.SinkService.poke.__doc__ or "")


def test_schema_descriptors_describe_the_idl(sink: ModuleType) -> None:
    spec = rpcx.schema.spec_of(sink.Everything)
    assert isinstance(spec, rpcx.schema.StructSpec)
    assert spec.name == "kitchen.sink.Everything"
    assert [f.tag for f in spec.fields] == list(range(1, 17))
    by_name = {f.name: f for f in spec.fields}
    assert by_name["by_colour"].type.describe() == "map<kitchen.sink.Colour, list<float?>>"
    assert by_name["money"].required and not by_name["count"].required
    service = rpcx.schema.spec_of(sink.SinkClient)
    assert isinstance(service, rpcx.schema.ServiceSpec)
    get = service.method("get")
    assert get is not None and get.idempotent and get.deadline == 0.25
    assert get.path == "kitchen.sink.Sink/get"
    poke = service.method("poke")
    assert poke is not None and poke.oneway and poke.deprecated == "no longer needed"
    put = service.method("put")
    assert put is not None and [c.__name__ for c in put.throws] == [
        "Overflow", "Unavailable", "Exists"]


def _sink_impl(m: ModuleType) -> Any:
    class Impl(m.SinkService):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.store: dict[int, Any] = {}
            self.pokes: list[str] = []

        async def put(self, e: Any, note: str, extra: list[int], required_after: bool) -> Any:
            if e.count > 100:
                raise m.Overflow(limit=100)
            if note == "unavailable":
                raise m._i_common_rpcx.Unavailable()
            if note == "exists":
                raise m.Exists()
            if note == "crash":
                raise RuntimeError("secret database password in this message")
            self.store[e.count] = (e, note, extra, required_after)
            return m.Empty()

        async def get(self, id: int) -> Any:
            entry = self.store.get(id)
            return None if entry is None else entry[0]

        async def peek(self) -> Any:
            return [{"k": m.Choice(text="v")}]

        async def poke(self, why: str) -> None:
            self.pokes.append(why)

        async def nothing(self) -> None:
            return None

        async def follow(self, start: int, only: dict[str, Any]) -> AsyncIterator[Any]:
            for count in sorted(self.store):
                if count >= start:
                    yield self.store[count][0]
            yield None

        async def upload(self, a_rather_long_batch_name: str, trailer: bytes,
                         parts: AsyncIterator[Any]) -> Any:  # (the stream comes last)
            async for part in parts:
                for e in part:
                    self.store[e.count] = (e, a_rather_long_batch_name, [], False)
            return m.Empty()

        async def chat(self, said: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for words in said:
                for key, choices in sorted(words.items()):
                    yield m.Choice(text=f"{key}:{len(choices)}")

    return Impl()


@pytest.mark.parametrize("codec", ["cbor", "json"])
async def test_calls_round_trip_through_the_stub(sink: ModuleType, codec: str) -> None:
    impl = _sink_impl(sink)
    client = sink.SinkClient(LocalChannel(impl, codec=get_codec(codec)))
    e = _everything(sink, count=5, choice=sink.Choice(text="hi"))
    assert await client.put(e, required_after=True) == sink.Empty()
    assert impl.store[5][1:] == ("", [], True), "IDL defaults reach the handler"
    assert await client.get(5) == e
    assert await client.get(6) is None
    assert await client.peek() == [{"k": sink.Choice(text="v")}]
    await client.poke("why not")
    assert impl.pokes == ["why not"]
    assert await client.nothing() is None


@pytest.mark.parametrize("codec", ["cbor", "json"])
async def test_streaming_stubs_round_trip(sink: ModuleType, codec: str) -> None:
    """The generated streaming stubs of every shape, through a LocalChannel."""
    impl = _sink_impl(sink)
    client = sink.SinkClient(LocalChannel(impl, codec=get_codec(codec)))
    one, two = _everything(sink, count=1), _everything(sink, count=2)
    async with client.upload("batch") as call:
        await call.send([one, two])
        assert await call.finish() == sink.Empty()
    async with client.follow(start=2) as items:
        assert [e async for e in items] == [two, None]
    async with client.chat() as call:
        await call.send({"a": [sink.Choice(text="x")], "b": []})
        await call.end()
        assert [c.text async for c in call] == ["a:1", "b:0"]
    method = rpcx.schema.spec_of(sink.SinkClient)
    assert isinstance(method, rpcx.schema.ServiceSpec)
    assert [(m.name, m.streaming) for m in method.methods if m.streaming] == [
        ("follow", "server"), ("upload", "client"), ("chat", "bidi")]


async def test_declared_errors_arrive_as_their_classes_with_fields(sink: ModuleType) -> None:
    client = sink.SinkClient(LocalChannel(_sink_impl(sink)))
    with pytest.raises(sink.Overflow) as caught:
        await client.put(_everything(sink, count=101), required_after=False)
    assert caught.value.limit == 100 and caught.value.where == "here"
    assert isinstance(caught.value, DeclaredError)
    assert caught.value.code is Status.RESOURCE_EXHAUSTED, "from @status(RESOURCE_EXHAUSTED)"
    assert str(caught.value) == 'kitchen.sink.Overflow {limit: 100, where: "here"}'
    with pytest.raises(sink._i_common_rpcx.Unavailable) as imported:
        await client.put(_everything(sink), "unavailable", required_after=False)
    assert imported.value.retry_after_ms == 100
    assert imported.value.code is Status.FAILED_PRECONDITION, "no @status: the default"
    with pytest.raises(sink.Exists) as exists:
        await client.put(_everything(sink), "exists", required_after=False)
    assert exists.value.code is Status.ALREADY_EXISTS


def test_status_annotation_sets_the_class_code(sink: ModuleType) -> None:
    assert sink.Overflow.rpcx_code is Status.RESOURCE_EXHAUSTED
    assert sink.Overflow(limit=1).code is Status.RESOURCE_EXHAUSTED
    assert sink.Exists.rpcx_code is Status.ALREADY_EXISTS
    assert sink.Exists().code is Status.ALREADY_EXISTS
    assert sink._i_common_rpcx.Unavailable.rpcx_code is Status.FAILED_PRECONDITION
    assert "rpcx_code" not in {a.name for a in sink.Overflow.__attrs_attrs__}, "not a field"
    spec = rpcx.schema.spec_of(sink.Exists)
    assert isinstance(spec, rpcx.schema.StructSpec) and spec.is_error and spec.fields == ()


async def test_other_handler_exceptions_become_internal_without_details(
        sink: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    client = sink.SinkClient(LocalChannel(_sink_impl(sink)))
    with pytest.raises(RemoteError) as caught:
        await client.put(_everything(sink), "crash", required_after=False)
    assert caught.value.code is Status.INTERNAL
    assert "password" not in str(caught.value)
    assert "secret database password" in caplog.text, "the server logs the real error"


async def test_bad_arguments_fail_on_the_client_naming_the_field(sink: ModuleType) -> None:
    client = sink.SinkClient(LocalChannel(_sink_impl(sink)))
    bad = _everything(sink, names=["ok", 3])
    with pytest.raises(ValueError, match=r"e\.names\[1\]"):
        await client.put(bad, required_after=True)


def test_generated_payments_module_is_committed_and_current() -> None:
    committed = Path(__file__).resolve().parents[2] / "examples/payments/payments_rpcx.py"
    payments = generate_all(Path(__file__).resolve().parents[2] / "idl/payments.rpcx")
    assert committed.read_text(encoding="utf-8") == payments["payments_rpcx"]
