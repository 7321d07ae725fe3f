"""Teltonika end to end: records stored per second from 1,000 devices that wait for acks.

    .venv/bin/python bench/bench_teltonika_tcp.py [--conns 1000] [--packets 20] [--records 10]

Each of ``--conns`` devices logs in (IMEI, waits for ``0x01``), then sends ``--packets``
codec 8 packets of ``--records`` records, each only after the previous packet's ack,
as an FMB device does. Against the real service (listener, numba decoder, writer, a
throwaway database; the service acks only after commit, so when the last ack is in,
every record is stored) and against a bare ``asyncio.Protocol`` server on the same load
that frames packets and acks at once without decoding or storing: the difference is
what decoding, storing and ack-after-commit cost. Server and client are separate
processes; the client is the same for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_tcp import (  # bench/ is on sys.path: it holds this script
    ADMIN_DSN,
    cpu_s,
    free_port,
    postgres_cpu,
    raise_nofile,
    stop_server,
    wait_port,
)

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def serve_menara(dsn: str, port: int) -> None:
    """The real service with only the Teltonika listener, until SIGTERM."""
    from ingest.counters import Counters
    from menara import service
    from menara.settings import load

    overrides: dict[str, object] = dict.fromkeys(service.PORT_SETTINGS, 0)
    overrides.update(
        db_dsn=dsn,
        tcp_host="127.0.0.1",
        teltonika_port=port,
        mqtt_port=0,
        metrics_port=0,
        unknown_devices="register",
        tcp_idle_timeout_s=3600.0,
        log_level="WARNING",
    )
    raise_nofile()
    sys.exit(service.run_blocking(load(environ={}, overrides=overrides), Counters()))


class _Acker(asyncio.Protocol):
    """Baseline: frame login and AVL packets by their lengths, ack at once, decode nothing."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        buf = self.buf + data
        while len(buf) >= 2:
            if buf[:2] != b"\x00\x00":  # login: 2-byte length + IMEI
                end = 2 + int.from_bytes(buf[:2], "big")
                if len(buf) < end:
                    break
                self.transport.write(b"\x01")
            else:
                if len(buf) < 8:
                    break
                end = 8 + int.from_bytes(buf[4:8], "big") + 4
                if len(buf) < end:
                    break
                self.transport.write(bytes(3) + buf[9:10])
            buf = buf[end:]
        self.buf = buf


def serve_bare(port: int) -> None:
    raise_nofile()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Acker, "127.0.0.1", port, backlog=4096)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


def client(port: int, conns: int, packets: int, records: int) -> None:
    """Every device: login, then one packet at a time, each after the last one's ack."""
    from simulators import teltonika_out

    raise_nofile()
    run = uuid.uuid4().int % 10**6
    frames = [
        teltonika_out.avl_packet(
            [
                teltonika_out.AvlRecord(
                    time=T0 + timedelta(seconds=p * records + r),
                    lat=-6.2 + r * 1e-5,
                    lon=106.8 + p * 1e-4,
                    altitude_m=12,
                    course_deg=90,
                    satellites=9,
                    speed_kmh=36,
                    io={239: 1, 240: 1, 21: 4, 66: 13800, 16: 123456 + p},
                )
                for r in range(records)
            ]
        )
        for p in range(packets)
    ]
    ack = teltonika_out.ack(records)

    async def device(i: int) -> int:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(teltonika_out.login(f"{35000000 + run:08d}{i:07d}"))
        if await r.readexactly(1) != teltonika_out.LOGIN_ACCEPT:
            raise RuntimeError("login refused")
        for frame in frames:
            w.write(frame)
            if await r.readexactly(4) != ack:
                raise RuntimeError("wrong ack")
        w.close()
        return packets * records

    async def main() -> None:
        t0 = time.time()
        done = await asyncio.gather(*(device(i) for i in range(conns)))
        print(json.dumps({"records": sum(done), "s": time.time() - t0}), flush=True)

    asyncio.run(main())


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)


def load_run(kind: str, dsn: str, conns: int, packets: int, records: int) -> dict[str, float]:
    port = free_port()
    server = (
        _child("server-menara", dsn, str(port))
        if kind == "menara"
        else _child("server-bare", str(port))
    )
    try:
        wait_port(port)
        cpu0, pg0 = cpu_s(server.pid), postgres_cpu()
        out, _ = _child("client", str(port), str(conns), str(packets), str(records)).communicate(
            timeout=900
        )
        cpu1, pg1 = cpu_s(server.pid), postgres_cpu()
    finally:
        stop_server(server)
    res = json.loads(out)
    n = res["records"]
    return {
        "records": n,
        "s": res["s"],
        "rate": n / res["s"],
        "cpu_us": (cpu1 - cpu0) / n * 1e6,
        "pg_us": (pg1 - pg0) / n * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--packets", type=int, default=20, help="packets per device")
    ap.add_argument("--records", type=int, default=10, help="records per packet")
    args = ap.parse_args()
    print(f"RLIMIT_NOFILE raised to {raise_nofile()}")
    name = f"menara_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rpartition("/")[0] + "/" + name
    print(
        f"{args.conns} Teltonika devices x {args.packets} packets x {args.records} records,"
        " each packet sent after the previous ack"
    )
    print("  server     records  seconds   records/s  CPU us/record: server  postgres")
    rates = {}
    try:
        for kind in ("menara", "bare"):
            r = load_run(kind, dsn, args.conns, args.packets, args.records)
            rates[kind] = r["rate"]
            print(
                f"  {kind:8s} {r['records']:9.0f} {r['s']:8.2f} {r['rate']:11,.0f}"
                f" {r['cpu_us']:21.1f} {r['pg_us']:9.1f}"
            )
        print(f"  menara / bare = {rates['menara'] / rates['bare']:.2f}")
    finally:
        import psycopg

        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "server-menara":
        serve_menara(sys.argv[2], int(sys.argv[3]))
    elif cmd == "server-bare":
        serve_bare(int(sys.argv[2]))
    elif cmd == "client":
        client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
