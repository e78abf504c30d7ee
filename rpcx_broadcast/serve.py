"""Run one replica of a replicated service as a process of its own::

    python -m rpcx_broadcast.serve examples.kvstore.store:KvStore --name r1 \\
        --members r1=tcp://10.0.0.1:7000,r2=tcp://10.0.0.2:7000,r3=tcp://10.0.0.3:7000 \\
        --dir /var/lib/kvstore

``MODULE:FACTORY`` names the service implementation (a class of a generated service base,
or any callable without arguments that returns one). The process serves it with
:func:`rpcx_broadcast.serve_replicated` on its own address (``--members``' entry for
``--name``), keeping its log and snapshots in ``--dir`` (fsynced: a replica killed with
SIGKILL and started again with the same arguments catches up from there; without
``--dir`` it keeps them in memory). It prints ``ready`` once it serves and runs until
SIGINT or SIGTERM, which stop it gracefully. docs/replication.md has the tutorial.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Callable, Sequence

import trio

from rpcx_broadcast.replicated_service import serve_replicated
from rpcx_broadcast.storage import FileStorage

__all__ = ["load_factory", "main", "parse_members"]


def parse_members(text: str) -> dict[str, str]:
    """``"a=tcp://h:1,b=tcp://h:2"`` → ``{"a": "tcp://h:1", "b": "tcp://h:2"}``."""
    members: dict[str, str] = {}
    for part in text.split(","):
        name, sep, address = part.strip().partition("=")
        if not sep or not name or not address:
            raise ValueError(f"members: expected name=address, got {part.strip()!r} "
                             f"(write them as r1=tcp://host:port,r2=...)")
        if name in members:
            raise ValueError(f"members: {name!r} is named twice")
        members[name] = address
    return members


def load_factory(spec: str) -> Callable[[], object]:
    """``"package.module:Name"`` → the object ``Name`` of that module (it must be callable)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"service: expected MODULE:FACTORY, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"service: cannot import {module_name!r}: {error}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"service: {module_name!r} has no callable {attribute!r}")
    return factory  # type: ignore[no-any-return]


async def _serve(args: argparse.Namespace, service: object, members: dict[str, str]) -> None:
    storage = FileStorage(args.dir) if args.dir else None
    async with serve_replicated(args.name, members, service, storage=storage,
                                election_timeout=args.election_timeout,
                                snapshot_every=args.snapshot_every or None):
        print("ready", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rpcx_broadcast.serve",
        description="Run one replica of a replicated rpcx service.")
    parser.add_argument("service", metavar="MODULE:FACTORY",
                        help="the service implementation, e.g. examples.kvstore.store:KvStore")
    parser.add_argument("--name", required=True, help="this replica's name in --members")
    parser.add_argument("--members", required=True, metavar="NAME=ADDRESS,...",
                        help="every replica's name and rpcx address")
    parser.add_argument("--dir", help="where the log and snapshots are kept (default: memory)")
    parser.add_argument("--election-timeout", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--snapshot-every", type=int, default=10_000, metavar="ENTRIES",
                        help="log entries between snapshots (0: never)")
    args = parser.parse_args(argv)
    try:
        members = parse_members(args.members)
        if args.name not in members:
            raise ValueError(f"--name {args.name!r} is not one of --members "
                             f"({', '.join(members)})")
        service = load_factory(args.service)()
    except ValueError as error:
        parser.error(str(error))
    trio.run(_serve, args, service, members)
    return 0


if __name__ == "__main__":
    sys.exit(main())
