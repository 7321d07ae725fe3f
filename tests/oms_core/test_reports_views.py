"""The report views on hand-made rows with round numbers: stage boundaries, lateness
blamed on the right stage, rates, time to acknowledge, complaints, trip distances, and
the 5-minute position summary (whose checks the TimescaleDB test reuses)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from menara import position_summary
from oms_core.reports import kpi_report
from tests.oms_core import DEPOT_LAT, DEPOT_LON, one
from tests.oms_core.trip_world import STOP1, STOP2, TRACKER, build
from tests.polling import until

Conn = psycopg.Connection[Any]
M = timedelta(minutes=1)
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # the position summary's first bucket


def _deliver(conn: Conn, w: dict[str, Any], i: int, at: datetime, **pd: Any) -> None:
    """An ePOD for order ``i`` at ``at`` and its perfect-delivery row (``pd`` overrides)."""
    order, stop = w["orders"][i], w["stops"][i]
    action = one(
        conn,
        "INSERT INTO driver_actions (driver_id, idempotency_key, kind, trip_id, stop_id,"
        " order_id, phone_time, at, request_sha256) VALUES (%s, %s, 'delivered', %s, %s, %s,"
        " %s, %s, 'x')",
        (w["driver"], f"report-{i}-key", w["trip"], stop, order, at, at),
    )
    epod = one(
        conn,
        "INSERT INTO epods (order_id, action_id, trip_id, stop_id, driver_id, outcome, at,"
        " checks, needs_review) VALUES (%s, %s, %s, %s, %s, 'delivered', %s, '{}', false)",
        (order, action, w["trip"], stop, w["driver"], at),
    )
    row = {"on_time": True, "on_time_reason": None, "damage_free": True, "damage_reason": None}
    row.update(pd)
    conn.execute(
        "INSERT INTO perfect_deliveries (order_id, epod_id, on_time, on_time_reason, in_full,"
        " damage_free, damage_reason, documents_accurate, window_start, window_end)"
        " VALUES (%s, %s, %s, %s, true, %s, %s, true, %s, %s)",
        (order, epod, row["on_time"], row["on_time_reason"], row["damage_free"],
         row["damage_reason"], at, at),
    )  # fmt: skip


@pytest.fixture
def late_day(clean_db: str) -> Iterator[tuple[Conn, dict[str, Any]]]:
    """The trip world two hours ahead (orders entered, reserved and dispatched now), driven
    late: it leaves 40 min after its planned departure (loading overran), reaches stop 1 on
    plan after that and stop 2 after 120 min in transit where 70 were planned."""
    n = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    w = build(clean_db, n)
    dep, ret = n + 10 * M, n + 150 * M
    arrivals = (n + 60 * M, n + 130 * M)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE trips SET state = 'completed', actual_departure = %s, actual_return = %s"
            " WHERE id = %s",
            (dep, ret, w["trip"]),
        )
        for stop, at, how in zip(w["stops"], arrivals, ("geofence", "driver"), strict=True):
            conn.execute(
                "UPDATE stops SET actual_arrival = %s, arrival_method = %s WHERE id = %s",
                (at, how, stop),
            )
        _deliver(conn, w, 0, arrivals[0] + 5 * M, on_time=False, on_time_reason="late")
        _deliver(conn, w, 1, arrivals[1] + 10 * M, on_time=False, on_time_reason="late",
                 damage_free=False, damage_reason="damaged")  # fmt: skip
        conn.execute(
            "INSERT INTO complaints (order_id, category, text) VALUES (%s, 'late', 'late')",
            (w["orders"][0],),
        )
        for kind, acked in (("overspeed", 120), ("silent_device", None)):
            conn.execute(
                "INSERT INTO alerts (type, severity, dedupe_key, trip_id, message, opened_at,"
                " last_seen_at, created_at, acknowledged_at) VALUES (%s, 'warning', %s, %s,"
                " 'x', %s, %s, %s, %s)",
                (kind, kind, w["trip"], dep, dep, dep,
                 None if acked is None else dep + timedelta(seconds=acked)),
            )  # fmt: skip
        route = ((DEPOT_LAT, DEPOT_LON), STOP1, STOP2, (DEPOT_LAT, DEPOT_LON))
        for at, (lat, lon) in zip((dep, *arrivals, ret), route, strict=True):
            conn.execute(
                "INSERT INTO positions (device_id, fix_time, received_time, lat, lon, valid,"
                " transport, protocol) VALUES (%s, %s, %s, %s, %s, true, 'tcp', 't55')",
                (TRACKER, at, at, lat, lon),
            )
        w["day"] = n.date()
        yield conn, w
        conn.execute("DELETE FROM positions WHERE device_id = %s", (TRACKER,))


def test_stages_add_up_and_lateness_is_blamed_on_the_stage_that_overran(
    late_day: tuple[Conn, dict[str, Any]],
) -> None:
    conn, w = late_day
    rows = conn.execute(
        "SELECT order_id, processing_s, waiting_dispatch_s, loading_s, transit_s,"
        " at_customer_s, lead_time_s, late_stage, arrival_method FROM order_delivery_kpis"
        " ORDER BY order_id"
    ).fetchall()
    assert [r[0] for r in rows] == list(w["orders"])
    for order_id, *stages, lead, _, _ in rows:
        assert sum(stages) == pytest.approx(lead), order_id
        assert stages[0] >= 0 and stages[1] >= 0
        # entered, reserved and released in the last seconds; left at +2 h 10 min
        assert stages[2] == pytest.approx(130 * 60, abs=30)
    assert [r[4:6] for r in rows] == [(50 * 60, 5 * 60), (120 * 60, 10 * 60)]
    assert [(r[7], r[8]) for r in rows] == [("loading", "geofence"), ("transit", "driver")]


def test_the_report_counts_rates_stages_alerts_and_trips(
    late_day: tuple[Conn, dict[str, Any]],
) -> None:
    conn, w = late_day
    report = kpi_report(conn, w["day"], w["day"], by="driver")
    kpis = report.table("kpis").records()
    assert [k["name"] for k in kpis] == ["Dee", "all"]
    assert kpis[0] == kpis[1] | {"driver_id": w["driver"], "name": "Dee"}
    got = {k: kpis[1][k] for k in ("deliveries", "perfect", "on_time", "in_full", "otif", "late")}
    assert got == {"deliveries": 2, "perfect": 0, "on_time": 0, "in_full": 2, "otif": 0, "late": 2}
    assert kpis[1]["damage_free_rate"] == 0.5
    assert (kpis[1]["geofence_share"], kpis[1]["tap_share"]) == (0.5, 0.5)
    assert (kpis[1]["complaints"], kpis[1]["complaints_per_100"]) == (1, 50.0)
    assert type(kpis[1]["complaints"]) is int
    failures = [
        (f["criterion"], f["reason"], f["failures"]) for f in report.table("failures").records()
    ]
    assert failures == [("on_time", "late", 2), ("damage_free", "damaged", 1)]
    stages = {s["stage"]: s for s in report.table("stages").records()}
    assert list(stages) == [
        "processing", "waiting_dispatch", "loading", "transit", "at_customer", "plan"
    ]  # fmt: skip
    assert stages["transit"]["avg_s"] == 85 * 60 and stages["at_customer"]["avg_s"] == 450
    assert {k: s["late_attributed"] for k, s in stages.items() if s["late_attributed"]} == {
        "loading": 1,
        "transit": 1,
    }
    alerts = {a["type"]: a for a in report.table("alerts").records()}
    assert alerts["overspeed"]["avg_ack_s"] == 120 and alerts["overspeed"]["acknowledged"] == 1
    assert alerts["silent_device"]["unacknowledged"] == 1
    assert alerts["silent_device"]["avg_ack_s"] is None
    (trip,) = report.table("trips").records()
    assert trip["actual_distance_km"] == pytest.approx(trip["planned_distance_km"])
    assert trip["planned_distance_km"] == pytest.approx(2.0 + 2.0 + 2.83, abs=0.05)
    assert (trip["departure_delay_s"], trip["arrivals_geofence"], trip["arrivals_tap"]) == (
        2400,
        1,
        1,
    )


def fill_positions(conn: Conn, device: str) -> None:
    """Ten minutes of fixes every 10 s at 36 km/h (10 m/s), then two at walking pace; a
    second device ``device + 'o'`` reports an odometer rising 250 m a fix (no speed × time)."""
    rows: list[tuple[str, datetime, float, float | None]] = [
        (device, T0 + timedelta(seconds=10 * i), 36.0, None) for i in range(60)
    ]
    rows += [
        (device, T0 + 10 * M, 2.0, None),
        (device, T0 + 10 * M + timedelta(seconds=10), 2.0, None),
    ]
    rows += [(device + "o", T0 + timedelta(seconds=10 * i), 50.0, 250.0 * i) for i in range(5)]
    for dev, at, speed, odo in rows:  # INSERT, not COPY: PGlite serves no COPY
        conn.execute(
            "INSERT INTO positions (device_id, fix_time, received_time, lat, lon, speed_kmh,"
            " odometer_m, valid, transport, protocol) VALUES (%s, %s, %s, 0, 0, %s, %s, true,"
            " 'tcp', 't55')",
            (dev, at, at, speed, odo),
        )


def check_positions(conn: Conn, device: str) -> None:
    """What ``fill_positions`` must give in ``vehicle_position_5m``."""
    got = conn.execute(
        "SELECT device_id, bucket, fixes, distance_km, max_speed_kmh, avg_speed_kmh, moving_s,"
        " stopped_s FROM vehicle_position_5m WHERE device_id IN (%s, %s) ORDER BY 1, 2",
        (device, device + "o"),
    ).fetchall()
    t = [T0 + 5 * i * M for i in range(3)]
    assert got == [
        (device, t[0], 30, pytest.approx(3.0), 36.0, 36.0, 300.0, 0.0),
        (device, t[1], 30, pytest.approx(3.0), 36.0, 36.0, 300.0, 0.0),
        (device, t[2], 2, pytest.approx(4.0 * 10 / 3600), 2.0, 2.0, 0.0, 20.0),
        (device + "o", t[0], 5, 1.0, 50.0, 50.0, 50.0, 0.0),
    ]


def test_the_position_summary_is_a_refreshed_materialized_view(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        assert not position_summary.is_continuous(conn)
        fill_positions(conn, "VP1")
        assert conn.execute(
            "SELECT count(*) FROM vehicle_position_5m WHERE device_id = 'VP1'"
        ).fetchone() == (0,)  # a snapshot until refreshed
        position_summary.refresh(conn)
        check_positions(conn, "VP1")


def test_the_service_refresh_job_keeps_the_summary_current(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        fill_positions(conn, "VP2")

        def summarised() -> bool:
            row = conn.execute(
                "SELECT count(*) FROM vehicle_position_5m WHERE device_id = 'VP2'"
            ).fetchone()
            return row is not None and row[0] > 0

        async def serve_for_a_while() -> None:
            job = asyncio.create_task(position_summary.refresh_loop(clean_db, 0.05))
            try:
                await until(summarised, what="the refresh job to summarise VP2")
                assert not job.done()  # it keeps running until the service stops
            finally:
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)

        assert not summarised()
        asyncio.run(serve_for_a_while())
        check_positions(conn, "VP2")
