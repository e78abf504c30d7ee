"""One replica of the key-value store, as a process of its own:

    python -m examples.kvstore.replica r1 r1=tcp://127.0.0.1:7001,r2=...,r3=... DIR

Serves ``kvstore.KvStore`` on its own address, replicated with the others
(``rpcx_broadcast.serve_replicated``), keeping its log in ``DIR`` (fsynced: a replica
killed with SIGKILL and started again with the same arguments catches up from there).
Prints ``ready`` once serving; runs until killed (SIGINT/SIGTERM stop it gracefully).
"""

from __future__ import annotations

import contextlib
import sys

import trio

import rpcx_broadcast
from examples.kvstore.store import KvStore


def parse_members(text: str) -> dict[str, str]:
    members = dict(part.split("=", 1) for part in text.split(","))
    if not members:
        raise SystemExit("members: name=address,name=address,...")
    return members


async def serve(name: str, members: dict[str, str], directory: str,
                election_timeout: float = 1.0) -> None:
    store = KvStore(name)
    async with rpcx_broadcast.serve_replicated(
            name, members, store, storage=rpcx_broadcast.FileStorage(directory),
            election_timeout=election_timeout, snapshot_every=5_000) as replica:
        store.leader = lambda: replica.group.coordinator or ""
        print("ready", flush=True)
        await trio.sleep_forever()


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    name, members, directory = argv[0], parse_members(argv[1]), argv[2]
    timeout = float(argv[3]) if len(argv) == 4 else 1.0
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, name, members, directory, timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
