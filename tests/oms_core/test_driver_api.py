"""The driver API over real sockets: a trip delivered end to end, the ePOD, the perfect
delivery rows, COD settlement, follow-ups, idempotent retries and driver scoping."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from PIL import Image

from oms_core.api import Role, create_token
from tests.oms_core import stock_of
from tests.oms_core.trip_world import STOP1, STOP2, TripWorld, serve_trip

pytestmark = pytest.mark.db


@pytest.fixture
def tw(clean_db: str, tmp_path: Path) -> Iterator[TripWorld]:
    yield from serve_trip(clean_db, tmp_path / "files")


def png(size: tuple[int, int] = (40, 20), color: str = "black") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def action(
    at: datetime | None = None, pos: tuple[float, float] | None = None, **kw: Any
) -> dict[str, Any]:
    """An action body with a fresh key, tapped ``at`` (now), sent now."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "idempotency_key": uuid.uuid4().hex,
        "at": (at or now).isoformat(),
        "sent_at": now.isoformat(),
    }
    if pos is not None:
        body["position"] = {"lat": pos[0], "lon": pos[1], "accuracy_m": 8}
    body.update(kw)
    return body


def delivered(
    signature: str, photos: tuple[str, ...] = (), recipient: str = "Ada", **kw: Any
) -> dict[str, Any]:
    """The ePOD of order 1 handed over in full at stop 1 (its cash collected) by the
    file hashes of its signature and photos; ``kw`` adds or replaces fields."""
    extra: dict[str, Any] = {"photos": list(photos)} if photos else {}
    return action(pos=STOP1, outcome="delivered", recipient_name=recipient,
                  signature=signature, cod_collected="35.00", **extra, **kw)  # fmt: skip


def upload(
    tw: TripWorld,
    data: bytes,
    name: str = "sig.png",
    ctype: str = "image/png",
    field: str = "file",
) -> tuple[int, Any]:
    """POST ``data`` as the form field ``field`` to /driver/files: (status, JSON)."""

    async def go() -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field(field, data, filename=name, content_type=ctype)
        headers = {"Authorization": f"Bearer {tw.driver_token}"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(tw.api.url + "/driver/files", data=form, headers=headers) as r,
        ):
            return r.status, await r.json()

    return asyncio.run(go())


