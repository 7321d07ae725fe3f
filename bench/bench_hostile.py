"""Hostile input: a well-behaved device's fix→ack latency while the service is attacked.

    .venv/bin/python bench/bench_hostile.py [--phase-s 20] [--phases idle,junk,udp,lines]

The real service (``menara serve`` as a child process: every device listener on a free
port, the API, metrics, MQTT ingest from 127.0.0.1:1883, the rules; a throwaway database;
``unknown_devices = register``) serves ``--devices`` Teltonika codec 8 devices over TCP
from 127.0.0.1, each sending a one-record packet every 1/``--rate`` s and waiting for its
ack, as an FMB device does (the service acks after commit). Latency is counted from when
a fix was due, not when it was sent, so a stall counts against every fix it delayed.

Phases of ``--phase-s``: quiet (the baseline, same run), then each attack, run by a
separate process from source addresses 127.0.1.x and up (so per-peer limits that stop
the attacker never concern the devices):

- lines: one connection per text port (GPS103, H02, T55, OsmAnd HTTP) sends a line start
  and ``--line-kib`` KiB of ``A`` without an end, waits until the service closes it,
  and connects again;
- idle: ``--idle`` connections spread over every device port from ``--idle-peers``
  addresses, opened 256 at a time and held for the phase;
- junk: random bytes at ``--junk-mib-s`` MiB/s from ``--junk-conns`` connections to the
  binary ports (Teltonika, GT06), connecting again whenever the service closes one;
- udp: ``--udp-rate`` random datagrams a second (half with a plausible length prefix)
  to the Teltonika UDP port.

Lines runs last by default: a framer that stalls the event loop would spoil every phase
after it. ``--phase-s 3 --recover-s 3 --idle 500`` is a quick check that the bench runs.

After each attack the service gets up to ``--recover-s`` to settle (RSS back within 10 %
and the devices' latest fixes within the latency goal). Goals: p99 ≤ 2 × quiet p99, and
RSS after settling ≤ 1.1 × RSS before the attack (RSS and open fds of the service's main
process, from /proc). The machine has 2 cores, shared by the service, its rule worker,
PostgreSQL, the attacker and the devices.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_tcp import ADMIN_DSN, cpu_s, free_port, raise_nofile
from hostile_attacks import TCP_PORTS, attack

from simulators import teltonika_out

ROOT = Path(__file__).resolve().parents[1]
ACK_TIMEOUT_S = 30.0
ACK = teltonika_out.ack(1)
GOAL_LATENCY, GOAL_RSS = 2.0, 1.1


# -- the well-behaved devices (this process) ------------------------------------------


class Device:
    """A Teltonika device: log in, then one packet per ``interval_s``, each after the last ack."""

    def __init__(self, imei: str, port: int, interval_s: float, t0: float) -> None:
        self.imei, self.port, self.interval_s, self.t0 = imei, port, interval_s, t0
        self.samples: list[tuple[float, float]] = []  # (due, seconds from due to ack)
        self.retries: list[float] = []  # when a connection failed and was made again
        self.fix_time = datetime.now(UTC)

    def _packet(self) -> bytes:
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # AVL times are ms
        self.fix_time = max(now, self.fix_time + timedelta(milliseconds=1))
        rec = teltonika_out.AvlRecord(
            time=self.fix_time, lat=-6.2, lon=106.8, altitude_m=12, course_deg=90,
            satellites=9, speed_kmh=36, io={239: 1, 240: 1},
        )  # fmt: skip
        return teltonika_out.avl_packet([rec])

    async def _login(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        w.write(teltonika_out.login(self.imei))
        reply = await r.readexactly(1)
        if reply != teltonika_out.LOGIN_ACCEPT:
            w.close()
            raise ConnectionError(f"login refused: {reply!r}")
        return r, w

    async def run(self) -> None:
        k, link = 0, None
        while True:
            due = self.t0 + k * self.interval_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                async with asyncio.timeout(ACK_TIMEOUT_S):
                    if link is None:
                        link = await self._login()
                    link[1].write(self._packet())
                    if await link[0].readexactly(4) != ACK:
                        raise ConnectionError("wrong ack")
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                self.retries.append(time.monotonic())
                if link is not None:
                    link[1].close()
                link = None
                await asyncio.sleep(0.2)
                continue  # the same fix again; its latency still runs from ``due``
            self.samples.append((due, time.monotonic() - due))
            k += 1

    def latencies(self, t0: float, t1: float) -> list[float]:
        """Seconds from due to ack of the fixes due in [t0, t1); inf for those never acked."""
        acked = [s for due, s in self.samples if t0 <= due < t1]
        first, end = (max(math.ceil((t - self.t0) / self.interval_s), 0) for t in (t0, t1))
        return acked + [math.inf] * max(end - first - len(acked), 0)


# -- the orchestrator -----------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Phase:
    name: str
    t0: float = 0.0
    t1: float = 0.0
    rss: tuple[int, int, int] = (0, 0, 0)  # KiB before, peak, after settling
    settle_s: float = math.inf
    fds_peak: int = 0
    cpu_s: float = 0.0  # the service's main process, during the attack
    log_kib: float = 0.0
    tally: dict[str, float] = dataclasses.field(default_factory=dict)

    def latencies_ms(self, devices: list[Device]) -> Any:
        return np.array([s for d in devices for s in d.latencies(self.t0, self.t1)]) * 1e3


def _pct(lat: Any, q: float) -> float:
    return float(np.percentile(lat, q, method="higher")) if len(lat) else math.nan


def _spawn(dsn: str, ports: dict[str, int], workdir: str) -> subprocess.Popen[bytes]:
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MENARA_")}
    env.update({f"MENARA_{p.upper()}_PORT": str(n) for p, n in ports.items()})
    env.update(
        PYTHONPATH=str(ROOT), MENARA_DB_DSN=dsn, MENARA_TCP_HOST="127.0.0.1",
        MENARA_API_HOST="127.0.0.1", MENARA_MQTT_HOST="127.0.0.1", MENARA_MQTT_PORT="1883",
        MENARA_MQTT_CLIENT_ID=f"bench-hostile-{run}", MENARA_MQTT_SESSION_EXPIRY_S="60",
        MENARA_MQTT_TOPIC_PREFIX=f"bench-hostile/{run}", MENARA_SMTP_PORT="0",
        MENARA_UNKNOWN_DEVICES="register", MENARA_LOG_LEVEL="WARNING",
    )  # fmt: skip
    with open(Path(workdir) / "service.log", "wb") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "menara", "serve"], env=env, cwd=workdir, stdout=log, stderr=log
        )


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start_service(dsn: str, workdir: str) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """``menara serve`` on free ports, started again on new ones if one was taken meanwhile."""
    for _ in range(3):
        ports = {p: free_port() for p in TCP_PORTS} | {"api": free_port(), "metrics": free_port()}
        ports["teltonika_udp"] = free_udp_port()
        server = _spawn(dsn, ports, workdir)
        deadline = time.monotonic() + 180
        while server.poll() is None and time.monotonic() < deadline:
            if all(_accepts(ports[p]) for p in (*TCP_PORTS, "metrics")):
                return server, ports
            time.sleep(0.1)
        server.kill()
        server.wait()
        tail = (Path(workdir) / "service.log").read_bytes()[-2000:].decode(errors="replace")
        if "address already in use" not in tail.lower():
            raise SystemExit(f"menara serve did not start; its log ends:\n{tail}")
    raise SystemExit("menara serve found one of its ports taken three times in a row")


async def _attack(name: str, cfg: dict[str, Any], ph: Phase, pid: int) -> None:
    """Run one attacker process; the phase's window is from its start to its report."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=attack, args=(name, cfg, send), daemon=True)
    proc.start()
    send.close()
    try:
        await asyncio.to_thread(recv.recv)
        ph.t0, ph.cpu_s = time.monotonic(), cpu_s(pid)
        if not await asyncio.to_thread(recv.poll, cfg["phase_s"] + 180):
            proc.kill()
            raise SystemExit(f"the {name} attacker did not finish within 180 s of its phase")
        ph.tally = recv.recv()
    except EOFError:
        raise SystemExit(f"the {name} attacker died: see its traceback above") from None
    await asyncio.to_thread(proc.join)


