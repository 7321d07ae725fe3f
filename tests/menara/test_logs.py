"""Repeated log lines are rate-limited: a flood of one line costs ``burst`` lines and one
summary, and asyncio's accept errors (the 240 MB of issue 14) are caught the same way."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap

from menara.logs import RepeatFilter


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_flood_passes_burst_lines_then_one_summary() -> None:
    now = [0.0]
    handler = Captured()
    handler.addFilter(RepeatFilter(handler, burst=10, interval_s=60.0, clock=lambda: now[0]))
    log = logging.getLogger("tests.flood")
    log.propagate = False
    log.addHandler(handler)
    try:
        for i in range(1000):
            log.warning("peer %s sent junk", f"10.0.0.{i % 250}")
        log.warning("another kind of line")
        assert len(handler.lines) == 11
        assert handler.lines[:2] == ["peer 10.0.0.0 sent junk", "peer 10.0.0.1 sent junk"]
        assert handler.lines[-1] == "another kind of line"
        now[0] = 61.0  # the interval is over: the count is told once, then lines pass again
        log.warning("peer %s sent junk", "10.0.0.9")
        assert handler.lines[11:] == [
            "suppressed 990 similar lines in 61 s: peer %s sent junk",
            "peer 10.0.0.9 sent junk",
        ]
    finally:
        log.removeHandler(handler)


CHILD = textwrap.dedent(
    """
    import asyncio, logging, resource, sys
    from menara import logs

    resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
    logs.configure("INFO")
    raw = 0

    def count(record):
        global raw
        raw += record.getMessage().startswith("socket.accept() out of system resource")
        return True

    logging.getLogger("asyncio").addFilter(count)  # sees every record, before handlers

    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with asyncio.timeout(30):
            while raw < 150:
                await asyncio.sleep(0.01)
        print(raw, flush=True)

    asyncio.run(main())
    """
)


def test_asyncio_accept_errors_are_rate_limited() -> None:
    """A child with 48 descriptors and the logging ``menara`` sets up is sent 100
    connections: asyncio logs each failed accept, and only ``burst`` reach stderr."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None
    conns = []
    try:
        port = int(child.stdout.readline())
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(100)]
        out, err = child.communicate(timeout=60)
    finally:
        for c in conns:
            c.close()
        child.kill()
    assert child.returncode == 0, err.decode(errors="replace")[-2000:]
    assert int(out) >= 150  # asyncio did log a flood
    shown = err.decode().count("asyncio: socket.accept() out of system resource")
    assert shown == 10
