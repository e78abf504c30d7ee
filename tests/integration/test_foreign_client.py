"""A client in another language, written from the documents alone, against the real server.

``foreign_client.mjs`` is a Node.js client written only from ``docs/protocol.md``,
``docs/marshalling.md`` and ``idl/payments.rpcx`` (its own CBOR encoder and decoder, no
rpcx code). It makes its calls on one TCP connection to an ``examples.payments.server``
child process and prints one JSON line per step; these tests check each line and the
server's log. If they fail after a protocol change, the documents (or the server) no
longer say what the server does.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from tests.integration._procs import (
    REPO,
    SharedServer,
    payments_server,
    shared_server_process,
)

NODE = shutil.which("node")
CLIENT = REPO / "tests" / "integration" / "foreign_client.mjs"
CANCELLED_LOG = "payment for 'slow bank' cancelled before charging"

pytestmark = pytest.mark.skipif(NODE is None, reason="node (Node.js) is not installed: "
                                "the foreign client is JavaScript")


@attrs.frozen
class Run:
    """One run of the foreign client: its steps by name, and the server it talked to."""

    steps: dict[str, dict[str, Any]]
    server: SharedServer
    stderr: str

    def __getitem__(self, step: str) -> dict[str, Any]:
        assert step in self.steps, f"the client printed no {step!r} line\n{self.explain()}"
        return self.steps[step]

    def explain(self) -> str:
        lines = "\n".join(json.dumps(line) for line in self.steps.values())
        return f"--- client ---\n{lines}\n{self.stderr}\n{self.server.logs.describe()}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    assert NODE is not None
    directory = tmp_path_factory.mktemp("foreign")
    with shared_server_process(payments_server("tcp://127.0.0.1:0"), directory) as server:
        match = re.fullmatch(r"tcp://(.+):(\d+)", server.url)
        assert match is not None, server.url
        done = subprocess.run([NODE, str(CLIENT), match[1], match[2]], cwd=REPO,
                              capture_output=True, timeout=60, check=False)
        stdout, stderr = done.stdout.decode(), done.stderr.decode()
        steps: dict[str, dict[str, Any]] = {}
        for text in stdout.splitlines():
            line = json.loads(text)
            assert isinstance(line, dict)
            steps[line["step"]] = line
        result = Run(steps, server, stderr)
        assert done.returncode == 0, f"client exited with {done.returncode}\n{result.explain()}"
        yield result


def test_prefaces_are_exchanged(run: Run) -> None:
    assert run["preface"]["ok"] is True
    assert run.stderr == "", run.explain()


def test_process_payment_charges_the_card_once(run: Run) -> None:
    """Struct, decimal (tag 4), enum and string arguments arrive as sent: the server logs
    the amount and currency it decoded."""
    line = run["process_payment"]
    assert line["ok"] is True, run.explain()
    assert line["call_id"] == 1
    payment_id = line["result"]["payment_id"]
    assert line["result"]["success"] is True
    assert re.fullmatch(r"pay_\d{6}", payment_id), run.explain()
    assert run.server.logs.count(f"charged card ending 1111: 3.99 GBP ({payment_id})") == 1, (
        run.explain())


def test_a_retry_with_the_same_idempotency_key_is_not_charged_again(run: Run) -> None:
    first, retry = run["process_payment"], run["process_payment_retry"]
    assert retry["ok"] is True, run.explain()
    assert retry["result"] == first["result"]
    # the only charge of the whole run: the retry, the declined card and the cancelled
    # payments did not charge
    assert run.server.logs.count("charged card ending") == 1, run.explain()


def test_declined_card_is_the_declared_error_with_its_fields(run: Run) -> None:
    line = run["process_payment_declined"]
    assert line["ok"] is False
    assert line["error_name"] == "payments.CardDeclined", run.explain()
    assert line["status_name"] == "FAILED_PRECONDITION"  # a declaration's default status
    assert line["error"] == {"reason": "insufficient funds"}
    assert run.server.logs.count("charged card ending 0002") == 0


def test_get_payment_finds_the_payment(run: Run) -> None:
    line = run["get_payment"]
    assert line["ok"] is True, run.explain()
    assert line["result"] == {"success": True,
                              "payment_id": run["process_payment"]["result"]["payment_id"]}


def test_unknown_method_is_unimplemented(run: Run) -> None:
    line = run["unknown_method"]
    assert line["ok"] is False
    assert (line["status"], line["status_name"]) == (12, "UNIMPLEMENTED"), run.explain()
    assert line["error_name"] is None
    assert "payments.Payments/refund" in line["message"]


def test_pipelined_calls_are_both_answered_and_matched_by_call_id(run: Run) -> None:
    found, missing = run["pipelined_found"], run["pipelined_missing"]
    # both REQUESTs were out before the first reply came back
    assert found["open_at_first_reply"] == 2, run.explain()
    assert missing["call_id"] == found["call_id"] + 1
    assert found["ok"] is True
    assert found["result"]["payment_id"] == run["process_payment"]["result"]["payment_id"]
    assert missing["ok"] is False
    assert missing["error_name"] == "payments.NotFound", run.explain()
    assert (missing["status"], missing["status_name"]) == (5, "NOT_FOUND")  # @status(NOT_FOUND)
    assert missing["error"] == {"payment_id": "pay_does_not_exist"}


def test_ping_is_answered_with_a_pong(run: Run) -> None:
    assert run["ping"] == {"step": "ping", "ok": True, "ping_id": 1}


def test_cancel_stops_the_handler_and_the_server_sends_nothing_for_the_call(run: Run) -> None:
    line = run["cancelled"]
    assert line["status_name"] == "CANCELLED", run.explain()
    assert run.server.logs.count(CANCELLED_LOG) >= 1, run.explain()
    assert run["close"]["late_frames"] == 0, run.explain()


def test_the_server_answers_deadline_exceeded_when_its_deadline_passes(run: Run) -> None:
    line = run["server_deadline"]
    assert line["status_name"] == "DEADLINE_EXCEEDED", run.explain()
    assert line["message"] == "deadline exceeded on the server", run.explain()
    assert line["elapsed_ms"] < 1000


def test_the_server_enforces_the_deadline_it_was_sent(run: Run) -> None:
    """Beyond the ERROR above: timeout_ms travelled and stopped the handler.
    The client waits 4 s, the slow bank takes 3 s: only the server's deadline (300 ms) can
    have cancelled this payment before it was charged."""
    assert run["server_deadline"]["status_name"] == "DEADLINE_EXCEEDED"
    assert run.server.logs.count(CANCELLED_LOG) == 2, run.explain()  # this one and § 8's
    assert run.server.logs.count("charged card ending") == 1, run.explain()


def test_graceful_close_finishes_the_open_call_then_the_stream_closes(run: Run) -> None:
    line = run["get_payment_during_goaway"]
    assert line["ok"] is True, run.explain()
    assert line["result"]["payment_id"] == run["process_payment"]["result"]["payment_id"]
    close = run["close"]
    assert close["ok"] is True, run.explain()
    assert close["reason"] == "connection closed by the server"


def test_watch_streams_the_history_then_a_new_event_live_then_is_cancelled(run: Run) -> None:
    """Server streaming from protocol.md § 18 alone: MESSAGE frames before the call's end,
    a live item, and a CANCEL from the client."""
    line = run["watch"]
    items = line["items"]
    assert [(i["seq"], i["kind"]) for i in items] == [
        (1, "charged"), (2, "declined"), (3, "declined")], run.explain()
    assert items[0]["amount"] == "3.99" and items[0]["currency"] == 1
    assert items[0]["payment_id"] == run["process_payment"]["result"]["payment_id"]
    assert items[2]["reason"] == "insufficient funds"
    assert line["status_name"] == "CANCELLED"


def test_a_watch_that_gives_no_credit_back_holds_the_server_at_its_window(run: Run) -> None:
    line = run["watch_flow_control"]
    # the server stopped within its window (§ 18.2): the client would have broken the
    # connection on a MESSAGE without credit, and it did not
    assert line["held_bytes"] <= 65536 + line["biggest_item"], run.explain()
    assert 0 < line["held_items"] < line["expected_items"], run.explain()
    # once credit came back, everything else arrived, in order
    assert line["total_items"] == line["expected_items"]
    assert line["in_order"] is True
    assert line["windows_sent"] >= 1


def test_the_deadline_covers_the_stream_and_ends_it_after_its_items(run: Run) -> None:
    line = run["watch_deadline"]
    assert line["items"] == [run["watch_flow_control"]["expected_items"]], run.explain()
    assert line["status_name"] == "DEADLINE_EXCEEDED"
    assert line["message"] == "deadline exceeded on the server"
