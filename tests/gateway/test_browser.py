"""The HTTP face in a real browser (issue 13 item 8): headless Chromium against the
payments server process. The snippets run are the ones docs/http.md shows, taken from it
as written (only the URL and the card number are changed); pages come from the server's
own ``/openapi.json``, at ``http://localhost:PORT`` when the call is to
``http://127.0.0.1:PORT``, so the browser treats it as a call from another origin (CORS,
preflight and all).

Skipped, with the reason, where there is no Chromium (see tests/gateway/_browser.py). The
explorer test keeps its screenshot in ``build/test-artifacts/`` (or
``$RPCX_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.payments.service import DECLINED_CARD
from tests.gateway._browser import Browser, chromium
from tests.gateway._procs import REPO, PaymentsProcess, free_port, payments_process

pytestmark = pytest.mark.slow

HTTP_MD = REPO / "docs" / "http.md"
PROCESS = "/payments.Payments/process_payment"
DOC_URL = "http://127.0.0.1:8080/payments.Payments/process_payment"
SEED_CARD = "4111 1111 1111 1111"
SEED_ARGS: dict[str, Any] = {
    "card": {"card_number": SEED_CARD, "expiry_date": "10/2030", "cvc": "123"},
    "amount": "3.99", "currency": "GBP"}


def artifacts() -> Path:
    return Path(os.environ.get("RPCX_TEST_ARTIFACTS") or REPO / "build" / "test-artifacts")


def js_blocks(heading: str) -> list[str]:
    """The ```js blocks of docs/http.md under ``heading`` (up to the next ## heading)."""
    text = HTTP_MD.read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```js\n(.*?)```", section, flags=re.DOTALL)


def fetch_snippet() -> str:
    return js_blocks("## From a browser (or Node 18+)")[0]


def retry_snippet() -> str:
    [block] = js_blocks("### Safe retries (`Idempotency-Key`)")
    return block


def other_origin(url: str) -> str:
    """The same server under another origin: ``localhost`` for ``127.0.0.1``."""
    assert url.startswith("http://127.0.0.1:"), url
    return url.replace("127.0.0.1", "localhost", 1)


def run_notes_snippet(browser: Browser, url: str, *, card: str = SEED_CARD) -> Any:
    """Run the notes' snippet from docs/http.md with ``success``/``failure`` that report
    what they were given (the promise ``response.json()`` awaited)."""
    snippet = fetch_snippet()
    assert DOC_URL in snippet and SEED_CARD in snippet
    snippet = snippet.replace(DOC_URL, url).replace(SEED_CARD, card)
    return browser.evaluate(
        "new Promise((resolve) => {\n"
        "  const success = async (result) => resolve({success: await result});\n"
        "  const failure = (what) => resolve("
        "{failure: typeof what === 'number' ? what : String(what)});\n"
        f"{snippet}\n}})")


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentsProcess]:
    """The payments server with ``--cors '*'``."""
    with payments_process(tmp_path_factory.mktemp("browser-open"), "--cors", "*") as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with chromium(tmp_path_factory.mktemp("chromium")) as running:
        yield running


def open_page_on(browser: Browser, server: PaymentsProcess, *, other: bool = True) -> None:
    """A page on another origin than the server's URLs (``http://localhost:PORT``), or on
    its own: its ``/openapi.json``, which, unlike the explorer, has no
    Content-Security-Policy (the explorer's lets it call its own origin only)."""
    browser.navigate(f"{other_origin(server.http) if other else server.http}/openapi.json")


@pytest.fixture
def page(browser: Browser, open_server: PaymentsProcess) -> Browser:
    open_page_on(browser, open_server)
    return browser


# ---- the notes' fetch snippet ------------------------------------------------------------

def test_the_notes_snippet_succeeds_from_another_origin(
        page: Browser, open_server: PaymentsProcess) -> None:
    assert page.evaluate("location.origin") != open_server.http  # a CORS call
    out = run_notes_snippet(page, f"{open_server.http}{PROCESS}")
    assert out["success"]["success"] is True, out
    assert re.fullmatch(r"pay_\d{6}", out["success"]["payment_id"]), out


def test_the_notes_snippet_reports_a_declined_card_as_400(
        page: Browser, open_server: PaymentsProcess) -> None:
    assert run_notes_snippet(page, f"{open_server.http}{PROCESS}", card=DECLINED_CARD) == {
        "failure": 400}


def test_a_declined_card_s_json_error_and_rpcx_status_are_readable(
        page: Browser, open_server: PaymentsProcess) -> None:
    args = {**SEED_ARGS, "card": {**SEED_ARGS["card"], "card_number": DECLINED_CARD}}
    out = page.evaluate(f"""
      fetch({json.dumps(open_server.http + PROCESS)}, {{method: 'POST',
            headers: {{'Content-Type': 'application/json'}}, body: {json.dumps(json.dumps(args))}}})
        .then(async (response) => ({{status: response.status, ok: response.ok,
                                     rpcxStatus: response.headers.get('rpcx-status'),
                                     body: await response.json()}}))""")
    assert out == {"status": 400, "ok": False, "rpcxStatus": "FAILED_PRECONDITION",
                   "body": {"code": "FAILED_PRECONDITION",
                            "message": 'payments.CardDeclined {reason: "insufficient funds"}',
                            "details": {}, "error": "payments.CardDeclined",
                            "fields": {"reason": "insufficient funds"}}}


def test_the_notes_snippet_reports_a_network_error(page: Browser) -> None:
    out = run_notes_snippet(page, f"http://127.0.0.1:{free_port()}{PROCESS}")
    assert out == {"failure": "TypeError: Failed to fetch"}


# ---- a retry with an Idempotency-Key -----------------------------------------------------

def test_the_retry_snippet_charges_once_and_a_reused_key_with_another_body_is_422(
        page: Browser, open_server: PaymentsProcess) -> None:
    snippet = retry_snippet()
    assert DOC_URL in snippet
    url = f"{open_server.http}{PROCESS}"
    out = page.evaluate(f"""(async () => {{
      let args = {json.dumps(SEED_ARGS)};
      {snippet.replace(DOC_URL, url)}
      const read = async (response) => ({{status: response.status,
                                          body: await response.text()}});
      const first = await read(await pay());
      const retried = await read(await pay());   // as after a lost response
      const other = await read(await fetch({json.dumps(url)}, {{...request,
          body: JSON.stringify({{...args, amount: '5.00'}})}}));
      const fresh = await read(await fetch({json.dumps(url)}, {{...request,
          headers: {{...request.headers, 'Idempotency-Key': '"' + crypto.randomUUID() + '"'}}}}));
      return {{first, retried, other, fresh}};
    }})()""")
    assert out["first"]["status"] == 200
    assert out["retried"] == out["first"]  # the first answer, status and body
    assert out["other"]["status"] == 422
    assert json.loads(out["other"]["body"])["details"] == {"reason": "idempotency_key_reused"}
    first_id = json.loads(out["first"]["body"])["payment_id"]
    assert json.loads(out["fresh"]["body"])["payment_id"] > first_id  # a new key charges


# ---- CORS --------------------------------------------------------------------------------

def call_from_page(browser: Browser, url: str) -> Any:
    return browser.evaluate(f"""
      fetch({json.dumps(url)}, {{method: 'POST', body: {json.dumps(json.dumps(SEED_ARGS))},
            headers: {{'Content-Type': 'application/json', 'rpcx-timeout': '5'}}}})
        .then((response) => response.status, (error) => String(error))""")


def test_cors_lets_only_allowed_origins_call(browser: Browser, open_server: PaymentsProcess,
                                             tmp_path: Path) -> None:
    with payments_process(tmp_path, "--cors", "https://shop.example") as listed:
        # a page on http://localhost:PORT calling http://127.0.0.1:PORT: another origin
        open_page_on(browser, listed)
        assert call_from_page(browser, f"{listed.http}{PROCESS}") == \
            "TypeError: Failed to fetch"  # the browser blocked it: origin not listed
        assert call_from_page(browser, f"{open_server.http}{PROCESS}") == 200  # '*'
        # the same call from the server's own origin needs no CORS
        open_page_on(browser, listed, other=False)
        assert call_from_page(browser, f"{listed.http}{PROCESS}") == 200


# ---- the explorer ------------------------------------------------------------------------

def test_the_explorer_makes_a_call_by_clicking_and_shows_status_body_and_timing(
        browser: Browser, open_server: PaymentsProcess) -> None:
    browser.navigate(f"{open_server.http}/explorer")
    listed = browser.evaluate(
        "Array.from(document.querySelectorAll('nav button'), (b) => b.dataset.path)")
    assert "payments.Payments/process_payment" in listed
    assert "rpcx.reflection.Reflection/describe" in listed
    browser.click("nav button[data-path='payments.Payments/process_payment']")
    browser.wait_for("location.hash === '#payments.Payments/process_payment'")
    prefilled = json.loads(browser.wait_for("document.getElementById('args')?.value"))
    assert prefilled["currency"] == "GBP" and set(prefilled["card"]) >= {"card_number", "cvc"}
    assert browser.evaluate("document.querySelector('section .doc').textContent").startswith(
        "Charges a card.")
    # edit the arguments as a user would (focus, select all, type), then click Send
    browser.click("#args")
    browser.evaluate("document.getElementById('args').select()")
    browser.send("Input.insertText", {"text": json.dumps(SEED_ARGS, indent=2)})
    browser.click("#send")
    browser.wait_for("document.body.dataset.calls === '1'")
    shown = browser.evaluate("""({
        status: document.getElementById('status').textContent,
        rpcx: document.getElementById('rpcx-status').textContent,
        timing: document.getElementById('timing').textContent,
        body: document.getElementById('body').textContent})""")
    assert shown["status"] == "200 OK" and shown["rpcx"] == "OK", shown
    assert re.fullmatch(r"[\d.]+ ms \(first byte [\d.]+ ms\)", shown["timing"]), shown
    assert json.loads(shown["body"])["payment_id"].startswith("pay_"), shown
    png = browser.screenshot(artifacts() / "explorer.png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000

    # a declined card: the status and the JSON error are shown too
    browser.evaluate(f"""(() => {{ const e = document.getElementById('args');
        e.value = {json.dumps(json.dumps({**SEED_ARGS, "card": {
            **SEED_ARGS["card"], "card_number": DECLINED_CARD}}))};
        e.dispatchEvent(new Event('input')); }})()""")
    browser.click("#send")
    browser.wait_for("document.body.dataset.calls === '2'")
    assert browser.evaluate("document.getElementById('status').textContent") == \
        "400 Bad Request"
    assert json.loads(browser.evaluate("document.getElementById('body').textContent"))[
        "error"] == "payments.CardDeclined"
    browser.screenshot(artifacts() / "explorer-declined.png")


def test_the_explorer_refuses_to_send_json_that_does_not_parse(
        browser: Browser, open_server: PaymentsProcess) -> None:
    browser.navigate(f"{open_server.http}/explorer#payments.Payments/get_payment")
    browser.wait_for("!!document.getElementById('args')")
    browser.evaluate("""(() => { const e = document.getElementById('args');
        e.value = '{"payment_id": '; e.dispatchEvent(new Event('input')); })()""")
    assert browser.evaluate("document.getElementById('send').disabled") is True
    assert browser.evaluate("document.getElementById('args-error').textContent") != ""


def test_the_explorer_sends_an_idempotency_key_and_a_resend_gets_the_first_answer(
        browser: Browser, open_server: PaymentsProcess) -> None:
    browser.navigate(f"{open_server.http}/explorer#payments.Payments/process_payment")
    browser.wait_for("!!document.getElementById('args')")
    browser.evaluate(f"""(() => {{ const e = document.getElementById('args');
        e.value = {json.dumps(json.dumps(SEED_ARGS))};
        e.dispatchEvent(new Event('input')); }})()""")
    browser.click("#new-key")
    key = browser.evaluate("document.getElementById('idempotency-key').value")
    assert re.fullmatch(r"[0-9a-f-]{36}", key), key
    bodies = []
    for count in ("1", "2"):
        browser.click("#send")
        browser.wait_for(f"document.body.dataset.calls === '{count}'")
        assert browser.evaluate("document.getElementById('status').textContent") == "200 OK"
        bodies.append(json.loads(browser.evaluate(
            "document.getElementById('body').textContent")))
    assert bodies[0] == bodies[1] and bodies[0]["payment_id"].startswith("pay_")


# ---- server streaming --------------------------------------------------------------------

WATCH_DOC_URL = "http://127.0.0.1:8080/payments.Payments/watch"


def watch_snippet() -> str:
    [block] = js_blocks("## Streaming")
    return block


def test_the_watch_snippet_reads_a_stream_through_fetch_as_it_happens(
        page: Browser, open_server: PaymentsProcess) -> None:
    """docs/http.md's watch() from another origin: the history first, then a payment made
    while the stream is open arrives on it, then the page aborts the fetch."""
    snippet = watch_snippet()
    assert WATCH_DOC_URL in snippet
    watch_url = f"{open_server.http}/payments.Payments/watch"
    out = page.evaluate(f"""(async () => {{
      {snippet.replace(WATCH_DOC_URL, watch_url)}
      const events = [];
      let wake = null;
      const controller = new AbortController();
      const watching = watch(1, (event) => {{ events.push(event); if (wake) wake(); }},
                             controller.signal).catch((error) => error.name);
      const paid = await (await fetch({json.dumps(open_server.http + PROCESS)}, {{
        method: 'POST', headers: {{'Content-Type': 'application/json'}},
        body: {json.dumps(json.dumps(SEED_ARGS))}}})).json();
      await new Promise((resolve) => {{
        wake = () => {{ if (events.some((e) => e.payment_id === paid.payment_id)) resolve(); }};
        wake();
      }});
      controller.abort();
      return {{events, paid, ended: await watching}};
    }})()""")
    events, paid = out["events"], out["paid"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # in order, all
    last = events[-1]
    assert (last["kind"], last["payment_id"], last["amount"], last["currency"]) == (
        "charged", paid["payment_id"], "3.99", "GBP")
    assert out["ended"] == "AbortError"


def test_the_explorer_shows_a_stream_line_by_line_and_stops_it(
        browser: Browser, open_server: PaymentsProcess) -> None:
    browser.navigate(f"{open_server.http}/explorer#payments.Payments/watch")
    browser.wait_for("!!document.getElementById('args')")
    tags = browser.evaluate("document.querySelector('.tags').textContent")
    assert "server streaming" in tags and "@readonly" in tags
    assert "stream payments.PaymentEvent" in browser.evaluate(
        "document.getElementById('method').textContent")
    browser.click("#send")
    browser.wait_for("document.getElementById('status').textContent === '200 OK'")
    before = int(browser.wait_for(
        "document.getElementById('messages').textContent.split(' ')[0]"))
    paid = browser.evaluate(f"""fetch({json.dumps(PROCESS)}, {{method: 'POST',
        headers: {{'Content-Type': 'application/json'}},
        body: {json.dumps(json.dumps(SEED_ARGS))}}}).then((r) => r.json())""")
    browser.wait_for(f"document.getElementById('body').textContent.includes("
                     f"{json.dumps(paid['payment_id'])})")
    after = int(browser.evaluate(
        "document.getElementById('messages').textContent.split(' ')[0]"))
    assert after == before + 1
    lines = browser.evaluate("document.getElementById('body').textContent").splitlines()
    assert json.loads(lines[-1])["message"]["payment_id"] == paid["payment_id"]
    assert browser.evaluate("document.getElementById('stop').disabled") is False
    browser.screenshot(artifacts() / "explorer-watch.png")
    browser.click("#stop")
    browser.wait_for("document.getElementById('stop').disabled === true")
    assert browser.evaluate("document.getElementById('status').textContent") == \
        "200 OK · stopped"
