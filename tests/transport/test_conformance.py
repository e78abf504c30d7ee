"""Every transport passes the same conformance checks (rpcx.testing.checks)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio
import trustme

from rpcx.testing.checks import check_transport
from rpcx.transport import (
    LinkFaults,
    MemoryTransport,
    SimNetwork,
    TcpTransport,
    TlsTransport,
    UnixTransport,
    connect,
    parse_address,
    transport_for,
)


async def test_tcp() -> None:
    await check_transport(TcpTransport(), "tcp://127.0.0.1:0")


async def test_unix(tmp_path: Path) -> None:
    await check_transport(UnixTransport(), f"unix://{tmp_path / 'rpcx.sock'}")
    assert not (tmp_path / "rpcx.sock").exists(), "closing the listener removes its socket"


async def test_unix_replaces_a_stale_socket_file(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    listeners = await UnixTransport().listen(parse_address(f"unix://{path}"))
    # Simulate a crash: the socket file stays behind with nobody listening.
    inner = listeners[0]._inner  # type: ignore[attr-defined]
    inner.socket.close()
    assert path.exists()
    await check_transport(UnixTransport(), f"unix://{path}")


async def test_memory() -> None:
    await check_transport(MemoryTransport(), "mem://conformance")


async def test_simulated_network_without_faults() -> None:
    net = SimNetwork(seed=1)
    await check_transport(net.transport("server"), "sim://server",
                          connector=net.transport("client"))


async def test_simulated_network_with_delay_keeps_order_per_packet_when_delay_is_fixed(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=2, faults=LinkFaults(delay=(0.05, 0.05)))
    await check_transport(net.transport("server"), "sim://server",
                          connector=net.transport("client"))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _contexts(ca: trustme.CA, *, mutual: bool) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    if mutual:
        server.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(server)
        ca.issue_cert("client.rpcx.test").configure_cert(client)
    return server, client


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
async def test_tls(ca: trustme.CA, mutual: bool) -> None:
    server_ctx, client_ctx = _contexts(ca, mutual=mutual)
    await check_transport(TlsTransport(server_ctx), "tls://127.0.0.1:0",
                          connector=TlsTransport(client_ctx, server_hostname="localhost"))


async def test_mutual_tls_rejects_a_client_without_a_certificate(ca: trustme.CA) -> None:
    server_ctx, _ = _contexts(ca, mutual=True)
    anonymous = ssl.create_default_context()
    ca.configure_trust(anonymous)
    server = TlsTransport(server_ctx)
    listeners = await server.listen(parse_address("tls://127.0.0.1:0"))
    port = listeners[0].transport_listener.socket.getsockname()[1]  # type: ignore[attr-defined]

    async def accept_one() -> None:
        stream = await listeners[0].accept()
        try:
            with pytest.raises(trio.BrokenResourceError):
                await stream.receive_some(10)
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept_one)
        client = TlsTransport(anonymous, server_hostname="localhost")
        stream = await client.connect(parse_address(f"tls://127.0.0.1:{port}"))
        # TLS 1.3 reports the missing certificate on the first read, not the handshake.
        with pytest.raises(trio.BrokenResourceError):
            await stream.send_all(b"x")
            await stream.receive_some(10)
        await trio.aclose_forcefully(stream)
    await listeners[0].aclose()


async def test_connecting_to_nothing_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        await connect(f"unix://{tmp_path / 'nobody.sock'}")
    with pytest.raises(OSError):
        await connect("mem://nobody-listens-here")


def test_addresses_are_parsed_with_clear_errors() -> None:
    assert parse_address("tcp://127.0.0.1:7000").host_port() == ("127.0.0.1", 7000)
    assert parse_address("tcp://[::1]:7000").host_port() == ("::1", 7000)
    with pytest.raises(ValueError, match="expected SCHEME://WHERE"):
        parse_address("127.0.0.1:7000")
    with pytest.raises(ValueError, match=r"expected tcp://HOST:PORT"):
        parse_address("tcp://localhost").host_port()
    with pytest.raises(ValueError, match="unknown scheme 'udp'"):
        transport_for(parse_address("udp://x:1"))
    with pytest.raises(ValueError, match="need the network's transport"):
        transport_for(parse_address("sim://server"))
