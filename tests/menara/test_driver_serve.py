"""The driver app under ``menara serve``: a CLI-made one-time link signs a phone in, and
the phone's positions reach the positions table through the real ingest (the OsmAnd
intake and the writer), as the driver's phone device, under ``unknown_devices = reject``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.counters import Counters
from menara.cli import main
from tests.ingest.test_service import running, settings_for
from tests.oms_core import seed
from tests.ports import free_port

pytestmark = pytest.mark.db


@pytest.mark.parametrize("osmand_on", [True, False])
def test_a_link_signs_the_phone_in_and_its_positions_are_stored(
    clean_db: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    osmand_on: bool,
) -> None:
    seed(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        row = conn.execute("INSERT INTO drivers (name) VALUES ('Dee') RETURNING id").fetchone()
        assert row is not None
        driver = int(row[0])
    cfg = settings_for(
        clean_db,
        api_port=free_port(),
        osmand_port=free_port() if osmand_on else 0,
        unknown_devices="reject",
        file_dir=str(tmp_path / "files"),
    )
    monkeypatch.setenv("MENARA_DB_DSN", clean_db)
    monkeypatch.setenv("MENARA_API_PORT", str(cfg.api_port))
    assert main(["token", "create", "--role", "driver", "--driver-id", "99999", "--link"]) == 1
    assert "no driver 99999" in capsys.readouterr().err
    assert main(["token", "create", "--role", "driver", "--driver-id", str(driver), "--link"]) == 0
    link = capsys.readouterr().out.strip()
    base = f"http://127.0.0.1:{cfg.api_port}"
    assert link.startswith(f"{base}/driver/#code=")
    code = link.split("#code=")[1]
    now = datetime.now(UTC)
    fixes = [
        {"at": (now - timedelta(seconds=30 - 10 * i)).isoformat(), "lat": 52.37 + i / 1000,
         "lon": 4.9, "accuracy_m": 6, "speed_mps": 8.5, "heading_deg": 90}
        for i in range(3)
    ]  # fmt: skip

    async def phone() -> None:
        async with running(cfg, Counters()), aiohttp.ClientSession() as http:
            async with http.get(f"{base}/driver/") as r:
                assert r.status == 200 and "text/html" in r.headers["Content-Type"]
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            async with http.post(f"{base}/api/v1/driver/sign-in", json={"code": code}) as r:
                assert r.status == 200
                token = (await r.json())["token"]
            async with http.post(f"{base}/api/v1/driver/sign-in", json={"code": code}) as r:
                assert (r.status, (await r.json())["error"]["code"]) == (401, "invalid_link")
            auth = {"Authorization": f"Bearer {token}"}
            url = f"{base}/api/v1/driver/positions"
            async with http.post(url, json={"positions": fixes}, headers=auth) as r:
                assert r.status == 200, await r.text()
                assert await r.json() == {"device_id": f"DRV{driver}", "accepted": 3}
            async with http.post(url, json={"positions": fixes}, headers=auth) as r:
                assert r.status == 200  # a resend is stored once
            metrics = f"http://127.0.0.1:{cfg.metrics_port}/metrics"
            async with http.get(metrics) as r:  # the public routes' limiter is counted
                values = {
                    s.name: s.value
                    for family in text_string_to_metric_families(await r.text())
                    for s in family.samples
                }
                assert values["menara_public_rate_refused_total"] == 0
                assert values["menara_public_rate_clients"] == 1

    asyncio.run(phone())
    with psycopg.connect(clean_db) as conn:
        stored = conn.execute(
            "SELECT device_id, protocol, transport, speed_kmh FROM positions ORDER BY fix_time"
        ).fetchall()
        device = conn.execute(
            "SELECT protocol FROM devices WHERE device_id = %s", (f"DRV{driver}",)
        )
        assert device.fetchone() == ("osmand",)
    assert [(d, p, t) for d, p, t, _ in stored] == [(f"DRV{driver}", "osmand", "http")] * 3
    assert stored[0][3] == pytest.approx(8.5 * 3.6, rel=1e-3)
