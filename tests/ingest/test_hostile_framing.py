"""Framing on the event loop stays linear and bounded whatever a peer sends.

``gps103.split_frames`` once backtracked over an unterminated buffer: 64 KiB of ``A``
held the loop (every device, the API) for 14 s. These tests take the listener's own
framing (``ingest.intake.frame``) and a real service on real sockets.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import psycopg
import pytest

from decoders import PROTOCOLS, Codec, Decoded, Session, max_frame, teltonika
from ingest.counters import Counters
from ingest.intake import frame, split_until_lost
from simulators import gps103_out
from tests.complexity import HOSTILE, assert_linear
from tests.ingest.test_service import running, settings_for
from tests.polling import until
from tests.ports import free_port

LINE = 1024  # tcp_max_line_bytes as the listeners use it
READ = 256 << 10  # the most asyncio hands ``data_received`` at once


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_framing_a_read_is_linear(protocol: str) -> None:
    """What ``received`` runs per read, up to the largest read it can get."""
    codec = PROTOCOLS[protocol]
    limit = max_frame(codec, LINE)
    for what, make in HOSTILE.items():
        assert_linear(
            lambda buf: frame(codec, buf, limit),
            make,
            f"{protocol} frame(), {what}",
            sizes=tuple(1 << k for k in range(10, 19, 2)),
        )


class _Counting:
    """Teltonika, counting the bytes each ``split_frames`` call is given."""

    NAME = teltonika.NAME

    def __init__(self) -> None:
        self.split_bytes = 0

    def split_frames(self, buf: bytes) -> tuple[list[bytes], bytes]:
        self.split_bytes += len(buf)
        return teltonika.split_frames(buf)

    def decode_frames(self, frames: Sequence[bytes], *, session: Session) -> Decoded:
        return teltonika.decode_frames(frames, session=session)


def test_finding_where_framing_was_lost_reads_each_byte_a_few_times() -> None:
    """A read of keep-alive bytes ending in a bad header: the bisection for the last sound
    frame used to split the whole prefix at every step (19 times the read, 1.3 s)."""
    buf = b"\xff" * READ + b"\x00\x00\x00\x07"  # a preamble that is not four zero bytes
    codec = _Counting()
    frames, rest, error = split_until_lost(codec, buf)
    assert (len(frames), rest) == (READ, b"\x00\x00\x00\x07")
    assert error is not None and error.code == "bad_preamble"
    assert codec.split_bytes < 5 * len(buf)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_the_tail_kept_between_reads_never_outgrows_the_limit(protocol: str) -> None:
    """So re-framing ``tail + read`` costs at most limit + read, however slowly a peer
    trickles a frame that never ends."""
    codec: Codec = PROTOCOLS[protocol]
    limit = max_frame(codec, LINE)
    for what, make in HOSTILE.items():
        stream, tail = make(4 * limit), b""
        for at in range(0, len(stream), 64):
            f = frame(codec, tail + stream[at : at + 64], limit)
            if f.lost is not None:
                break
            tail = f.rest
            assert len(tail) <= limit, f"{protocol}, {what}: kept {len(tail)} bytes"


BOUND_S = 10.0  # a reply later than this means the loop was held (it was 14 s, and more)
IMEI = "356307042441013"
T0 = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)


def _closed(sock: socket.socket) -> bool:
    """True once the service hangs up (a reset counts: it closed with input unread)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _read(sock: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def _exchange(port: int, attack: Callable[[], None]) -> tuple[bytes, bytes]:
    """A GPS103 device logs in, ``attack`` runs, the device sends a fix and a heartbeat:
    (login reply, heartbeat reply), each waited for at most ``BOUND_S``."""
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND_S) as dev:
        dev.sendall(gps103_out.login(IMEI))
        loaded = _read(dev, len(gps103_out.LOGIN_REPLY))
        attack()
        fix = gps103_out.position(
            IMEI, time=T0, lat=-6.2, lon=106.8, speed_kmh=36.0, course_deg=90.0, valid=True
        )
        dev.sendall(fix + gps103_out.heartbeat(IMEI))
        return loaded, _read(dev, len(gps103_out.HEARTBEAT_REPLY))


@pytest.mark.db
def test_an_unterminated_gps103_line_is_dead_lettered_and_nobody_waits(clean_db: str) -> None:
    cfg = settings_for(clean_db, gps103_port=free_port())
    counters = Counters()
    closed: list[bool] = []

    def attack() -> None:
        with socket.create_connection(("127.0.0.1", cfg.gps103_port), timeout=BOUND_S) as s:
            s.sendall(b"A" * (128 << 10))
            closed.append(_closed(s))

    async def main() -> tuple[bytes, bytes]:
        async with running(cfg, counters):
            replies = await asyncio.to_thread(_exchange, cfg.gps103_port, attack)
            await until(lambda: _count(clean_db, "positions") == 1, BOUND_S, "the fix stored")
            await until(lambda: _count(clean_db, "dead_letters") == 1, BOUND_S, "a dead letter")
            return replies

    loaded, on = asyncio.run(main())
    assert (loaded, on) == (gps103_out.LOGIN_REPLY, gps103_out.HEARTBEAT_REPLY)
    assert closed == [True]
    assert counters.get("framing_lost", protocol="gps103") == 1
    with psycopg.connect(clean_db) as conn:
        letters = conn.execute("SELECT reason, device_id FROM dead_letters").fetchall()
    assert letters == [("line_too_long", None)]


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # a name of ours
    assert row is not None
    return int(row[0])
