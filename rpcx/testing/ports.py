"""Free TCP ports for tests, demos and benchmarks that start servers in other processes.

A port found by binding to port 0 comes from the kernel's *ephemeral* range, the same
range the kernel takes the local port of every outgoing connection from. Between the
moment it is found and the moment the child process binds it, any connection made on the
machine (another test, the child's own peers) may be given that very port, and the child
then fails to start with "address already in use". :func:`free_ports` picks ports below
the ephemeral range instead, where the kernel hands out nothing by itself, and checks
that nothing listens on each one.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_ports"]

_LOWEST = 10_000
"""The lowest port chosen (below it: well-known and registered services)."""
_TRIES = 200
_random = random.Random()  # its own generator: a test that seeds `random` changes nothing


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (Linux's default when
    it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int, host: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports of ``host`` that nothing listens on right now, outside
    the kernel's ephemeral range when the range leaves room below it (see the module
    docstring); otherwise ports the kernel picks (bind to port 0)."""
    low, _ = ephemeral_range()
    chosen: list[int] = []
    if low - _LOWEST >= 1000:
        for _ in range(_TRIES):
            if len(chosen) == n:
                return chosen
            port = _random.randrange(_LOWEST, low)
            if port not in chosen and _bindable(port, host):
                chosen.append(port)
    sockets = [socket.socket() for _ in range(n - len(chosen))]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return chosen + [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
