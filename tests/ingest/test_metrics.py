"""/metrics: every family with HELP and TYPE, counters named once with ``_total``,
histograms with cumulative buckets, and the writer's and the rules' histograms filled by
real traffic."""

from __future__ import annotations

import ast
import asyncio
import socket
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from decoders.model import empty_fixes
from ingest.counters import HELP, HISTOGRAMS, Counters, Histogram
from ingest.metrics import MetricsServer, counter, gauge, histogram
from ingest.model import Batch
from ingest.writer import Writer
from simulators.nmea_out import pgid, rmc
from tests.ingest.test_service import running, settings_for
from tests.polling import until
from tower import stats

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _literal_names(paths: Iterable[Path]) -> tuple[set[str], set[str], set[str]]:
    """(counted, observed, tower-counted) names: the string literals passed to
    ``.inc``/``._count``, to ``.observe``, and used as keys of ``.counters``/``._own``."""
    counted, observed, tower = set(), set(), set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    if node.func.attr in ("inc", "_count"):
                        counted.add(first.value)
                    elif node.func.attr == "observe":
                        observed.add(first.value)
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in ("counters", "_own")
                and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)
            ):
                tower.add(node.slice.value)
    return counted, observed, tower


def test_every_counted_name_is_declared_once_with_help() -> None:
    counted, observed, _ = _literal_names(
        sorted([*(ROOT / "ingest").glob("*.py"), *(ROOT / "menara").glob("*.py")])
    )
    _, _, tower = _literal_names(sorted((ROOT / "tower").glob("*.py")))
    assert {"rows_written", "connections_opened"} <= counted  # the scan sees the calls
    assert counted == set(HELP)  # a new name needs its help; a stale help goes
    assert observed == set(HISTOGRAMS)
    assert {"fixes_evaluated", "worker_restarts"} <= tower
    assert tower == set(stats.COUNTERS)
    for name, text in [*HELP.items(), *stats.COUNTERS.items()]:
        assert not name.endswith("_total"), name  # the exposition adds it once
        assert text.endswith(".") and "\n" not in text, name


def _families(text: str) -> dict[str, list[Sample]]:
    families = list(text_string_to_metric_families(text))
    for f in families:  # the parser leaves these empty / "unknown" when a line is missing
        assert f.documentation, f"{f.name} has no HELP"
        assert f.type != "unknown", f"{f.name} has no TYPE"
    assert text.count("# HELP ") == text.count("# TYPE ") == len(families)
    assert "_total_total" not in text
    return {f.name: f.samples for f in families}


def _buckets(samples: list[Sample]) -> tuple[list[float], float, float]:
    """(cumulative bucket counts in order, _count, _sum), checking the buckets' shape."""
    buckets = [s for s in samples if s.name.endswith("_bucket")]
    bounds = [float(s.labels["le"]) for s in buckets]
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)  # cumulative: each includes those below
    (count,) = [s.value for s in samples if s.name.endswith("_count")]
    (total,) = [s.value for s in samples if s.name.endswith("_sum")]
    assert counts[-1] == count
    return counts, count, total


def test_every_family_has_help_and_type_and_one_total() -> None:
    counters = Counters()
    for i, name in enumerate(HELP):
        counters.inc(name, i + 1, protocol="t55", transport="tcp")
    counters.observe("writer_batch_rows", 3)
    h = Histogram((0.5, 1.0))
    for v in (0.25, 0.5, 0.75, 9.0):
        h.observe(v)

    def extra() -> list[Metric]:
        return [
            gauge("tower_queued_rounds", "Rounds waiting.", [({}, 2)]),
            counter("tower_errors", "Failed rounds.", [({}, 1)]),
            histogram("tower_rule_latency_seconds", "Latency.", h),
        ]

    server = MetricsServer(host="127.0.0.1", port=0, counters=counters, families=extra)
    text = server.render().decode()
    families = _families(text)
    assert len(families) == len(HELP) + len(HISTOGRAMS) + 3
    assert f"# HELP menara_rows_written_total {HELP['rows_written']}" in text
    assert "# TYPE menara_rows_written_total counter" in text
    (rejects,) = families["menara_rejects"]
    assert rejects.name == "menara_rejects_total"
    assert rejects.labels == {"protocol": "t55", "transport": "tcp"}
    assert rejects.value == list(HELP).index("rejects") + 1
    assert _buckets(families["menara_tower_rule_latency_seconds"]) == ([2, 3, 4], 4, 10.5)
    batch_rows = _buckets(families["menara_writer_batch_rows"])
    assert (batch_rows[1], batch_rows[2]) == (1, 3)
    assert families["menara_tower_queued_rounds"][0].value == 2


