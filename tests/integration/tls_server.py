"""The payments service over TLS, for the integration tests.

    python -m tests.integration.tls_server tls://127.0.0.1:0 --cert CHAIN.pem [--client-ca CA.pem]

``--cert`` is a PEM file with the private key and the certificate chain (trustme writes
one); ``--client-ca`` turns on mutual TLS: clients must present a certificate signed by
that CA. Prints ``listening on URL`` like ``examples.payments.server``, logs the same
way, and shuts down gracefully on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys

import trio

import rpcx
from examples.payments.service import Payments


def server_context(cert: str, client_ca: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


async def run(address: str, context: ssl.SSLContext) -> None:
    async with trio.open_nursery() as nursery:
        server: rpcx.Server = await nursery.start(
            lambda task_status: rpcx.serve(
                address, [Payments()], transport=rpcx.TlsTransport(context),
                interceptors=[rpcx.LoggingInterceptor()], grace_period=5.0,
                task_status=task_status))
        print(f"listening on {server.addresses[0]}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                server.shutdown()
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve payments.Payments over TLS.")
    parser.add_argument("address")
    parser.add_argument("--cert", required=True, help="PEM file: private key and chain")
    parser.add_argument("--client-ca", help="require client certificates signed by this CA")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="  [server] %(message)s",
                        stream=sys.stdout)
    logging.getLogger("rpcx.calls").setLevel(logging.ERROR)
    trio.run(run, args.address, server_context(args.cert, args.client_ca))
    return 0


if __name__ == "__main__":
    sys.exit(main())
