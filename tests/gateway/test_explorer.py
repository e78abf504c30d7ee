"""The explorer page (issue 13 item 7) without a browser: what is served at /explorer, that
it needs nothing from elsewhere, and that what it lists and prefills matches the schema.
tests/gateway/test_browser.py clicks through it in Chromium."""

from __future__ import annotations

import base64
import hashlib
import html.parser
import json
import re
from typing import Any

import pytest

import rpcx
from examples.payments.service import Payments
from rpcx.gateway import HttpServer
from rpcx.gateway.explorer import EXPLORER_PATH, example_arguments, explorer_data, explorer_page
from rpcx.gateway.server import build_dispatcher
from rpcx.schema import MethodSpec, ServiceSpec, StructSpec
from tests.gateway._client import Response, connected
from tests.runtime.harness import Echo

DISPATCHER = build_dispatcher([Payments(), Echo()], [], True)


class _Page(html.parser.HTMLParser):
    """The tags, attributes and script texts of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open == "script":
            self.scripts.append((self.tags[-1][1], data))
        elif self._open == "style":
            self.styles.append(data)


async def get_page(**options: Any) -> Response:
    async with connected(HttpServer(DISPATCHER, **options)) as client:
        return await client.request("GET", EXPLORER_PATH)


def parse(body: bytes) -> _Page:
    page = _Page()
    page.feed(body.decode("utf-8"))
    return page


def data_of(page: _Page) -> dict[str, Any]:
    [text] = [text for attrs, text in page.scripts if attrs.get("type") == "application/json"]
    out: dict[str, Any] = json.loads(text)
    return out


async def test_the_page_is_html_with_a_policy_that_loads_nothing_from_elsewhere() -> None:
    response = await get_page()
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    page = parse(response.body)
    # no external assets: no src, no stylesheet links, no URL with a scheme anywhere
    for tag, attrs in page.tags:
        assert "src" not in attrs, (tag, attrs)
        assert tag != "link", attrs
    assert not re.search(rb"https?://", response.body), "an absolute URL in the page"
    # each inline script and style is allowed by its hash, so nothing else can run
    [code] = [text for attrs, text in page.scripts if "type" not in attrs]
    for source in (code, page.styles[0]):
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy


async def test_the_page_lists_every_method_with_its_docs_and_an_example() -> None:
    data = data_of(parse((await get_page(title="shop")).body))
    assert data["title"] == "shop" and data["openapi"] == "/openapi.json"
    listed = {m["path"]: m for s in data["services"] for m in s["methods"]}
    for service in DISPATCHER.services:
        for method in service.methods:
            shown = listed[method.path]
            assert shown["doc"] == method.doc
            assert shown["example"] == example_arguments(method)
            assert [p["name"] for p in shown["params"]] == [
                f.name for f in method.params.fields]
    process = listed["payments.Payments/process_payment"]
    assert process["doc"].startswith("Charges a card.")
    assert process["throws"] == ["payments.CardDeclined"]
    assert process["result"] == "payments.Result"
    assert process["params"][3] == {"name": "merchant", "type": "string", "doc": "",
                                    "required": False, "default": ""}
    assert listed["echo.Echo/echo"]["idempotent"] is True
    assert listed["echo.Echo/note"]["oneway"] is True
    assert {path: m["streaming"] for path, m in listed.items() if m["streaming"]} == {
        "payments.Payments/watch": "server"}
    assert listed["payments.Payments/watch"]["result"] == "stream payments.PaymentEvent"


@pytest.mark.parametrize("path", [m.path for s in DISPATCHER.services for m in s.methods])
def test_every_prefilled_example_decodes_as_that_method_s_arguments(path: str) -> None:
    route = DISPATCHER.lookup(path)
    assert route is not None
    example = example_arguments(route.method)
    rpcx.JsonCodec().decode(route.method.params, json.dumps(example).encode())
    assert set(example) == {f.name for f in route.method.params.fields}


def test_the_payments_example_is_every_field_with_a_value_of_its_type() -> None:
    route = DISPATCHER.lookup("payments.Payments/process_payment")
    assert route is not None
    assert example_arguments(route.method) == {
        "card": {"card_number": "", "expiry_date": "", "cvc": "", "holder": None, "tags": []},
        "amount": "0", "currency": "GBP", "merchant": ""}


async def test_head_get_and_other_verbs() -> None:
    async with connected(HttpServer(DISPATCHER)) as client:
        head = await client.request("HEAD", EXPLORER_PATH)
        post = await client.request("POST", EXPLORER_PATH, b"{}")
        preflight = await client.request("OPTIONS", EXPLORER_PATH)
    assert head.status == 200 and head.body == b""
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"
    assert preflight.status == 204 and preflight.headers["allow"] == "GET, OPTIONS"


async def test_explorer_false_turns_it_off_and_openapi_false_drops_the_link() -> None:
    assert (await get_page(explorer=False)).status == 404
    assert data_of(parse((await get_page(openapi=False)).body))["openapi"] is None


def test_docs_cannot_break_out_of_the_page() -> None:
    evil = "</script><script>alert(1)</script><!-- & -->"
    params = StructSpec(name="x.Y.m", cls=None, fields=())
    method = MethodSpec(name="m", service="x.Y", params=params, result=None, doc=evil)
    service = ServiceSpec(name="x.Y", methods=(method,), doc=evil)
    body, _ = explorer_page([service], title=evil)
    page = parse(body)
    assert len([a for a, _ in page.scripts]) == 2  # the data and the code, nothing more
    assert data_of(page)["services"][0]["doc"] == evil
    assert explorer_data([service], title=evil, openapi=True)["services"][0]["methods"][0][
        "doc"] == evil
    assert b"<script>alert" not in body
