"""``/api/v1/reports/...`` over the real app: JSON by default, CSV on ``Accept: text/csv``,
roles, and refusals that say what to fix (the late day of ``test_reports_views``)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from oms_core.api import Role, create_token, make_app
from oms_core.api.spec import PREFIX
from tests.oms_core.test_api import serve, stop
from tests.oms_core.test_reports_views import late_day  # noqa: F401 (fixture)

Conn = psycopg.Connection[Any]
Got = tuple[int, str, str]  # status, content type, body


class Client:
    """The served app and a token per role."""

    def __init__(self, url: str, tokens: dict[Role, str]) -> None:
        self.url, self.tokens = url, tokens

    def get(self, path: str, role: Role = Role.DISPATCHER, accept: str = "") -> Got:
        async def go() -> Got:
            headers = {"Authorization": f"Bearer {self.tokens[role]}"}
            if accept:
                headers["Accept"] = accept
            async with (
                aiohttp.ClientSession() as s,
                s.get(self.url + PREFIX + path, headers=headers) as r,
            ):
                return r.status, r.content_type, await r.text()

        return asyncio.run(go())

    def json(self, path: str, role: Role = Role.DISPATCHER) -> Any:
        status, kind, body = self.get(path, role)
        assert (status, kind) == (200, "application/json"), body
        return json.loads(body)


@pytest.fixture
def client(late_day: tuple[Conn, dict[str, Any]]) -> Iterator[tuple[Client, dict[str, Any]]]:  # noqa: F811
    conn, w = late_day
    tokens = {
        r: create_token(conn, f"{r}-reports", r)
        for r in (Role.DISPATCHER, Role.SUPERVISOR, Role.CUSTOMER)
    }
    with ConnectionPool(
        w["world"].dsn, min_size=1, max_size=2, kwargs={"autocommit": True}
    ) as pool:
        served = serve(make_app(pool))
        try:
            yield Client(served.url, tokens), w
        finally:
            stop(served)


def test_kpis_as_json_for_dispatchers_and_supervisors(
    client: tuple[Client, dict[str, Any]],
) -> None:
    c, w = client
    day = w["day"].isoformat()
    for role in (Role.DISPATCHER, Role.SUPERVISOR):
        doc = c.json(f"/reports/kpis?from={day}&by=depot", role)
        assert (doc["from"], doc["to"], doc["by"], doc["depot"]) == (day, day, "depot", None)
        assert [k["name"] for k in doc["kpis"]] == ["AMS", "all"]
        assert doc["kpis"][-1]["deliveries"] == 2 and doc["kpis"][-1]["late"] == 2
        assert {s["stage"] for s in doc["stages"] if s["late_attributed"]} == {"loading", "transit"}
        assert {a["type"] for a in doc["alerts"]} == {"overspeed", "silent_device"}
        assert doc["trips"][0]["trip_id"] == w["trip"]
    only = c.json(f"/reports/kpis?from={day}&to={day}&section=failures")
    assert [k for k in only if isinstance(only[k], list)] == ["failures"]
    status, _, _ = c.get(f"/reports/kpis?from={day}", Role.CUSTOMER)
    assert status == 403


def test_csv_when_asked(client: tuple[Client, dict[str, Any]]) -> None:
    c, w = client
    day = w["day"].isoformat()
    status, kind, body = c.get(f"/reports/kpis?from={day}&by=driver", accept="text/csv")
    assert (status, kind) == (200, "text/csv")
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert [(r["driver_id"], r["name"], r["deliveries"]) for r in rows] == [
        (str(w["driver"]), "Dee", "2"),
        ("", "all", "2"),
    ]
    status, _, body = c.get(f"/reports/kpis?from={day}&section=stages", accept="text/csv")
    stages = list(csv.DictReader(io.StringIO(body, newline="")))
    assert status == 200 and stages[3]["stage"] == "transit" and float(stages[3]["avg_s"]) == 5100
    status, _, body = c.get(f"/reports/stops?from={day}&trip_id={w['trip']}", accept="text/csv")
    stops = list(csv.DictReader(io.StringIO(body, newline="")))
    assert [(s["seq"], s["arrival_method"], s["state"]) for s in stops] == [
        ("1", "geofence", "arrived"),
        ("2", "driver", "arrived"),
    ]
    doc = c.json(f"/reports/trips?from={day}&depot={w['world'].depot_id}")
    assert [t["trip_id"] for t in doc["trips"]] == [w["trip"]]
    assert doc["trips"][0]["departure_delay_s"] == 2400


def test_refusals_say_what_to_fix(client: tuple[Client, dict[str, Any]]) -> None:
    c, w = client
    day = w["day"]
    cases = {
        "/reports/kpis": "from=YYYY-MM-DD",
        f"/reports/kpis?from={day}&to={day - timedelta(days=1)}": "swap from and to",
        f"/reports/trips?from={day}&depot=999": "no depot 999",
        f"/reports/stops?from={day - timedelta(days=400)}&to={day}": "at most 366 days",
        f"/reports/kpis?from={day}&by=week": "must be one of: day, depot, driver, customer",
        f"/reports/kpis?from={day}&when=now": "unknown_field",
    }
    for path, hint in cases.items():
        status, kind, body = c.get(path)
        assert (status, kind) == (422, "application/json"), path
        assert hint in body, (path, body)
