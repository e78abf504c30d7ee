"""The causal chat demo.

    python -m examples.chat

Three members (alice, bob, carol) join a group with causal order over loopback TCP in
this process. Each posts questions; whoever *sees* a question answers it. Causal order
(deliveries-based: a message depends on everything its sender had delivered before
sending it) means that at every member each answer appears after its question, even
though the answer and the question come from different senders over different links.
The demo prints every member's transcript and checks that property, and the full causal
checker, on each member's log.
"""

from __future__ import annotations

import json
import sys

import trio

import rpcx_broadcast
from rpcx.testing import free_ports
from rpcx_broadcast import CAUSAL, Event, History

NAMES = ("alice", "bob", "carol")
QUESTIONS = {"alice": ["anyone up for lunch?", "what time is the demo?"],
             "bob": ["who broke the build?", "coffee?"],
             "carol": ["is the wiki down?", "who has the projector?"]}
TOTAL = sum(len(q) for q in QUESTIONS.values()) * len(NAMES)  # each question: itself + 2 replies


async def member(me: str, members: dict[str, str], transcripts: dict[str, list[dict[str, str]]],
                 logs: dict[str, list[Event]], all_done: trio.Event, finished: list[str]
                 ) -> None:
    log = logs.setdefault(me, [])

    def journal(kind: str, origin: str, seq: int, payload: bytes) -> None:
        log.append(Event(kind, origin, seq, payload))

    async with rpcx_broadcast.open_group(me, members, CAUSAL, journal=journal) as group:
        async with trio.open_nursery() as nursery:
            async def ask() -> None:
                for k, text in enumerate(QUESTIONS[me]):
                    await group.broadcast(json.dumps(
                        {"id": f"{me}-q{k}", "from": me, "text": text}).encode())
                    await trio.sleep(0.02)

            nursery.start_soon(ask)
            seen = 0
            async for delivery in group.deliveries:
                post = json.loads(delivery.payload)
                transcripts.setdefault(me, []).append(post)
                seen += 1
                if "re" not in post and post["from"] != me:
                    await group.broadcast(json.dumps(
                        {"id": f"{me}-re-{post['id']}", "from": me, "re": post["id"],
                         "text": f"@{post['from']} answering {post['text']!r}"}).encode())
                if seen == TOTAL:
                    break
            finished.append(me)
            if len(finished) == len(NAMES):
                all_done.set()
            await all_done.wait()  # stay in the group until everyone has everything
            nursery.cancel_scope.cancel()


async def demo() -> int:
    members = {n: f"tcp://127.0.0.1:{p}" for n, p in zip(NAMES, free_ports(3), strict=True)}
    print("alice, bob and carol join a causal-order group over TCP; each asks two "
          "questions, and everyone answers what they see.\n")
    transcripts: dict[str, list[dict[str, str]]] = {}
    logs: dict[str, list[Event]] = {}
    all_done = trio.Event()
    finished: list[str] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for name in NAMES:
                nursery.start_soon(member, name, members, transcripts, logs, all_done,
                                   finished)
    ok = True
    for name in NAMES:
        print(f"--- {name}'s screen ---")
        shown: set[str] = set()
        for post in transcripts[name]:
            answers = post.get("re")
            marker = ""
            if answers is not None:
                if answers in shown:
                    marker = "   (after its question: ok)"
                else:
                    marker = "   REPLY BEFORE ITS QUESTION"
                    ok = False
            shown.add(post["id"])
            print(f"  {post['from']:>5}: {post['text']}{marker}")
    violation = rpcx_broadcast.check(History.build(logs), "causal")
    print(f"\nEvery reply appeared after the message it answers, at every member: "
          f"{'yes' if ok else 'NO'}")
    print(f"Causal checker on the three logs: {violation or 'passed'}")
    return 0 if ok and violation is None else 1


def main() -> int:
    return trio.run(demo)


if __name__ == "__main__":
    sys.exit(main())
