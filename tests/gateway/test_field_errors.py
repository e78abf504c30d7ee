"""Errors a client can act on (issue 13 item 6): INVALID_ARGUMENT names the bad field and
its expected type in structured details, natively and in the HTTP JSON body, and no text
that reaches a peer holds Python notation or starts with a capital letter (protocol.md
§ 4.3), whatever the input; property tests over mutated arguments check every text."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rpcx
from examples.payments.service import Payments
from rpcx.errors import RpcError
from rpcx.gateway import HttpServer
from rpcx.gateway.server import build_dispatcher
from rpcx.protocol import Connection, ErrorReceived, Role
from rpcx.runtime.arguments import argument_details, type_at
from rpcx.runtime.dispatch import Dispatcher, Failure
from rpcx.schema import StructSpec
from rpcx.status import Status
from rpcx.testing.fuzzing import capitalised, check_peer_text, python_notation
from rpcx.transport import connect
from tests.gateway._client import connected
from tests.runtime.harness import Echo

PROCESS = "payments.Payments/process_payment"
CARD = {"card_number": "4111 1111 1111 1111", "expiry_date": "10/2030", "cvc": "123"}
SEED_ARGS: dict[str, Any] = {"card": CARD, "amount": "3.99", "currency": "GBP"}
DISPATCHER = build_dispatcher([Payments(), Echo()], [], True)
ROUTE = DISPATCHER.lookup(PROCESS)
assert ROUTE is not None
PARAMS: StructSpec = ROUTE.method.params

# Every place in process_payment's arguments, with its IDL type.
TYPES: dict[str, str] = {
    "card": "payments.Card", "card.card_number": "string", "card.expiry_date": "string",
    "card.cvc": "string", "card.holder": "string?", "card.tags": "list<string>",
    "card.tags[0]": "string", "card.tags[1]": "string", "amount": "decimal",
    "currency": "payments.Currency", "merchant": "string",
}
REQUIRED = {"card", "card.card_number", "card.expiry_date", "card.cvc", "amount", "currency"}


def all_texts(value: object) -> Iterator[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from all_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_texts(item)


def check_plain_body(body: dict[str, Any]) -> None:
    check_peer_text(body["message"])
    for text in all_texts(body["details"]):
        found = python_notation(text)
        assert found is None, f"python notation {found!r} in details {body['details']}"


# ---- the details, exactly ------------------------------------------------------------

@pytest.mark.parametrize(("args", "field", "expected", "reason"), [
    ({**SEED_ARGS, "card": {**CARD, "expiry_date": 102030}}, "card.expiry_date", "string",
     "expected string, got int"),
    ({"card": CARD, "currency": "GBP"}, "amount", "decimal",
     "missing required field 'amount'"),
    ({**SEED_ARGS, "card": {"card_number": "4111 1111 1111 1111", "expiry_date": "1/2030"}},
     "card.cvc", "string", "missing required field 'cvc'"),
    ({**SEED_ARGS, "card": {**CARD, "tags": ["a", 7]}}, "card.tags[1]", "string",
     "expected string, got int"),
    ({**SEED_ARGS, "currency": "XYZ"}, "currency", "payments.Currency",
     'unknown name "XYZ" of enum \'payments.Currency\' (expected one of GBP, EUR, USD)'),
    ({**SEED_ARGS, "amount": "lots"}, "amount", "decimal", 'invalid decimal "lots"'),
    ({**SEED_ARGS, "card": [1]}, "card", "payments.Card", "expected payments.Card, got list"),
])
async def test_http_body_details_name_the_field_and_the_expected_type(
        args: dict[str, Any], field: str, expected: str, reason: str) -> None:
    async with connected(HttpServer(DISPATCHER)) as client:
        response = await client.call(f"/{PROCESS}", args)
    assert response.status == 400
    body = response.json()
    assert body["code"] == "INVALID_ARGUMENT"
    assert body["details"] == {"field": field, "expected": expected, "reason": reason}
    assert body["message"].startswith(f"invalid arguments to {PROCESS}: ")
    assert body["message"].endswith(reason) and field.rpartition(".")[2] in body["message"]


async def test_a_body_that_is_not_json_has_the_whole_arguments_as_field() -> None:
    async with connected(HttpServer(DISPATCHER)) as client:
        broken = await client.request("POST", f"/{PROCESS}", b'{"card": ')
        array = await client.request("POST", f"/{PROCESS}", b"[1]")
    assert broken.json()["details"] == {"field": "", "reason": "malformed JSON at 1:10: "
                                                               "expecting value"}
    assert array.json()["details"]["field"] == ""
    assert "expected" not in array.json()["details"]


def test_type_at_walks_structs_lists_maps_and_optionals() -> None:
    for path, described in TYPES.items():
        ref = type_at(PARAMS, path)
        assert ref is not None and ref.describe() == described, path
    for nowhere in ["", "nope", "card.nope", "amount.x", "card[0]", "card.tags.x", "card.",
                    "[", "card.tags[", '["a', "card..cvc", "9"]:
        assert type_at(PARAMS, nowhere) is None, nowhere


async def test_natively_the_error_frame_carries_the_same_details() -> None:
    # A raw client: the stubs would never send a bad value.
    async with rpcx.open_server("mem://field-errors", [Echo()]) as server:
        stream = await connect(server.addresses[0])
        async with stream:
            conn = Connection(Role.CLIENT, now=trio.current_time())
            conn.start_call("echo.Echo/increment", cbor2.dumps({1: "three"}),
                            now=trio.current_time())
            await stream.send_all(conn.data_to_send())
            found: list[ErrorReceived] = []
            with trio.fail_after(5):
                while not found:
                    conn.receive_data(bytes(await stream.receive_some(65536)),
                                      trio.current_time())
                    found = [e for e in conn.events() if isinstance(e, ErrorReceived)]
    error = found[0]
    assert error.status is Status.INVALID_ARGUMENT
    assert dict(error.details) == {"field": "by", "expected": "int",
                                   "reason": "expected int, got string"}
    assert error.message == "invalid arguments to echo.Echo/increment: by: expected int, " \
                            "got string"


async def test_a_handler_s_capitalised_message_goes_out_in_lower_case() -> None:
    dispatcher = Dispatcher([Echo()])
    reply = await dispatcher.dispatch("echo.Echo/fail", json.dumps(
        {"code": 5, "message": "Order 12 was not found"}).encode(), rpcx.JsonCodec())
    assert isinstance(reply, Failure) and reply.message == "order 12 was not found"
    reply = await dispatcher.dispatch("echo.Echo/fail", json.dumps(
        {"code": 5, "message": "HTTP backend is down"}).encode(), rpcx.JsonCodec())
    assert isinstance(reply, Failure) and reply.message == "HTTP backend is down"


async def test_details_values_json_lacks_are_written_in_its_mapping_not_python_s() -> None:
    class Odd(Echo):
        async def fail(self, code: int, message: str) -> str:
            raise RpcError(Status(code), message, {"blob": b"\x00\xff", "n": math.inf,
                                                   "t": (1, 2)})

    async with connected(HttpServer(Dispatcher([Odd()]))) as client:
        response = await client.call("/echo.Echo/fail", {"code": 9})
    body = response.json()
    assert body["details"] == {"blob": "AP8=", "n": "Infinity", "t": [1, 2]}
    check_plain_body(body)


def test_the_casing_check_finds_what_it_is_for() -> None:
    assert capitalised("Expecting value") and capitalised("Card declined")
    assert not capitalised("JSON at 1:2") and not capitalised("expecting value")
    assert not capitalised("") and not capitalised("X")


# ---- properties over mutated arguments -----------------------------------------------

_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=12), st.sampled_from(["GBP", "3.99", "10/2030", "1e999",
                                                     "\ud800", "b'x'", "NaN"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["card_number", "cvc", "x", "tags", "Card"]), inner, max_size=3),
    max_leaves=6)


def _set(args: dict[str, Any], path: list[str | int], value: Any, delete: bool) -> None:
    node: Any = args
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_PLACES: list[list[str | int]] = [
    ["card"], ["card", "card_number"], ["card", "expiry_date"], ["card", "cvc"],
    ["card", "holder"], ["card", "tags"], ["amount"], ["currency"], ["merchant"]]


def _dotted(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)[1:]


Change = tuple[list[str | int], Any, bool]
"""A place in the arguments, a value to put there, and whether to delete it instead."""


@st.composite
def changes(draw: st.DrawFn) -> list[Change]:
    """One to three places replaced by any JSON value or deleted."""
    out: list[Change] = []
    for _ in range(draw(st.integers(1, 3))):
        place: list[str | int] = draw(st.sampled_from(
            [*_PLACES, ["card", "tags", 0], ["card", "tags", 1]]))
        out.append((place, draw(_JSON), draw(st.booleans()) and isinstance(place[-1], str)))
    return out


def apply(args: Any, wanted: list[Change], name: Any = lambda path: path
          ) -> list[list[str | int]]:
    """Make the changes that still have a place (an earlier one may have removed it);
    the places changed. ``name`` turns a place into the keys of ``args``."""
    changed: list[list[str | int]] = []
    for place, value, delete in wanted:
        try:
            _set(args, name(place), value, delete)
        except (KeyError, IndexError, TypeError):
            continue
        changed.append(place)
    return changed


def seed() -> dict[str, Any]:
    args = copy.deepcopy(SEED_ARGS)
    args["card"]["tags"] = ["a", "b"]
    return args


def check_details(details: dict[str, Any], changed: list[list[str | int]]) -> None:
    """The field is one of the changed places, or inside one; its expected type is the
    schema's."""
    field = details["field"]
    assert isinstance(field, str) and isinstance(details["reason"], str)
    assert not capitalised(details["reason"])
    if field == "":
        assert "expected" not in details
        return
    assert any(field == _dotted(p) or field.startswith((_dotted(p) + ".", _dotted(p) + "["))
               for p in changed), (field, changed)
    ref = type_at(PARAMS, field)
    assert ref is not None, field
    assert details["expected"] == ref.describe()
    if field in TYPES:
        assert details["expected"] == TYPES[field]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wanted=changes())