def drive(tw: TripWorld, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, _, answer = tw.api.call(method, path, role=Role.DRIVER, json=body)
    return status, answer


def _stock(tw: TripWorld) -> dict[str, tuple[int, int]]:
    with psycopg.connect(tw.dsn) as conn:
        return stock_of(conn, tw.api.world.depot_id)


def rows(tw: TripWorld, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(tw.dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_driver_delivers_a_trip_end_to_end(tw: TripWorld) -> None:
    o1, o2 = tw.order_ids
    s1, s2 = tw.stop_ids
    status, today = drive(tw, "GET", "/driver/today")
    assert status == 200
    trip = today["trip"]
    assert trip["id"] == tw.trip_id and trip["state"] == "dispatched"
    assert [s["id"] for s in trip["stops"]] == [s1, s2]
    first = trip["stops"][0]
    assert first["address_text"] == "Damrak 1, Amsterdam"
    assert first["nav"]["geo"].startswith(f"geo:{STOP1[0]:.6f},{STOP1[1]:.6f}")
    assert first["orders"][0]["cod_due"] == "35.00"
    assert first["orders"][0]["instructions"] == "Ring twice; the dog is friendly."
    assert [ln["qty"] for ln in first["orders"][0]["lines"]] == [3, 2]

    loaded = [{"order_id": o1, "line_no": 1, "loaded_qty": 3},
              {"order_id": o1, "line_no": 2, "loaded_qty": 2},
              {"order_id": o2, "line_no": 1, "loaded_qty": 2}]  # fmt: skip
    status, ans = drive(tw, "POST", f"/driver/trips/{tw.trip_id}/loaded", action(lines=loaded))
    assert (status, ans["short"], ans["lines_unchecked"]) == (200, [], 0)
    status, ans = drive(tw, "POST", f"/driver/trips/{tw.trip_id}/departed", action())
    assert (status, ans["state"]) == (200, "in_progress")

    status, ans = drive(tw, "POST", f"/driver/stops/{s1}/arrived", action(pos=STOP1))
    assert (status, ans["arrival_method"], ans["first_arrival"]) == (200, "driver", True)
    status, sig = upload(tw, png())
    assert status == 201
    status, photo = upload(tw, png((64, 48), "red"), "door.png")
    body = delivered(sig["sha256"], (photo["sha256"],))
    status, ans = drive(tw, "POST", f"/driver/orders/{o1}/delivery", body)
    assert status == 200, ans
    assert ans["state"] == "delivered" and ans["perfect"] is True
    assert ans["needs_review"] is False, ans["checks"]

    body = action(
        pos=STOP2, outcome="partially_delivered", recipient_name="Bo", signature=sig["sha256"],
        lines=[{"line_no": 1, "delivered_qty": 1, "damaged_qty": 0}], reason_code="damaged",
    )  # fmt: skip
    status, ans = drive(tw, "POST", f"/driver/orders/{o2}/delivery", body)
    assert status == 200, ans
    assert ans["perfect"] is False and ans["follow_up_order_id"] is not None

    status, ans = drive(tw, "POST", f"/driver/trips/{tw.trip_id}/returned", action())
    assert status == 200, ans
    assert ans["orders_closed"] == 2
    assert ans["cod"] == {"orders": 1, "expected": "35.00", "collected": "35.00",
                          "handed_in": "35.00", "difference": "0.00"}  # fmt: skip

    assert rows(tw, "SELECT id, state FROM orders WHERE id = ANY(%s) ORDER BY id",
                ([o1, o2],)) == [(o1, "completed"), (o2, "completed")]  # fmt: skip
    assert rows(tw, "SELECT state FROM trips WHERE id = %s", (tw.trip_id,)) == [("completed",)]
    perfect = rows(
        tw,
        "SELECT order_id, on_time, in_full, in_full_reason, documents_reason, perfect"
        " FROM perfect_deliveries ORDER BY order_id",
    )
    assert perfect == [
        (o1, True, True, None, None, True),
        (o2, True, False, "short_delivered", "quantity_differs_from_invoice", False),
    ]
    follow = rows(tw, "SELECT state, follow_up_of, total_amount FROM orders WHERE follow_up_of"
                      " IS NOT NULL")  # fmt: skip
    assert [(s, f, str(t)) for s, f, t in follow] == [("draft", o2, "10.00")]
    # 3 A + 1 A delivered out of 10; 2 B of 5; nothing reserved any more but the follow-up's
    assert _stock(tw) == {"A": (6, 0), "B": (3, 0)}
    files = rows(tw, "SELECT sha256 FROM files ORDER BY sha256")
    for (sha,) in files:
        assert (tw.files / sha[:2] / sha[2:4] / sha).read_bytes()[:4] == b"\x89PNG"


def test_the_page_keeps_a_trip_completed_after_local_midnight(tw: TripWorld) -> None:
    """A trip of yesterday's local date that came back after midnight still opens the
    page (trip completed, cash handed in) until ``DONE_SHOWN`` has passed."""
    from oms_core.api.driver_view import DONE_SHOWN, current_trip_id

    o1, o2 = tw.order_ids
    _, sig = upload(tw, png())
    assert drive(tw, "POST", f"/driver/orders/{o1}/delivery", delivered(sig["sha256"]))[0] == 200
    failed = action(pos=STOP2, outcome="failed", reason_code="customer_absent")
    assert drive(tw, "POST", f"/driver/orders/{o2}/delivery", failed)[0] == 200
    assert drive(tw, "POST", f"/driver/trips/{tw.trip_id}/returned", action())[0] == 200
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        conn.execute("UPDATE trips SET day = day - 2 WHERE id = %s", (tw.trip_id,))
        ((back,),) = conn.execute(
            "SELECT actual_return FROM trips WHERE id = %s", (tw.trip_id,)
        ).fetchall()
        assert current_trip_id(conn, tw.driver_id, back + DONE_SHOWN / 2) == tw.trip_id
        assert current_trip_id(conn, tw.driver_id, back + DONE_SHOWN * 2) is None
    status, today = drive(tw, "GET", "/driver/today")
    assert status == 200 and today["trip"]["state"] == "completed"
    assert today["trip"]["cod_settlement"]["handed_in"] == "35.00"


def test_a_retried_delivery_is_stored_once(tw: TripWorld) -> None:
    o1 = tw.order_ids[0]
    _, sig = upload(tw, png())
    body = delivered(sig["sha256"])
    first = drive(tw, "POST", f"/driver/orders/{o1}/delivery", body)
    again = drive(tw, "POST", f"/driver/orders/{o1}/delivery",
                  {**body, "sent_at": datetime.now(UTC).isoformat()})  # fmt: skip
    assert first[0] == again[0] == 200
    assert first[1]["replayed"] is False and again[1]["replayed"] is True
    assert {**first[1], "replayed": True} == again[1]
    assert rows(tw, "SELECT count(*) FROM epods") == [(1,)]
    assert rows(tw, "SELECT count(*) FROM perfect_deliveries") == [(1,)]
    changed = drive(tw, "POST", f"/driver/orders/{o1}/delivery", {**body, "recipient_name": "X"})
    assert changed[0] == 409 and changed[1]["error"]["code"] == "idempotency_key_reused"
    fresh = drive(
        tw, "POST", f"/driver/orders/{o1}/delivery", {**body, "idempotency_key": "k" * 20}
    )
    assert fresh[0] == 422 and fresh[1]["error"]["details"][0]["code"] == "already_recorded"


def test_another_drivers_trip_is_not_found(tw: TripWorld) -> None:
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        other = conn.execute("INSERT INTO drivers (name) VALUES ('Eve') RETURNING id").fetchone()
        assert other is not None
        token = create_token(conn, "eve", Role.DRIVER, other[0])
    headers = {"Authorization": f"Bearer {token}"}
    for path in (f"/driver/trips/{tw.trip_id}/departed", f"/driver/stops/{tw.stop_ids[0]}/arrived"):
        status, _, ans = tw.api.call("POST", path, role=None, headers=headers, json=action())
        assert (status, ans["error"]["code"]) == (404, "not_found")
    status, _, ans = tw.api.call("GET", "/driver/today", role=None, headers=headers)
    assert status == 200 and ans["trip"] is None


def test_geofence_and_tap_arrivals_are_both_kept(tw: TripWorld) -> None:
    from oms_core.execution.arrival import record_arrival

    s1 = tw.stop_ids[0]
    drive(tw, "POST", f"/driver/trips/{tw.trip_id}/departed", action())
    tap = datetime.now(UTC) - timedelta(minutes=2)
    drive(tw, "POST", f"/driver/stops/{s1}/arrived", action(at=tap))
    with psycopg.connect(tw.dsn, autocommit=True) as conn:
        fence = tap - timedelta(minutes=1)
        assert record_arrival(conn, s1, fence, "geofence", actor="geofence") is False
        assert record_arrival(conn, s1, tap, "geofence", actor="geofence") is False
    ((actual, method, geofence, driver),) = rows(
        tw, "SELECT actual_arrival, arrival_method, geofence_arrival, driver_arrival FROM stops"
            " WHERE id = %s", (s1,),
    )  # fmt: skip
    assert method == "geofence" and actual == geofence == fence
    assert abs((driver - tap).total_seconds()) < 2


def test_the_trip_does_not_close_with_orders_open(tw: TripWorld) -> None:
    drive(tw, "POST", f"/driver/trips/{tw.trip_id}/departed", action())
    status, ans = drive(tw, "POST", f"/driver/trips/{tw.trip_id}/returned", action())
    assert status == 409 and ans["error"]["code"] == "trip_refused"
    assert "record delivered, partial or failed" in ans["error"]["message"]
    assert rows(tw, "SELECT state FROM trips WHERE id = %s", (tw.trip_id,)) == [("in_progress",)]


def test_a_failed_delivery_returns_stock_and_opens_a_redelivery(tw: TripWorld) -> None:
    o1 = tw.order_ids[0]
    body = action(pos=STOP1, outcome="failed", reason_code="customer_absent")
    status, ans = drive(tw, "POST", f"/driver/orders/{o1}/delivery", body)
    assert status == 200, ans
    assert ans["perfect"] is False
    assert rows(tw, "SELECT in_full_reason, damage_free FROM perfect_deliveries") == [
        ("not_delivered", True)
    ]
    (follow,) = rows(tw, "SELECT id, state, follow_up_of FROM orders WHERE follow_up_of = %s",
                     (o1,))  # fmt: skip
    assert follow[1:] == ("draft", o1)
    refused = action(pos=STOP2, outcome="failed", reason_code="refused")
    assert drive(tw, "POST", f"/driver/orders/{tw.order_ids[1]}/delivery", refused)[0] == 200
    assert rows(tw, "SELECT count(*) FROM orders WHERE follow_up_of IS NOT NULL") == [(1,)]
    assert _stock(tw) == {"A": (10, 0), "B": (5, 0)}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"recipient_name": ""}, "recipient_required"),
        ({"signature": None}, "signature_required"),
        ({"cod_collected": None}, "cod_required"),
        ({"outcome": "partially_delivered"}, "reason_required"),
        ({"outcome": "failed", "reason_code": "other"}, "notes_required"),
        ({"reason_code": "refused"}, "reason_not_allowed"),
        ({"signature": "a" * 64}, "unknown_file"),
        ({"lines": [{"line_no": 9, "delivered_qty": 1}]}, "bad_line"),
    ],
)
def test_an_incomplete_epod_is_refused_and_nothing_changes(
    tw: TripWorld, change: dict[str, Any], code: str
) -> None:
    status, sig = upload(tw, png())
    body = delivered(sig["sha256"])
    status, ans = drive(
        tw, "POST", f"/driver/orders/{tw.order_ids[0]}/delivery", {**body, **change}
    )
    assert status == 422, ans
    assert code in {d["code"] for d in ans["error"]["details"]}
    assert rows(tw, "SELECT state FROM orders WHERE id = %s", (tw.order_ids[0],)) == [
        ("dispatched",)
    ]
    assert rows(tw, "SELECT count(*) FROM driver_actions") == [(0,)]
    assert rows(tw, "SELECT count(*) FROM epods") == [(0,)]


