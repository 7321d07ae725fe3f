"""Alerts through the API (real sockets and database): list with filters and pages, read
with actions and evidence, the moves people make (actor = token name, 409 naming the
legal moves), and who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from deviation.model import Event
from oms_core.alerts import store
from oms_core.api import Role
from tests.oms_core import NOW
from tests.oms_core.test_alerts_store import T0, Fleet, add_fleet
from tests.oms_core.test_api import Api, api_for

pytestmark = pytest.mark.db


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def raise_alert(api: Api, f: Fleet, kind: str = "overspeed", t: float = 0, key: str = "") -> int:
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        aid = store.record(
            conn,
            Event(kind, "open", T0 + t, key, {"max_speed_kmh": 120, "limit_kmh": 80}),
            vehicle_id=f.vehicle_id,
            trip_id=f.trip_id,
            stop_id=f.stop_id,
            depot_id=f.depot_id,
            order_ids=[],
            evidence=[{"t_s": T0 + t, "speed_kmh": 120}],
        )
    assert aid is not None
    return aid


@pytest.fixture
def fleet(api: Api) -> Fleet:
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        return add_fleet(conn, api.world)


def test_list_filters_and_pages(api: Api, fleet: Fleet) -> None:
    speeding = raise_alert(api, fleet, "overspeed", 0)
    idle = raise_alert(api, fleet, "idling", 60)
    late = raise_alert(api, fleet, "late_departure", 120)
    status, _, body = api.call("GET", "/alerts", role=Role.SUPERVISOR)
    assert status == 200 and body["next_cursor"] is None
    assert [a["id"] for a in body["alerts"]] == [late, idle, speeding]
    a = body["alerts"][2]
    assert (a["type"], a["severity"], a["state"], a["time_to_ack_s"]) == (
        "overspeed",
        "critical",
        "open",
        None,
    )
    assert "evidence" not in a and a["opened_at"] == NOW.isoformat()

    def ids(query: str) -> list[int]:
        status, _, body = api.call("GET", "/alerts?" + query)
        assert status == 200, body
        return [a["id"] for a in body["alerts"]]

    assert ids("type=idling") == [idle]
    assert ids("severity=critical") == [speeding]
    assert ids(f"depot_id={fleet.depot_id}&vehicle_id={fleet.vehicle_id}") == [late, idle, speeding]
    assert ids(f"trip_id={fleet.trip_id + 1}") == []
    since = (NOW + timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    assert ids(f"since={since}") == [late, idle]
    api.call("POST", f"/alerts/{idle}/acknowledge", json={})
    assert ids("state=acknowledged") == [idle]
    assert ids("state=open&state=acknowledged") == [late, idle, speeding]

    status, _, page = api.call("GET", "/alerts?limit=2")
    assert [a["id"] for a in page["alerts"]] == [late, idle]
    assert ids(f"limit=2&cursor={page['next_cursor']}") == [speeding]

    status, _, err = api.call("GET", "/alerts?since=yesterday")
    assert (status, err["error"]["details"][0]["field"]) == (422, "since")
    status, _, err = api.call("GET", "/alerts?state=forgotten")
    assert (status, err["error"]["code"]) == (422, "invalid_value")


def test_read_and_move_an_alert(api: Api, fleet: Fleet) -> None:
    aid = raise_alert(api, fleet)
    status, _, acked = api.call(
        "POST", f"/alerts/{aid}/acknowledge", role=Role.SUPERVISOR, json={"comment": "on it"}
    )
    assert (status, acked["state"]) == (200, "acknowledged")
    assert acked["time_to_ack_s"] >= 0
    status, _, err = api.call("POST", f"/alerts/{aid}/acknowledge", json={})
    assert (status, err["error"]["code"]) == (409, "illegal_transition")
    assert err["error"]["details"] == [
        {"from": "acknowledged", "to": "acknowledged", "legal_next": ["escalated", "resolved"]}
    ]
    assert api.call("POST", f"/alerts/{aid}/escalate", json={})[2]["state"] == "escalated"
    status, _, noted = api.call(
        "POST", f"/alerts/{aid}/comment", role=Role.SUPERVISOR, json={"comment": "driver called"}
    )
    assert (status, noted["state"]) == (200, "escalated")
    status, _, err = api.call("POST", f"/alerts/{aid}/comment", json={"comment": ""})
    assert (status, err["error"]["code"]) == (422, "invalid_value")
    status, _, done = api.call("POST", f"/alerts/{aid}/resolve", json={"comment": "slowed down"})
    assert (status, done["state"]) == (200, "resolved")

    status, _, alert = api.call("GET", f"/alerts/{aid}", role=Role.SUPERVISOR)
    assert status == 200
    assert alert["evidence"] == [{"t_s": T0, "speed_kmh": 120}]
    assert [(x["action"], x["actor"], x["comment"]) for x in alert["actions"]] == [
        ("open", "rules", ""),
        ("acknowledge", "supervisor-desk", "on it"),
        ("escalate", "dispatcher-desk", ""),
        ("comment", "supervisor-desk", "driver called"),
        ("resolve", "dispatcher-desk", "slowed down"),
    ]
    assert alert["time_to_ack_s"] == acked["time_to_ack_s"]
    assert api.call("GET", f"/alerts/{aid + 99}")[0] == 404
    assert api.call("POST", f"/alerts/{aid + 99}/resolve", json={})[0] == 404


def test_drivers_and_customers_may_not_see_or_touch_alerts(api: Api, fleet: Fleet) -> None:
    aid = raise_alert(api, fleet)
    calls: tuple[tuple[str, str, dict[str, Any]], ...] = (
        ("GET", "/alerts", {}),
        ("GET", f"/alerts/{aid}", {}),
        ("POST", f"/alerts/{aid}/acknowledge", {"json": {}}),
        ("GET", "/alerts/stream", {}),
    )
    for role in (Role.DRIVER, Role.CUSTOMER):
        for method, path, kw in calls:
            status, _, err = api.call(method, path, role=role, **kw)
            assert (status, err["error"]["code"]) == (403, "forbidden"), (role, path)
    assert api.call("GET", "/alerts", role=None)[0] == 401
    # only the stream takes the token in the query (browsers' EventSource needs it)
    token = api.tokens[Role.DISPATCHER]
    assert api.call("GET", "/alerts", role=None, params={"access_token": token})[0] == 401
