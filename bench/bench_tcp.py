"""TCP ingest: stored fixes per second and the cost of idle connections, server vs client.

    .venv/bin/python bench/bench_tcp.py [--conns 1000] [--fixes 100] [--idle 10000]

The server and the load client run in separate processes. (a) ``--conns`` T55 devices
log in and each send ``--fixes`` fixes, one RMC+GGA pair per write, as fast as the server
takes them; measured against the real service (``menara.service.serve``: listener,
decoder, writer, throwaway database; done when ``count(*)`` reaches the total) and
against a bare ``asyncio.Protocol`` server that only counts lines on the same load,
which shows what decoding and storing cost. (b) up to ``--idle`` devices log in and stay
idle: connections held (open fds of the server) and the server's VmRSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Project modules (numpy, numba, psycopg) are imported where used, so that the bare
# baseline server's RSS is that of Python and asyncio alone.

ADMIN_DSN = os.environ.get(
    "MENARA_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
HIGH_WATER = 64 * 1024


def raise_nofile() -> int:
    """Lift the open-file limit to the hard limit (10k sockets need it); the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- servers (child processes) ------------------------------------------------------


def serve_menara(dsn: str, port: int, metrics_port: int) -> None:
    """The real service on ``port`` until SIGTERM (which drains the writer first)."""
    from ingest.counters import Counters
    from menara import service
    from menara.settings import load

    settings = load(
        environ={},
        overrides={
            **dict.fromkeys(service.PORT_SETTINGS, 0),
            "db_dsn": dsn,
            "tcp_host": "127.0.0.1",
            "t55_port": port,
            "mqtt_port": 0,
            "metrics_port": metrics_port,
            "unknown_devices": "register",
            "tcp_idle_timeout_s": 3600.0,
            "log_level": "WARNING",
        },
    )
    raise_nofile()
    sys.exit(service.run_blocking(settings, Counters()))


class _LineCounter(asyncio.Protocol):
    """Baseline: receive and count newlines, nothing else."""

    __slots__ = ("state",)

    def __init__(self, state: list[int]) -> None:
        self.state = state

    def data_received(self, data: bytes) -> None:
        self.state[0] += data.count(b"\n")
        if self.state[0] == self.state[1]:
            print(f"DONE {time.time()}", flush=True)


def serve_bare(port: int, expect_lines: int) -> None:
    """A bare asyncio Protocol server; prints ``DONE <time>`` at ``expect_lines`` lines."""
    raise_nofile()

    async def main() -> None:
        state = [0, expect_lines]
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _LineCounter(state), "127.0.0.1", port, backlog=4096
        )
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


# -- clients (child processes) ------------------------------------------------------


async def _connect(port: int, device_id: str) -> asyncio.StreamWriter:
    from simulators.nmea_out import pgid

    _, w = await asyncio.open_connection("127.0.0.1", port)
    w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    w.write(pgid(device_id))
    return w


async def _open_many(
    port: int, n: int, prefix: str, parallel: int = 500
) -> list[asyncio.StreamWriter]:
    """Up to ``n`` logged-in connections, ``parallel`` at a time; stops after failed connects."""
    writers: list[asyncio.StreamWriter] = []
    for start in range(0, n, parallel):
        ids = [f"{prefix}{i:06d}" for i in range(start, min(n, start + parallel))]
        got = await asyncio.gather(*(_connect(port, d) for d in ids), return_exceptions=True)
        writers += [w for w in got if isinstance(w, asyncio.StreamWriter)]
        failed = [e for e in got if isinstance(e, BaseException)]
        if failed:
            print(f"client: {len(failed)} connects failed ({failed[0]!r})", file=sys.stderr)
            break
    return writers


