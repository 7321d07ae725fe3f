"""The alert store against the real database: one incident is one alert, replays change
nothing, people's moves follow the state machine (also when two race), and every change
is logged, queued for delivery and announced."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from deviation.model import Event
from oms_core.alerts import catalog, store
from oms_core.errors import IllegalTransition, NotFound
from tests.oms_core import NOW, World, one

pytestmark = pytest.mark.db
Conn = psycopg.Connection[Any]
T0 = NOW.timestamp()


@dataclass(frozen=True)
class Fleet:
    """A vehicle on a trip with one stop, in the seeded depot."""

    vehicle_id: int
    trip_id: int
    stop_id: int
    depot_id: int


def add_fleet(conn: Conn, w: World, plate: str = "V-1") -> Fleet:
    vid = one(
        conn,
        "INSERT INTO vehicles (plate, capacity_kg, capacity_m3, depot_id) VALUES (%s, 500, 5, %s)",
        (plate, w.depot_id),
    )
    tid = one(
        conn,
        "INSERT INTO trips (vehicle_id, depot_id, day, planned_departure, planned_return)"
        " VALUES (%s, %s, %s, %s, %s)",
        (vid, w.depot_id, NOW.date(), NOW, NOW + timedelta(hours=4)),
    )
    sid = one(
        conn,
        "INSERT INTO stops (trip_id, seq, lat, lon, planned_arrival, planned_departure)"
        " VALUES (%s, 1, 52.38, 4.9, %s, %s)",
        (tid, NOW + timedelta(hours=1), NOW + timedelta(hours=1)),
    )
    return Fleet(vid, tid, sid, w.depot_id)


@pytest.fixture
def fleet(conn: Conn, world: World) -> Fleet:
    return add_fleet(conn, world)


def raise_(conn: Conn, f: Fleet, phase: str, t: float = 0, **data: Any) -> int | None:
    ev = Event("route_deviation", phase, T0 + t, "", data)  # type: ignore[arg-type]
    return store.record(
        conn,
        ev,
        vehicle_id=f.vehicle_id,
        device_id="dev-1",
        trip_id=f.trip_id,
        stop_id=f.stop_id,
        depot_id=f.depot_id,
        order_ids=[],
        evidence=[{"t_s": T0 + t, "distance_m": data.get("max_distance_m", 0)}],
    )


def actions(conn: Conn, alert_id: int) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT action, actor FROM alert_actions WHERE alert_id = %s ORDER BY id", (alert_id,)
    ).fetchall()
    return [(a, b) for a, b in rows]


def test_catalog_names_figures_and_falls_back() -> None:
    s = catalog.Subject(7, 3, 11)
    sev, msg = catalog.describe(
        "overspeed", {"max_speed_kmh": 112.4, "limit_kmh": 80, "duration_s": 45}, s
    )
    assert (sev, msg) == (
        "critical",
        "Vehicle 7 (trip 3) is speeding at up to 112 km/h where the limit is 80 km/h for"
        " 45 s: tell the driver to slow down.",
    )
    assert catalog.describe("eta_at_risk", {"late_s": 600}, s)[1] == (
        "Vehicle 7 (trip 3) will miss the window of stop 11 by about 10 min:"
        " warn the customer or re-plan."
    )
    assert catalog.describe("route_deviation", {}, catalog.Subject(None))[1] == (
        "A vehicle is off its planned route: call the driver."
    )
    assert catalog.describe("telemetry", {"count": 3}, catalog.Subject(7, key="impossible_jump"))[
        1
    ] == ("Vehicle 7's tracker sends impossible jump fixes (3 times): check the device.")
    assert catalog.describe("martian_landing", {}, s)[0] == "warning"
    for kind in catalog.TYPES:  # no figures at all still makes a sentence
        assert catalog.describe(kind, {"max_distance_m": "x"}, s)[1].endswith(".")


def test_open_update_close_is_one_alert_and_replays_change_nothing(
    conn: Conn, fleet: Fleet
) -> None:
    aid = raise_(conn, fleet, "open", 0, max_distance_m=350)
    assert aid is not None
    assert raise_(conn, fleet, "open", 0, max_distance_m=350) == aid  # replay
    assert raise_(conn, fleet, "open", 5, max_distance_m=380) == aid  # already live: update
    assert raise_(conn, fleet, "update", 10, max_distance_m=420) == aid
    assert raise_(conn, fleet, "update", 10, max_distance_m=420) == aid  # replay
    assert raise_(conn, fleet, "info", 11) is None
    a = store.get_alert(conn, aid)
    assert (a["state"], a["severity"], a["cleared_at"]) == ("open", "warning", None)
    assert a["message"] == f"Vehicle {fleet.vehicle_id} (trip {fleet.trip_id}) is 420 m off" + (
        " its planned route: call the driver."
    )
    assert [e["distance_m"] for e in a["evidence"]] == [350, 380, 420]
    assert a["last_seen_at"] == (NOW + timedelta(seconds=10)).isoformat()
    assert a["details"] == {"max_distance_m": 420}
    assert [x["action"] for x in a["actions"]] == ["open"]

    assert raise_(conn, fleet, "close", 20) == aid  # no figures: the message keeps them
    assert raise_(conn, fleet, "close", 20) is None  # replay: nothing live any more
    assert raise_(conn, fleet, "open", 0) == aid  # a replayed open after the clear too
    a = store.get_alert(conn, aid)
    assert (a["state"], a["cleared_at"]) == ("open", (NOW + timedelta(seconds=20)).isoformat())
    assert " 420 m off" in a["message"] and a["details"] == {"max_distance_m": 420}
    assert actions(conn, aid) == [("open", "rules"), ("clear", "rules")]
    assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (1,)
    again = raise_(conn, fleet, "open", 60)  # a new incident of the same kind
    assert again is not None and again != aid


def test_evidence_is_capped_keeping_the_start_and_the_latest(conn: Conn, fleet: Fleet) -> None:
    aid = raise_(conn, fleet, "open", 0)
    assert aid is not None
    for t in range(1, 80):
        raise_(conn, fleet, "update", t)
    ev = store.get_alert(conn, aid)["evidence"]
    assert len(ev) == store.EVIDENCE_MAX
    head = [T0 + t for t in range(store.EVIDENCE_HEAD)]
    tail = [T0 + t for t in range(80 - (store.EVIDENCE_MAX - store.EVIDENCE_HEAD), 80)]
    assert [e["t_s"] for e in ev] == head + tail


def test_orders_at_risk_follow_the_latest_event_that_names_them(conn: Conn, fleet: Fleet) -> None:
    def record(phase: str, t: float, order_ids: list[int]) -> int | None:
        ev = Event("eta_at_risk", phase, T0 + t, str(fleet.stop_id), {"late_s": 600})  # type: ignore[arg-type]
        return store.record(
            conn, ev, vehicle_id=fleet.vehicle_id, trip_id=fleet.trip_id, order_ids=order_ids
        )

    aid = record("open", 0, [11, 12])
    assert aid is not None
    record("update", 1, [])
    assert store.get_alert(conn, aid)["order_ids"] == [11, 12]
    record("update", 2, [12, 2**40])
    assert store.get_alert(conn, aid)["order_ids"] == [12, 2**40]


def test_update_or_close_without_a_live_alert_does_nothing(conn: Conn, fleet: Fleet) -> None:
    assert raise_(conn, fleet, "update", 0) is None
    assert raise_(conn, fleet, "close", 0) is None
    assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)


def test_people_move_alerts_through_the_state_machine(conn: Conn, fleet: Fleet) -> None:
    aid = raise_(conn, fleet, "open", 0)
    assert aid is not None
    acked = store.acknowledge(conn, aid, "sam", "calling the driver")
    assert acked["state"] == "acknowledged" and acked["time_to_ack_s"] >= 0
    with pytest.raises(IllegalTransition) as exc:
        store.acknowledge(conn, aid, "kim")
    assert exc.value.legal == ("escalated", "resolved")
    assert "legal next: escalated, resolved" in str(exc.value)
    assert store.escalate(conn, aid, "sam")["state"] == "escalated"
    store.comment(conn, aid, "kim", "driver says roadworks")
    done = store.resolve(conn, aid, "kim", "back on route")
    assert done["state"] == "resolved" and done["resolved_at"] is not None
    with pytest.raises(IllegalTransition, match="none, resolved is final"):
        store.resolve(conn, aid, "kim")
    store.comment(conn, aid, "kim", "noted afterwards")  # comments are always allowed
    a = store.get_alert(conn, aid)
    assert [(x["action"], x["actor"], x["comment"]) for x in a["actions"]] == [
        ("open", "rules", ""),
        ("acknowledge", "sam", "calling the driver"),
        ("escalate", "sam", ""),
        ("comment", "kim", "driver says roadworks"),
        ("resolve", "kim", "back on route"),
        ("comment", "kim", "noted afterwards"),
    ]
    with pytest.raises(NotFound):
        store.acknowledge(conn, aid + 1000, "sam")
    # resolved, the incident is no longer live: the rules' next open is a new alert
    assert raise_(conn, fleet, "update", 30) is None
    assert raise_(conn, fleet, "open", 40) not in (None, aid)


def test_two_supervisors_racing_make_one_transition(world: World, fleet: Fleet) -> None:
    with psycopg.connect(world.dsn, autocommit=True) as c:
        aid = raise_(c, fleet, "open", 0)
    assert aid is not None
    results: list[str] = []
    barrier = threading.Barrier(8)

    def ack(who: str) -> None:
        with psycopg.connect(world.dsn, autocommit=True) as c:
            barrier.wait()
            try:
                store.acknowledge(c, aid, who)
                results.append("ok")
            except IllegalTransition:
                results.append("refused")

    threads = [threading.Thread(target=ack, args=(f"sup-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["refused"] * 7
    with psycopg.connect(world.dsn, autocommit=True) as c:
        assert [a for a, _ in actions(c, aid)] == ["open", "acknowledge"]


def test_overdue_open_alerts_escalate_once(conn: Conn, fleet: Fleet, world: World) -> None:
    late = raise_(conn, fleet, "open", 0)
    acked = raise_(conn, add_fleet(conn, world, "V-2"), "open", 0)
    assert late is not None and acked is not None
    store.acknowledge(conn, acked, "sam")
    now = datetime.now(UTC)
    assert store.escalate_overdue(conn, now, 900) == []  # raised just now
    assert store.escalate_overdue(conn, now + timedelta(seconds=901), 900) == [late]
    assert store.escalate_overdue(conn, now + timedelta(seconds=2000), 900) == []
    a = store.get_alert(conn, late)
    assert a["state"] == "escalated" and a["escalated_at"] is not None
    assert a["actions"][-1]["actor"] == "system"
    assert a["time_to_ack_s"] is None
    taken = store.acknowledge(conn, late, "kim", "on it")  # someone takes it after all
    assert taken["state"] == "escalated" and taken["time_to_ack_s"] > 0
    with pytest.raises(IllegalTransition):
        store.acknowledge(conn, late, "sam")  # once
    with pytest.raises(IllegalTransition):
        store.acknowledge(conn, acked, "sam")  # acknowledged before
    assert store.escalate(conn, acked, "sam")["state"] == "escalated"
    with pytest.raises(IllegalTransition):
        store.acknowledge(conn, acked, "sam")  # acknowledged before it was escalated


def test_changes_are_queued_for_delivery_and_announced(conn: Conn, fleet: Fleet) -> None:
    conn.execute(
        "INSERT INTO webhooks (url, secret) VALUES ('http://127.0.0.1:9/h', 'sixteen-chars-min')"
    )
    conn.execute(
        "INSERT INTO depot_contacts (depot_id, email) VALUES (%s, 'boss@example.org')",
        (fleet.depot_id,),
    )
    conn.execute(f"LISTEN {store.CHANNEL}")
    aid = raise_(conn, fleet, "open", 0, max_distance_m=350)
    assert aid is not None
    raise_(conn, fleet, "update", 5)
    store.escalate(conn, aid, "sam")
    raise_(conn, fleet, "close", 9)
    store.resolve(conn, aid, "sam")
    rows = conn.execute(
        "SELECT event, channel FROM deliveries WHERE alert_id = %s ORDER BY id", (aid,)
    ).fetchall()
    assert rows == [
        ("open", "webhook"),
        ("open", "email"),
        ("escalate", "webhook"),
        ("escalate", "email"),
        ("clear", "webhook"),
        ("resolve", "webhook"),
    ]
    got = [json.loads(n.payload) for n in conn.notifies(timeout=1, stop_after=4)]
    assert [(n["event"], n["state"]) for n in got] == [
        ("open", "open"),
        ("escalate", "escalated"),
        ("clear", "escalated"),
        ("resolve", "resolved"),
    ]
    seqs = [r[0] for r in conn.execute(
        "SELECT id FROM alert_actions WHERE alert_id = %s AND action <> 'comment' ORDER BY id",
        (aid,),
    ).fetchall()]  # fmt: skip
    assert [n.pop("seq") for n in got] == seqs  # each names its action log entry
    assert got[0] == {
        "event": "open",
        "id": aid,
        "type": "route_deviation",
        "severity": "warning",
        "state": "open",
        "vehicle_id": fleet.vehicle_id,
        "trip_id": fleet.trip_id,
        "stop_id": fleet.stop_id,
        "depot_id": fleet.depot_id,
        "order_ids": [],
        "message": f"Vehicle {fleet.vehicle_id} (trip {fleet.trip_id}) is 350 m off its"
        " planned route: call the driver.",
        "opened_at": NOW.isoformat(),
    }


def test_a_failed_caller_transaction_keeps_nothing(conn: Conn, fleet: Fleet) -> None:
    with pytest.raises(RuntimeError), conn.transaction():
        raise_(conn, fleet, "open", 0)
        raise RuntimeError("the rule worker crashed before committing")
    assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)


def test_notifications_stay_under_the_postgres_limit() -> None:
    alert = {"id": 1, "type": "x", "order_ids": list(range(5000)), "message": "m" * 9000}
    text = store.notification(alert, "open")
    assert len(text.encode()) < 8000
    assert json.loads(text)["truncated"] is True


def test_a_replayed_open_without_a_trip_is_still_one_alert(conn: Conn, fleet: Fleet) -> None:
    ev = Event("silent_device", "open", T0, "", {"silent_s": 600})
    first = store.record(conn, ev, vehicle_id=fleet.vehicle_id, depot_id=fleet.depot_id)
    store.record(conn, Event("silent_device", "close", T0 + 9), vehicle_id=fleet.vehicle_id)
    assert store.record(conn, ev, vehicle_id=fleet.vehicle_id) == first
    assert conn.execute("SELECT count(*), min(dedupe_key) FROM alerts").fetchone() == (
        1,
        f"silent_device:{fleet.vehicle_id}:-:",
    )
