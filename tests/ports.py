"""Free loopback ports for listeners a test starts (its own module so that
``tests.brokers``, which conftest imports, can use it without an import cycle)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port"]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port nobody listens on right now (for listeners started by a test), below
    the kernel's ephemeral range: a port the kernel picked would be free for it to hand
    the next outgoing connection's local end, and a service started a moment later
    could not bind it (EADDRINUSE). Never the same port twice in a session."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(10_000, _EPHEMERAL_LOW)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port in 10000..{_EPHEMERAL_LOW - 1}")