async def measure(
    args: argparse.Namespace, pid: int, ports: dict[str, int], log: Path
) -> tuple[list[Device], list[Phase]]:
    interval = 1.0 / args.rate
    t0, run, n = time.monotonic() + 0.5, uuid.uuid4().int % 10**6, args.devices
    devices = [
        Device(f"35{run:06d}{i:07d}", ports["teltonika"], interval, t0 + i * interval / n)
        for i in range(n)
    ]
    tasks = [asyncio.ensure_future(d.run()) for d in devices]
    rss: list[tuple[float, int, int]] = []  # (time, RSS KiB, open fds)

    async def sample() -> None:
        while True:
            rss.append((time.monotonic(), _rss_kib(pid), len(os.listdir(f"/proc/{pid}/fd"))))
            await asyncio.sleep(0.1)

    tasks.append(asyncio.ensure_future(sample()))
    deadline = time.monotonic() + 60
    while min(len(d.samples) for d in devices) < 10:  # logged in, registered, warm
        if time.monotonic() > deadline:
            raise SystemExit("the devices got no acks within 60 s: see the service log")
        await asyncio.sleep(0.1)
    cfg = {**vars(args), "ports": ports}
    phases: list[Phase] = []
    goal = math.inf
    for name in ["quiet", *args.phases.split(",")]:
        ph, log0, rss0 = Phase(name), log.stat().st_size, _rss_kib(pid)
        print(f"{time.monotonic() - t0:5.0f} s  {name} ...", flush=True)
        ph.t0, ph.cpu_s = time.monotonic(), cpu_s(pid)
        if name == "quiet":
            await asyncio.sleep(args.phase_s)
        else:
            await _attack(name, cfg, ph, pid)
        ph.t1, ph.cpu_s = time.monotonic(), cpu_s(pid) - ph.cpu_s
        while time.monotonic() < ph.t1 + args.recover_s:
            if _rss_kib(pid) <= GOAL_RSS * rss0 and all(
                d.samples[-1][0] > ph.t1 and d.samples[-1][1] <= goal for d in devices
            ):
                ph.settle_s = time.monotonic() - ph.t1
                break
            await asyncio.sleep(0.1)
        window = [(k, f) for t, k, f in rss if ph.t0 <= t]
        ph.rss = (rss0, max(k for k, _ in window), _rss_kib(pid))
        ph.fds_peak = max(f for _, f in window)
        ph.log_kib = (log.stat().st_size - log0) / 1024
        phases.append(ph)
        if ph.tally.get("held_at"):  # idle: connecting all, holding them, closing all
            held, closing = ph.tally["held_at"], ph.tally["closing_at"]
            for part, a, b in (("opening", ph.t0, held), ("holding", held, closing)):
                part = f"{name}: {part} ({b - a:.1f} s)"
                phases.append(dataclasses.replace(ph, name=part, t0=a, t1=b, tally={}))
            closed = f"{name}: closing ({ph.t1 - closing:.1f} s)"
            phases.append(dataclasses.replace(ph, name=closed, t0=closing, tally={}))
        if name == "quiet":
            goal = GOAL_LATENCY * _pct(ph.latencies_ms(devices), 99) / 1e3
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return devices, phases


