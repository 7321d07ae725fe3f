"""Dead letters are samples: capped per address and per device, truncated, deleted when
old; a connection sending only garbage is closed. Real sockets, real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import psycopg
import pytest

from decoders import gt06
from ingest.counters import Counters
from ingest.dead_letters import PRUNE_BATCH, LetterCap, LetterLimits, prune
from ingest.devices import DeviceRegistry
from ingest.tcp import TcpListener
from ingest.writer import Writer
from simulators.nmea_out import pgid
from tests.ingest.test_service import running, settings_for
from tests.polling import until

pytestmark = pytest.mark.db


def sql(dsn: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(text, params).fetchall()


async def send(port: int, data: bytes, source: str = "127.0.0.1", *, chunk: int = 65536) -> bool:
    """Send ``data`` on one connection; whether the server hung up before all of it went
    (or, when it all went, right after)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        for i in range(0, len(data), chunk):
            writer.write(data[i : i + chunk])
            await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(10):
            return await reader.read() == b""
    except ConnectionError:
        return True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def test_ten_megabytes_of_garbage_close_the_connection_and_keep_a_sample(clean_db: str) -> None:
    """Issue 14: a GT06 connection took 10 MB of garbage and stored it as 2 KB rows."""
    garbage = random.Random(14).randbytes(10 * 1024 * 1024)
    limits = LetterLimits(per_peer=20, per_device=20, total=1000, window_s=3600, max_bytes=512)

    async def main() -> Counters:
        counters = Counters()
        registry = DeviceRegistry(policy="register")
        async with (
            Writer(
                clean_db,
                counters=counters,
                batch_delay_ms=5,
                letters=LetterCap(limits, counters=counters),
            ) as writer,
            TcpListener(
                codec=gt06,
                host="127.0.0.1",
                port=0,
                idle_timeout_s=30.0,
                max_line_bytes=1024,
                writer=writer,
                registry=registry,
                counters=counters,
                max_bad_frames=50,
            ) as listener,
        ):
            assert await send(listener.port, garbage)
            await until(lambda: listener.open_connections == 0, what="the hang-up")
            await listener.flush()
            await writer.drain()
        return counters

    counters = asyncio.run(main())
    assert counters.get("bad_frames_closed") == 1
    assert counters.get("bytes_in") < 1024 * 1024  # read no further than the bad run
    rejects = counters.get("rejects", protocol="gt06")
    assert rejects >= 50  # every bad frame counted ...
    rows = sql(clean_db, "SELECT count(*), coalesce(max(length(raw)), 0) FROM dead_letters")
    assert rows == [(20, 512)]  # ... a sample of them stored, each cut short
    assert counters.get("dead_letters_dropped", reason="per_peer") == rejects - 20
    assert counters.get("dead_letters_truncated") == 20


def test_caps_hold_across_connections_from_one_address_and_for_one_device(
    clean_db: str,
) -> None:
    cfg = settings_for(
        clean_db,
        dead_letter_max_per_peer=10,
        dead_letter_max_per_device=5,
        dead_letter_max_bytes=64,
    )
    counters = Counters()

    async def main() -> None:
        async with running(cfg, counters):
            for i in range(30):  # thirty connections from one address, one junk line each
                await send(cfg.t55_port, f"junk {i}\r\n".encode(), "127.0.0.2")
            await send(cfg.t55_port, b"junk from elsewhere\r\n", "127.0.0.3")
            noisy = pgid("NOISY") + b"".join(f"$GPRMC,{i}*00\r\n".encode() for i in range(8))
            await send(cfg.t55_port, noisy, "127.0.0.4")
            await until(
                lambda: counters.get("dead_letters_written") == 10 + 1 + 5,
                what="the sampled dead letters written",
            )

    asyncio.run(main())
    by_peer = sql(
        clean_db,
        "SELECT split_part(peer, ':', 1), count(*) FROM dead_letters GROUP BY 1 ORDER BY 1",
    )
    assert by_peer == [("127.0.0.2", 10), ("127.0.0.3", 1), ("127.0.0.4", 5)]
    assert sql(clean_db, "SELECT count(*) FROM dead_letters WHERE device_id = 'NOISY'") == [(5,)]
    assert counters.get("rejects", protocol="t55") == 30 + 1 + 8  # counted, every one
    assert counters.get("dead_letters_dropped", reason="per_peer") == 20
    assert counters.get("dead_letters_dropped", reason="per_device") == 3


def test_serve_deletes_dead_letters_past_their_retention(clean_db: str) -> None:
    sql_insert = (
        "INSERT INTO dead_letters (received_time, transport, protocol, reason, raw)"
        " SELECT now() - %s * interval '1 day', 'tcp', 't55', 'junk', '\\x00'"
        " FROM generate_series(1, %s)"
    )
    cfg = settings_for(clean_db, dead_letter_retention_days=7)
    counters = Counters()

    def ages() -> list[tuple[Any, ...]]:
        return sql(
            clean_db,
            "SELECT received_time < now() - interval '7 days', count(*) FROM dead_letters"
            " GROUP BY 1 ORDER BY 1",
        )

    with psycopg.connect(clean_db) as conn:
        conn.execute(sql_insert, (8, 3))
        conn.execute(sql_insert, (1, 2))
    assert ages() == [(False, 2), (True, 3)]

    async def main() -> None:
        async with running(cfg, counters):
            await until(lambda: ages() == [(False, 2)], what="old dead letters deleted")

    asyncio.run(main())


def test_prune_deletes_in_batches_until_none_is_left(clean_db: str) -> None:
    async def main() -> int:
        async with await psycopg.AsyncConnection.connect(clean_db, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO dead_letters (received_time, transport, protocol, reason, raw)"
                " SELECT now() - interval '30 days', 'udp', 'teltonika', 'junk', '\\x00'"
                " FROM generate_series(1, %s)",
                (PRUNE_BATCH + 5,),
            )
            return await prune(conn, 7)

    assert asyncio.run(main()) == PRUNE_BATCH + 5
    assert sql(clean_db, "SELECT count(*) FROM dead_letters") == [(0,)]
