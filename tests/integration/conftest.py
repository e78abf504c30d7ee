"""Server processes shared by a module's tests, one per transport, started on first use.

Each is a real ``examples.payments.server`` (or, for TLS, ``tests.integration.tls_server``)
child process; the tests talk to it through ``rpcx.open_channel`` from the test process.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trustme

import rpcx
from tests.integration._procs import (
    SharedServer,
    payments_server,
    python,
    shared_server_process,
)


@attrs.frozen
class TlsMaterial:
    ca: trustme.CA
    server_chain: str
    """PEM file: the server's private key and certificate chain (for 127.0.0.1)."""
    ca_file: str
    client_cert: trustme.LeafCert


@attrs.frozen
class Target:
    """A running server and how a client reaches it."""

    kind: str
    server: SharedServer
    tls: TlsMaterial | None = None
    client_cert: bool = False

    def client_context(self, *, trust: bool = True, cert: bool | None = None) -> ssl.SSLContext:
        assert self.tls is not None
        context = ssl.create_default_context()
        if trust:
            self.tls.ca.configure_trust(context)
        if self.client_cert if cert is None else cert:
            self.tls.client_cert.configure_cert(context)
        return context

    def transport(self) -> rpcx.Transport | None:
        return None if self.tls is None else rpcx.TlsTransport(self.client_context())

    @asynccontextmanager
    async def channel(self, **options: Any) -> AsyncIterator[rpcx.Channel]:
        options.setdefault("transport", self.transport())
        async with rpcx.open_channel(self.server.url, **options) as channel:
            yield channel


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    chain = directory / "server.pem"
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TlsMaterial(ca, str(chain), str(ca_file), ca.issue_cert("client@payments.test"))


@pytest.fixture(scope="module")
def tcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    directory = tmp_path_factory.mktemp("tcp")
    with shared_server_process(payments_server("tcp://127.0.0.1:0"), directory) as server:
        yield Target("tcp", server)


@pytest.fixture(scope="module")
def unix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    directory = tmp_path_factory.mktemp("unix")
    address = f"unix://{directory / 'payments.sock'}"
    with shared_server_process(payments_server(address), directory) as server:
        yield Target("unix", server)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory,
               tls_material: TlsMaterial) -> Iterator[Target]:
    directory = tmp_path_factory.mktemp("tls-server")
    argv = python("-m", "tests.integration.tls_server", "tls://127.0.0.1:0",
                  "--cert", tls_material.server_chain)
    with shared_server_process(argv, directory) as server:
        yield Target("tls", server, tls_material)


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory,
                tls_material: TlsMaterial) -> Iterator[Target]:
    directory = tmp_path_factory.mktemp("mtls-server")
    argv = python("-m", "tests.integration.tls_server", "tls://127.0.0.1:0",
                  "--cert", tls_material.server_chain, "--client-ca", tls_material.ca_file)
    with shared_server_process(argv, directory) as server:
        yield Target("mtls", server, tls_material, client_cert=True)


@pytest.fixture(params=["tcp", "unix", "tls", "mtls"])
def target(request: pytest.FixtureRequest) -> Target:
    """Each transport's shared server in turn."""
    result = request.getfixturevalue(f"{request.param}_server")
    assert isinstance(result, Target)
    return result
