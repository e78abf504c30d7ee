"""The payments server process.

    python -m examples.payments.server tcp://127.0.0.1:7000 --http tcp://127.0.0.1:8080

Prints ``listening on URL`` once it accepts connections (and, with ``--http``, ``http on
URL`` on the next line once the HTTP/JSON face listens too), logs each charge, and shuts
down gracefully (in-flight calls finish) on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import trio

import rpcx
from examples.payments.service import Payments
from rpcx.gateway import HttpServer, serve_http


async def run(address: str, token: str | None, http: str | None = None,
              cors: tuple[str, ...] = ()) -> None:
    interceptors: list[rpcx.ServerInterceptor] = [rpcx.LoggingInterceptor()]
    if token:
        interceptors.insert(0, rpcx.TokenAuth(accept={token}))
    async with trio.open_nursery() as nursery:
        server: rpcx.Server = await nursery.start(
            lambda task_status: rpcx.serve(address, [Payments()], interceptors=interceptors,
                                           grace_period=5.0, task_status=task_status))
        print(f"listening on {server.addresses[0]}", flush=True)
        gateway: HttpServer | None = None
        if http is not None:
            # The same dispatcher: same handlers, interceptors, deadlines and reflection.
            gateway = await nursery.start(
                lambda task_status: serve_http(http, server.dispatcher, cors_origins=cors,
                                               title="payments", task_status=task_status))
            print(f"http on {gateway.addresses[0]}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                print("  [server] shutting down: finishing calls in flight", flush=True)
                server.shutdown()
                if gateway is not None:
                    gateway.shutdown()
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve payments.Payments.")
    parser.add_argument("address", nargs="?", default="tcp://127.0.0.1:7000",
                        help="where to listen (tcp://HOST:PORT, unix:///PATH)")
    parser.add_argument("--token", help="require this bearer token from callers")
    parser.add_argument("--http", metavar="ADDRESS",
                        help="also serve HTTP/JSON on ADDRESS (tcp://HOST:PORT)")
    parser.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                        help="with --http: let browsers on ORIGIN call (\"*\" for any); "
                             "may be repeated")
    parser.add_argument("--quiet", action="store_true", help="log only warnings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="  [server] %(message)s", stream=sys.stdout)
    logging.getLogger("rpcx.calls").setLevel(logging.ERROR)
    trio.run(run, args.address, args.token, args.http, tuple(args.cors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