def test_property_http_bad_arguments_get_a_field_path_and_plain_words(
        wanted: list[Change]) -> None:
    args = seed()
    changed = apply(args, wanted)

    async def main() -> None:
        async with connected(HttpServer(DISPATCHER)) as client:
            response = await client.request(
                "POST", f"/{PROCESS}", json.dumps(args).encode("utf-8", "surrogatepass"))
        body = response.json()
        assert response.status in (200, 400), response
        if response.status == 400:
            check_plain_body(body)
            if body["code"] == "INVALID_ARGUMENT":
                check_details(body["details"], changed)
                assert body["details"]["field"].rpartition(".")[2] in body["message"]
            else:
                assert body["error"] == "payments.CardDeclined", body

    trio.run(main)


def _tags(place: list[str | int]) -> list[str | int]:
    """A place named by field names → the same place keyed by field tags (as CBOR)."""
    out: list[str | int] = []
    spec: StructSpec | None = PARAMS
    for step in place:
        if isinstance(step, int) or spec is None:
            out.append(step)
            continue
        field = next(f for f in spec.fields if f.name == step)
        out.append(field.tag)
        inner = getattr(field.type.cls, "__rpcx_spec__", None)
        spec = inner if isinstance(inner, StructSpec) else None
    return out


def _no_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_no_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    return value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wanted=changes())
def test_property_native_bad_arguments_get_the_same_details(wanted: list[Change]) -> None:
    codec = rpcx.CborCodec()
    args = cbor2.loads(codec.encode(PARAMS, rpcx.JsonCodec().decode(
        PARAMS, json.dumps(seed()).encode())))
    changed = apply(args, [(p, _no_surrogates(v), d) for p, v, d in wanted], _tags)
    payload = cbor2.dumps(args)

    async def main() -> None:
        reply = await DISPATCHER.dispatch(PROCESS, payload, rpcx.CborCodec())
        if isinstance(reply, Failure):
            check_peer_text(reply.message)
            if reply.status is Status.INVALID_ARGUMENT:
                check_details(dict(reply.details), changed)
                for text in all_texts(dict(reply.details)):
                    assert python_notation(text) is None, reply.details

    trio.run(main)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64))
def test_property_any_bytes_natively_give_plain_details(data: bytes) -> None:
    async def main() -> None:
        reply = await DISPATCHER.dispatch(PROCESS, data, rpcx.CborCodec())
        assert isinstance(reply, Failure)
        check_peer_text(reply.message)
        assert reply.status is Status.INVALID_ARGUMENT
        details = dict(reply.details)
        assert set(details) <= {"field", "expected", "reason"}
        assert not capitalised(details["reason"])
        for text in all_texts(details):
            assert python_notation(text) is None, details

    trio.run(main)


def test_argument_details_of_a_missing_top_level_field() -> None:
    try:
        rpcx.JsonCodec().decode(PARAMS, b"{}")
    except rpcx.CodecError as exc:
        assert argument_details(PARAMS, exc) == {
            "field": "card", "expected": "payments.Card",
            "reason": "missing required field 'card'"}
    else:  # pragma: no cover
        raise AssertionError("decoded")
