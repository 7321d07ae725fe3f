"""The automatic checks on every ePOD: distance from the stop (phone and van), the
window, lines accounted for, the signature, the phone's clock, short loading. They flag
for review; they never refuse the delivery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from oms_core.execution.epod import EpodRules
from oms_core.verify import haversine_km
from tests.oms_core.test_driver_api import action, drive, png, rows, upload
from tests.oms_core.trip_world import STOP1, TRACKER, TripWorld, serve_trip

pytestmark = pytest.mark.db


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files")


def deliver(tw: TripWorld, **change: Any) -> dict[str, Any]:
    _, sig = upload(tw, png())
    body = action(pos=STOP1, outcome="delivered", recipient_name="Ada",
                  signature=sig["sha256"], cod_collected="35.00")  # fmt: skip
    status, ans = drive(
        tw, "POST", f"/driver/orders/{tw.order_ids[0]}/delivery", {**body, **change}
    )
    assert status == 200, ans
    return dict(ans)


def van_at(tw: TripWorld, lat: float, lon: float, ago: timedelta) -> None:
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO positions (device_id, fix_time, received_time, lat, lon, valid,"
            " transport, protocol) VALUES (%s, now() - %s, now(), %s, %s, true, 'tcp', 't55')",
            (TRACKER, ago, lat, lon),
        )


def test_a_clean_delivery_has_no_flags(tw: TripWorld) -> None:
    van_at(tw, STOP1[0] + 0.0002, STOP1[1], timedelta(minutes=1))
    ans = deliver(tw)
    c = ans["checks"]
    assert (c["flags"], ans["needs_review"]) == ([], False)
    assert c["phone_distance_m"] == 0.0
    assert c["vehicle_distance_m"] == pytest.approx(22.2, abs=0.5)
    assert c["in_window"] is True and c["lines_accounted"] is True
    assert abs(c["clock_skew_s"]) < 5


def test_far_from_the_stop_is_flagged_by_phone_and_by_van(tw: TripWorld) -> None:
    van_at(tw, STOP1[0] + 0.01, STOP1[1], timedelta(minutes=2))  # the van 1.1 km away
    away = (STOP1[0], STOP1[1] + 0.01)
    ans = deliver(tw, position={"lat": away[0], "lon": away[1], "accuracy_m": 5})
    c = ans["checks"]
    assert c["phone_distance_m"] == pytest.approx(1000 * haversine_km(*STOP1, *away), abs=0.2)
    assert c["vehicle_distance_m"] == pytest.approx(1112, abs=2)
    assert c["flags"] == ["far_from_stop"] and ans["needs_review"] is True
    with psycopg.connect(tw.dsn) as conn:
        assert conn.execute("SELECT needs_review, outcome FROM epods").fetchall() == [
            (True, "delivered")
        ]


def test_an_old_van_fix_is_not_evidence_and_no_position_is_flagged(tw: TripWorld) -> None:
    van_at(tw, STOP1[0], STOP1[1], timedelta(minutes=15))
    ans = deliver(tw, position=None)
    c = ans["checks"]
    assert (c["phone_distance_m"], c["vehicle_distance_m"]) == (None, None)
    assert c["flags"] == ["no_position"]


def test_a_wrong_phone_clock_is_flagged_and_corrected(tw: TripWorld) -> None:
    ahead = datetime.now(UTC) + timedelta(minutes=20)
    ans = deliver(tw, at=ahead.isoformat(), sent_at=ahead.isoformat())
    assert ans["checks"]["clock_skew_s"] == pytest.approx(1200, abs=5)
    assert ans["checks"]["flags"] == ["clock_skewed"]
    ((at, phone, skew),) = rows(tw, "SELECT at, phone_time, clock_skew_s FROM driver_actions")
    assert abs((at - datetime.now(UTC)).total_seconds()) < 5  # placed on the server's clock
    assert phone - at == pytest.approx(timedelta(seconds=skew), abs=timedelta(seconds=1))


def test_a_delivery_queued_offline_keeps_its_time(tw: TripWorld) -> None:
    tapped = datetime.now(UTC) - timedelta(minutes=90)  # before the window opened
    ans = deliver(tw, at=tapped.isoformat())
    assert ans["checks"]["in_window"] is False
    assert ans["checks"]["flags"] == ["outside_window"]
    assert rows(tw, "SELECT on_time_reason FROM perfect_deliveries") == [("early",)]
    (arrival,) = rows(tw, "SELECT actual_arrival FROM stops WHERE id = %s", (tw.stop_ids[0],))
    assert abs((arrival[0] - tapped).total_seconds()) < 5


def test_an_action_older_than_two_days_is_refused(tw: TripWorld) -> None:
    old = action(at=datetime.now(UTC) - timedelta(days=3))
    status, ans = drive(tw, "POST", f"/driver/stops/{tw.stop_ids[0]}/arrived", old)
    assert status == 422 and ans["error"]["details"][0]["code"] == "bad_time"


def test_short_loading_and_unaccounted_lines_are_flagged(tw: TripWorld) -> None:
    o1 = tw.order_ids[0]
    loaded = [{"order_id": o1, "line_no": 1, "loaded_qty": 2}]
    status, ans = drive(tw, "POST", f"/driver/trips/{tw.trip_id}/loaded", action(lines=loaded))
    assert status == 200
    assert ans["short"] == [{"order_id": o1, "line_no": 1, "loaded_qty": 2, "qty": 3}]
    assert ans["lines_unchecked"] == 2
    part = deliver(tw, outcome="partially_delivered", reason_code="short_loaded",
                   lines=[{"line_no": 1, "delivered_qty": 2}], cod_collected="20.00")  # fmt: skip
    assert part["checks"]["flags"] == ["lines_unaccounted", "short_loaded"]
    assert rows(tw, "SELECT delivered_qty FROM epod_lines ORDER BY line_no") == [(2,), (0,)]


def test_without_a_signature_rule_none_is_asked_for(clean_db: str, tmp_path: Path) -> None:
    for tw in serve_trip(clean_db, tmp_path, epod=EpodRules(signature_required=False)):
        ans = deliver(tw, signature=None)
        assert ans["checks"]["signature_required"] is False
        assert "signature_missing" not in ans["checks"]["flags"]
