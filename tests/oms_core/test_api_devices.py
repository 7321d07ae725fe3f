"""Devices without SQL: register, list with the newest fix, disable and enable; a
vehicle's tracker is registered with the vehicle; and a running service admits a device
registered through the API under ``unknown_devices = reject`` and refuses it once disabled,
once bound to another protocol, and without its secret once it has one.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg
import pytest

from ingest.counters import Counters
from oms_core.api import Role, create_token
from simulators.osmand_out import query
from tests.ingest.test_service import running, settings_for
from tests.oms_core.test_api import Api, api_for
from tests.polling import until
from tests.ports import free_port

pytestmark = pytest.mark.db
T0 = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)


@pytest.fixture
def api(clean_db: str) -> Iterator[Api]:
    yield from api_for(clean_db)


def _rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_register_list_disable_enable(api: Api) -> None:
    body = {"device_id": "352093081234567", "protocol": "teltonika", "label": "van 7"}
    status, headers, made = api.call("POST", "/devices", json=body)
    assert status == 201
    assert headers["Location"] == "/api/v1/devices/352093081234567"
    assert made == {
        **body,
        "enabled": True,
        "vehicle_id": None,
        "created_at": made["created_at"],
        "has_secret": False,
        "last_fix_time": None,
    }
    for n in range(3):
        api.call("POST", "/devices", json={"device_id": f"D{n}", "protocol": "t55"})
    with psycopg.connect(api.world.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO positions (device_id, fix_time, received_time, lat, lon, valid,"
            " transport, protocol) SELECT 'D1', t, t, 1, 1, true, 'tcp', 't55'"
            " FROM unnest(%s::timestamptz[]) t",
            ([T0, T0 + timedelta(minutes=5)],),
        )
    status, _, page = api.call("GET", "/devices?limit=2", role=Role.SUPERVISOR)
    assert status == 200
    assert [d["device_id"] for d in page["devices"]] == ["352093081234567", "D0"]
    page = api.call("GET", f"/devices?limit=2&cursor={page['next_cursor']}")[2]
    assert [d["device_id"] for d in page["devices"]] == ["D1", "D2"]
    assert page["next_cursor"] is None
    assert page["devices"][0]["last_fix_time"] == "2026-06-01T07:05:00+00:00"

    status, _, off = api.call("POST", "/devices/D1/disable")
    assert (status, off["enabled"]) == (200, False)
    assert api.call("GET", "/devices/D1")[2] == off
    listed = api.call("GET", "/devices?enabled=false")[2]["devices"]
    assert [d["device_id"] for d in listed] == ["D1"]
    teltonika = api.call("GET", "/devices?protocol=teltonika")[2]["devices"]
    assert [d["device_id"] for d in teltonika] == ["352093081234567"]
    assert api.call("POST", "/devices/D1/enable")[2]["enabled"] is True

    status, _, err = api.call("POST", "/devices", json={"device_id": "D0", "protocol": "t55"})
    assert (status, err["error"]["code"]) == (409, "device_exists")
    status, _, err = api.call("POST", "/devices", json={"device_id": "X", "protocol": "morse"})
    assert (status, err["error"]["details"][0]["field"]) == (422, "/protocol")
    assert api.call("GET", "/devices/nope")[0] == 404
    assert api.call("POST", "/devices/nope/disable")[0] == 404
    assert api.call("POST", "/devices/D0/disable", role=Role.SUPERVISOR)[0] == 403


def test_a_vehicles_tracker_is_registered_with_it(api: Api) -> None:
    d = api.world.depot_id
    van = {"plate": "T-1", "capacity_kg": "10", "capacity_m3": "1", "depot_id": d}
    status, _, made = api.call(
        "POST", "/vehicles", json={**van, "tracker_device_id": "TRK-A", "tracker_protocol": "gt06"}
    )
    assert status == 201
    device = api.call("GET", "/devices/TRK-A")[2]
    assert (device["vehicle_id"], device["protocol"], device["enabled"]) == (
        made["id"],
        "gt06",
        True,
    )

    # A plate taken: neither the vehicle nor its tracker is stored.
    status, _, _ = api.call("POST", "/vehicles", json={**van, "tracker_device_id": "TRK-B"})
    assert status == 409
    assert api.call("GET", "/devices/TRK-B")[0] == 404

    # Changing the tracker registers the new one and unlinks the old one.
    status, _, changed = api.call(
        "PATCH", f"/vehicles/{made['id']}", json={"tracker_device_id": "TRK-C"}
    )
    assert (status, changed["tracker_device_id"]) == (200, "TRK-C")
    assert api.call("GET", "/devices/TRK-C")[2]["vehicle_id"] == made["id"]
    assert api.call("GET", "/devices/TRK-C")[2]["protocol"] is None
    assert api.call("GET", "/devices/TRK-A")[2]["vehicle_id"] is None

    # Registering a device for a vehicle makes it the vehicle's tracker.
    body = {"device_id": "TRK-D", "protocol": "h02", "vehicle_id": made["id"]}
    assert api.call("POST", "/devices", json=body)[0] == 201
    assert api.call("GET", f"/vehicles/{made['id']}")[2]["tracker_device_id"] == "TRK-D"
    assert api.call("GET", "/devices/TRK-C")[2]["vehicle_id"] is None
    body = {"device_id": "TRK-E", "protocol": "h02", "vehicle_id": 999}
    assert api.call("POST", "/devices", json=body)[0] == 404
    assert api.call("GET", "/devices/TRK-E")[0] == 404

    other = api.call("POST", "/vehicles", json={**van, "plate": "T-2"})[2]
    status, _, err = api.call(
        "PATCH", f"/vehicles/{other['id']}", json={"tracker_device_id": "TRK-D"}
    )
    assert (status, err["error"]["code"]) == (409, "fleet_conflict")
    unlinked = api.call("PATCH", f"/vehicles/{made['id']}", json={"tracker_device_id": None})
    assert unlinked[2]["tracker_device_id"] is None
    assert api.call("GET", "/devices/TRK-D")[2]["vehicle_id"] is None
    assert api.call("PATCH", "/vehicles/999", json={"max_speed_kmh": 80})[0] == 404


def test_a_running_service_follows_the_registry(clean_db: str) -> None:
    """Fixes from a device registered only through the API are stored under
    ``unknown_devices = reject`` and refused again once it is disabled."""
    cfg = settings_for(
        clean_db, unknown_devices="reject", api_port=free_port(), osmand_port=free_port()
    )
    with psycopg.connect(clean_db, autocommit=True) as conn:
        token = create_token(conn, "desk", Role.DISPATCHER)
    api = f"http://127.0.0.1:{cfg.api_port}/api/v1"
    phone = f"http://127.0.0.1:{cfg.osmand_port}/?"
    auth = {"Authorization": f"Bearer {token}"}
    sent = [0]

    async def send(http: aiohttp.ClientSession) -> int:
        sent[0] += 1
        fix = query("PHONE-9", time=T0 + timedelta(seconds=sent[0]), lat=-6.2, lon=106.8)
        async with http.get(phone + fix) as r:
            return r.status

    async def main() -> None:
        async with running(cfg, Counters()), aiohttp.ClientSession() as http:
            assert await send(http) == 403
            body = {"device_id": "PHONE-9", "protocol": "osmand"}
            async with http.post(f"{api}/devices", json=body, headers=auth) as r:
                assert r.status == 201

            async def admitted() -> bool:
                return await send(http) == 200

            await until(admitted, timeout_s=15, what="the registered device to be admitted")
            async with http.post(f"{api}/devices/PHONE-9/disable", headers=auth) as r:
                assert r.status == 200

            async def refused() -> bool:
                return await send(http) == 403

            await until(refused, timeout_s=15, what="the disabled device to be refused")
            async with http.get(f"{api}/devices/PHONE-9", headers=auth) as r:
                newest = (await r.json())["last_fix_time"]

        stored = _rows(clean_db, "SELECT max(fix_time) FROM positions WHERE device_id = 'PHONE-9'")
        assert newest == stored[0][0].isoformat()
        assert (
            _rows(clean_db, "SELECT count(*) FROM dead_letters WHERE device_id = 'PHONE-9'")[0][0]
            >= 2
        )  # the fix before registration and the one after disabling

    asyncio.run(asyncio.wait_for(main(), 90))


def test_a_device_secret_and_protocol_set_through_the_api(clean_db: str) -> None:
    """A secret made through the API is asked of the device's OsmAnd requests (``key``):
    none or a wrong one is 403 ``bad_secret``, kept without the secret (only its hash is
    stored anywhere); removing it opens the device again; another protocol set through
    the API refuses OsmAnd as ``wrong_protocol``."""
    cfg = settings_for(
        clean_db, unknown_devices="reject", api_port=free_port(), osmand_port=free_port()
    )
    with psycopg.connect(clean_db, autocommit=True) as conn:
        token = create_token(conn, "desk", Role.DISPATCHER)
        conn.execute("INSERT INTO devices (device_id, protocol) VALUES ('PHONE-7', 'osmand')")
    api = f"http://127.0.0.1:{cfg.api_port}/api/v1"
    auth = {"Authorization": f"Bearer {token}"}
    sent = [0]
    got: dict[str, Any] = {}

    async def send(http: aiohttp.ClientSession, key: str | None = None) -> tuple[int, str]:
        sent[0] += 1
        fix = query("PHONE-7", time=T0 + timedelta(seconds=sent[0]), lat=-6.2, lon=106.8)
        extra = "" if key is None else f"&key={key}"
        async with http.get(f"http://127.0.0.1:{cfg.osmand_port}/?{fix}{extra}") as r:
            return r.status, (await r.text()).split(":")[0]

    async def main() -> None:
        async with running(cfg, Counters()), aiohttp.ClientSession() as http:
            assert await send(http) == (200, "")
            async with http.post(f"{api}/devices/PHONE-7/secret", headers=auth) as r:
                assert r.status == 201
                got.update(await r.json())
            secret = got["secret"]
            assert len(secret) >= 40
            digest = hashlib.sha256(secret.encode()).hexdigest()
            assert _rows(clean_db, "SELECT secret_hash FROM devices") == [(digest,)]

            async def asked() -> bool:
                return await send(http) == (403, "bad_secret")

            await until(asked, timeout_s=15, what="the secret to be asked for")
            assert await send(http, "not-it") == (403, "bad_secret")
            assert await send(http, secret) == (200, "")
            async with http.get(f"{api}/devices/PHONE-7", headers=auth) as r:
                assert (await r.json())["has_secret"] is True

            async with http.delete(f"{api}/devices/PHONE-7/secret", headers=auth) as r:
                assert (r.status, (await r.json())["has_secret"]) == (200, False)

            async def open_again() -> bool:
                return await send(http) == (200, "")

            await until(open_again, timeout_s=15, what="the secret to be dropped")
            body = {"protocol": "teltonika"}
            async with http.patch(f"{api}/devices/PHONE-7", json=body, headers=auth) as r:
                assert (r.status, (await r.json())["protocol"]) == (200, "teltonika")

            async def rebound() -> bool:
                return await send(http) == (403, "wrong_protocol")

            await until(rebound, timeout_s=15, what="the new protocol to be enforced")
            async with http.patch(f"{api}/devices/NOPE", json=body, headers=auth) as r:
                assert r.status == 404
            async with http.post(f"{api}/devices/NOPE/secret", headers=auth) as r:
                assert r.status == 404

    asyncio.run(asyncio.wait_for(main(), 90))
    secret = got["secret"]
    stored = _rows(
        clean_db,
        "SELECT count(*) FROM dead_letters WHERE reason = 'bad_secret'"
        " AND position(%s in convert_from(raw, 'UTF8') || detail) = 0",
        secret,
    )
    assert stored[0][0] >= 2  # none and the wrong one, both kept without any secret
    keyed = _rows(clean_db, "SELECT count(*) FROM dead_letters WHERE position('key=' in raw) > 0")
    assert keyed == [(0,)]
    leaked = _rows(
        clean_db,
        "SELECT count(*) FROM positions WHERE attributes::text LIKE '%%' || %s || '%%'"
        " OR attributes ? 'key'",
        secret,
    )
    assert leaked == [(0,)]
    assert _rows(clean_db, "SELECT secret_hash FROM devices") == [(None,)]
