"""Headless Chromium for the browser tests, driven over the DevTools protocol on a pipe.

``chromium --remote-debugging-pipe`` reads DevTools commands on its fd 3 and writes
answers and events on its fd 4, each a JSON text ending in a NUL byte: no websocket and no
package beyond Debian's ``chromium`` (``.ci/run`` installs it when it is missing). A test
that cannot have a browser is skipped and says why; with ``RPCX_REQUIRE_BROWSER=1`` (set by
``.ci/run`` once Chromium is installed) it fails instead, so CI cannot skip silently.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 20.0


def find_chromium() -> str | None:
    given = os.environ.get("RPCX_CHROMIUM")
    if given:
        return given
    for name in CANDIDATES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def unavailable(reason: str) -> None:
    """Skip the test with ``reason``, or fail it when a browser is required."""
    if os.environ.get("RPCX_REQUIRE_BROWSER") == "1":
        pytest.fail(f"RPCX_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


class BrowserError(Exception):
    """Chromium answered a command with an error, or a page's script threw."""


class Browser:
    """One Chromium process and one page (tab) in it, attached with a flat session."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log
        assert process.stdin is not None and process.stdout is not None
        self._in = process.stdin
        self._out = process.stdout
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._out, selectors.EVENT_READ)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""

    def close(self) -> None:
        self._selector.close()
        for pipe in (self._in, self._out):
            with suppress(OSError):
                pipe.close()

    # -- the protocol ---------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._out.fileno(), 1 << 16)
            if not chunk:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise BrowserError(f"chromium exited:\n{tail}")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        out: dict[str, Any] = json.loads(message)
        return out

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             session: bool = True, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        """Run a DevTools command (in the page's session unless ``session`` is false) and
        return its result; events that arrive meanwhile are kept in :attr:`events`."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session and self.session:
            command["sessionId"] = self.session
        try:
            self._in.write(json.dumps(command).encode() + b"\0")
            self._in.flush()
        except OSError as exc:  # it exited (or never started)
            tail = self.log.read_text(errors="replace")[-3000:]
            raise BrowserError(f"chromium is gone ({exc}):\n{tail}") from None
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)

    def wait_event(self, method: str, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        """The first kept event named ``method`` (taken out), waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event["method"] == method:
                    del self.events[i]
                    return event
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append(message)

    # -- what tests use -------------------------------------------------------------------

    def open_page(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def navigate(self, url: str) -> None:
        """Load ``url`` afresh (by way of about:blank: a change of fragment alone would
        not load the page again) and wait for its load event."""
        for target in ("about:blank", url):
            self.events.clear()
            result = self.send("Page.navigate", {"url": target})
            if result.get("errorText"):
                raise BrowserError(f"navigating to {target}: {result['errorText']}")
            self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str, timeout: float = COMMAND_TIMEOUT) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
            "userGesture": True}, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"script threw: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Evaluate ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} s: {expression}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) in the middle of the element."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()")
        if box is None:
            raise BrowserError(f"nothing matches {selector}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"],
                                                   "button": "left", "clickCount": 1})

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data


@contextmanager
def chromium(directory: Path) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile in ``directory``, one page open; skipped
    (see :func:`unavailable`) when there is no Chromium or it does not start."""
    exe = find_chromium()
    if exe is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium; "
                    ".ci/run installs it)")
    assert exe is not None
    log = directory / "chromium.log"
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--mute-audio",
            "--disable-features=Translate,MediaRouter,OptimizationHints",
            "--window-size=1280,900", f"--user-data-dir={directory / 'profile'}",
            "--remote-debugging-pipe", "about:blank"]
    # The shell gives Chromium our pipes as its fds 3 (commands) and 4 (answers).
    script = 'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2'
    with open(log, "wb") as err:
        try:
            process = subprocess.Popen(["sh", "-c", script, *args], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=err)
        except OSError as exc:
            unavailable(f"Chromium ({exe}) could not be started: {exc}")
            raise
    browser = Browser(process, log)
    try:
        try:
            browser.send("Browser.getVersion", session=False, timeout=START_TIMEOUT)
            browser.open_page()
        except (TimeoutError, BrowserError) as exc:
            unavailable(f"Chromium ({exe}) did not start: {exc}; its log:\n"
                        f"{log.read_text(errors='replace')[-2000:]}")
        yield browser
    finally:
        with suppress(TimeoutError, BrowserError, OSError):
            browser.send("Browser.close", session=False, timeout=5)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        browser.close()