def test_an_action_that_deadlocks_with_the_tower_is_applied_once(
    tw: TripWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """The control tower holds the stop and then wants the trip the driver's action
    holds: PostgreSQL breaks the deadlock by aborting one; either way the driver's
    arrival is applied, once."""
    import threading

    s1 = tw.stop_ids[0]
    caplog.set_level("INFO", logger="oms_core.execution.actions")
    tower_lost = False
    with psycopg.connect(tw.dsn) as tower:
        tower.execute("SELECT 1 FROM stops WHERE id = %s FOR NO KEY UPDATE", (s1,))
        answer: list[tuple[int, Any]] = []
        tap = threading.Thread(
            target=lambda: answer.append(
                drive(tw, "POST", f"/driver/stops/{s1}/arrived", action(pos=STOP1))
            )
        )
        tap.start()
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not tower.execute(  # the action now holds the trip and waits for the stop
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database()"
        ).fetchone()[0]:  # type: ignore[index]
            assert datetime.now(UTC) < deadline, "the action never waited for the stop"
        try:
            tower.execute("SELECT 1 FROM trips WHERE id = %s FOR NO KEY UPDATE", (tw.trip_id,))
            tower.commit()
        except psycopg.errors.DeadlockDetected:
            tower.rollback()
            tower_lost = True
        tap.join(timeout=30)
    retried = "met a concurrent change" in caplog.text
    assert tower_lost or retried  # a deadlock happened, and one side gave way
    assert answer and answer[0][0] == 200, answer
    assert rows(tw, "SELECT count(*) FROM driver_actions WHERE kind = 'arrived'") == [(1,)]
    assert rows(tw, "SELECT arrival_method FROM stops WHERE id = %s", (s1,)) == [("driver",)]


def test_dispatchers_read_the_epod_its_checks_and_the_cash(tw: TripWorld) -> None:
    o1, o2 = tw.order_ids
    _, sig = upload(tw, png())
    _, photo = upload(tw, png((64, 48), "red"), "door.png")
    full = delivered(sig["sha256"], (photo["sha256"],))
    assert drive(tw, "POST", f"/driver/orders/{o1}/delivery", full)[0] == 200
    far = action(pos=STOP1, outcome="failed", reason_code="customer_absent")
    assert drive(tw, "POST", f"/driver/orders/{o2}/delivery", far)[0] == 200  # at stop 1
    assert drive(tw, "POST", f"/driver/trips/{tw.trip_id}/returned", action())[0] == 200

    status, _, epod = tw.api.call("GET", f"/orders/{o1}/epod", role=Role.SUPERVISOR)
    assert status == 200
    assert (epod["outcome"], epod["recipient_name"], epod["cod_collected"]) == (
        "delivered", "Ada", "35.00",
    )  # fmt: skip
    assert epod["signature"]["url"] == f"/api/v1/files/{sig['sha256']}"
    assert [p["sha256"] for p in epod["photos"]] == [photo["sha256"]]
    assert [(ln["line_no"], ln["delivered_qty"]) for ln in epod["lines"]] == [(1, 3), (2, 2)]
    assert epod["perfect_delivery"]["perfect"] is True and epod["needs_review"] is False
    _, _, flagged = tw.api.call("GET", "/epods?needs_review=true")
    assert [(e["order_id"], e["checks"]["flags"]) for e in flagged["epods"]] == [
        (o2, ["far_from_stop"])  # failed at stop 1, 2.8 km from its own stop
    ]
    assert tw.api.call("GET", f"/orders/{o2}/epod")[2]["reason_code"] == "customer_absent"
    assert tw.api.call("GET", "/orders/999999/epod")[0] == 404
    _, _, cod = tw.api.call("GET", f"/cod-settlements?driver_id={tw.driver_id}")
    assert [(c["trip_id"], c["expected"], c["handed_in"], c["difference"])
            for c in cod["settlements"]] == [(tw.trip_id, "35.00", "35.00", "0.00")]  # fmt: skip
    assert tw.api.call("GET", f"/orders/{o1}/epod", role=Role.DRIVER)[0] == 403