def report(devices: list[Device], phases: list[Phase]) -> None:
    def ms(x: float) -> str:
        return "∞" if math.isinf(x) else f"{x:,.0f}"

    quiet = _pct(phases[0].latencies_ms(devices), 99)
    print(
        "| phase | fixes due | unacked | p50 ms | p99 ms | max ms | p99/quiet | ≤2× | RSS MiB"
        " before → peak → after | ≤1.1× | settled s | fds peak | service CPU s | attacker conns /"
        " refused / closed | sent | attacker CPU s | device retries | log KiB |"
    )
    print("|---" * 18 + "|")
    met = [0, 0]
    for ph in phases:
        lat = ph.latencies_ms(devices)
        p99 = _pct(lat, 99)
        before, peak, after = (k / 1024 for k in ph.rss)
        lat_ok, rss_ok = p99 <= GOAL_LATENCY * quiet, after <= GOAL_RSS * before
        t, attacker, sent, cpu = ph.tally, "-", "-", "-"
        if t:
            attacker = f"{t['conns']:,.0f} / {t['refused']:,.0f} / {t['closed']:,.0f}"
            udp = ph.name == "udp"
            sent = f"{t['sent']:,.0f} datagrams" if udp else f"{t['sent'] / 2**20:.1f} MiB"
            cpu = f"{t['cpu_s']:.1f}"
            met[0] += lat_ok
            met[1] += rss_ok
        retries = sum(ph.t0 <= r < ph.t1 + ph.settle_s for d in devices for r in d.retries)
        settled = f"{ph.settle_s:.1f}" if math.isfinite(ph.settle_s) else "not yet"
        print(
            f"| {ph.name} | {len(lat)} | {np.isinf(lat).sum()} | {ms(_pct(lat, 50))} | {ms(p99)}"
            f" | {ms(_pct(lat, 100))} | {p99 / quiet:.2f}× | {'yes' if lat_ok else 'NO'}"
            f" | {before:.0f} → {peak:.0f} → {after:.0f} | {'yes' if rss_ok else 'NO'}"
            f" | {settled} | {ph.fds_peak} | {ph.cpu_s:.1f} | {attacker} | {sent} | {cpu}"
            f" | {retries} | {ph.log_kib:,.0f} |"
        )
    n = sum(bool(ph.tally) for ph in phases)
    print(f"latency goal (p99 ≤ {GOAL_LATENCY:g}× quiet) met in {met[0]} of {n} attacks")
    print(f"memory goal (RSS after ≤ {GOAL_RSS:g}× before) met in {met[1]} of {n} attacks")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--phase-s", type=float, default=20.0, help="seconds of each phase")
    ap.add_argument("--recover-s", type=float, default=15.0, help="most seconds to settle")
    ap.add_argument("--phases", default="idle,junk,udp,lines", help="attacks, in order")
    ap.add_argument("--devices", type=int, default=4, help="well-behaved Teltonika devices")
    ap.add_argument("--rate", type=float, default=5.0, help="fixes a second per device")
    ap.add_argument("--line-kib", type=int, default=64, help="unterminated line length")
    ap.add_argument("--idle", type=int, default=5000, help="idle connections")
    ap.add_argument("--idle-peers", type=int, default=50, help="source addresses they use")
    ap.add_argument("--junk-conns", type=int, default=32)
    ap.add_argument("--junk-mib-s", type=float, default=4.0, help="junk MiB a second, in all")
    ap.add_argument("--udp-rate", type=float, default=5000.0, help="datagrams a second")
    args = ap.parse_args()
    unknown = set(args.phases.split(",")) - {"lines", "idle", "junk", "udp"}
    if unknown:
        ap.error(f"unknown phases {sorted(unknown)}; choose from lines, idle, junk, udp")
    nofile = raise_nofile()  # the service inherits it too
    print(f"RLIMIT_NOFILE raised to {nofile}")
    if nofile < args.idle + 256:
        args.idle = max(nofile - 256, 0)
        print(f"  idle connections capped at {args.idle}: raise the hard limit (ulimit -Hn)")
    name = f"menara_bench_hostile_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rpartition("/")[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory(prefix="menara-hostile-") as workdir:
            launched, log = time.monotonic(), Path(workdir) / "service.log"
            server, ports = start_service(dsn, workdir)
            print(
                f"service up after {time.monotonic() - launched:.1f} s, pid {server.pid},"
                f" RSS {_rss_kib(server.pid) / 1024:.0f} MiB"
            )
            try:
                devices, phases = asyncio.run(measure(args, server.pid, ports, log))
            finally:
                if server.poll() is not None:
                    tail = log.read_bytes()[-2000:].decode(errors="replace")
                    print(f"the service exited {server.returncode} mid-run; its log ends:\n{tail}")
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(20)
                except subprocess.TimeoutExpired:
                    print("the service did not stop within 20 s of SIGTERM: killed")
                    server.kill()
                    server.wait()
    finally:
        import psycopg

        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(
        f"date {datetime.now(UTC):%Y-%m-%d}, {args.devices} Teltonika devices x {args.rate:g}"
        f" fixes/s, {args.phase_s:g} s a phase; latency from when a fix was due to its ack"
    )
    report(devices, phases)


if __name__ == "__main__":
    main()
