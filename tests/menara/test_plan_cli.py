"""``menara plan``: a seeded day through the CLI, trips stored, refusals explained."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import psycopg
import pytest

from menara.cli import main
from oms_core import fleet, orders
from oms_core.states import OrderState
from tests.oms_core import DEPOT_LAT, DEPOT_LON, order_in, seed

pytestmark = pytest.mark.db
DAY = date(2026, 6, 2)
AMS = ZoneInfo("Europe/Amsterdam")


def test_plan_stores_trips_and_a_second_run_is_refused(
    clean_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = seed(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("UPDATE stock SET on_hand = 1000")
        for i in range(6):
            o = orders.create_order(
                conn,
                order_in(
                    world,
                    lat=DEPOT_LAT + 0.01 * i,
                    lon=DEPOT_LON - 0.01 * i,
                    window_start=datetime.combine(DAY, time(9), AMS),
                    window_end=datetime.combine(DAY, time(17), AMS),
                ),
                actor="test",
            )
            orders.transition(conn, o.id, OrderState.VERIFIED, actor="test")
            orders.transition(conn, o.id, OrderState.RESERVED, actor="test")
        van = fleet.add_vehicle(
            conn, plate="AMS-1", capacity_kg=500, capacity_m3=5, depot_id=world.depot_id
        )
        driver = fleet.add_driver(conn, name="Sari", shift_end=time(19))
        fleet.assign(conn, driver.id, van.id, DAY)
    monkeypatch.setenv("MENARA_DB_DSN", clean_db)
    monkeypatch.setenv("MENARA_PLAN_TIME_LIMIT_S", "1")
    assert main(["plan", "--date", DAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "1 trips, 6 orders scheduled, 0 left reserved" in out
    assert f"vehicle {van.id}, driver {driver.id}, " in out
    with psycopg.connect(clean_db) as conn:
        states = conn.execute("SELECT DISTINCT state FROM orders").fetchall()
    assert states == [("scheduled",)]
    assert main(["plan", "--date", DAY.isoformat()]) == 1
    assert "already planned" in capsys.readouterr().err