def test_the_endpoint_answers_on_a_free_port() -> None:
    async def get(port: int, request: bytes) -> tuple[str, str, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        head, _, body = data.decode().partition("\r\n\r\n")
        lines = head.split("\r\n")
        ctype = next(x.split(": ", 1)[1] for x in lines if x.startswith("Content-Type:"))
        return lines[0], ctype, body

    async def go() -> None:
        counters = Counters()
        counters.inc("frames_in", 5, transport="tcp", protocol="t55")
        async with MetricsServer(host="127.0.0.1", port=0, counters=counters) as server:
            assert server.port > 0
            status, ctype, body = await get(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
            assert (status, ctype) == ("HTTP/1.1 200 OK", CONTENT_TYPE_LATEST)
            assert 'menara_frames_in_total{protocol="t55",transport="tcp"} 5.0' in body
            assert (await get(server.port, b"GET /healthz HTTP/1.1\r\n\r\n"))[2] == "ok\n"
            assert (await get(server.port, b"GET /x HTTP/1.1\r\n\r\n"))[0].endswith("404 Not Found")
            assert (await get(server.port, b"POST /metrics HTTP/1.1\r\n\r\n"))[0].endswith(
                "405 Method Not Allowed"
            )

    asyncio.run(go())


@pytest.mark.db
def test_writer_batch_rows_counts_each_commit(clean_db: str) -> None:
    """``batch_rows`` 4 and batches of 4 rows: each commit holds one batch, whatever the timing."""
    counters = Counters()

    def batch(device: str, n: int) -> Batch:
        f = empty_fixes(n)
        f["fix_time_us"] = 1_700_000_000_000_000 + 1_000_000 * np.arange(n)
        f["lat"], f["lon"], f["valid"] = -6.0, 106.0, True
        return Batch(device, "tcp", "t55", f)

    async def go() -> None:
        async with Writer(clean_db, counters=counters, batch_rows=4) as w:
            for device in ("A", "B", "C"):
                await w.put(batch(device, 4))
            await w.drain()

    asyncio.run(go())
    h = counters.histograms()["writer_batch_rows"]
    assert sum(h.counts) == 3 == counters.get("batches_committed")
    assert h.sum == 12 == counters.get("rows_written")
    assert h.counts[h.bounds.index(5)] == 3  # 4 rows: above 2, at most 5


@pytest.mark.db
def test_a_fix_through_the_service_is_timed_by_the_rules(clean_db: str) -> None:
    """A tracked vehicle's fixes over real TCP, rules in a worker process: the round's
    latency comes back from the worker to /metrics, next to the writer's batch sizes."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id)"
            " VALUES ('MET 1', 500, 5, 'MET1')"
        )
    cfg = settings_for(clean_db, tower_processes=1)
    url = f"http://127.0.0.1:{cfg.metrics_port}/metrics"

    async def scrape() -> dict[str, list[Sample]]:
        def get() -> str:
            with urllib.request.urlopen(url, timeout=5) as r:
                return str(r.read().decode())

        return _families(await asyncio.to_thread(get))

    async def rounds() -> bool:
        latency = (await scrape()).get("menara_tower_rule_latency_seconds", [])
        return any(s.name.endswith("_count") and s.value >= 1 for s in latency)

    async def go() -> dict[str, list[Sample]]:
        async with running(cfg, Counters()):
            fixes = [rmc(T0 + timedelta(seconds=i), -6.2, 106.8, 20.0, 0.0) for i in range(3)]
            with socket.create_connection(("127.0.0.1", cfg.t55_port), timeout=5) as sock:
                sock.sendall(pgid("MET1") + b"".join(fixes))
                await until(rounds, 30, "a round of the rules on /metrics")
            return await scrape()

    families = asyncio.run(go())
    _, count, seconds = _buckets(families["menara_tower_rule_latency_seconds"])
    assert count >= 1 and 0 < seconds < 30 * count
    (evaluated,) = families["menara_tower_fixes_evaluated"]
    assert evaluated.value == 3
    _, commits, rows = _buckets(families["menara_writer_batch_rows"])
    written = sum(s.value for s in families["menara_rows_written"])
    assert commits >= 1 and rows == written == 3
