"""The payments server process.

    python -m examples.payments.server tcp://127.0.0.1:7000

Prints ``listening on URL`` once it accepts connections, logs each charge, and shuts down
gracefully (in-flight calls finish) on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import trio

import rpcx
from examples.payments.service import Payments


async def run(address: str, token: str | None) -> None:
    interceptors: list[rpcx.ServerInterceptor] = [rpcx.LoggingInterceptor()]
    if token:
        interceptors.insert(0, rpcx.TokenAuth(accept={token}))
    async with trio.open_nursery() as nursery:
        server: rpcx.Server = await nursery.start(
            lambda task_status: rpcx.serve(address, [Payments()], interceptors=interceptors,
                                           grace_period=5.0, task_status=task_status))
        print(f"listening on {server.addresses[0]}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                print("  [server] shutting down: finishing calls in flight", flush=True)
                server.shutdown()
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve payments.Payments.")
    parser.add_argument("address", nargs="?", default="tcp://127.0.0.1:7000",
                        help="where to listen (tcp://HOST:PORT, unix:///PATH)")
    parser.add_argument("--token", help="require this bearer token from callers")
    parser.add_argument("--quiet", action="store_true", help="log only warnings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="  [server] %(message)s", stream=sys.stdout)
    logging.getLogger("rpcx.calls").setLevel(logging.ERROR)
    trio.run(run, args.address, args.token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
