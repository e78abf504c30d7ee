"""rpcx.testing.free_ports: ports for servers started in other processes, chosen where an
outgoing connection cannot take them first (below the kernel's ephemeral range)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rpcx.testing import free_ports, ports


def test_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    low, _ = ports.ephemeral_range()
    if low - ports._LOWEST < 1000:
        pytest.skip(f"this kernel's ephemeral range starts at {low}: no room below it")
    chosen = free_ports(6)
    assert len(set(chosen)) == 6
    for port in chosen:
        assert ports._LOWEST <= port < low
        with socket.socket() as sock:  # nothing listens there: a server can bind it
            sock.bind(("127.0.0.1", port))


def test_a_port_something_listens_on_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        # Only two ports to choose from, one of them taken: every draw of the taken one
        # is refused, so the answer is the other.
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (taken + 1000, 65535))
        monkeypatch.setattr(ports, "_LOWEST", taken)
        draws = iter([taken, taken, taken, taken + 1])
        monkeypatch.setattr(ports._random, "randrange", lambda _a, _b: next(draws))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", taken + 1))
            except OSError:
                pytest.skip(f"port {taken + 1} is in use too")
        assert free_ports(1) == [taken + 1]


def test_without_room_below_the_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (1024, 65535))
    chosen = free_ports(3)
    assert len(set(chosen)) == 3
    for port in chosen:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_the_range_is_the_kernels_or_linuxs_default(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    kernel = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if kernel.exists():
        low, high = (int(x) for x in kernel.read_text().split())
        assert ports.ephemeral_range() == (low, high)
    monkeypatch.setattr(ports, "Path", lambda _: tmp_path / "missing")
    assert ports.ephemeral_range() == (32768, 60999)
    (tmp_path / "missing").write_text("not numbers\n")
    assert ports.ephemeral_range() == (32768, 60999)
