"""Zone endpoints: list (keyset pages), create from GeoJSON, read, delete (deactivate),
and import a FeatureCollection with a report per feature.

Outlines are checked by ``geofence.geojson`` and refused with its stable codes (422),
never repaired. An import stores each good feature on its own and refuses a bad one
alone, with its reason, like the order import.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import psycopg
from aiohttp import web

from geofence import GeofenceError, parse_feature
from geofence.geojson import ZoneSpec
from oms_core.api.auth import Role
from oms_core.api.context import read_json, run
from oms_core.api.errors import ApiError
from oms_core.api.schemas import MAX_ID
from oms_core.api.spec import PAGE_PARAMS, PREFIX, Operation, Param, parse_params
from oms_core.zones_store import (
    ZoneRecord,
    add_zone,
    deactivate_zone,
    get_zone,
    list_zones,
    load_zones,
)

__all__ = ["OPERATIONS", "load_zones", "zone_json"]

Conn = psycopg.Connection[Any]
_READ = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_WRITE = frozenset({Role.DISPATCHER})
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_ERR = "Error"


def zone_json(zone: ZoneRecord) -> dict[str, Any]:
    """A zone as the ``Zone`` schema describes it."""
    out = asdict(zone)
    out["created_at"] = zone.created_at.isoformat()
    return out


def _error(exc: GeofenceError, field: str) -> dict[str, Any]:
    return {
        "code": exc.code,
        "message": f"the zone was refused: {exc.message}",
        "details": [{"code": exc.code, "field": field, "message": exc.message}],
    }


def _depot_missing(conn: Conn, depot_id: int | None) -> bool:
    return (
        depot_id is not None
        and not conn.execute(
            "SELECT 1 FROM depots WHERE id = %s", (min(depot_id, MAX_ID),)
        ).fetchone()
    )


def _no_depot(depot_id: int, field: str) -> dict[str, Any]:
    message = f"no depot {depot_id}: give an existing depot id or none"
    return {
        "code": "invalid_value",
        "message": message,
        "details": [{"code": "invalid_value", "field": field, "message": message}],
    }


async def create_zone(request: web.Request) -> web.Response:
    body = await read_json(request, "ZoneCreate")
    feature = {
        "type": "Feature",
        "properties": {k: body[k] for k in ("name", "kind", "speed_limit_kmh") if k in body},
        "geometry": body["geometry"],
    }
    try:
        spec = parse_feature(feature)
    except GeofenceError as exc:
        err = _error(exc, exc.path.replace("/properties", "", 1))  # the body's own fields
        raise ApiError(422, err["code"], err["message"], err["details"]) from exc
    depot_id = body.get("depot_id")

    def add(conn: Conn) -> ZoneRecord:
        if _depot_missing(conn, depot_id):
            err = _no_depot(depot_id or 0, "/depot_id")
            raise ApiError(422, err["code"], err["message"], err["details"])
        return add_zone(conn, spec, depot_id)

    zone = await run(request, add)
    location = f"{PREFIX}/zones/{zone.id}"
    return web.json_response(zone_json(zone), status=201, headers={"Location": location})


async def list_zones_(request: web.Request) -> web.Response:
    q = parse_params(request, _OPS["listZones"])
    active = None if "active" not in q else q["active"] == "true"
    cursor = int(q["cursor"]) if "cursor" in q else None
    page, next_cursor = await run(
        request,
        lambda c: list_zones(
            c,
            kind=q.get("kind"),
            active=active,
            depot_id=q.get("depot_id"),
            limit=q.get("limit", 50),
            cursor=cursor,
        ),
    )
    return web.json_response({"zones": [zone_json(z) for z in page], "next_cursor": next_cursor})


async def get_zone_(request: web.Request) -> web.Response:
    zid = parse_params(request, _OPS["getZone"])["id"]
    return web.json_response(zone_json(await run(request, lambda c: get_zone(c, zid))))


async def delete_zone(request: web.Request) -> web.Response:
    zid = parse_params(request, _OPS["deleteZone"])["id"]
    return web.json_response(zone_json(await run(request, lambda c: deactivate_zone(c, zid))))


def _import_one(conn: Conn, i: int, feature: Any) -> dict[str, Any]:
    where = f"/features/{i}"
    props = feature.get("properties") if isinstance(feature, dict) else None
    name = props.get("name") if isinstance(props, dict) else None
    row: dict[str, Any] = {
        "feature": i,
        "ok": False,
        "zone_id": None,
        "name": name if isinstance(name, str) else None,
        "error": None,
    }
    try:
        spec: ZoneSpec = parse_feature(feature, where)
    except GeofenceError as exc:
        row["error"] = _error(exc, exc.path)
        return row
    depot_id = props.get("depot_id") if isinstance(props, dict) else None
    if depot_id is not None and (
        isinstance(depot_id, bool)
        or not isinstance(depot_id, int)
        or not 1 <= depot_id <= MAX_ID
        or _depot_missing(conn, depot_id)
    ):
        row["error"] = _no_depot(depot_id, f"{where}/properties/depot_id")
        return row
    row["zone_id"], row["ok"] = add_zone(conn, spec, depot_id).id, True
    return row


async def import_zones(request: web.Request) -> web.Response:
    body = await read_json(request, "ZoneImport")
    features = body["features"]
    rows = await run(request, lambda c: [_import_one(c, i, f) for i, f in enumerate(features)])
    created = sum(1 for r in rows if r["ok"])
    return web.json_response({"created": created, "refused": len(rows) - created, "features": rows})


_ID = (Param("id", "path", _ID_SCHEMA, "zone id"),)
_LIST_PARAMS = (
    Param("kind", "query", {"enum": ["restricted", "speed", "area"]}, "only zones of this kind"),
    Param("active", "query", {"enum": ["true", "false"]}, "only active (or deleted) zones"),
    Param("depot_id", "query", _ID_SCHEMA, "only zones of this depot"),
    *PAGE_PARAMS,
)
_NOT_FOUND = (404, ("no such zone", _ERR))
OPERATIONS = (
    Operation(
        "listZones", "GET", "/zones", list_zones_, "List zones, newest first", _READ,
        {200: ("one page", "ZonePage")}, params=_LIST_PARAMS,
    ),
    Operation(
        "createZone", "POST", "/zones", create_zone,
        "Add a zone from a GeoJSON Polygon or MultiPolygon", _WRITE,
        {201: ("the stored zone", "Zone")}, body="ZoneCreate",
        description="A bad outline (unclosed ring, fewer than 4 positions, lon/lat out of"
        " range, self-intersection, too many vertices) or a speed zone without a limit is"
        " refused with 422 and a stable code (unclosed_ring, too_few_positions,"
        " out_of_range, invalid_polygon, too_many_vertices, missing_speed_limit, ...);"
        " it is never repaired.",
    ),
    Operation(
        "getZone", "GET", "/zones/{id}", get_zone_, "Read a zone", _READ,
        dict([(200, ("the zone", "Zone")), _NOT_FOUND]), params=_ID,
    ),
    Operation(
        "deleteZone", "DELETE", "/zones/{id}", delete_zone,
        "Delete a zone: it is deactivated (kept for the alerts that name it)", _WRITE,
        dict([(200, ("the deactivated zone", "Zone")), _NOT_FOUND]), params=_ID,
    ),
    Operation(
        "importZones", "POST", "/zones/import", import_zones,
        "Add many zones from a GeoJSON FeatureCollection, with a report per feature", _WRITE,
        {200: ("one report row per feature", "ZoneImportReport")}, body="ZoneImport",
        description="Each feature is checked and stored on its own: good ones are stored,"
        " a bad one is refused alone with its reason (the codes of POST /zones, and"
        " invalid_value for an unknown depot_id).",
    ),
)  # fmt: skip
_OPS = {op.operation_id: op for op in OPERATIONS}