async def _close_all(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


def client_load(port: int, conns: int, fixes: int) -> None:
    """Round-robin: every connection sends its next fix (one write each) per round."""
    from simulators.nmea_out import gga, rmc

    raise_nofile()
    payloads = []
    for k in range(fixes):
        t, lon = T0 + timedelta(seconds=k), 106.8 + k * 1e-4
        payloads.append(
            rmc(t, -6.2, lon, 36.0, 90.0)
            + gga(t, -6.2, lon, satellites=9, hdop=0.8, altitude_m=12.0)
        )

    async def main() -> None:
        writers = await _open_many(port, conns, f"L{uuid.uuid4().hex[:4]}")
        t_start = time.time()
        for data in payloads:
            for w in writers:
                w.write(data)
            await asyncio.sleep(0)
            slow = [w for w in writers if w.transport.get_write_buffer_size() > HIGH_WATER]
            if slow:
                await asyncio.gather(*(w.drain() for w in slow))
        await asyncio.gather(*(w.drain() for w in writers))
        t_sent = time.time()
        await _close_all(writers)
        print(json.dumps({"conns": len(writers), "t_start": t_start, "t_sent": t_sent}), flush=True)

    asyncio.run(main())


def client_idle(port: int, conns: int) -> None:
    """Open and log in up to ``conns`` devices, print how many, hold them until stdin closes."""
    raise_nofile()

    async def main() -> None:
        writers = await _open_many(port, conns, f"I{uuid.uuid4().hex[:4]}")
        await asyncio.gather(*(w.drain() for w in writers))
        print(json.dumps({"held": len(writers)}), flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await _close_all(writers)

    asyncio.run(main())


# -- the orchestrator ---------------------------------------------------------------


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def wait_port(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its own, not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def stop_server(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(60)


def postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process on the machine."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                total += cpu_s(int(pid))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # exited while we looked
    return total


def _committed(metrics_port: int) -> int:
    """Fixes the service has committed (new and duplicate), from its metrics endpoint.

    Cheaper than ``count(*)`` on a growing table, which would compete with the writer.
    """
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.findall(
        r'^menara_rows_(?:written|duplicate)_total\{transport="tcp"\} ([0-9.e+]+)$', text, re.M
    )
    return sum(int(float(n)) for n in found)


def load_run(kind: str, dsn: str, conns: int, fixes: int) -> dict[str, float]:
    import psycopg

    port, metrics_port = free_port(), free_port()
    expect_lines = conns * (1 + 2 * fixes)
    if kind == "menara":
        server = _child("server-menara", dsn, str(port), str(metrics_port))
    else:
        server = _child("server-bare", str(port), str(expect_lines))
    try:
        wait_port(port)
        if kind == "menara":
            wait_port(metrics_port)
        with psycopg.connect(dsn, autocommit=True) as db:

            def count() -> int:
                row = db.execute("SELECT count(*) FROM positions").fetchone()
                return int(row[0]) if row else 0

            base = count()
            cpu0, pg0 = cpu_s(server.pid), postgres_cpu()
            client = _child("client-load", str(port), str(conns), str(fixes))
            out, _ = client.communicate(timeout=600)
            sent = json.loads(out)
            total = sent["conns"] * fixes
            if kind == "menara":
                deadline = time.monotonic() + 600
                while _committed(metrics_port) < total and time.monotonic() < deadline:
                    time.sleep(0.02)
                t_done, stored = time.time(), count() - base
            else:
                assert server.stdout is not None
                t_done, stored = float(server.stdout.readline().split()[1]), total
            cpu1, pg1 = cpu_s(server.pid), postgres_cpu()
    finally:
        stop_server(server)
    secs = t_done - sent["t_start"]
    return {
        "conns": sent["conns"],
        "fixes": stored,
        "s": secs,
        "client_s": sent["t_sent"] - sent["t_start"],
        "rate": stored / secs,
        "cpu_us_per_fix": (cpu1 - cpu0) / max(stored, 1) * 1e6,
        "pg_us_per_fix": (pg1 - pg0) / max(stored, 1) * 1e6,
    }


def idle_run(kind: str, dsn: str, conns: int) -> dict[str, float]:
    port = free_port()
    server = (
        _child("server-menara", dsn, str(port), "0")
        if kind == "menara"
        else _child("server-bare", str(port), "-1")
    )
    try:
        wait_port(port)
        rss0, fds0 = _rss_kib(server.pid), _fds(server.pid)
        client = _child("client-idle", str(port), str(conns))
        assert client.stdout is not None and client.stdin is not None
        held = json.loads(client.stdout.readline())["held"]
        deadline = time.monotonic() + 60
        while _fds(server.pid) - fds0 < held and time.monotonic() < deadline:
            time.sleep(0.1)
        rss1 = _rss_kib(server.pid)
        client.stdin.close()
        client.wait(120)
    finally:
        stop_server(server)
    return {
        "held": held,
        "rss0_mib": rss0 / 1024,
        "rss1_mib": rss1 / 1024,
        "kib_per_conn": (rss1 - rss0) / max(held, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--fixes", type=int, default=100, help="fixes per connection in (a)")
    ap.add_argument("--idle", type=int, default=10_000, help="idle connections tried in (b)")
    args = ap.parse_args()
    print(f"RLIMIT_NOFILE raised to {raise_nofile()}")
    name = f"menara_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rpartition("/")[0] + "/" + name
    try:
        print(f"(a) {args.conns} connections x {args.fixes} fixes, one RMC+GGA per write")
        print(
            "  server    conns    fixes  seconds  (sending)   fixes/s  CPU us/fix: server  postgres"
        )
        for k in ("menara", "bare"):
            r = load_run(k, dsn, args.conns, args.fixes)
            print(
                f"  {k:8s} {r['conns']:6.0f} {r['fixes']:8.0f} {r['s']:8.2f} {r['client_s']:10.2f}"
                f" {r['rate']:9,.0f}"
                f" {r['cpu_us_per_fix']:18.1f} {r['pg_us_per_fix']:9.1f}"
            )
        print(f"(b) up to {args.idle} idle logged-in connections")
        print("  server     held  RSS before  RSS after  KiB/conn")
        for k in ("menara", "bare"):
            r = idle_run(k, dsn, args.idle)
            print(
                f"  {k:8s} {r['held']:6.0f} {r['rss0_mib']:9.1f}Mi {r['rss1_mib']:8.1f}Mi"
                f" {r['kib_per_conn']:9.2f}"
            )
    finally:
        import psycopg

        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "server-menara":
        serve_menara(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "server-bare":
        serve_bare(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client-load":
        client_load(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client-idle":
        client_idle(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
