"""The demo's order side: a seeded day planned and dispatched, and ``menara demo`` driving it."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import psycopg
import pytest

from menara import demo, demo_oms
from menara.cli import main
from menara.settings import load
from simulators.model import FleetConfig
from simulators.routes import Route
from tests.menara import demo_env
from tests.oms_core import OMS_TABLES

pytestmark = pytest.mark.db
DAY = date(2026, 6, 2)
DEVICES = ["DEMO0001", "DEMO0002", "DEMO0003", "DEMO0004"]


def _empty_oms(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {OMS_TABLES} RESTART IDENTITY CASCADE")


@pytest.mark.parametrize(
    ("devices", "overloaded"),
    [(DEVICES, False), (DEVICES[:1], True)],  # one van cannot serve 40 orders in a day
    ids=["four-vans", "one-van"],
)
def test_seed_and_plan_dispatches_a_day_and_reuses_it(
    clean_db: str, devices: list[str], overloaded: bool
) -> None:
    _empty_oms(clean_db)
    lines: list[str] = []
    with psycopg.connect(clean_db, autocommit=True) as conn:
        planned = demo_oms.seed_and_plan(
            conn, day=DAY, device_ids=devices, orders=40, time_limit_s=0.5, progress=lines.append
        )
        states: dict[int, str] = dict(
            conn.execute(
                "SELECT o.id, o.state FROM orders o WHERE o.invoice_number LIKE 'DEMO-20260602-%'"
            ).fetchall()
        )
        on_stops: dict[int, int] = dict(
            conn.execute(
                "SELECT so.order_id, count(*) FROM stop_orders so GROUP BY so.order_id"
            ).fetchall()
        )
        trip_states = {r[0] for r in conn.execute("SELECT state FROM trips WHERE day = %s", (DAY,))}
        trackers = {r[0] for r in conn.execute("SELECT tracker_device_id FROM vehicles")}
        again: list[str] = []
        replanned = demo_oms.seed_and_plan(
            conn, day=DAY, device_ids=devices, orders=40, time_limit_s=0.5, progress=again.append
        )
        counts = (
            conn.execute("SELECT count(*) FROM orders").fetchone(),
            conn.execute("SELECT count(*) FROM trips").fetchone(),
        )
    assert len(states) == 40
    assert planned and trip_states == {"dispatched"}
    assert trackers == set(devices)
    assert {t.device_id for t in planned} <= set(devices)
    depot = (demo_oms.DEPOT_LON, demo_oms.DEPOT_LAT)
    for trip in planned:
        assert trip.stops >= 1 and trip.route[0] == trip.route[-1] == depot
        assert len(trip.route) == trip.stops + 2  # depot, each stop, depot
    # Every order rides exactly one stop of a dispatched trip, or stays reserved with a reason.
    left = {oid for oid, state in states.items() if state == "reserved"}
    assert {oid for oid, state in states.items() if state == "dispatched"} == set(on_stops)
    assert set(on_stops.values()) == {1} and left | set(on_stops) == set(states)
    assert sum(t.orders for t in planned) == len(on_stops)
    summary = next(line for line in lines if line.startswith("orders unassigned"))
    assert summary.startswith(f"orders unassigned (left reserved): {len(left)}")
    if overloaded:  # "… 9 (7 not_served_by_solver, 2 <reason>)": a count per reason
        reasons = summary.rpartition(" (")[2].rstrip(")").split(", ")
        assert left and sum(int(r.split(" ", 1)[0]) for r in reasons) == len(left)
    assert f"trips dispatched: {len(planned)} now" in lines[-1]
    # The second call plans nothing new and hands back the same trips.
    assert replanned == planned
    assert counts == ((40,), (len(planned),))
    assert again[0] == f"{DAY} is already planned: reusing its trips"
    assert "trips dispatched: 0 now" in again[-1]


@pytest.mark.mqtt
def test_menara_demo_drives_the_planned_trips(
    clean_db: str,
    mqtt_broker: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _empty_oms(clean_db)
    demo_env(monkeypatch, clean_db, mqtt_broker, tmp_path)
    args = ["demo", "--speedup", "60", "--duration", "5", "--vehicles", "8", "--garbage", "0"]
    assert main(args) == 0  # with --speedup, --duration cuts the day short
    out = capsys.readouterr().out
    assert "orders entered: 200 new" in out
    assert re.search(r"trips planned: [1-8], orders scheduled: \d+", out)
    assert "orders unassigned (left reserved): " in out
    assert re.search(r"trips dispatched: [1-8] now", out)
    assert "vehicles drive their planned trips" in out
    with psycopg.connect(clean_db) as conn:
        routes = {
            device: Route(device, tuple((p[0], p[1]) for p in geometry), "loop")
            for device, geometry in conn.execute(
                "SELECT v.tracker_device_id, t.route_geometry FROM trips t"
                " JOIN vehicles v ON v.id = t.vehicle_id"
                " WHERE t.state IN ('dispatched', 'in_progress')"
            )
        }
        fixes = conn.execute(
            "SELECT device_id, lat, lon FROM positions WHERE device_id = ANY(%s)", (list(routes),)
        ).fetchall()
    assert fixes, "no vehicle with a trip reported a position"
    # Five minutes of the replayed day: parked, then off along the planned route (no
    # fault starts that early); each fix is on it but for the tracker's 3 m jitter.
    assert max(routes[d].distance_to_m(lat, lon) for d, lat, lon in fixes) < 3.1


def test_demo_drives_the_stock_routes_when_planning_fails(
    clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _empty_oms(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:  # the demo's plate, taken
        conn.execute(
            "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, tracker_device_id)"
            " VALUES ('DEMO SIM00000', 1, 1, 'ELSEWHERE')"
        )
    cfg = load(environ={}, overrides={"db_dsn": clean_db})
    fleet = FleetConfig(vehicles=2)
    assert demo._planned_trips(cfg, fleet, ["SIM00000", "SIM00001"]) is None
    out = capsys.readouterr().out
    assert "order side: planning failed (plate DEMO SIM00000" in out
    assert out.endswith("driving the stock routes\n")
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM depots").fetchone() == (0,)  # rolled back
